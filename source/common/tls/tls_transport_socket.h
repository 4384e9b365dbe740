#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "source/common/network/transport_socket.h"

namespace mcproxy::tls {

// TLS server side of an accepted connection: OpenSSL first reads `peeked` (the bytes the
// tls_inspector already took from the socket, the ClientHello), then the socket. `fd` stays the
// caller's.
std::unique_ptr<network::TransportSocket> makeServerTransportSocket(int fd, SSL_CTX* context,
                                                                    std::string peeked);

// TLS client side of a connected socket: sends `server_name` as SNI and, when the context
// verifies peers, requires the certificate to name it.
std::unique_ptr<network::TransportSocket> makeClientTransportSocket(int fd, SSL_CTX* context,
                                                                    const std::string& server_name);

}  // namespace mcproxy::tls

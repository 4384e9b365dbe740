#pragma once

#include <openssl/bio.h>

#include <string>

namespace mcproxy::tls {

// A BIO over a non-blocking socket that first returns `prefix`: the bytes tls_inspector already
// read (the ClientHello), so OpenSSL sees the stream from its first byte without the proxy
// reading anything twice. Writes go straight to the socket. The BIO does not own the fd.
BIO* newPrefixedSocketBio(int fd, std::string prefix);

}  // namespace mcproxy::tls

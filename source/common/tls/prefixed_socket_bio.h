#pragma once

#include <openssl/bio.h>

#include <string>

namespace mcproxy::tls {

// A BIO over a non-blocking socket that first returns `prefix`: the bytes tls_inspector already
// read (the ClientHello), so OpenSSL sees the stream from its first byte without the proxy
// reading anything twice. Writes go straight to the socket. The BIO does not own the fd.
BIO* newPrefixedSocketBio(int fd, std::string prefix);

// True when the BIO's last read from the socket returned less than OpenSSL asked for: the
// socket was empty then, so another read would only return EAGAIN (level-triggered readiness
// calls again when more arrives). With read-ahead, OpenSSL asks for a whole buffer at a time.
bool prefixedSocketBioDrained(BIO* bio);

}  // namespace mcproxy::tls

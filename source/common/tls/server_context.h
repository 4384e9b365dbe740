#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mcproxy::tls {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

// A server TLS context for one certificate: TLS 1.2 and 1.3 only, forward-secret AEAD ciphers,
// session resumption (tickets and a server-side cache), ALPN preferring h2 over http/1.1.
// Returns null and sets `error` (naming the file and OpenSSL's reason) on failure;
// `key_at_fault` says whether the key file (unreadable, or not the certificate's) is to blame.
std::shared_ptr<SSL_CTX> makeServerContext(const std::string& cert_file,
                                           const std::string& key_file, std::string& error,
                                           bool* key_at_fault = nullptr);

// What a client would find wrong with the certificate `ctx` serves, for config warnings: a chain
// that does not verify against the system CA bundle (OpenSSL's default paths; SSL_CERT_FILE and
// SSL_CERT_DIR override them) because the file holds the leaf only, the intermediates do not
// lead to a trusted root, or a certificate expired or is not yet valid. Empty when nothing is.
// The same for every name the certificate serves, so checked once per certificate.
std::vector<std::string> checkCertificateChain(SSL_CTX* ctx);
// Why the leaf does not cover `hostname` ("*.a.test": any one name under it); "" when it does.
std::string checkCertificateHost(SSL_CTX* ctx, std::string_view hostname);

// A client TLS context for upstreams: verifies against `ca_file` (the system bundle when empty),
// offers ALPN `alpn` ("h2" or "http/1.1").
std::shared_ptr<SSL_CTX> makeClientContext(const std::string& ca_file, std::string_view alpn,
                                           std::string& error);

// The last OpenSSL error queue entries as text (and clears the queue).
std::string opensslErrors();

}  // namespace mcproxy::tls

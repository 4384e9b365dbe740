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

// A listener's TLS policy, in OpenSSL's terms. Defaults: the built-in policy.
struct ServerPolicy {
  int min_version = TLS1_2_VERSION;
  int max_version = 0;        // 0: the highest OpenSSL has (TLS 1.3)
  std::string tls12_ciphers;  // SSL_CTX_set_cipher_list() form; "": the built-in list
  std::string tls13_suites;   // SSL_CTX_set_ciphersuites() form; "": OpenSSL's
  std::string groups;         // SSL_CTX_set1_groups_list() form; "": X25519:P-256:P-384

  // Cache and session keys: two policies with the same text behave the same.
  std::string describe() const;
};

// Whether OpenSSL knows `name` as a TLS 1.2 cipher (or a TLS 1.3 suite when it starts with
// "TLS_"), and as a key exchange group.
bool knownCipherSuite(const std::string& name);
bool knownGroup(const std::string& name);

// Everything a server context serves besides its certificate.
struct ServerContextOptions {
  ServerPolicy policy;
  // Mutual TLS: a PEM bundle of client CAs ("" for none); whether a client must present one.
  std::string client_ca_file;
  bool client_cert_required = true;
  // A DER OCSP response to staple ("" for none); see makeServerContext().
  std::string ocsp_der;
};

// Which configured file or setting a server context failed on.
enum class ServerContextFault { kCertificate, kKey, kClientCa, kPolicy };

// A server TLS context for one certificate: by default TLS 1.2 and 1.3 only, forward-secret AEAD
// ciphers, session resumption (tickets under the process's rotating keys, TicketKeys, and a
// server-side cache), ALPN preferring h2 over http/1.1; `options` tighten or loosen that, ask
// for client certificates and staple an OCSP response. Returns null and sets `error` (naming
// the file and OpenSSL's reason) and `fault` on failure. An OCSP response checkOcspResponse()
// says not to staple is no failure: it is left out.
std::shared_ptr<SSL_CTX> makeServerContext(const std::string& cert_file,
                                           const std::string& key_file,
                                           const ServerContextOptions& options, std::string& error,
                                           ServerContextFault* fault = nullptr);

// An OCSP response judged against the leaf certificate `ctx` serves.
struct OcspCheck {
  // Why it is not stapled (it does not parse, is not "successful", names another certificate,
  // is not valid yet or its nextUpdate passed), or the warning a stapled REVOKED status is worth;
  // "" when it is good. Phrased "the OCSP response ...".
  std::string problem;
  bool staple = false;     // good, or revoked (the truth: clients get it)
  time_t next_update = 0;  // its nextUpdate; 0 when it has none
};
OcspCheck checkOcspResponse(SSL_CTX* ctx, const std::string& der);

// What a client would find wrong with the certificate `ctx` serves, for config warnings: a chain
// that does not verify against the system CA bundle (OpenSSL's default paths; SSL_CERT_FILE and
// SSL_CERT_DIR override them) because the file holds the leaf only, the intermediates do not
// lead to a trusted root, or a certificate expired or is not yet valid. Empty when nothing is.
// The same for every name the certificate serves, so checked once per certificate.
std::vector<std::string> checkCertificateChain(SSL_CTX* ctx);
// Why the leaf does not cover `hostname` ("*.a.test": any one name under it); "" when it does.
std::string checkCertificateHost(SSL_CTX* ctx, std::string_view hostname);

// A client TLS context for upstreams: verifies against `ca_file` (the system bundle when empty),
// offers ALPN `alpn` ("h2" or "http/1.1"; none when empty).
std::shared_ptr<SSL_CTX> makeClientContext(const std::string& ca_file, std::string_view alpn,
                                           std::string& error);

// The last OpenSSL error queue entries as text (and clears the queue).
std::string opensslErrors();

}  // namespace mcproxy::tls

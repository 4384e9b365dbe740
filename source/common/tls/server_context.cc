#include "source/common/tls/server_context.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace mcproxy::tls {
namespace {

constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// h2 when the client offers it, else http/1.1; a client offering neither gets no ALPN (and
// HTTP/1.1, as a client without ALPN expects).
int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  for (const char* wanted : {"h2", "http/1.1"}) {
    const size_t wanted_len = std::strlen(wanted);
    for (unsigned int i = 0; i < inlen; i += 1 + in[i]) {
      if (in[i] == wanted_len && i + 1 + wanted_len <= inlen &&
          std::memcmp(in + i + 1, wanted, wanted_len) == 0) {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(wanted_len);
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

std::string opensslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof(text));
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

std::shared_ptr<SSL_CTX> makeServerContext(const std::string& cert_file,
                                           const std::string& key_file, std::string& error,
                                           bool* key_at_fault) {
  if (key_at_fault != nullptr) *key_at_fault = false;
  const std::string mismatch =
      "private key \"" + key_file + "\" does not match certificate \"" + cert_file + "\"";
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    error = opensslErrors();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(ctx.get(), kTls12Ciphers);
  SSL_CTX_set_options(
      ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_ENABLE_PARTIAL_WRITE);
  // Read whole socket buffers, not a record header and then its body: one recv() per batch
  // of records instead of two per record.
  SSL_CTX_set_read_ahead(ctx.get(), 1);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_session_id_context(ctx.get(), reinterpret_cast<const unsigned char*>("mc-proxy"), 8);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
    error = "cannot load certificate \"" + cert_file + "\": " + opensslErrors();
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (key_at_fault != nullptr) *key_at_fault = true;
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      error = mismatch;
      ERR_clear_error();
    } else {
      error = "cannot load private key \"" + key_file + "\": " + opensslErrors();
    }
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    if (key_at_fault != nullptr) *key_at_fault = true;
    error = mismatch;
    ERR_clear_error();
    return nullptr;
  }
  SSL_CTX_set_alpn_select_cb(ctx.get(), selectAlpn, nullptr);
  return std::shared_ptr<SSL_CTX>(ctx.release(), SslCtxDeleter());
}

namespace {

struct X509StoreDeleter {
  void operator()(X509_STORE* store) const { X509_STORE_free(store); }
};
struct X509StoreCtxDeleter {
  void operator()(X509_STORE_CTX* ctx) const { X509_STORE_CTX_free(ctx); }
};

// The system trust store, loaded once: config checks only read it.
X509_STORE* systemTrustStore() {
  static const std::unique_ptr<X509_STORE, X509StoreDeleter> store = [] {
    std::unique_ptr<X509_STORE, X509StoreDeleter> made(X509_STORE_new());
    X509_STORE_set_default_paths(made.get());
    ERR_clear_error();
    return made;
  }();
  return store.get();
}

std::string asn1Time(const ASN1_TIME* time) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  ASN1_TIME_print(bio.get(), time);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// The verification errors of one chain, each once, in the order met.
int collectVerifyErrors(int, X509_STORE_CTX* ctx) {
  auto* errors = static_cast<std::vector<int>*>(
      X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  const int error = X509_STORE_CTX_get_error(ctx);
  if (error != X509_V_OK && std::find(errors->begin(), errors->end(), error) == errors->end()) {
    errors->push_back(error);
  }
  return 1;  // go on: every problem is reported, not only the first
}

}  // namespace

std::vector<std::string> checkCertificateChain(SSL_CTX* ctx) {
  std::vector<std::string> problems;
  X509* leaf = SSL_CTX_get0_certificate(ctx);
  if (leaf == nullptr) return problems;
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(ctx, &chain);
  const bool leaf_only = chain == nullptr || sk_X509_num(chain) == 0;
  std::unique_ptr<X509_STORE_CTX, X509StoreCtxDeleter> verify(X509_STORE_CTX_new());
  std::vector<int> errors;
  if (X509_STORE_CTX_init(verify.get(), systemTrustStore(), leaf, chain) == 1) {
    X509_STORE_CTX_set_ex_data(verify.get(), SSL_get_ex_data_X509_STORE_CTX_idx(), &errors);
    X509_STORE_CTX_set_verify_cb(verify.get(), collectVerifyErrors);
    X509_STORE_CTX_set_purpose(verify.get(), X509_PURPOSE_SSL_SERVER);
    X509_verify_cert(verify.get());
  }
  ERR_clear_error();
  bool untrusted = false;  // one line for the chain, whatever OpenSSL reports after its cause
  for (int error : errors) {
    switch (error) {
      case X509_V_ERR_CERT_HAS_EXPIRED:
        problems.push_back("a certificate of the chain expired (the leaf's notAfter: " +
                           asn1Time(X509_get0_notAfter(leaf)) + ")");
        break;
      case X509_V_ERR_CERT_NOT_YET_VALID:
        problems.push_back("a certificate of the chain is not valid yet (the leaf's notBefore: " +
                           asn1Time(X509_get0_notBefore(leaf)) + ")");
        break;
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        problems.push_back(
            "the certificate is self-signed: only clients that trust it as it is accept it");
        break;
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        if (std::exchange(untrusted, true)) break;
        problems.push_back(
            std::string("the chain does not verify against the system CA bundle (") +
            X509_verify_cert_error_string(error) + "): " +
            (leaf_only ? "the file holds the leaf certificate only; append its intermediates"
                       : "the certificates after the leaf do not lead to a trusted root"));
        break;
      default:
        problems.push_back(std::string("the chain does not verify: ") +
                           X509_verify_cert_error_string(error));
    }
  }
  return problems;
}

std::string checkCertificateHost(SSL_CTX* ctx, std::string_view hostname) {
  X509* leaf = SSL_CTX_get0_certificate(ctx);
  if (leaf == nullptr || hostname.empty()) return "";
  // A wildcard route serves every name under it: one of them stands for all.
  const std::string name = hostname.starts_with("*.")
                               ? "wildcard-check" + std::string(hostname.substr(1))
                               : std::string(hostname);
  if (X509_check_host(leaf, name.data(), name.size(), 0, nullptr) != 1) {
    return "the certificate does not cover \"" + std::string(hostname) +
           "\" (clients will refuse it)";
  }
  return "";
}

std::shared_ptr<SSL_CTX> makeClientContext(const std::string& ca_file, std::string_view alpn,
                                           std::string& error) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    error = opensslErrors();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  const int loaded = ca_file.empty()
                         ? SSL_CTX_set_default_verify_paths(ctx.get())
                         : SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr);
  if (loaded != 1) {
    error = "cannot load CA bundle \"" + ca_file + "\": " + opensslErrors();
    return nullptr;
  }
  SSL_CTX_set_read_ahead(ctx.get(), 1);  // as for servers: whole buffers, not record by record
  std::string wire(1, static_cast<char>(alpn.size()));
  wire += alpn;
  SSL_CTX_set_alpn_protos(ctx.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                          static_cast<unsigned int>(wire.size()));
  return std::shared_ptr<SSL_CTX>(ctx.release(), SslCtxDeleter());
}

}  // namespace mcproxy::tls

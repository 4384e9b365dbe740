#include "source/common/tls/server_context.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <utility>

#include "source/common/tls/digest.h"
#include "source/common/tls/ticket_keys.h"

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

std::string asn1Time(const ASN1_TIME* time) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  ASN1_TIME_print(bio.get(), time);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
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

std::string ServerPolicy::describe() const {
  return std::to_string(min_version) + "/" + std::to_string(max_version) + "/" + tls12_ciphers +
         "/" + tls13_suites + "/" + groups;
}

namespace {

// A context to try cipher and group names on, made once per check.
SslCtxPtr scratchContext() { return SslCtxPtr(SSL_CTX_new(TLS_server_method())); }

}  // namespace

bool knownCipherSuite(const std::string& name) {
  SslCtxPtr ctx = scratchContext();
  const bool known = name.starts_with("TLS_")
                         ? SSL_CTX_set_ciphersuites(ctx.get(), name.c_str()) == 1
                         : SSL_CTX_set_cipher_list(ctx.get(), name.c_str()) == 1;
  ERR_clear_error();
  return known;
}

bool knownGroup(const std::string& name) {
  SslCtxPtr ctx = scratchContext();
  const bool known = SSL_CTX_set1_groups_list(ctx.get(), name.c_str()) == 1;
  ERR_clear_error();
  return known;
}

namespace {

struct OcspResponseDeleter {
  void operator()(OCSP_RESPONSE* response) const { OCSP_RESPONSE_free(response); }
};
struct OcspBasicDeleter {
  void operator()(OCSP_BASICRESP* basic) const { OCSP_BASICRESP_free(basic); }
};
struct OcspCertIdDeleter {
  void operator()(OCSP_CERTID* id) const { OCSP_CERTID_free(id); }
};

// What a context staples: the response and when it stops being good.
struct OcspStaple {
  std::string der;
  time_t next_update = 0;  // 0: none given
};

// OpenSSL asks only when the client sent status_request.
int stapleOcsp(SSL* ssl, void* arg) {
  const auto* staple = static_cast<const OcspStaple*>(arg);
  if (staple->next_update != 0 && std::time(nullptr) > staple->next_update) {
    return SSL_TLSEXT_ERR_NOACK;  // expired while running: no staple rather than a stale one
  }
  auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(staple->der.size()));
  if (copy == nullptr) return SSL_TLSEXT_ERR_NOACK;
  std::memcpy(copy, staple->der.data(), staple->der.size());
  SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(staple->der.size()));
  return SSL_TLSEXT_ERR_OK;
}

time_t toTimeT(const ASN1_TIME* time) {
  struct tm parts {};
  if (ASN1_TIME_to_tm(time, &parts) != 1) return 0;
  return timegm(&parts);
}

}  // namespace

OcspCheck checkOcspResponse(SSL_CTX* ctx, const std::string& der) {
  auto refused = [](std::string why) {
    return OcspCheck{"the OCSP response " + std::move(why) + ": not stapled"};
  };
  const auto* cursor = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<OCSP_RESPONSE, OcspResponseDeleter> response(
      d2i_OCSP_RESPONSE(nullptr, &cursor, static_cast<long>(der.size())));
  if (!response) {
    ERR_clear_error();
    return refused("does not parse as a DER OCSP response");
  }
  const int status = OCSP_response_status(response.get());
  if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    return refused(std::string("has the responder's status \"") + OCSP_response_status_str(status) +
                   "\", not \"successful\"");
  }
  std::unique_ptr<OCSP_BASICRESP, OcspBasicDeleter> basic(OCSP_response_get1_basic(response.get()));
  X509* leaf = SSL_CTX_get0_certificate(ctx);
  if (!basic || leaf == nullptr) return refused("has no basic response");
  // The issuer is the chain's certificate that issued the leaf; without one, the serial number
  // alone must match.
  X509* issuer = nullptr;
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(ctx, &chain);
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    if (X509_check_issued(sk_X509_value(chain, i), leaf) == X509_V_OK) {
      issuer = sk_X509_value(chain, i);
      break;
    }
  }
  int cert_status = -1;
  int reason = 0;
  ASN1_GENERALIZEDTIME* revoked_at = nullptr;
  ASN1_GENERALIZEDTIME* this_update = nullptr;
  ASN1_GENERALIZEDTIME* next = nullptr;
  if (issuer != nullptr) {
    std::unique_ptr<OCSP_CERTID, OcspCertIdDeleter> id(OCSP_cert_to_id(nullptr, leaf, issuer));
    if (id == nullptr || OCSP_resp_find_status(basic.get(), id.get(), &cert_status, &reason,
                                               &revoked_at, &this_update, &next) != 1) {
      ERR_clear_error();
      return refused("is not for this certificate (no status for its issuer and serial number)");
    }
  } else {
    const ASN1_INTEGER* serial = X509_get0_serialNumber(leaf);
    for (int i = 0; i < OCSP_resp_count(basic.get()); ++i) {
      OCSP_SINGLERESP* single = OCSP_resp_get0(basic.get(), i);
      const OCSP_CERTID* id = OCSP_SINGLERESP_get0_id(single);
      ASN1_INTEGER* id_serial = nullptr;
      OCSP_id_get0_info(nullptr, nullptr, nullptr, &id_serial, const_cast<OCSP_CERTID*>(id));
      if (id_serial != nullptr && ASN1_INTEGER_cmp(id_serial, serial) == 0) {
        cert_status = OCSP_single_get0_status(single, &reason, &revoked_at, &this_update, &next);
        break;
      }
    }
    if (cert_status < 0)
      return refused("is not for this certificate (no status for its serial number)");
  }
  if (this_update != nullptr && X509_cmp_current_time(this_update) > 0) {
    return refused("is not valid yet (thisUpdate " + asn1Time(this_update) + ")");
  }
  if (next != nullptr && X509_cmp_current_time(next) < 0) {
    return refused("expired (nextUpdate " + asn1Time(next) + ")");
  }
  OcspCheck good{"", true, next != nullptr ? toTimeT(next) : 0};
  if (cert_status == V_OCSP_CERTSTATUS_REVOKED) {
    good.problem = "the OCSP response says the certificate is REVOKED: replace the certificate";
  }
  return good;
}

std::shared_ptr<SSL_CTX> makeServerContext(const std::string& cert_file,
                                           const std::string& key_file,
                                           const ServerContextOptions& options, std::string& error,
                                           ServerContextFault* fault) {
  auto fail = [&](ServerContextFault why, std::string text) {
    if (fault != nullptr) *fault = why;
    error = std::move(text);
    return nullptr;
  };
  const std::string mismatch =
      "private key \"" + key_file + "\" does not match certificate \"" + cert_file + "\"";
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return fail(ServerContextFault::kCertificate, opensslErrors());
  const ServerPolicy& policy = options.policy;
  SSL_CTX_set_min_proto_version(ctx.get(), policy.min_version);
  SSL_CTX_set_max_proto_version(ctx.get(), policy.max_version);
  std::string ciphers = policy.tls12_ciphers.empty() ? kTls12Ciphers : policy.tls12_ciphers;
  // TLS 1.0 and 1.1 sign with SHA-1, which OpenSSL's default security level refuses.
  if (policy.min_version != 0 && policy.min_version < TLS1_2_VERSION) ciphers += ":@SECLEVEL=0";
  if (SSL_CTX_set_cipher_list(ctx.get(), ciphers.c_str()) != 1 ||
      (!policy.tls13_suites.empty() &&
       SSL_CTX_set_ciphersuites(ctx.get(), policy.tls13_suites.c_str()) != 1) ||
      SSL_CTX_set1_groups_list(
          ctx.get(), policy.groups.empty() ? "X25519:P-256:P-384" : policy.groups.c_str()) != 1) {
    return fail(ServerContextFault::kPolicy, "OpenSSL refuses the TLS policy: " + opensslErrors());
  }
  SSL_CTX_set_options(
      ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_ENABLE_PARTIAL_WRITE);
  // Read whole socket buffers, not a record header and then its body: one recv() per batch
  // of records instead of two per record.
  SSL_CTX_set_read_ahead(ctx.get(), 1);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_SERVER);
  TicketKeys::install(ctx.get());
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
    return fail(ServerContextFault::kCertificate,
                "cannot load certificate \"" + cert_file + "\": " + opensslErrors());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      return fail(ServerContextFault::kKey, mismatch);
    }
    return fail(ServerContextFault::kKey,
                "cannot load private key \"" + key_file + "\": " + opensslErrors());
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    ERR_clear_error();
    return fail(ServerContextFault::kKey, mismatch);
  }
  if (!options.client_ca_file.empty()) {
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.client_ca_file.c_str());
    if (names == nullptr ||
        SSL_CTX_load_verify_locations(ctx.get(), options.client_ca_file.c_str(), nullptr) != 1) {
      if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
      return fail(
          ServerContextFault::kClientCa,
          "cannot load client CA bundle \"" + options.client_ca_file + "\": " + opensslErrors());
    }
    SSL_CTX_set_client_CA_list(ctx.get(), names);  // takes `names`
    SSL_CTX_set_verify(
        ctx.get(),
        SSL_VERIFY_PEER | (options.client_cert_required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
        nullptr);
  }
  // Sessions resume only where the client would be let in the same way: a session made on a
  // route that asks for no client certificate must not resume on one that requires it, so the
  // session id context names the trusted CAs (as loaded) and whether one is required. The
  // certificate served is not part of it, so resumption survives a renewed certificate.
  std::string session_context = "mc-proxy";
  if (!options.client_ca_file.empty()) {
    std::string trusted = options.client_cert_required ? "required" : "optional";
    STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx.get()));
    for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
      X509* ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i));
      unsigned char* der = nullptr;
      const int len = ca != nullptr ? i2d_X509(ca, &der) : 0;
      if (len > 0) trusted.append(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
      OPENSSL_free(der);
    }
    session_context = sha256Hex(trusted).substr(0, SSL_MAX_SID_CTX_LENGTH);
  }
  SSL_CTX_set_session_id_context(ctx.get(),
                                 reinterpret_cast<const unsigned char*>(session_context.data()),
                                 static_cast<unsigned int>(session_context.size()));
  SSL_CTX_set_alpn_select_cb(ctx.get(), selectAlpn, nullptr);
  std::shared_ptr<OcspStaple> staple;
  if (!options.ocsp_der.empty()) {
    if (const OcspCheck check = checkOcspResponse(ctx.get(), options.ocsp_der); check.staple) {
      staple = std::make_shared<OcspStaple>(OcspStaple{options.ocsp_der, check.next_update});
      SSL_CTX_set_tlsext_status_cb(ctx.get(), stapleOcsp);
      SSL_CTX_set_tlsext_status_arg(ctx.get(), staple.get());
    }
  }
  // The staple lives as long as the context that points at it.
  return std::shared_ptr<SSL_CTX>(ctx.release(), [staple](SSL_CTX* done) { SSL_CTX_free(done); });
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
  if (!alpn.empty()) {
    std::string wire(1, static_cast<char>(alpn.size()));
    wire += alpn;
    SSL_CTX_set_alpn_protos(ctx.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                            static_cast<unsigned int>(wire.size()));
  }
  return std::shared_ptr<SSL_CTX>(ctx.release(), SslCtxDeleter());
}

}  // namespace mcproxy::tls

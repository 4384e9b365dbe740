#include "source/common/tls/tls_transport_socket.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>

#include "source/common/network/stream_info.h"
#include "source/common/tls/digest.h"
#include "source/common/tls/prefixed_socket_bio.h"
#include "source/common/tls/server_context.h"

namespace mcproxy::tls {
namespace {

// What an OpenSSL handshake error says went wrong, as a counter label.
std::string_view classifyHandshakeError(unsigned long error, long verify_result) {
  if (ERR_GET_LIB(error) != ERR_LIB_SSL) return "other";
  const int reason = ERR_GET_REASON(error);
  // Mutual TLS: the client's certificate, missing or refused by the chain check.
  if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) return "client_cert_missing";
  if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    switch (verify_result) {
      case X509_V_ERR_CERT_HAS_EXPIRED:
      case X509_V_ERR_CERT_NOT_YET_VALID:
        return "client_cert_expired";
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        return "client_cert_untrusted";
      default:
        return "client_cert_invalid";
    }
  }
  if (reason >= SSL_AD_REASON_OFFSET) return "client_alert";  // the peer sent an alert
  switch (reason) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
      return "no_shared_version";
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
      return "no_shared_cipher";
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
      return "not_tls";
    default:
      return "other";
  }
}

// A quoted value of x-forwarded-client-cert: '"' and '\\' escaped.
std::string quoted(std::string_view value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::unique_ptr<network::PeerCertificate> describePeerCertificate(X509* cert) {
  auto out = std::make_unique<network::PeerCertificate>();
  unsigned char* der = nullptr;
  const int der_len = i2d_X509(cert, &der);
  if (der_len > 0) {
    out->sha256 = sha256Hex({reinterpret_cast<const char*>(der), static_cast<size_t>(der_len)});
  }
  OPENSSL_free(der);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  out->subject.assign(data, static_cast<size_t>(len));
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_DNS && name->type != GEN_URI) continue;
    const ASN1_IA5STRING* text =
        name->type == GEN_DNS ? name->d.dNSName : name->d.uniformResourceIdentifier;
    std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                      static_cast<size_t>(ASN1_STRING_length(text)));
    (name->type == GEN_DNS ? out->dns_sans : out->uri_sans).push_back(std::move(value));
  }
  GENERAL_NAMES_free(names);
  out->forwarded = "Hash=" + out->sha256 + ";Subject=" + quoted(out->subject);
  for (const std::string& uri : out->uri_sans) out->forwarded += ";URI=" + uri;
  for (const std::string& dns : out->dns_sans) out->forwarded += ";DNS=" + dns;
  return out;
}

class TlsTransportSocket : public network::TransportSocket {
 public:
  TlsTransportSocket(int fd, SSL_CTX* context, std::string peeked) : ssl_(SSL_new(context)) {
    BIO* bio = newPrefixedSocketBio(fd, std::move(peeked));
    SSL_set_bio(ssl_.get(), bio, bio);
  }

  SSL* ssl() { return ssl_.get(); }

  HandshakeStatus handshake() override {
    ERR_clear_error();  // SSL_get_error() reads the thread's queue: start from an empty one
    const int rc = SSL_do_handshake(ssl_.get());
    if (rc == 1) return HandshakeStatus::kDone;
    switch (SSL_get_error(ssl_.get(), rc)) {
      case SSL_ERROR_WANT_READ:
        return HandshakeStatus::kWantRead;
      case SSL_ERROR_WANT_WRITE:
        return HandshakeStatus::kWantWrite;
      case SSL_ERROR_SYSCALL:  // EOF or a reset: the peer went away mid-handshake
        failure_kind_ = "client_closed";
        failure_ = errno != 0 ? std::strerror(errno) : "peer closed during the handshake";
        ERR_clear_error();
        return HandshakeStatus::kFailed;
      default: {
        const long verify = SSL_get_verify_result(ssl_.get());
        failure_kind_ = classifyHandshakeError(ERR_peek_error(), verify);
        // opensslErrors() also empties the thread's error queue, which every other TLS
        // connection on the worker would otherwise take for its own error.
        const std::string errors = opensslErrors();
        failure_ = verify != X509_V_OK
                       ? std::string("certificate: ") + X509_verify_cert_error_string(verify)
                       : errors;
        return HandshakeStatus::kFailed;
      }
    }
  }

  network::IoResult read(char* buffer, size_t len) override {
    ERR_clear_error();
    const int n = SSL_read(ssl_.get(), buffer, static_cast<int>(len));
    if (n > 0) return {network::IoStatus::kOk, static_cast<size_t>(n)};
    const int error = SSL_get_error(ssl_.get(), n);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
      return {network::IoStatus::kWouldBlock};
    }
    // close_notify, or the socket's EOF reported as a syscall error returning 0.
    if (error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && n == 0)) {
      ERR_clear_error();
      return {network::IoStatus::kEnd};
    }
    recordFailure(error);
    return {network::IoStatus::kError};
  }

  network::IoResult write(const char* data, size_t len) override {
    ERR_clear_error();
    const int n = SSL_write(ssl_.get(), data, static_cast<int>(len));
    if (n > 0) return {network::IoStatus::kOk, static_cast<size_t>(n)};
    const int error = SSL_get_error(ssl_.get(), n);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
      return {network::IoStatus::kWouldBlock};
    }
    recordFailure(error);
    return {network::IoStatus::kError};
  }

  bool hasBufferedInput() const override { return SSL_has_pending(ssl_.get()) != 0; }
  bool socketDrained() const override { return prefixedSocketBioDrained(SSL_get_rbio(ssl_.get())); }
  void shutdown() override {
    ERR_clear_error();
    SSL_shutdown(ssl_.get());
    ERR_clear_error();
  }
  std::string_view negotiatedProtocol() const override {
    const unsigned char* alpn = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl_.get(), &alpn, &len);
    return {reinterpret_cast<const char*>(alpn), len};
  }
  std::unique_ptr<network::PeerCertificate> peerCertificate() const override {
    // Only a certificate the chain check accepted (OPTIONAL: a client may have sent none).
    if (SSL_get_verify_result(ssl_.get()) != X509_V_OK) return nullptr;
    X509* cert = SSL_get0_peer_certificate(ssl_.get());
    if (cert == nullptr) return nullptr;
    return describePeerCertificate(cert);
  }
  std::string failureReason() override { return failure_.empty() ? "TLS error" : failure_; }
  std::string_view failureKind() const override { return failure_kind_; }
  std::string_view tlsVersion() const override { return SSL_get_version(ssl_.get()); }
  std::string_view tlsCipher() const override {
    const char* name = SSL_get_cipher_name(ssl_.get());
    return name != nullptr ? name : "";
  }

 private:
  void recordFailure(int error) {
    failure_ = error == SSL_ERROR_SYSCALL
                   ? std::string(errno != 0 ? std::strerror(errno) : "connection broken")
                   : opensslErrors();
    ERR_clear_error();
  }

  SslPtr ssl_;
  std::string failure_;
  std::string_view failure_kind_ = "other";
};

}  // namespace

std::unique_ptr<network::TransportSocket> makeServerTransportSocket(int fd, SSL_CTX* context,
                                                                    std::string peeked) {
  auto socket = std::make_unique<TlsTransportSocket>(fd, context, std::move(peeked));
  SSL_set_accept_state(socket->ssl());
  return socket;
}

std::unique_ptr<network::TransportSocket> makeClientTransportSocket(
    int fd, SSL_CTX* context, const std::string& server_name) {
  auto socket = std::make_unique<TlsTransportSocket>(fd, context, std::string());
  if (!server_name.empty()) {
    SSL_set_tlsext_host_name(socket->ssl(), server_name.c_str());
    SSL_set1_host(socket->ssl(), server_name.c_str());  // the certificate must name it
  }
  SSL_set_connect_state(socket->ssl());
  return socket;
}

}  // namespace mcproxy::tls

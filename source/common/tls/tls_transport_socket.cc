#include "source/common/tls/tls_transport_socket.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>

#include "source/common/tls/prefixed_socket_bio.h"
#include "source/common/tls/server_context.h"

namespace mcproxy::tls {
namespace {

// What an OpenSSL handshake error says went wrong, as a counter label.
std::string_view classifyHandshakeError(unsigned long error) {
  if (ERR_GET_LIB(error) != ERR_LIB_SSL) return "other";
  const int reason = ERR_GET_REASON(error);
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
        failure_kind_ = classifyHandshakeError(ERR_peek_error());
        const long verify = SSL_get_verify_result(ssl_.get());
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

#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "source/common/network/peer_certificate.h"

namespace mcproxy::network {

enum class IoStatus {
  kOk,          // `bytes` moved
  kWouldBlock,  // nothing now; wait for the socket (or the TLS handshake's other direction)
  kEnd,         // the peer closed its sending side (FIN, TLS close_notify)
  kError,       // reset or broken; failureReason() says why
};

struct IoResult {
  IoStatus status;
  size_t bytes = 0;
};

// How bytes cross one socket: as they are (raw) or through TLS (server: fed the ClientHello the
// tls_inspector peeked; client: SNI, certificate check, ALPN). The socket's events and the
// read/flush loop belong to a TransportConnection, which serves every kind alike.
class TransportSocket {
 public:
  enum class HandshakeStatus { kDone, kWantRead, kWantWrite, kFailed };

  virtual ~TransportSocket() = default;
  // Moves the handshake on; raw sockets are done at once.
  virtual HandshakeStatus handshake() = 0;
  virtual IoResult read(char* buffer, size_t len) = 0;
  virtual IoResult write(const char* data, size_t len) = 0;
  // Input the transport already took from the socket and holds (TLS read-ahead): the socket's
  // readiness will not report it.
  virtual bool hasBufferedInput() const = 0;
  // The last read from the socket returned less than asked for: the socket was empty then, so
  // another read would only say "would block".
  virtual bool socketDrained() const = 0;
  // Before the write side closes: TLS sends close_notify.
  virtual void shutdown() {}
  // The protocol ALPN chose ("h2", "http/1.1"), or "" without TLS or ALPN.
  virtual std::string_view negotiatedProtocol() const { return {}; }
  // Why the last handshake, read or write failed. Reading it empties OpenSSL's error queue,
  // which every TLS connection of the thread shares.
  virtual std::string failureReason() = 0;
  // What kind of failure the last handshake had, for counters: "no_shared_version",
  // "no_shared_cipher", "client_alert", "client_closed", "not_tls" or "other".
  virtual std::string_view failureKind() const { return "other"; }
  // For logs: "TLSv1.3" and the cipher; empty without TLS.
  virtual std::string_view tlsVersion() const { return {}; }
  virtual std::string_view tlsCipher() const { return {}; }
  // TLS: the certificate the peer presented and the chain verified (mutual TLS); null when none.
  virtual std::unique_ptr<PeerCertificate> peerCertificate() const { return nullptr; }
};

// Makes the transport socket for a connected client-side fd (an upstream), once connect() is done.
using TransportSocketFactory = std::function<std::unique_ptr<TransportSocket>(int fd)>;

// recv(2)/send(2) on `fd`, which the caller keeps.
std::unique_ptr<TransportSocket> makeRawTransportSocket(int fd);

}  // namespace mcproxy::network

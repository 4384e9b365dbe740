#include "source/common/upstream/http_connection.h"

#include "source/common/http/http1/client_codec.h"
#include "source/common/http/http2/client_codec.h"
#include "source/common/logging/logger.h"
#include "source/common/tls/tls_transport_socket.h"
#include "source/common/upstream/conn_pool.h"

namespace mcproxy::upstream {

HttpConnection::HttpConnection(event::Dispatcher& dispatcher, ConnPool& pool,
                               const Endpoint& endpoint, const PoolSettings& settings,
                               std::string proxy_header)
    : dispatcher_(dispatcher),
      pool_(pool),
      address_(endpoint.address),
      key_(endpoint.key),
      protocol_(endpoint.protocol),
      tls_(endpoint.tls),
      tls_server_name_(endpoint.tls_server_name),
      settings_(settings),
      proxy_header_(std::move(proxy_header)),
      transport_(dispatcher, *this),
      timer_(dispatcher, [this] { onTimer(); }),
      connect_latency_(endpoint.connect_latency) {
  if (endpoint.connections_opened != nullptr) endpoint.connections_opened->inc();
  if (protocol_ == Protocol::kHttp2) {
    codec_ = std::make_unique<http::http2::ClientCodec>(*this, settings_.stream_window_bytes);
  } else {
    codec_ = std::make_unique<http::http1::ClientCodec>(*this, settings_.max_header_bytes,
                                                        settings_.stream_window_bytes);
  }
}

HttpConnection::~HttpConnection() { transport_.close(); }

void HttpConnection::connect() {
  network::TransportSocketFactory factory;
  if (tls_) {
    factory = [context = tls_, name = tls_server_name_](int fd) {
      return tls::makeClientTransportSocket(fd, context.get(), name);
    };
  } else {
    factory = [](int fd) { return network::makeRawTransportSocket(fd); };
  }
  connect_start_ = dispatcher_.now();
  transport_.connect(address_, std::move(proxy_header_), std::move(factory),
                     settings_.connect_timeout);
}

bool HttpConnection::available() {
  if (closed_ || awaiting_ping_ || !codec_->acceptsStreams()) return false;
  if (transport_.ready() && codec_->activeStreams() == 0 && !transport_.peerStillOpen()) {
    // Idle, and the backend closed it (or sent something unasked): not reusable. Closed from
    // the loop, not while the pool walks its list.
    timer_.fireSoon();
    return false;
  }
  return true;
}

http::Stream& HttpConnection::newStream(http::StreamCallbacks& callbacks) {
  if (!awaiting_ping_) timer_.cancel();  // no longer idle
  return codec_->newStream(callbacks);
}

void HttpConnection::onTransportReady() {
  ready_time_ = dispatcher_.now();
  if (connect_latency_ != nullptr) {
    connect_latency_->observe(std::chrono::duration<double>(*ready_time_ - connect_start_).count());
  }
  if (!tls_) return;
  const std::string_view alpn = transport_.transport()->negotiatedProtocol();
  const bool h2 = protocol_ == Protocol::kHttp2;
  if (h2 ? alpn != "h2" : !(alpn.empty() || alpn == "http/1.1")) {
    fail(http::StreamEndReason::kConnectionFailure, "backend " + address_.toString() +
                                                        " did not negotiate " +
                                                        (h2 ? "h2" : "http/1.1") + " over TLS");
  }
}

void HttpConnection::onTransportData(const char* data, size_t len) {
  if (!codec_->receive(data, len)) {
    fail(http::StreamEndReason::kConnectionFailure,
         "upstream broke " + std::string(codec_->protocol()));
    return;
  }
  if (codec_->finished()) close("upstream " + std::string(codec_->protocol()) + " session ended");
}

void HttpConnection::produceOutput(std::string& out, size_t max) { codec_->produce(out, max); }

void HttpConnection::onTransportFlushed() {
  if (codec_->finished()) close("upstream " + std::string(codec_->protocol()) + " session ended");
}

void HttpConnection::onTransportEnd(network::TransportEnd end, const std::string& detail) {
  const std::string backend = address_.toString();
  switch (end) {
    case network::TransportEnd::kConnectTimeout:
    case network::TransportEnd::kHandshakeTimeout:  // server side only; here for completeness
      fail(http::StreamEndReason::kConnectTimeout, "connect to " + backend + " timed out");
      return;
    case network::TransportEnd::kPeerClosed:
      fail(http::StreamEndReason::kRemoteReset, "upstream closed the connection");
      return;
    case network::TransportEnd::kHandshakeFailed:
      fail(http::StreamEndReason::kConnectionFailure,
           "TLS to backend " + backend + " failed: " + detail);
      return;
    case network::TransportEnd::kConnectFailed:
      fail(http::StreamEndReason::kConnectionFailure,
           detail.starts_with("connect to") ? detail : "connect to " + backend + ": " + detail);
      return;
    case network::TransportEnd::kReset:
    case network::TransportEnd::kLingerDone:
      fail(http::StreamEndReason::kConnectionFailure, "upstream connection failed: " + detail);
      return;
  }
}

void HttpConnection::onCapacityChanged() {
  // Called from inside the codec: closing waits for the loop (onTimer).
  if (closed_ || awaiting_ping_ || codec_->activeStreams() > 0) return;
  if (codec_->exhausted()) {
    timer_.fireSoon();
  } else {
    timer_.arm(settings_.idle_timeout);
  }
}

void HttpConnection::onPingAck() {
  if (!awaiting_ping_) return;
  awaiting_ping_ = false;
  timer_.cancel();
  onCapacityChanged();
}

void HttpConnection::onResponseTimeout() {
  if (closed_ || awaiting_ping_ || !codec_->ping()) return;
  awaiting_ping_ = true;
  timer_.arm(settings_.ping_timeout);
}

void HttpConnection::onTimer() {
  if (closed_) return;
  if (awaiting_ping_) {
    fail(http::StreamEndReason::kConnectionFailure,
         "upstream " + address_.toString() + " did not answer a PING within " +
             std::to_string(settings_.ping_timeout.count()) + " ms after a response timeout");
    return;
  }
  if (codec_->activeStreams() == 0) close("idle");
}

void HttpConnection::close(const std::string& detail) {
  fail(http::StreamEndReason::kConnectionFailure, detail);
}

void HttpConnection::fail(http::StreamEndReason reason, const std::string& detail) {
  if (closed_) return;
  closed_ = true;
  LOG_DEBUG << "upstream " << key_ << ": " << detail;
  transport_.close();
  timer_.cancel();
  codec_->onConnectionEnd(reason, detail);
  pool_.remove(*this);
}

}  // namespace mcproxy::upstream

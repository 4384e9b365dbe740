#include "extensions/filters/network/http_connection_manager/http_connection_manager.h"

#include <algorithm>

#include "extensions/filters/network/http_connection_manager/active_stream.h"
#include "source/common/http/http1/server_codec.h"
#include "source/common/logging/logger.h"
#include "source/common/router/route.h"
#include "source/common/tls/tls_transport_socket.h"
#include "source/common/worker/resources.h"

namespace mcproxy::extensions::http_connection_manager {
namespace {

// After the last response: FIN, then the client's bytes are discarded for at most this long.
constexpr std::chrono::milliseconds kLingerTime{1000};
// A connection quiet this long gives back what it keeps for the next burst (nghttp2's frame
// buffer page): most idle connections stay idle, and 4 KiB each is 40 MiB at 10,000.
constexpr std::chrono::milliseconds kQuietRelease{500};

// Failed handshakes are logged, but a scan or a flood must not fill the log.
logging::RateLimit g_handshake_log_limit(10);

}  // namespace

TlsStats::TlsStats(stats::Store& store, const std::string& listener) {
  const std::string prefix = "listener." + listener + ".tls.";
  for (const char* version : kVersions) {
    handshakes_.push_back(&store.counter(prefix + "handshakes." + version,
                                         {"mcproxy_listener_tls_handshakes_total",
                                          {{"listener", listener}, {"version", version}},
                                          "TLS handshakes with clients completed, by version."}));
  }
  handshakes_.push_back(&store.counter(
      prefix + "handshakes.other",
      {"mcproxy_listener_tls_handshakes_total", {{"listener", listener}, {"version", "other"}}}));
  for (const char* kind : kFailureKinds) {
    failures_.push_back(&store.counter(prefix + "handshake_failures." + kind,
                                       {"mcproxy_listener_tls_handshake_failures_total",
                                        {{"listener", listener}, {"reason", kind}},
                                        "TLS handshakes with clients that failed, by reason."}));
  }
}

void TlsStats::countHandshake(std::string_view version) const {
  for (size_t i = 0; i < std::size(kVersions); ++i) {
    if (version == kVersions[i]) {
      handshakes_[i]->inc();
      return;
    }
  }
  handshakes_.back()->inc();
}

void TlsStats::countFailure(std::string_view kind) const {
  for (size_t i = 0; i < std::size(kFailureKinds); ++i) {
    if (kind == kFailureKinds[i]) {
      failures_[i]->inc();
      return;
    }
  }
  failures_.back()->inc();  // "other"
}

HttpConnectionManagerFilter::HttpConnectionManagerFilter(const HttpConnectionManagerConfig& config)
    : config_(config) {}

HttpConnectionManagerFilter::~HttpConnectionManagerFilter() {
  // Streams first: their filters and upstream requests use the codec, the pools and the queue.
  streams_.clear();
  ended_streams_.clear();
  codec_.reset();
}

network::FilterStatus HttpConnectionManagerFilter::onData(buffer::Buffer& data, bool) {
  network::Connection& connection = callbacks_->connection();
  const router::Route* route = connection.streamInfo().route;
  if (route == nullptr || route->mode != router::RouteMode::kL7) {
    return network::FilterStatus::kContinue;
  }
  route_ = route;
  callbacks_->takeOverTransport();
  transport_.emplace(connection.dispatcher(), *this);
  transport_->accept(
      connection.fd(),
      tls::makeServerTransportSocket(connection.fd(), route->l7->tls_context.get(), data.release()),
      config_.tls_handshake_timeout);
  return network::FilterStatus::kStopIteration;
}

void HttpConnectionManagerFilter::onTransportReady() {
  const network::TransportSocket& socket = *transport_->transport();
  const bool h2 = socket.negotiatedProtocol() == "h2";
  network::StreamInfo& info = callbacks_->connection().streamInfo();
  // Static strings: the log line is written after the TLS object is gone.
  info.negotiated_alpn = h2 ? "h2" : socket.negotiatedProtocol().empty() ? "" : "http/1.1";
  info.tls_version = socket.tlsVersion();
  info.tls_cipher = socket.tlsCipher();
  info.peer_certificate = socket.peerCertificate();
  config_.tls.countHandshake(info.tls_version);
  if (h2) {
    http::http2::ServerLimits limits = config_.http2;
    limits.enable_connect_protocol = route_->l7->allow_upgrades;  // no WebSocket offer, else 403
    codec_ = std::make_unique<http::http2::ServerCodec>(*this, limits);
  } else {  // "http/1.1", or no ALPN at all
    codec_ = std::make_unique<http::http1::ServerCodec>(*this, config_.http2.max_header_list_bytes,
                                                        config_.http2.stream_window_bytes);
  }
  timeout_timer_ = std::make_unique<event::Timer>(dispatcher(), [this] { onTimeoutCheck(); });
  onActivity();
  armTimeoutCheck(last_activity_ +
                  std::min({config_.idle_timeout, config_.request_header_timeout, kQuietRelease}));
}

void HttpConnectionManagerFilter::onTransportData(const char* data, size_t len) {
  onActivity();
  if (!codec_->receive(data, len)) {
    // Send what the codec has to say (GOAWAY), then close without a RST.
    linger_reason_ = network::CloseReason::kHttpProtocolError;
    transport_->flush();
    transport_->lingeringClose(kLingerTime);
  }
}

void HttpConnectionManagerFilter::produceOutput(std::string& out, size_t max) {
  const size_t before = out.size();
  codec_->produce(out, max);
  if (out.size() > before) onActivity();
}

void HttpConnectionManagerFilter::onTransportFlushed() {
  if (codec_->finished()) transport_->lingeringClose(kLingerTime);
}

void HttpConnectionManagerFilter::onTransportEnd(network::TransportEnd end,
                                                 const std::string& detail) {
  switch (end) {
    case network::TransportEnd::kHandshakeFailed:
    case network::TransportEnd::kHandshakeTimeout: {
      const std::string_view kind = end == network::TransportEnd::kHandshakeTimeout
                                        ? "timeout"
                                        : transport_->transport()->failureKind();
      config_.tls.countFailure(kind);
      network::StreamInfo& info = callbacks_->connection().streamInfo();
      info.tls_failure = kind;
      uint64_t suppressed = 0;
      if (g_handshake_log_limit.allow(suppressed)) {
        LOG_WARN << "TLS handshake with " << info.real_client.toString() << " (SNI \""
                 << info.requested_server_name << "\", listener " << info.listener_name
                 << ") failed: " << kind << ": " << detail
                 << (suppressed > 0 ? " (" + std::to_string(suppressed) + " more not logged)"
                                    : std::string());
      }
      close(network::CloseReason::kTlsHandshakeFailed);
      return;
    }
    case network::TransportEnd::kPeerClosed:
      close(network::CloseReason::kFinished);
      return;
    case network::TransportEnd::kLingerDone:
      close(linger_reason_);
      return;
    case network::TransportEnd::kReset:
    case network::TransportEnd::kConnectFailed:
    case network::TransportEnd::kConnectTimeout:
      close(network::CloseReason::kDownstreamReset);
      return;
  }
}

http::StreamCallbacks& HttpConnectionManagerFilter::onNewStream(http::Stream& stream) {
  ActiveStream& active = streams_.emplace_front(*this, stream);
  active.position = streams_.begin();
  return active;
}

void HttpConnectionManagerFilter::onStreamEnded(ActiveStream& stream) {
  // Moved between lists, not reallocated: a request costs one allocation here, its node.
  ended_streams_.splice(ended_streams_.end(), streams_, stream.position);
  if (!cleanup_timer_) {
    cleanup_timer_ =
        std::make_unique<event::Timer>(dispatcher(), [this] { destroyEndedStreams(); });
  }
  if (!cleanup_timer_->armed()) cleanup_timer_->fireSoon();
}

void HttpConnectionManagerFilter::destroyEndedStreams() {
  // A stream's destructor may end others (nothing does today, but no loop depends on it).
  while (!ended_streams_.empty()) {
    std::list<ActiveStream> batch;
    batch.splice(batch.end(), ended_streams_);
  }
}

event::TimeoutQueue& HttpConnectionManagerFilter::timeoutQueue() {
  if (!timeouts_) timeouts_ = std::make_unique<event::TimeoutQueue>(dispatcher());
  return *timeouts_;
}

upstream::StreamPool& HttpConnectionManagerFilter::pool(bool per_client) {
  if (!per_client) return callbacks_->connection().worker().httpPool();
  if (!client_pool_) client_pool_ = std::make_unique<upstream::ConnPool>(dispatcher());
  return *client_pool_;
}

void HttpConnectionManagerFilter::onTimeoutCheck() {
  if (closing_ || transport_->lingering()) return;
  const auto now = dispatcher().now();
  auto next = last_activity_ + config_.idle_timeout;
  if (now >= next) {
    close(network::CloseReason::kIdleTimeout);
    return;
  }
  if (const auto since = codec_->waitingForHeadersSince()) {
    const auto deadline = *since + config_.request_header_timeout;
    if (now >= deadline) {
      LOG_DEBUG << "connection " << callbacks_->connection().id()
                << ": no complete request header section in time";
      close(network::CloseReason::kRequestHeaderTimeout);
      return;
    }
    next = std::min(next, deadline);
  }
  if (!quiet_memory_released_) {
    const auto quiet_at = last_activity_ + kQuietRelease;
    if (now < quiet_at) {
      next = std::min(next, quiet_at);
    } else if (transport_->hasPendingOutput()) {  // a client that stopped reading: not quiet
      next = std::min(next, now + kQuietRelease);
    } else {
      codec_->releaseIdleMemory();
      quiet_memory_released_ = true;
      LOG_DEBUG << "connection " << callbacks_->connection().id() << ": quiet for "
                << kQuietRelease.count() << " ms, idle buffers released";
    }
  }
  armTimeoutCheck(next);
}

void HttpConnectionManagerFilter::armTimeoutCheck(std::chrono::steady_clock::time_point at) {
  check_at_ = at;
  const auto now = dispatcher().now();
  timeout_timer_->arm(at > now ? std::chrono::duration_cast<std::chrono::milliseconds>(at - now) +
                                     std::chrono::milliseconds(1)
                               : std::chrono::milliseconds(1));
}

void HttpConnectionManagerFilter::onActivity() {
  last_activity_ = dispatcher().now();
  if (quiet_memory_released_) {
    // Busy again: the next quiet spell must be noticed, though the timer may be set far off.
    quiet_memory_released_ = false;
    if (check_at_ > last_activity_ + kQuietRelease) armTimeoutCheck(last_activity_ + kQuietRelease);
  }
}

void HttpConnectionManagerFilter::close(network::CloseReason reason) {
  if (closing_) return;
  closing_ = true;
  callbacks_->connection().close(reason);
}

void HttpConnectionManagerFilter::onDrain() {
  if (codec_ && !closing_) {
    codec_->drain();
    transport_->scheduleFlush();
  }
}

void HttpConnectionManagerFilter::onConnectionClose() {
  closing_ = true;
  if (codec_) codec_->abort();  // every open stream ends
  if (transport_) {
    network::StreamInfo& info = callbacks_->connection().streamInfo();
    info.bytes_from_downstream = transport_->bytesRead();
    info.bytes_to_downstream = transport_->bytesWritten();
    transport_->close();
  }
  if (timeout_timer_) timeout_timer_->cancel();
}

}  // namespace mcproxy::extensions::http_connection_manager

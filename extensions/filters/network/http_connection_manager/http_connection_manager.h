#pragma once

#include <chrono>
#include <list>
#include <memory>
#include <optional>
#include <vector>

#include "source/common/event/timeout_queue.h"
#include "source/common/http/codec.h"
#include "source/common/http/filter.h"
#include "source/common/http/http2/server_codec.h"
#include "source/common/network/filter.h"
#include "source/common/network/transport_connection.h"
#include "source/common/stats/stats.h"
#include "source/common/upstream/conn_pool.h"
#include "source/common/upstream/endpoint.h"

namespace mcproxy::router {
struct Route;
}

namespace mcproxy::extensions::http_connection_manager {

class ActiveStream;

// TLS handshakes with clients, per listener: done by version, failed by kind.
class TlsStats {
 public:
  // The failure kinds counted (tls::TransportSocket::failureKind(), and "timeout").
  static constexpr const char* kFailureKinds[] = {"no_shared_version",
                                                  "no_shared_cipher",
                                                  "client_alert",
                                                  "client_closed",
                                                  "not_tls",
                                                  "timeout",
                                                  "client_cert_missing",
                                                  "client_cert_untrusted",
                                                  "client_cert_expired",
                                                  "client_cert_invalid",
                                                  "other"};
  static constexpr const char* kVersions[] = {"TLSv1.2", "TLSv1.3"};

  TlsStats(stats::Store& store, const std::string& listener);
  void countHandshake(std::string_view version) const;
  void countFailure(std::string_view kind) const;

 private:
  std::vector<stats::Counter*> handshakes_;  // kVersions, then any other
  std::vector<stats::Counter*> failures_;    // kFailureKinds
};

struct HttpConnectionManagerConfig {
  upstream::PoolSettings upstream;
  std::chrono::milliseconds response_timeout;
  std::chrono::milliseconds upgrade_idle_timeout;
  std::chrono::milliseconds tls_handshake_timeout;
  http::http2::ServerLimits http2;
  std::chrono::milliseconds idle_timeout;
  std::chrono::milliseconds request_header_timeout;
  TlsStats tls;
};

// The terminal network filter of L7 routes: terminates TLS with the route's certificate (fed
// the ClientHello tls_inspector peeked), speaks HTTP/2 or HTTP/1.1 to the client (ALPN), and
// owns one ActiveStream per request, which runs the route's HTTP filter chain (by default
// forwarding_headers, then the router, which sends it on to a backend).
class HttpConnectionManagerFilter : public network::ReadFilter,
                                    public network::TransportCallbacks,
                                    public http::ServerCodecCallbacks,
                                    public http::Upstreams {
 public:
  explicit HttpConnectionManagerFilter(const HttpConnectionManagerConfig& config);
  ~HttpConnectionManagerFilter() override;

  // network::ReadFilter
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) override {
    callbacks_ = &callbacks;
  }
  network::FilterStatus onNewConnection() override { return network::FilterStatus::kContinue; }
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override;
  void onDrain() override;
  void onConnectionClose() override;

  // network::TransportCallbacks
  void onTransportReady() override;
  void onTransportData(const char* data, size_t len) override;
  void produceOutput(std::string& out, size_t max) override;
  void onTransportFlushed() override;
  bool readPaused() const override { return codec_ && codec_->readPaused(); }
  void onTransportEnd(network::TransportEnd end, const std::string& detail) override;

  // http::ServerCodecCallbacks
  http::StreamCallbacks& onNewStream(http::Stream& stream) override;
  void scheduleFlush() override { transport_->scheduleFlush(); }

  // http::Upstreams
  upstream::StreamPool& pool(bool per_client) override;
  const upstream::PoolSettings& settings() const override { return config_.upstream; }
  std::chrono::milliseconds responseTimeout() const override { return config_.response_timeout; }
  std::chrono::milliseconds upgradeIdleTimeout() const override {
    return config_.upgrade_idle_timeout;
  }

  // For ActiveStream.
  event::Dispatcher& dispatcher() { return callbacks_->connection().dispatcher(); }
  event::TimeoutQueue& timeoutQueue();
  const network::StreamInfo& connectionInfo() { return callbacks_->connection().streamInfo(); }
  network::Connection& downstream() { return callbacks_->connection(); }
  const router::Route& route() const { return *route_; }
  // "HTTP/2" or "HTTP/1.1": what the client speaks.
  std::string_view protocol() const { return codec_->protocol(); }
  // The stream ended: it is destroyed after the current callback (its methods may be on the
  // stack), and before anything of this connection's that it uses.
  void onStreamEnded(ActiveStream& stream);

 private:
  // Closes the connection if the idle or request-header deadline passed, and releases idle
  // memory after a quiet spell; else waits for the nearest. Activity only updates
  // last_activity_ (the timer moves only when a quiet spell ends).
  void onTimeoutCheck();
  void armTimeoutCheck(std::chrono::steady_clock::time_point at);
  // Bytes went in or out: the idle deadline moves, and a quiet spell ends.
  void onActivity();
  void destroyEndedStreams();
  void close(network::CloseReason reason);

  const HttpConnectionManagerConfig& config_;
  network::ReadFilterCallbacks* callbacks_ = nullptr;
  const router::Route* route_ = nullptr;
  // Made when the connection is taken over (the dispatcher is known then).
  std::optional<network::TransportConnection> transport_;
  std::unique_ptr<event::Timer> timeout_timer_;
  std::chrono::steady_clock::time_point last_activity_;
  std::chrono::steady_clock::time_point check_at_;  // when timeout_timer_ fires
  bool quiet_memory_released_ = false;  // releaseIdleMemory() ran since the last activity
  // Upstream connections that carry a PROXY header name this client only: they end with it.
  std::unique_ptr<upstream::ConnPool> client_pool_;
  // Made with the first request: an idle connection has neither.
  std::unique_ptr<event::TimeoutQueue> timeouts_;
  std::unique_ptr<event::Timer> cleanup_timer_;
  std::unique_ptr<http::ServerCodec> codec_;
  // Declared last: destroyed first, while everything a stream uses is still there.
  std::list<ActiveStream> streams_;
  std::list<ActiveStream> ended_streams_;
  network::CloseReason linger_reason_ = network::CloseReason::kFinished;
  bool closing_ = false;
};

}  // namespace mcproxy::extensions::http_connection_manager

#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "extensions/filters/network/http_connection_manager/downstream_codec.h"
#include "extensions/filters/network/http_connection_manager/downstream_http2.h"
#include "extensions/filters/network/http_connection_manager/upstream_http2.h"
#include "source/common/network/filter.h"
#include "source/common/tls/server_context.h"

namespace mcproxy::router {
struct Route;
}

namespace mcproxy::extensions::http_connection_manager {

struct HttpConnectionManagerConfig {
  UpstreamSettings upstream;
  std::chrono::milliseconds response_timeout;
  std::chrono::milliseconds tls_handshake_timeout;
  Http2Limits http2;
  std::chrono::milliseconds idle_timeout;
  std::chrono::milliseconds request_header_timeout;
};

// The terminal filter of L7 routes: terminates TLS with the route's certificate (fed the
// ClientHello tls_inspector peeked), speaks HTTP/2 to the client (ALPN h2), and proxies each
// request to the route's backend over a pooled HTTP/2 cleartext connection, adding
// X-Forwarded-For/-Proto and X-Real-IP. 502 when the backend refuses or resets, 504 when it
// times out.
class HttpConnectionManagerFilter : public network::ReadFilter, public DownstreamConnection {
 public:
  explicit HttpConnectionManagerFilter(const HttpConnectionManagerConfig& config)
      : config_(config) {}
  ~HttpConnectionManagerFilter() override;

  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) override {
    callbacks_ = &callbacks;
  }
  network::FilterStatus onNewConnection() override { return network::FilterStatus::kContinue; }
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override;
  void onDrain() override;
  void onConnectionClose() override;

  // DownstreamConnection
  void scheduleFlush() override;
  void startUpstream(ProxyStream& stream) override;
  void onRequestComplete(ProxyStream& stream) override;
  event::Dispatcher& dispatcher() override { return callbacks_->connection().dispatcher(); }
  void onUpstreamFailed(int status) override;
  void onRequestFinished(const ProxyStream& stream) override;

 private:
  void doHandshake();
  void onReadable();
  void flush();
  // After the last response: FIN, then discard the client's bytes until it closes (no RST).
  void beginLingeringClose();
  // Closes the connection if the idle or request-header deadline passed, and releases idle
  // memory after a quiet spell; else waits for the nearest. Activity only updates
  // last_activity_ (the timer moves only when a quiet spell ends).
  void onTimeoutCheck();
  void armTimeoutCheck(std::chrono::steady_clock::time_point at);
  // Bytes went in or out: the idle deadline moves, and a quiet spell ends.
  void onActivity();
  void close(network::CloseReason reason);

  const HttpConnectionManagerConfig& config_;
  network::ReadFilterCallbacks* callbacks_ = nullptr;
  const router::Route* route_ = nullptr;
  tls::SslPtr ssl_;
  std::unique_ptr<event::IoEvent> read_event_;
  std::unique_ptr<event::IoEvent> write_event_;
  std::unique_ptr<event::Timer> handshake_timer_;
  std::unique_ptr<event::Timer> flush_timer_;
  std::unique_ptr<event::Timer> linger_timer_;
  std::unique_ptr<event::Timer> timeout_timer_;
  std::chrono::steady_clock::time_point last_activity_;
  std::chrono::steady_clock::time_point check_at_;  // when timeout_timer_ fires
  bool quiet_memory_released_ = false;  // releaseIdleMemory() ran since the last activity
  // Before codec_: its streams leave the queue when the codec destroys them.
  std::unique_ptr<ResponseTimeouts> response_timeouts_;
  std::unique_ptr<DownstreamCodec> codec_;
  std::string pending_out_;
  bool handshake_done_ = false;
  bool lingering_ = false;
  network::CloseReason linger_reason_ = network::CloseReason::kFinished;
  bool closing_ = false;
};

}  // namespace mcproxy::extensions::http_connection_manager

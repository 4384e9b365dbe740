#pragma once

#include <memory>
#include <string>

#include "source/common/event/dispatcher.h"
#include "source/common/http/codec.h"
#include "source/common/network/transport_connection.h"
#include "source/common/stats/stats.h"
#include "source/common/upstream/endpoint.h"

namespace mcproxy::upstream {

class ConnPool;

// One connection to a backend: a TransportConnection (TCP, optional PROXY header, optional TLS)
// carrying a client codec (HTTP/2 or HTTP/1.1). Closed after idle_timeout without streams; an
// HTTP/2 connection on which a response timed out must answer a PING within ping_timeout, and
// takes no new stream until it has.
class HttpConnection : public network::TransportCallbacks,
                       public http::ClientCodecCallbacks,
                       public event::DeferredDeletable {
 public:
  HttpConnection(event::Dispatcher& dispatcher, ConnPool& pool, const Endpoint& endpoint,
                 const PoolSettings& settings, std::string proxy_header);
  ~HttpConnection() override;

  void connect();
  // Can take one more stream now.
  bool available();
  http::Stream& newStream(http::StreamCallbacks& callbacks);
  const std::string& poolKey() const { return key_; }
  // Closes now; open streams end with `detail` as a connection failure.
  void close(const std::string& detail);

  // network::TransportCallbacks
  void onTransportReady() override;
  void onTransportData(const char* data, size_t len) override;
  void produceOutput(std::string& out, size_t max) override;
  void onTransportFlushed() override;
  bool readPaused() const override { return codec_->readPaused(); }
  void onTransportEnd(network::TransportEnd end, const std::string& detail) override;

  // http::ClientCodecCallbacks
  void scheduleFlush() override { transport_.scheduleFlush(); }
  void onCapacityChanged() override;
  void onPingAck() override;
  void onResponseTimeout() override;
  void onReadResumed() override { transport_.resumeReading(); }
  std::optional<std::chrono::steady_clock::time_point> readyTime() const override {
    return ready_time_;
  }

 private:
  void fail(http::StreamEndReason reason, const std::string& detail);
  void onTimer();

  event::Dispatcher& dispatcher_;
  ConnPool& pool_;
  const network::Address address_;
  const std::string key_;
  const Protocol protocol_;
  const std::shared_ptr<ssl_ctx_st> tls_;
  const std::string tls_server_name_;
  const PoolSettings settings_;
  std::string proxy_header_;
  network::TransportConnection transport_;
  std::unique_ptr<http::ClientCodec> codec_;
  event::Timer timer_;  // idle timeout while without streams; PING deadline while suspected
  stats::Histogram* const connect_latency_;  // the route's, or null
  std::chrono::steady_clock::time_point connect_start_;
  std::optional<std::chrono::steady_clock::time_point> ready_time_;
  bool awaiting_ping_ = false;
  bool closed_ = false;
};

}  // namespace mcproxy::upstream

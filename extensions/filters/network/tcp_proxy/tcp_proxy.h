#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "extensions/filters/network/tcp_proxy/relay.h"
#include "source/common/event/dispatcher.h"
#include "source/common/network/fd.h"
#include "source/common/network/filter.h"

namespace mcproxy::router {
struct Route;
}

namespace mcproxy::upstream {
struct ClusterEndpoint;
}

namespace mcproxy::extensions::tcp_proxy {

struct TcpProxyConfig {
  std::chrono::milliseconds connect_timeout;
  std::chrono::milliseconds idle_timeout;
  size_t buffer_bytes;
  bool use_splice;
};

// The terminal filter of L4 routes: connects to the route's backend (or an endpoint of its
// cluster, trying another one when a connect fails), sends it the bytes the earlier filters
// peeked at, then relays both directions until both have ended.
class TcpProxyFilter : public network::ReadFilter, public RelayCallbacks {
 public:
  explicit TcpProxyFilter(const TcpProxyConfig& config) : config_(config) {}

  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) override {
    callbacks_ = &callbacks;
  }
  network::FilterStatus onNewConnection() override { return network::FilterStatus::kContinue; }
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override;
  void onConnectionClose() override;

  // RelayCallbacks
  void onRelayBytes(const Relay& relay, size_t bytes) override;
  void onRelayDone() override;
  void onRelayError(network::CloseReason reason) override;

 private:
  void connectUpstream();
  // The address of the next attempt: the route's backend, or an endpoint its cluster picks
  // (null when every endpoint is drained).
  const network::Address* chooseBackend();
  // A connect failed: tries another endpoint (from the event loop) while attempts remain.
  bool retryConnect();
  void releaseEndpoint();
  void onUpstreamWritable();
  void onConnected();
  void onConnectFailed(network::CloseReason reason);
  void onIdleTimer();

  const TcpProxyConfig& config_;
  network::ReadFilterCallbacks* callbacks_ = nullptr;
  const router::Route* route_ = nullptr;
  network::UniqueFd upstream_;
  std::string initial_bytes_;  // what the client sent before the upstream existed
  bool downstream_ended_early_ = false;
  size_t proxy_header_bytes_ = 0;  // PROXY header bytes still to be sent, not the client's
  bool connecting_ = false;
  bool retry_pending_ = false;
  // With a cluster: the endpoint of the current attempt, and those that failed before it.
  const upstream::ClusterEndpoint* endpoint_ = nullptr;
  std::vector<const upstream::ClusterEndpoint*> tried_;
  const network::Address* backend_ = nullptr;
  std::unique_ptr<event::IoEvent> downstream_read_;
  std::unique_ptr<event::IoEvent> downstream_write_;
  std::unique_ptr<event::IoEvent> upstream_read_;
  std::unique_ptr<event::IoEvent> upstream_write_;
  std::unique_ptr<event::Timer> timer_;  // connect timeout, then idle timeout
  std::unique_ptr<Relay> to_upstream_;
  std::unique_ptr<Relay> to_downstream_;
  std::chrono::steady_clock::time_point last_activity_;
};

}  // namespace mcproxy::extensions::tcp_proxy

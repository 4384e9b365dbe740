#pragma once

#include <absl/random/bit_gen_ref.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "source/common/network/address.h"
#include "source/common/stats/stats.h"

struct ssl_ctx_st;

namespace mcproxy::upstream {

enum class LbPolicy { kRoundRobin, kLeastRequest, kRingHash, kRandom };

const char* lbPolicyName(LbPolicy policy);

// What this process knows of one endpoint right now. One object per (cluster, address) lives as
// long as a snapshot names it, so health and ejections survive reloads; the health checker (main
// thread) and every worker share it through atomics only, never a lock.
struct EndpointState {
  // Active health checks' verdict (true when the cluster has none).
  std::atomic<bool> healthy{true};
  // The running snapshot gives it weight 0. Set when a snapshot is applied, so that client
  // connections still on an older snapshot stop sending to it too.
  std::atomic<bool> drained{false};
  // Passive: failures in a row since the last success.
  std::atomic<uint32_t> consecutive_failures{0};
  // Ejected until this steady-clock time (ms since the clock's epoch); 0: not ejected.
  std::atomic<int64_t> ejected_until_ms{0};
  // Times ejected so far: an ejection lasts base_ejection_ms times this.
  std::atomic<uint32_t> ejections{0};
  // The health checker's last failure, for `clusters list` (main thread only).
  std::string last_check_failure;

  bool ejected(int64_t now_ms) const {
    return ejected_until_ms.load(std::memory_order_relaxed) > now_ms;
  }
};

struct EndpointStats {
  stats::Counter& connections;  // connections opened to it (L4: one per client connection)
  stats::Counter& requests;     // L7 requests sent to it
  stats::Counter& failures;     // connect failures and timeouts, resets, 502/503 answers
  stats::Counter& ejections;
  stats::Gauge& healthy;  // 1 healthy, 0 unhealthy (active checks)
  // Connections (L4) and requests (L7) in flight: LEAST_REQUEST's measure of load.
  stats::Gauge& active;
};

struct ClusterStats {
  stats::Counter& retries;                 // connect attempts and requests sent again
  stats::Counter& retry_budget_exhausted;  // retries refused by the budget
  stats::Counter& panic;                   // picks made with every endpoint unhealthy
  stats::Counter& no_endpoint;             // picks with nothing to pick (all drained)
};

struct ClusterEndpoint {
  std::string address_text;  // as configured
  network::Address address;  // resolved when compiled (names: again every dns_refresh_ms)
  uint32_t weight = 1;       // 0: drained
  std::string pool_key;      // L7: upstream::poolKey() without TLS
  std::shared_ptr<EndpointState> state;
  EndpointStats stats;
};

struct HealthCheckSpec {
  enum class Kind { kNone, kTcp, kTls, kHttp, kGrpc };
  Kind kind = Kind::kNone;
  std::chrono::milliseconds interval{5000};
  std::chrono::milliseconds timeout{1000};
  uint32_t unhealthy_threshold = 2;
  uint32_t healthy_threshold = 2;
  std::string http_path = "/";
  uint32_t expected_status = 0;  // 0: any 2xx
  std::string grpc_service;
  // tls {} without backend_tls: the context that verifies the endpoints (backend_tls_ca).
  std::shared_ptr<ssl_ctx_st> tls_context;
};

// "tcp", "tls", "http", "grpc"; "" for none.
const char* healthCheckKindName(HealthCheckSpec::Kind kind);

struct OutlierSpec {
  uint32_t consecutive_failures = 0;  // 0: off
  std::chrono::milliseconds base_ejection{30000};
  uint32_t max_ejection_percent = 50;
};

// Shared by every snapshot's copy of a cluster with the same name: what is in flight now.
struct ClusterState {
  std::atomic<int64_t> active_requests{0};
  std::atomic<int64_t> active_retries{0};
  std::atomic<uint64_t> next{0};  // ROUND_ROBIN position
};

// A compiled cluster: immutable but for the shared atomic state its endpoints point to.
class Cluster {
 public:
  struct Settings {
    LbPolicy policy = LbPolicy::kRoundRobin;
    std::chrono::milliseconds connect_timeout{0};     // 0: the listener's
    std::shared_ptr<ssl_ctx_st> backend_tls_context;  // with backend_tls; null without
    bool backend_http1 = false;
    bool send_proxy_protocol = false;
    uint32_t proxy_protocol_version = 2;
    std::chrono::milliseconds dns_refresh{30000};
    uint32_t max_connect_attempts = 3;
    uint32_t max_request_attempts = 2;
    uint32_t retry_budget_percent = 20;
    HealthCheckSpec health_check;
    OutlierSpec outlier;
  };

  Cluster(std::string name, Settings settings, std::vector<ClusterEndpoint> endpoints,
          std::shared_ptr<ClusterState> state, ClusterStats stats);

  const std::string& name() const { return name_; }
  const Settings& settings() const { return settings_; }
  const std::vector<ClusterEndpoint>& endpoints() const { return endpoints_; }
  const ClusterStats& stats() const { return stats_; }
  ClusterState& state() const { return *state_; }

  // An endpoint for a new connection or request, by the cluster's policy, among those with a
  // weight that are healthy and not ejected and not in `tried` (the ones this connection or
  // request failed on already; with no other left, a tried one is taken again). With none
  // healthy: among all that have a weight (panic mode, counted). Null only when every endpoint
  // is drained. `client` is the real client address (RING_HASH); `random` is drawn from only by
  // the policies that need it (the worker's own generator).
  const ClusterEndpoint* pick(const network::Address& client, absl::BitGenRef random,
                              std::chrono::steady_clock::time_point now,
                              std::span<const ClusterEndpoint* const> tried = {}) const;

  // This cluster is now the running one: its drained endpoints are drained for every snapshot.
  void publishWeights() const;

  // Passive outcomes: a success resets the endpoint's failure streak; a failure may eject it.
  void onSuccess(const ClusterEndpoint& endpoint) const;
  void onFailure(const ClusterEndpoint& endpoint, std::chrono::steady_clock::time_point now) const;

  // L7 retries: may one more be sent now? If so it is counted in flight until retryDone().
  bool tryStartRetry() const;
  void retryDone() const;

  // Endpoints healthy now (not ejected, healthy by checks), for panic detection and listings.
  bool available(const ClusterEndpoint& endpoint, int64_t now_ms) const;

 private:
  void buildSchedule(uint64_t total_weight);

  std::string name_;
  Settings settings_;
  std::vector<ClusterEndpoint> endpoints_;
  std::shared_ptr<ClusterState> state_;
  ClusterStats stats_;
  // ROUND_ROBIN only: endpoint indexes interleaved by weight (smooth weighted round robin).
  std::vector<uint32_t> schedule_;
  // RING_HASH: (point, endpoint index), sorted by point.
  std::vector<std::pair<uint64_t, uint32_t>> ring_;
};

// Steady-clock milliseconds, the unit of ejection times.
inline int64_t steadyMs(std::chrono::steady_clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

// The stats of a cluster and of one of its endpoints, named "cluster.<name>.*" and exported as
// mcproxy_cluster_* with the labels cluster (and endpoint).
ClusterStats makeClusterStats(stats::Store& store, const std::string& cluster);
EndpointStats makeEndpointStats(stats::Store& store, const std::string& cluster,
                                const std::string& endpoint);

// The ring's hash of an endpoint's point names: 64-bit FNV-1a, spread with network::mixBits
// (stable across runs and builds, so a client keeps its endpoint across restarts; clients are
// placed by network::hashIp).
uint64_t ringHash(std::string_view bytes);

// "GET", "HEAD", ... : a request the client may be sent twice (RFC 9110 §9.2.2).
bool idempotentMethod(std::string_view method);

}  // namespace mcproxy::upstream

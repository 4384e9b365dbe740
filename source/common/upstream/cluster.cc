#include "source/common/upstream/cluster.h"

#include <absl/random/distributions.h>

#include <algorithm>

namespace mcproxy::upstream {
namespace {

// Points per unit of weight on the ring: enough for an even spread over a few endpoints.
constexpr uint32_t kRingPointsPerWeight = 160;
constexpr size_t kMaxRingPoints = 1 << 17;
// A round-robin schedule longer than this is scaled down (weights keep their proportions).
constexpr uint64_t kMaxSchedule = 4096;

}  // namespace

const char* lbPolicyName(LbPolicy policy) {
  switch (policy) {
    case LbPolicy::kRoundRobin:
      return "ROUND_ROBIN";
    case LbPolicy::kLeastRequest:
      return "LEAST_REQUEST";
    case LbPolicy::kRingHash:
      return "RING_HASH";
    case LbPolicy::kRandom:
      return "RANDOM";
  }
  return "?";
}

const char* healthCheckKindName(HealthCheckSpec::Kind kind) {
  switch (kind) {
    case HealthCheckSpec::Kind::kNone:
      return "";
    case HealthCheckSpec::Kind::kTcp:
      return "tcp";
    case HealthCheckSpec::Kind::kTls:
      return "tls";
    case HealthCheckSpec::Kind::kHttp:
      return "http";
    case HealthCheckSpec::Kind::kGrpc:
      return "grpc";
  }
  return "?";
}

uint64_t ringHash(std::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return network::mixBits(hash);
}

bool idempotentMethod(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}

Cluster::Cluster(std::string name, Settings settings, std::vector<ClusterEndpoint> endpoints,
                 std::shared_ptr<ClusterState> state, ClusterStats stats)
    : name_(std::move(name)),
      settings_(std::move(settings)),
      endpoints_(std::move(endpoints)),
      state_(std::move(state)),
      stats_(stats) {
  uint64_t total = 0;
  for (const ClusterEndpoint& endpoint : endpoints_) total += endpoint.weight;
  if (settings_.policy == LbPolicy::kRoundRobin) buildSchedule(total);
  if (settings_.policy == LbPolicy::kRingHash) {
    // A drained endpoint keeps its points (skipped when picking), so undraining it gives its
    // clients back and nobody else's.
    const size_t per_weight = std::max<size_t>(
        1, std::min<size_t>(kRingPointsPerWeight, kMaxRingPoints / std::max<size_t>(1, total)));
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      const size_t points = per_weight * std::max<uint32_t>(1, endpoints_[i].weight);
      for (size_t point = 0; point < points; ++point) {
        ring_.emplace_back(ringHash(endpoints_[i].address_text + "#" + std::to_string(point)),
                           static_cast<uint32_t>(i));
      }
    }
    std::sort(ring_.begin(), ring_.end());
  }
}

void Cluster::buildSchedule(uint64_t total) {
  // Smooth weighted round robin (as nginx): each turn every endpoint gains its weight and the
  // richest is chosen and pays the total, so heavy endpoints are spread out, not bunched.
  std::vector<uint64_t> weights;
  for (const ClusterEndpoint& endpoint : endpoints_) weights.push_back(endpoint.weight);
  if (total > kMaxSchedule) {
    const uint64_t configured = total;
    total = 0;
    for (uint64_t& weight : weights) {
      if (weight == 0) continue;
      weight = std::max<uint64_t>(1, weight * kMaxSchedule / configured);
      total += weight;
    }
  }
  std::vector<int64_t> current(endpoints_.size(), 0);
  for (uint64_t turn = 0; turn < total; ++turn) {
    size_t best = 0;
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      current[i] += static_cast<int64_t>(weights[i]);
      if (current[i] > current[best]) best = i;
    }
    current[best] -= static_cast<int64_t>(total);
    schedule_.push_back(static_cast<uint32_t>(best));
  }
}

bool Cluster::available(const ClusterEndpoint& endpoint, int64_t now_ms) const {
  return endpoint.state->healthy.load(std::memory_order_relaxed) &&
         !endpoint.state->ejected(now_ms);
}

const ClusterEndpoint* Cluster::pick(const network::Address& client, absl::BitGenRef random,
                                     std::chrono::steady_clock::time_point now,
                                     std::span<const ClusterEndpoint* const> tried) const {
  const int64_t now_ms = steadyMs(now);
  auto wasTried = [&](const ClusterEndpoint& endpoint) {
    return std::find(tried.begin(), tried.end(), &endpoint) != tried.end();
  };
  // Tiers: healthy and untried; (panic) untried; then a tried one again.
  auto weighted = [](const ClusterEndpoint& endpoint) {
    return endpoint.weight > 0 && !endpoint.state->drained.load(std::memory_order_relaxed);
  };
  bool any_available = false;
  for (const ClusterEndpoint& endpoint : endpoints_) {
    if (weighted(endpoint) && available(endpoint, now_ms)) {
      any_available = true;
      break;
    }
  }
  for (int tier = 0; tier < 2; ++tier) {
    auto usable = [&](const ClusterEndpoint& endpoint) {
      if (!weighted(endpoint)) return false;
      if (any_available && !available(endpoint, now_ms)) return false;
      return tier == 1 || !wasTried(endpoint);
    };
    const ClusterEndpoint* chosen = nullptr;
    switch (settings_.policy) {
      case LbPolicy::kRoundRobin: {
        // A skipped endpoint uses up its turn, so its share is spread over the others rather
        // than handed to the one after it.
        for (size_t i = 0; i < schedule_.size() && chosen == nullptr; ++i) {
          const uint64_t turn = state_->next.fetch_add(1, std::memory_order_relaxed);
          const ClusterEndpoint& endpoint = endpoints_[schedule_[turn % schedule_.size()]];
          if (usable(endpoint)) chosen = &endpoint;
        }
        break;
      }
      case LbPolicy::kRandom: {
        uint64_t total = 0;
        for (const ClusterEndpoint& endpoint : endpoints_) {
          if (usable(endpoint)) total += endpoint.weight;
        }
        if (total == 0) break;
        uint64_t point = absl::Uniform<uint64_t>(random, 0, total);
        for (const ClusterEndpoint& endpoint : endpoints_) {
          if (!usable(endpoint)) continue;
          if (point < endpoint.weight) {
            chosen = &endpoint;
            break;
          }
          point -= endpoint.weight;
        }
        break;
      }
      case LbPolicy::kLeastRequest: {
        // Power of two choices: two draws, the one with fewer in flight per unit of weight.
        size_t count = 0;
        for (const ClusterEndpoint& endpoint : endpoints_) count += usable(endpoint) ? 1 : 0;
        if (count == 0) break;
        // Two different endpoints when there are two (the same one twice would be no choice).
        const size_t first = absl::Uniform<size_t>(random, 0, count);
        const size_t second =
            count == 1 ? first : (first + 1 + absl::Uniform<size_t>(random, 0, count - 1)) % count;
        const ClusterEndpoint* draws[2] = {nullptr, nullptr};
        size_t index = 0;
        for (const ClusterEndpoint& endpoint : endpoints_) {
          if (!usable(endpoint)) continue;
          if (index == first) draws[0] = &endpoint;
          if (index == second) draws[1] = &endpoint;
          ++index;
        }
        auto load = [](const ClusterEndpoint* endpoint) {
          return static_cast<double>(endpoint->stats.active.value()) / endpoint->weight;
        };
        chosen = load(draws[1]) < load(draws[0]) ? draws[1] : draws[0];
        break;
      }
      case LbPolicy::kRingHash: {
        if (ring_.empty()) break;
        const uint64_t point = network::hashIp(client);
        auto it =
            std::lower_bound(ring_.begin(), ring_.end(), std::pair<uint64_t, uint32_t>{point, 0});
        for (size_t i = 0; i < ring_.size() && chosen == nullptr; ++i, ++it) {
          if (it == ring_.end()) it = ring_.begin();
          if (usable(endpoints_[it->second])) chosen = &endpoints_[it->second];
        }
        break;
      }
    }
    if (chosen != nullptr) {
      if (!any_available) stats_.panic.inc();
      return chosen;
    }
  }
  stats_.no_endpoint.inc();
  return nullptr;
}

void Cluster::publishWeights() const {
  for (const ClusterEndpoint& endpoint : endpoints_) {
    endpoint.state->drained.store(endpoint.weight == 0, std::memory_order_relaxed);
  }
}

void Cluster::onSuccess(const ClusterEndpoint& endpoint) const {
  if (endpoint.state->consecutive_failures.load(std::memory_order_relaxed) != 0) {
    endpoint.state->consecutive_failures.store(0, std::memory_order_relaxed);
  }
}

void Cluster::onFailure(const ClusterEndpoint& endpoint,
                        std::chrono::steady_clock::time_point now) const {
  const int64_t now_ms = steadyMs(now);
  endpoint.stats.failures.inc();
  const uint32_t threshold = settings_.outlier.consecutive_failures;
  if (threshold == 0) return;
  EndpointState& state = *endpoint.state;
  // Exactly one failure reaches the threshold, so one worker ejects.
  if (state.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1 != threshold) return;
  state.consecutive_failures.store(0, std::memory_order_relaxed);
  size_t ejected = 0;
  for (const ClusterEndpoint& other : endpoints_) ejected += other.state->ejected(now_ms) ? 1 : 0;
  if ((ejected + 1) * 100 > settings_.outlier.max_ejection_percent * endpoints_.size()) return;
  const uint32_t times = state.ejections.fetch_add(1, std::memory_order_relaxed) + 1;
  state.ejected_until_ms.store(now_ms + settings_.outlier.base_ejection.count() * times,
                               std::memory_order_relaxed);
  endpoint.stats.ejections.inc();
}

bool Cluster::tryStartRetry() const {
  const int64_t active = state_->active_requests.load(std::memory_order_relaxed);
  const int64_t budget =
      std::max<int64_t>(3, active * static_cast<int64_t>(settings_.retry_budget_percent) / 100);
  if (state_->active_retries.load(std::memory_order_relaxed) >= budget) {
    stats_.retry_budget_exhausted.inc();
    return false;
  }
  state_->active_retries.fetch_add(1, std::memory_order_relaxed);
  stats_.retries.inc();
  return true;
}

void Cluster::retryDone() const { state_->active_retries.fetch_sub(1, std::memory_order_relaxed); }

ClusterStats makeClusterStats(stats::Store& store, const std::string& cluster) {
  const std::string prefix = "cluster." + cluster + ".";
  auto counter = [&](const char* name, const char* family, const char* help) -> stats::Counter& {
    return store.counter(prefix + name, {family, {{"cluster", cluster}}, help});
  };
  return ClusterStats{
      counter("retries", "mcproxy_cluster_retries_total",
              "Connect attempts and requests sent again to another endpoint."),
      counter("retry_budget_exhausted", "mcproxy_cluster_retry_budget_exhausted_total",
              "Retries refused because the retry budget was spent."),
      counter("panic", "mcproxy_cluster_panic_total",
              "Endpoints picked while none was healthy (traffic spread over all)."),
      counter("no_endpoint", "mcproxy_cluster_no_endpoint_total",
              "Connections or requests refused because every endpoint was drained."),
  };
}

EndpointStats makeEndpointStats(stats::Store& store, const std::string& cluster,
                                const std::string& endpoint) {
  const std::string prefix = "cluster." + cluster + ".endpoint." + endpoint + ".";
  const stats::MetricId::Labels labels{{"cluster", cluster}, {"endpoint", endpoint}};
  auto counter = [&](const char* name, const char* family, const char* help) -> stats::Counter& {
    return store.counter(prefix + name, {family, labels, help});
  };
  auto gauge = [&](const char* name, const char* family, const char* help) -> stats::Gauge& {
    return store.gauge(prefix + name, {family, labels, help});
  };
  return EndpointStats{
      counter("connections", "mcproxy_cluster_endpoint_connections_total",
              "Connections opened to the endpoint."),
      counter("requests", "mcproxy_cluster_endpoint_requests_total",
              "L7 requests sent to the endpoint."),
      counter("failures", "mcproxy_cluster_endpoint_failures_total",
              "Connect failures, resets and 502/503 answers from the endpoint."),
      counter("ejections", "mcproxy_cluster_endpoint_ejections_total",
              "Times the endpoint was ejected by outlier detection."),
      gauge("healthy", "mcproxy_cluster_endpoint_healthy",
            "1 while active health checks pass (or there are none), else 0."),
      gauge("active", "mcproxy_cluster_endpoint_active",
            "Connections (L4) and requests (L7) in flight to the endpoint."),
  };
}

}  // namespace mcproxy::upstream

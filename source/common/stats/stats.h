#pragma once

#include <absl/container/flat_hash_map.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mcproxy::stats {

// A monotonically increasing count. Updated from workers with relaxed atomics: no lock.
class Counter {
 public:
  void inc(uint64_t by = 1) { value_.fetch_add(by, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down (e.g. open connections).
class Gauge {
 public:
  void inc() { value_.fetch_add(1, std::memory_order_relaxed); }
  void dec() { value_.fetch_sub(1, std::memory_order_relaxed); }
  void add(int64_t delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  void set(int64_t value) { value_.store(value, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// A distribution over fixed upper bounds (e.g. request latency in seconds). Observing is a few
// relaxed atomic adds: no lock.
class Histogram {
 public:
  // `bounds` must outlive the histogram (static tables: every histogram of a kind shares one).
  explicit Histogram(std::span<const double> bounds);
  // Request latency in seconds, 1 ms to 30 s.
  static std::span<const double> latencyBounds();
  void observe(double value);
  std::span<const double> bounds() const { return bounds_; }
  // Cumulative counts per bound (Prometheus "le" buckets), then +Inf.
  std::vector<uint64_t> cumulativeCounts() const;
  double sum() const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::span<const double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (the last is +Inf)
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};  // sum kept in millionths, as an integer
};

// How a stat is exported to Prometheus: a metric family and its labels.
struct MetricId {
  using Labels = std::vector<std::pair<std::string, std::string>>;
  std::string family;  // e.g. "mcproxy_listener_connections_total"
  Labels labels;
  std::string help;  // the family's # HELP text (one stat of the family needs to say it)
};

// One stat of a StatBlock. The strings are static: one table describes every block of a kind.
struct StatSpec {
  enum class Kind { kCounter, kGauge, kLatencyHistogram };
  Kind kind;
  const char* suffix;  // the stat's name is the block's prefix and this
  const char* family;  // its Prometheus family
  const char* help;
  const char* label = nullptr;  // an extra label of this stat, e.g. {"class", "2xx"}
  const char* label_value = nullptr;
};

// Stats that share a name prefix and labels, made in one go: a route's twenty or so, with
// 100,000 routes. A block, its values, its name prefix and its labels sit together in the
// store's arena (no allocation of their own) and live as long as the store; names and labels are
// spelled out only when they are exported.
class StatBlock {
 public:
  // The stat of specs()[i], which must be of that kind.
  Counter& counter(size_t i) { return counters_[slot_[i]]; }
  Gauge& gauge(size_t i) { return gauges_[slot_[i]]; }
  Histogram& histogram(size_t i) { return *histograms_[slot_[i]]; }
  std::span<const StatSpec> specs() const { return specs_; }

 private:
  friend class Store;
  StatBlock() = default;
  // The labels as exported, unpacked only then.
  MetricId::Labels labels() const;

  std::span<const StatSpec> specs_;
  const uint16_t* slot_ = nullptr;  // specs_[i]'s index among the stats of its kind
  Counter* counters_ = nullptr;
  Gauge* gauges_ = nullptr;
  Histogram** histograms_ = nullptr;  // the histograms are the store's
  std::string_view prefix_;
  std::string_view packed_labels_;  // "name\0value\0name\0value\0"
};

// Owns every counter and gauge of the process, by name. Lookups (which lock) happen when a
// snapshot is compiled; the data path keeps references, which stay valid for the process'
// lifetime, so counters carry on across snapshots.
class Store {
 public:
  // `metric` names the stat for /metrics; stats without one are not exported there.
  Counter& counter(const std::string& name, const MetricId& metric = {});
  Gauge& gauge(const std::string& name, const MetricId& metric = {});
  // Request latency in seconds, 1 ms to 30 s.
  Histogram& latencyHistogram(const std::string& name, const MetricId& metric);
  // The block under `prefix`, made with `specs` (static) the first time: a later call with the
  // same prefix and specs gets the same stats, so they carry on across snapshots like named
  // ones. Other specs under the same prefix make a new block; the old one lives on unexported.
  StatBlock& block(const std::string& prefix,
                   std::vector<std::pair<std::string, std::string>> labels,
                   std::span<const StatSpec> specs);

  struct HistogramSample {
    MetricId metric;
    const Histogram* histogram;  // lives as long as the store
  };
  std::vector<HistogramSample> histograms() const;

  struct Sample {
    std::string name;
    int64_t value;
    bool is_gauge;
    MetricId metric;
  };
  // Every stat, sorted by name.
  std::vector<Sample> samples() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Counter>> counters_;
  std::map<std::string, std::unique_ptr<Gauge>> gauges_;
  std::map<std::string, MetricId> metrics_;
  std::map<std::string, std::pair<MetricId, std::unique_ptr<Histogram>>> histograms_;
  // Bump allocation in slabs for what blocks hold; nothing in it is freed before the store.
  void* allocate(size_t bytes, size_t alignment);
  std::string_view copyString(std::string_view text);
  std::vector<std::unique_ptr<std::byte[]>> slabs_;
  size_t slab_used_ = 0;
  size_t slab_size_ = 0;
  // 100,000 routes: a flat table keyed by each block's own prefix (exports sort by name
  // anyway). A block replaced under its prefix stays in the arena, unexported.
  absl::flat_hash_map<absl::string_view, StatBlock*> blocks_;
  std::vector<std::unique_ptr<Histogram>> block_histograms_;
};

}  // namespace mcproxy::stats

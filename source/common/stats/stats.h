#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
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
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts per bound (Prometheus "le" buckets), then +Inf.
  std::vector<uint64_t> cumulativeCounts() const;
  double sum() const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
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
};

}  // namespace mcproxy::stats

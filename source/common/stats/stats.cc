#include "source/common/stats/stats.h"

#include <algorithm>

namespace mcproxy::stats {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::observe(double value) {
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<uint64_t>(value * 1e6), std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::cumulativeCounts() const {
  std::vector<uint64_t> out;
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    out.push_back(running);
  }
  return out;
}

double Histogram::sum() const {
  return static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6;
}

Histogram& Store::latencyHistogram(const std::string& name, const MetricId& metric) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& slot = histograms_[name];
  if (!slot.second) {
    slot.first = metric;
    slot.second = std::make_unique<Histogram>(std::vector<double>{
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
  }
  return *slot.second;
}

std::vector<Store::HistogramSample> Store::histograms() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<HistogramSample> out;
  for (const auto& [name, entry] : histograms_) out.push_back({entry.first, entry.second.get()});
  return out;
}

Counter& Store::counter(const std::string& name, const MetricId& metric) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!metric.family.empty()) metrics_[name] = metric;
  auto& slot = counters_[name];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Store::gauge(const std::string& name, const MetricId& metric) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!metric.family.empty()) metrics_[name] = metric;
  auto& slot = gauges_[name];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

std::vector<Store::Sample> Store::samples() const {
  std::vector<Sample> out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto metricOf = [&](const std::string& name) {
      auto it = metrics_.find(name);
      return it == metrics_.end() ? MetricId{} : it->second;
    };
    for (const auto& [name, counter] : counters_) {
      out.push_back({name, static_cast<int64_t>(counter->value()), false, metricOf(name)});
    }
    for (const auto& [name, gauge] : gauges_) {
      out.push_back({name, gauge->value(), true, metricOf(name)});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Sample& a, const Sample& b) { return a.name < b.name; });
  return out;
}

}  // namespace mcproxy::stats

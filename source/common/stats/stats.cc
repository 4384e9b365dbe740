#include "source/common/stats/stats.h"

#include <algorithm>

namespace mcproxy::stats {

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

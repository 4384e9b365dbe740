#include "source/common/stats/stats.h"

#include <algorithm>

namespace mcproxy::stats {

Counter& Store::counter(const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& slot = counters_[name];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Store::gauge(const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& slot = gauges_[name];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

std::vector<Store::Sample> Store::samples() const {
  std::vector<Sample> out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [name, counter] : counters_) {
      out.push_back({name, static_cast<int64_t>(counter->value()), false});
    }
    for (const auto& [name, gauge] : gauges_) out.push_back({name, gauge->value(), true});
  }
  std::sort(out.begin(), out.end(),
            [](const Sample& a, const Sample& b) { return a.name < b.name; });
  return out;
}

}  // namespace mcproxy::stats

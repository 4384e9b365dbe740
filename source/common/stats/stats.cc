#include "source/common/stats/stats.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <new>

namespace mcproxy::stats {

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds), buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {}

std::span<const double> Histogram::latencyBounds() {
  static constexpr double kBounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,  0.5,    1,     2.5,  5,     10,   30};
  return kBounds;
}

namespace {

// specs[i]'s index among the stats of its kind, for each spec table: tables are static, so one
// copy serves every block made from it (100,000 routes share two).
const uint16_t* slotsFor(std::span<const StatSpec> specs) {
  static std::mutex mutex;
  static std::map<const StatSpec*, std::vector<uint16_t>> tables;
  std::lock_guard<std::mutex> lock(mutex);  // blocks are made when configs compile, not per request
  auto& slots = tables[specs.data()];
  if (slots.empty()) {
    uint16_t counts[3] = {0, 0, 0};
    for (const StatSpec& spec : specs) slots.push_back(counts[static_cast<int>(spec.kind)]++);
  }
  return slots.data();
}

}  // namespace

MetricId::Labels StatBlock::labels() const {
  MetricId::Labels out;
  size_t at = 0;
  while (at < packed_labels_.size()) {
    const size_t name_end = packed_labels_.find('\0', at);
    const size_t value_end = packed_labels_.find('\0', name_end + 1);
    out.emplace_back(packed_labels_.substr(at, name_end - at),
                     packed_labels_.substr(name_end + 1, value_end - name_end - 1));
    at = value_end + 1;
  }
  return out;
}

void* Store::allocate(size_t bytes, size_t alignment) {
  constexpr size_t kSlab = 256 << 10;
  slab_used_ = (slab_used_ + alignment - 1) & ~(alignment - 1);
  if (slabs_.empty() || slab_used_ + bytes > slab_size_) {
    slab_size_ = std::max(kSlab, bytes);
    // operator new[] aligns for any fundamental type, which covers every alignment asked here;
    // not zeroed, so a slab costs memory only as far as it is used.
    slabs_.push_back(std::make_unique_for_overwrite<std::byte[]>(slab_size_));
    slab_used_ = 0;
  }
  void* at = slabs_.back().get() + slab_used_;
  slab_used_ += bytes;
  return at;
}

std::string_view Store::copyString(std::string_view text) {
  auto* at = static_cast<char*>(allocate(text.size(), 1));
  std::copy(text.begin(), text.end(), at);
  return {at, text.size()};
}

StatBlock& Store::block(const std::string& prefix,
                        std::vector<std::pair<std::string, std::string>> labels,
                        std::span<const StatSpec> specs) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = blocks_.find(absl::string_view(prefix.data(), prefix.size()));
  // Another kind of block under this name (a route that became L7) is made anew: snapshots
  // still running hold references into the old one, which stays in the arena, unexported.
  if (found != blocks_.end() && found->second->specs_.data() == specs.data()) {
    return *found->second;
  }
  auto* block = new (allocate(sizeof(StatBlock), alignof(StatBlock))) StatBlock();
  block->specs_ = specs;
  block->slot_ = slotsFor(specs);
  size_t counters = 0, gauges = 0, histograms = 0;
  for (const StatSpec& spec : specs) {
    counters += spec.kind == StatSpec::Kind::kCounter;
    gauges += spec.kind == StatSpec::Kind::kGauge;
    histograms += spec.kind == StatSpec::Kind::kLatencyHistogram;
  }
  block->counters_ = static_cast<Counter*>(allocate(sizeof(Counter) * counters, alignof(Counter)));
  for (size_t i = 0; i < counters; ++i) new (&block->counters_[i]) Counter();
  block->gauges_ = static_cast<Gauge*>(allocate(sizeof(Gauge) * gauges, alignof(Gauge)));
  for (size_t i = 0; i < gauges; ++i) new (&block->gauges_[i]) Gauge();
  block->histograms_ =
      static_cast<Histogram**>(allocate(sizeof(Histogram*) * histograms, alignof(Histogram*)));
  for (size_t i = 0; i < histograms; ++i) {
    block_histograms_.push_back(std::make_unique<Histogram>(Histogram::latencyBounds()));
    block->histograms_[i] = block_histograms_.back().get();
  }
  std::string packed;
  for (const auto& [name, value] : labels) {
    packed.append(name).push_back('\0');
    packed.append(value).push_back('\0');
  }
  block->packed_labels_ = copyString(packed);
  block->prefix_ = copyString(prefix);
  const absl::string_view key(block->prefix_.data(), block->prefix_.size());
  if (found != blocks_.end()) blocks_.erase(found);
  blocks_.emplace(key, block);
  return *block;
}

namespace {

MetricId metricOf(const MetricId::Labels& labels, const StatSpec& spec) {
  MetricId metric{spec.family, labels, spec.help};
  if (spec.label != nullptr) metric.labels.emplace_back(spec.label, spec.label_value);
  return metric;
}

}  // namespace

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
    slot.second = std::make_unique<Histogram>(Histogram::latencyBounds());
  }
  return *slot.second;
}

std::vector<Store::HistogramSample> Store::histograms() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<HistogramSample> out;
  for (const auto& [name, entry] : histograms_) out.push_back({entry.first, entry.second.get()});
  for (const auto& [prefix, block] : blocks_) {
    const MetricId::Labels labels = block->labels();
    for (size_t i = 0; i < block->specs_.size(); ++i) {
      const StatSpec& spec = block->specs_[i];
      if (spec.kind != StatSpec::Kind::kLatencyHistogram) continue;
      out.push_back({metricOf(labels, spec), &block->histogram(i)});
    }
  }
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
    auto namedMetric = [&](const std::string& name) {
      auto it = metrics_.find(name);
      return it == metrics_.end() ? MetricId{} : it->second;
    };
    for (const auto& [name, counter] : counters_) {
      out.push_back({name, static_cast<int64_t>(counter->value()), false, namedMetric(name)});
    }
    for (const auto& [name, gauge] : gauges_) {
      out.push_back({name, gauge->value(), true, namedMetric(name)});
    }
    for (const auto& [prefix, block] : blocks_) {
      const MetricId::Labels labels = block->labels();
      for (size_t i = 0; i < block->specs_.size(); ++i) {
        const StatSpec& spec = block->specs_[i];
        if (spec.kind == StatSpec::Kind::kLatencyHistogram) continue;
        const bool gauge = spec.kind == StatSpec::Kind::kGauge;
        out.push_back(
            {std::string(block->prefix_) + spec.suffix,
             gauge ? block->gauge(i).value() : static_cast<int64_t>(block->counter(i).value()),
             gauge, metricOf(labels, spec)});
      }
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Sample& a, const Sample& b) { return a.name < b.name; });
  return out;
}

}  // namespace mcproxy::stats

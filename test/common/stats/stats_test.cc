#include "source/common/stats/stats.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace mcproxy::stats {
namespace {

using Kind = StatSpec::Kind;

constexpr StatSpec kSpecs[] = {
    {Kind::kCounter, "hits", "test_hits_total", "Hits."},
    {Kind::kGauge, "open", "test_open", "Open now."},
    {Kind::kLatencyHistogram, "latency", "test_latency_seconds", "Latency."},
    {Kind::kCounter, "ok", "test_results_total", "Results.", "class", "ok"},
};

TEST(StatBlock, ExportsEveryStatByNameAndLabels) {
  Store store;
  StatBlock& block = store.block("thing.a.", {{"thing", "a"}}, kSpecs);
  block.counter(0).inc(3);
  block.gauge(1).set(-2);
  block.histogram(2).observe(0.02);
  block.counter(3).inc();
  store.counter("plain").inc(7);

  const auto samples = store.samples();
  ASSERT_EQ(samples.size(), 4u);  // sorted by name: plain, thing.a.hits, .ok, .open
  EXPECT_EQ(samples[0].name, "plain");
  EXPECT_EQ(samples[1].name, "thing.a.hits");
  EXPECT_EQ(samples[1].value, 3);
  EXPECT_EQ(samples[1].metric.family, "test_hits_total");
  EXPECT_EQ(samples[1].metric.labels, (MetricId::Labels{{"thing", "a"}}));
  EXPECT_EQ(samples[2].name, "thing.a.ok");
  EXPECT_EQ(samples[2].metric.labels, (MetricId::Labels{{"thing", "a"}, {"class", "ok"}}));
  EXPECT_EQ(samples[3].name, "thing.a.open");
  EXPECT_TRUE(samples[3].is_gauge);
  EXPECT_EQ(samples[3].value, -2);

  const auto histograms = store.histograms();
  ASSERT_EQ(histograms.size(), 1u);
  EXPECT_EQ(histograms[0].metric.family, "test_latency_seconds");
  EXPECT_EQ(histograms[0].histogram->count(), 1u);
}

TEST(StatBlock, TheSamePrefixGetsTheSameStats) {
  // As named stats do, a route's stats carry on across snapshots.
  Store store;
  store.block("r.", {}, kSpecs).counter(0).inc();
  StatBlock& again = store.block("r.", {}, kSpecs);
  EXPECT_EQ(again.counter(0).value(), 1u);
}

constexpr StatSpec kOtherSpecs[] = {{Kind::kCounter, "hits", "test_hits_total", "Hits."}};

TEST(StatBlock, OtherSpecsUnderAPrefixKeepTheOldBlockAliveButUnexported) {
  Store store;
  Counter& old_hits = store.block("r.", {}, kSpecs).counter(0);
  StatBlock& now = store.block("r.", {}, kOtherSpecs);
  old_hits.inc();  // a snapshot still running: its reference stays valid
  now.counter(0).inc(5);
  const auto samples = store.samples();
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].name, "r.hits");
  EXPECT_EQ(samples[0].value, 5);
}

// Blocks share slabs of the store's arena (100,000 routes' stats are not 100,000 allocations
// of each kind): each keeps its own values, name and labels, and one larger than a slab gets
// a slab of its own.
TEST(StatBlock, ManyBlocksInTheArenaKeepTheirOwnValuesNamesAndLabels) {
  Store store;
  std::vector<StatBlock*> blocks;
  for (int i = 0; i < 20000; ++i) {
    const std::string id = std::to_string(i);
    blocks.push_back(&store.block("r" + id + ".", {{"route", "host" + id + ".test"}}, kSpecs));
  }
  const std::string huge(300 << 10, 'x');
  StatBlock& big = store.block("big.", {{"route", huge}}, kOtherSpecs);
  for (int i = 0; i < 20000; ++i) {
    blocks[i]->counter(0).inc(i);
    blocks[i]->gauge(1).set(-i);
  }
  big.counter(0).inc(42);
  EXPECT_EQ(&store.block("r19999.", {}, kSpecs), blocks[19999]);
  const auto samples = store.samples();
  ASSERT_EQ(samples.size(), 20000u * 3 + 1);
  for (const auto& sample : samples) {
    if (sample.name == "big.hits") {
      EXPECT_EQ(sample.value, 42);
      EXPECT_EQ(sample.metric.labels, (MetricId::Labels{{"route", huge}}));
      continue;
    }
    const int i = std::stoi(sample.name.substr(1));
    if (sample.name.ends_with(".hits")) {
      EXPECT_EQ(sample.value, i) << sample.name;
    } else if (sample.name.ends_with(".open")) {
      EXPECT_EQ(sample.value, -i) << sample.name;
    }
    EXPECT_EQ(sample.metric.labels.front(),
              (std::pair<std::string, std::string>{"route", "host" + std::to_string(i) + ".test"}));
  }
  EXPECT_EQ(store.histograms().size(), 20000u);
}

TEST(Histogram, SharesItsBoundsTable) {
  Histogram a(Histogram::latencyBounds());
  Histogram b(Histogram::latencyBounds());
  EXPECT_EQ(a.bounds().data(), b.bounds().data());
  a.observe(100);  // above every bound: +Inf
  EXPECT_EQ(a.cumulativeCounts().back(), 1u);
  EXPECT_EQ(a.cumulativeCounts()[a.bounds().size() - 1], 0u);
}

}  // namespace
}  // namespace mcproxy::stats

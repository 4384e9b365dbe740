#include "source/common/upstream/cluster.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace mcproxy::upstream {
namespace {

network::Address address(const std::string& text) {
  std::string error;
  auto parsed = network::Address::parseIpPort(text, error);
  EXPECT_TRUE(parsed) << error;
  return *parsed;
}

class ClusterTest : public testing::Test {
 protected:
  // A cluster "c" of endpoints 127.0.0.1:9001.. with these weights.
  std::unique_ptr<Cluster> make(std::vector<uint32_t> weights, Cluster::Settings settings = {},
                                std::vector<std::string> names = {}) {
    std::vector<ClusterEndpoint> endpoints;
    for (size_t i = 0; i < weights.size(); ++i) {
      const std::string text =
          i < names.size() ? names[i] : "127.0.0.1:" + std::to_string(9001 + i);
      auto& state = states_[text];
      if (!state) state = std::make_shared<EndpointState>();
      endpoints.push_back(ClusterEndpoint{text, address(text), weights[i], "", state,
                                          makeEndpointStats(store_, "c", text)});
    }
    return std::make_unique<Cluster>("c", std::move(settings), std::move(endpoints),
                                     std::make_shared<ClusterState>(),
                                     makeClusterStats(store_, "c"));
  }

  std::map<std::string, int> countPicks(const Cluster& cluster, int picks, int64_t now_ms = 0) {
    std::map<std::string, int> counts;
    for (int i = 0; i < picks; ++i) {
      const ClusterEndpoint* picked = cluster.pick(client_, random_, at(now_ms));
      counts[picked == nullptr ? "(none)" : picked->address_text]++;
    }
    return counts;
  }

  // The steady clock at `ms` milliseconds, the unit of ejection times.
  static std::chrono::steady_clock::time_point at(int64_t ms) {
    return std::chrono::steady_clock::time_point(std::chrono::milliseconds(ms));
  }

  stats::Store store_;
  std::map<std::string, std::shared_ptr<EndpointState>> states_;
  network::Address client_ = address("10.0.0.1:5555");
  std::mt19937_64 random_{42};
};

TEST_F(ClusterTest, RoundRobinFollowsTheWeightsExactlyAndSpreadsTheHeavyOne) {
  auto cluster = make({1, 1, 2});
  auto counts = countPicks(*cluster, 400);
  EXPECT_EQ(counts["127.0.0.1:9001"], 100);
  EXPECT_EQ(counts["127.0.0.1:9002"], 100);
  EXPECT_EQ(counts["127.0.0.1:9003"], 200);
  // Smooth: the weight-2 endpoint never takes three turns in a row.
  int run = 0;
  for (int i = 0; i < 40; ++i) {
    run = cluster->pick(client_, random_, at(0))->address_text == "127.0.0.1:9003" ? run + 1 : 0;
    EXPECT_LT(run, 3);
  }
}

TEST_F(ClusterTest, UnhealthyEjectedAndDrainedEndpointsAreSkipped) {
  auto cluster = make({1, 1, 1, 0});
  states_["127.0.0.1:9001"]->healthy = false;
  states_["127.0.0.1:9002"]->ejected_until_ms = 5000;
  auto counts = countPicks(*cluster, 30, /*now=*/1000);
  EXPECT_EQ(counts["127.0.0.1:9003"], 30);
  // The ejection ends by itself.
  counts = countPicks(*cluster, 30, /*now=*/6000);
  EXPECT_EQ(counts["127.0.0.1:9002"], 15);
  EXPECT_EQ(counts["127.0.0.1:9004"], 0);  // drained
  EXPECT_EQ(cluster->stats().panic.value(), 0u);
}

TEST_F(ClusterTest, PanicModeSpreadsOverAllWhenNoneIsHealthy) {
  auto cluster = make({1, 1, 0});
  states_["127.0.0.1:9001"]->healthy = false;
  states_["127.0.0.1:9002"]->healthy = false;
  auto counts = countPicks(*cluster, 20);
  EXPECT_EQ(counts["127.0.0.1:9001"], 10);
  EXPECT_EQ(counts["127.0.0.1:9002"], 10);
  EXPECT_EQ(counts["127.0.0.1:9003"], 0);  // drained stays drained, even in panic
  EXPECT_EQ(cluster->stats().panic.value(), 20u);
}

TEST_F(ClusterTest, EveryEndpointDrainedPicksNothing) {
  auto cluster = make({0, 0});
  EXPECT_EQ(cluster->pick(client_, random_, at(0)), nullptr);
  EXPECT_EQ(cluster->stats().no_endpoint.value(), 1u);
}

TEST_F(ClusterTest, TriedEndpointsAreAvoidedUntilNoOtherIsLeft) {
  for (auto policy :
       {LbPolicy::kRoundRobin, LbPolicy::kRandom, LbPolicy::kLeastRequest, LbPolicy::kRingHash}) {
    Cluster::Settings settings;
    settings.policy = policy;
    auto cluster = make({1, 1}, settings);
    const ClusterEndpoint* first = cluster->pick(client_, random_, at(0));
    for (int i = 0; i < 20; ++i) {
      const ClusterEndpoint* tried[] = {first};
      const ClusterEndpoint* second = cluster->pick(client_, random_, at(0), tried);
      ASSERT_NE(second, nullptr);
      EXPECT_NE(second, first) << lbPolicyName(policy);
      // Both tried: one of them again rather than nothing.
      const ClusterEndpoint* both[] = {first, second};
      EXPECT_NE(cluster->pick(client_, random_, at(0), both), nullptr);
    }
  }
}

TEST_F(ClusterTest, RandomFollowsTheWeights) {
  Cluster::Settings settings;
  settings.policy = LbPolicy::kRandom;
  auto cluster = make({1, 3}, settings);
  auto counts = countPicks(*cluster, 4000);
  EXPECT_NEAR(counts["127.0.0.1:9002"] / 4000.0, 0.75, 0.04);
}

TEST_F(ClusterTest, LeastRequestPrefersTheIdleEndpoint) {
  Cluster::Settings settings;
  settings.policy = LbPolicy::kLeastRequest;
  auto cluster = make({1, 1}, settings);
  cluster->endpoints()[0].stats.active.set(5);
  auto counts = countPicks(*cluster, 100);
  // Two endpoints: both are drawn every time, and the idle one always wins.
  EXPECT_EQ(counts["127.0.0.1:9002"], 100);

  auto three = make({1, 1, 1}, settings);
  three->endpoints()[0].stats.active.set(5);
  three->endpoints()[1].stats.active.set(5);
  counts = countPicks(*three, 3000);
  // The idle one wins whenever it is one of the two drawn: 2 pairs of 3.
  EXPECT_NEAR(counts["127.0.0.1:9003"] / 3000.0, 2.0 / 3.0, 0.04);
}

TEST_F(ClusterTest, RingHashKeepsEachClientAndMovesOnlyTheRemovedEndpointsClients) {
  Cluster::Settings settings;
  settings.policy = LbPolicy::kRingHash;
  auto four = make({1, 1, 1, 1}, settings);
  std::map<std::string, std::string> before;
  std::map<std::string, int> share;
  for (int i = 0; i < 2000; ++i) {
    const std::string client = "10." + std::to_string(i / 250) + "." + std::to_string(i % 250) +
                               ".1:" + std::to_string(1000 + i);
    const auto& picked = four->pick(address(client), random_, at(0))->address_text;
    // The port does not matter: a client's next connection comes from another port.
    const std::string again_client = client.substr(0, client.rfind(':')) + ":9";
    EXPECT_EQ(four->pick(address(again_client), random_, at(0))->address_text, picked);
    before[client] = picked;
    share[picked]++;
  }
  for (const auto& [endpoint, count] : share) {
    EXPECT_NEAR(count / 2000.0, 0.25, 0.08) << endpoint;
  }
  // 9004 leaves: its clients, and only they, move.
  auto three = make({1, 1, 1}, settings);
  int moved = 0;
  for (const auto& [client, was] : before) {
    const auto& now = three->pick(address(client), random_, at(0))->address_text;
    if (was == "127.0.0.1:9004") {
      ++moved;
      EXPECT_NE(now, was);
    } else {
      EXPECT_EQ(now, was) << client;
    }
  }
  EXPECT_NEAR(moved / 2000.0, 0.25, 0.08);
}

TEST_F(ClusterTest, ConsecutiveFailuresEjectForLongerEachTimeWithinTheCap) {
  Cluster::Settings settings;
  settings.outlier.consecutive_failures = 3;
  settings.outlier.base_ejection = std::chrono::milliseconds(1000);
  settings.outlier.max_ejection_percent = 50;
  auto cluster = make({1, 1, 1, 1}, settings);
  const ClusterEndpoint& a = cluster->endpoints()[0];
  const ClusterEndpoint& b = cluster->endpoints()[1];
  const ClusterEndpoint& c = cluster->endpoints()[2];
  cluster->onFailure(a, at(0));
  cluster->onFailure(a, at(0));
  cluster->onSuccess(a);  // the streak starts over
  cluster->onFailure(a, at(0));
  cluster->onFailure(a, at(0));
  EXPECT_FALSE(a.state->ejected(0));
  cluster->onFailure(a, at(0));
  EXPECT_TRUE(a.state->ejected(999));
  EXPECT_FALSE(a.state->ejected(1000));
  EXPECT_EQ(a.stats.ejections.value(), 1u);
  EXPECT_EQ(a.stats.failures.value(), 5u);
  // The second ejection lasts twice as long.
  for (int i = 0; i < 3; ++i) cluster->onFailure(a, at(2000));
  EXPECT_TRUE(a.state->ejected(3999));
  EXPECT_FALSE(a.state->ejected(4000));
  // At most half of the four: b joins a, c does not.
  for (int i = 0; i < 3; ++i) cluster->onFailure(b, at(2000));
  for (int i = 0; i < 3; ++i) cluster->onFailure(c, at(2000));
  EXPECT_TRUE(b.state->ejected(2000));
  EXPECT_FALSE(c.state->ejected(2000));
}

TEST_F(ClusterTest, RetryBudgetIsAShareOfActiveRequestsWithAFloorOfThree) {
  Cluster::Settings settings;
  settings.retry_budget_percent = 20;
  auto cluster = make({1, 1}, settings);
  cluster->state().active_requests = 50;  // 20 % of 50: 10 retries at once
  int started = 0;
  while (cluster->tryStartRetry()) ++started;
  EXPECT_EQ(started, 10);
  EXPECT_EQ(cluster->stats().retry_budget_exhausted.value(), 1u);
  cluster->retryDone();
  EXPECT_TRUE(cluster->tryStartRetry());

  auto idle = make({1, 1}, settings);
  started = 0;
  while (idle->tryStartRetry()) ++started;
  EXPECT_EQ(started, 3);
}

TEST(IdempotentMethodTest, FollowsRfc9110) {
  for (const char* method : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
    EXPECT_TRUE(idempotentMethod(method)) << method;
  }
  for (const char* method : {"POST", "PATCH", "CONNECT", "get"}) {
    EXPECT_FALSE(idempotentMethod(method)) << method;
  }
}

}  // namespace
}  // namespace mcproxy::upstream

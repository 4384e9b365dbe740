#include "extensions/filters/network/firewall/rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace mcproxy::extensions::firewall {
namespace {

using namespace std::chrono_literals;

network::Address ip(const std::string& text) {
  std::string error;
  return *network::Address::parseIpPort(text + ":1", error);
}

TEST(RateLimiterTest, BurstThenSteadyRate) {
  RateLimiter limiter(3, 60s, 1024);  // 3 per minute: a token every 20 s
  const auto start = std::chrono::steady_clock::now();
  const auto a = ip("192.0.2.1");
  EXPECT_TRUE(limiter.allow(a, start));
  EXPECT_TRUE(limiter.allow(a, start));
  EXPECT_TRUE(limiter.allow(a, start));
  EXPECT_FALSE(limiter.allow(a, start));        // bucket empty
  EXPECT_FALSE(limiter.allow(a, start + 19s));  // not refilled yet
  EXPECT_TRUE(limiter.allow(a, start + 20s));   // one token back
  EXPECT_FALSE(limiter.allow(a, start + 20s));
  EXPECT_TRUE(limiter.allow(ip("192.0.2.2"), start));  // another address has its own bucket
  // After a full period idle, the whole burst is available again, not more.
  const auto later = start + 200s;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.allow(a, later)) << i;
  EXPECT_FALSE(limiter.allow(a, later));
}

TEST(RateLimiterTest, RefusedConnectionsSpendNothing) {
  RateLimiter limiter(1, 10s, 64);
  const auto start = std::chrono::steady_clock::now();
  const auto a = ip("192.0.2.1");
  EXPECT_TRUE(limiter.allow(a, start));
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(limiter.allow(a, start + 5s));
  EXPECT_TRUE(limiter.allow(a, start + 10s));  // hammering did not push the refill back
}

TEST(RateLimiterTest, MemoryIsFixedUnderAnAddressFlood) {
  RateLimiter limiter(2, 60s, 256);
  EXPECT_EQ(limiter.slots(), 256u);
  const auto start = std::chrono::steady_clock::now();
  // 100,000 distinct addresses: the table stays 256 slots; each newcomer gets its burst.
  for (int i = 0; i < 100000; ++i) {
    const std::string text = "10." + std::to_string(i >> 16) + "." +
                             std::to_string((i >> 8) & 255) + "." + std::to_string(i & 255);
    ASSERT_TRUE(limiter.allow(ip(text), start + std::chrono::microseconds(i)));
  }
  // A busy address seen last is still limited.
  const auto busy = ip("192.0.2.50");
  EXPECT_TRUE(limiter.allow(busy, start + 1s));
  EXPECT_TRUE(limiter.allow(busy, start + 1s));
  EXPECT_FALSE(limiter.allow(busy, start + 1s));
}

TEST(RateLimiterTest, WorkersSharingOneAddressNeverExceedTheBurst) {
  RateLimiter limiter(100, 3600s, 1024);
  const auto now = std::chrono::steady_clock::now();
  std::atomic<int> allowed{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) allowed += limiter.allow(ip("192.0.2.9"), now);
    });
  }
  for (auto& worker : workers) worker.join();
  EXPECT_EQ(allowed.load(), 100);
}

}  // namespace
}  // namespace mcproxy::extensions::firewall

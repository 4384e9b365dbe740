#include <gtest/gtest.h>

#include "test/mocks/http/filter_chain.h"

namespace mcproxy::extensions::fault {
namespace {

constexpr const char* kName = "mcproxy.filters.http.fault";

TEST(FaultTest, ADelayStopsTheRequestAndResumesItOnATimer) {
  test::FilterChainHarness harness;
  harness.start(kName, "delay { fixed_delay_ms: 40 }");
  const auto started = std::chrono::steady_clock::now();
  harness.request(harness.get("/"));
  EXPECT_TRUE(harness.request_seen.empty());  // held
  while (harness.request_seen.empty()) harness.callbacks().runOnce();
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(35));
  EXPECT_EQ(harness.responseBody(), "backend");
}

TEST(FaultTest, AnAbortAnswersAfterTheDelay) {
  test::FilterChainHarness harness;
  harness.start(kName, "delay { fixed_delay_ms: 10 } abort { status: 503 }");
  harness.request(harness.get("/"));
  while (harness.response().empty()) harness.callbacks().runOnce();
  EXPECT_EQ(harness.response().status(), 503);
  EXPECT_TRUE(harness.request_seen.empty());
}

TEST(FaultTest, OnlyRequestsWithTheHeaderAreFaulted) {
  test::FilterChainHarness harness;
  harness.start(kName, R"(abort { status: 500 } header: "X-Chaos")");
  harness.request(harness.get("/"));
  EXPECT_EQ(harness.response().status(), 200);

  test::FilterChainHarness chaos;
  chaos.start(kName, R"(abort { status: 500 } header: "X-Chaos")");
  http::HeaderMap request = chaos.get("/");
  request.add("x-chaos", "1");
  chaos.request(std::move(request));
  EXPECT_EQ(chaos.response().status(), 500);
}

TEST(FaultTest, APercentageFaultsAboutThatShare) {
  int aborted = 0;
  for (int i = 0; i < 400; ++i) {
    test::FilterChainHarness harness;
    harness.start(kName, "abort { status: 500 percent: 25 }");
    harness.connection.connection_id = static_cast<uint64_t>(i);
    harness.request(harness.get("/"));
    aborted += harness.response().status() == 500 ? 1 : 0;
  }
  EXPECT_GT(aborted, 60);
  EXPECT_LT(aborted, 140);
}

TEST(FaultTest, ConfigErrorsNameTheField) {
  const std::string base = "listeners[0].routes[0].http_filters[0].typed_config";
  EXPECT_EQ(test::configError(kName, "abort { status: 700 }"),
            base + ".abort.status: must be between 200 and 599");
  EXPECT_EQ(test::configError(kName, "delay { fixed_delay_ms: 1 percent: 101 }"),
            base + ".delay.percent: a percentage, 1 to 100 (0 means 100)");
}

}  // namespace
}  // namespace mcproxy::extensions::fault

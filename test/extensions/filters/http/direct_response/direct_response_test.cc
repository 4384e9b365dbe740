#include <gtest/gtest.h>

#include "test/mocks/http/filter_chain.h"

namespace mcproxy::extensions::direct_response {
namespace {

constexpr const char* kName = "mcproxy.filters.http.direct_response";
constexpr const char* kRules = R"(
  rules { path_exact: "/robots.txt" status: 200 body: "User-agent: *\nDisallow: /\n" }
  rules { path_prefix: "/old/" status: 301
          headers { name: "Location" value: "https://new.test%REQ(:path)%" } })";

TEST(DirectResponseTest, AMatchingRuleAnswersWithoutTheBackend) {
  test::FilterChainHarness harness;
  harness.start(kName, kRules);
  harness.request(harness.get("/robots.txt?x=1"));
  EXPECT_TRUE(harness.request_seen.empty());  // the terminal filter never saw it
  EXPECT_EQ(harness.response().status(), 200);
  EXPECT_EQ(harness.responseBody(), "User-agent: *\nDisallow: /\n");
  EXPECT_EQ(*harness.response().get("content-type"), "text/plain");
  EXPECT_EQ(harness.info.response_detail, "direct response");
}

TEST(DirectResponseTest, ARedirectCarriesThePath) {
  test::FilterChainHarness harness;
  harness.start(kName, kRules);
  harness.request(harness.get("/old/page?a=b"));
  EXPECT_EQ(harness.response().status(), 301);
  EXPECT_EQ(*harness.response().get("location"), "https://new.test/old/page?a=b");
  EXPECT_TRUE(harness.responseBody().empty());
}

TEST(DirectResponseTest, OtherRequestsGoOn) {
  test::FilterChainHarness harness;
  harness.start(kName, kRules);
  harness.request(harness.get("/robots.txt.bak"));
  EXPECT_FALSE(harness.request_seen.empty());
  EXPECT_EQ(harness.responseBody(), "backend");
}

TEST(DirectResponseTest, ConfigErrorsNameTheField) {
  const std::string base = "listeners[0].routes[0].http_filters[0].typed_config.rules[0]";
  EXPECT_EQ(test::configError(kName, R"(rules { status: 99 })"),
            base + ".status: must be between 200 and 599");
  EXPECT_EQ(test::configError(kName, R"(rules { path_prefix: "a" status: 200 })"),
            base + ": \"a\" must start with \"/\"");
  EXPECT_EQ(test::configError(kName, R"(rules { path_prefix: "/a" path_exact: "/b" status: 200 })"),
            base + ": path_prefix and path_exact exclude each other");
  const std::string unknown =
      test::configError(kName, R"(rules { status: 200 headers { name: "x" value: "%BAD%" } })");
  EXPECT_TRUE(unknown.starts_with(base + ".headers[0].value: unknown %BAD%; known: %TIME% "))
      << unknown;
}

}  // namespace
}  // namespace mcproxy::extensions::direct_response

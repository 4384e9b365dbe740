#include <gtest/gtest.h>

#include "test/mocks/http/filter_chain.h"

namespace mcproxy::extensions::forwarding_headers {
namespace {

constexpr const char* kName = "mcproxy.filters.http.forwarding_headers";

TEST(ForwardingHeadersTest, ByDefaultWhatTheClientClaimsIsReplaced) {
  test::FilterChainHarness harness;
  harness.start(kName, "");
  http::HeaderMap request = harness.get("/");
  request.add("x-forwarded-for", "6.6.6.6");
  request.add("x-real-ip", "6.6.6.6");
  request.add("x-forwarded-proto", "http");
  harness.request(std::move(request));
  // The real client: the address PROXY protocol reported (192.0.2.7), not the TCP peer.
  EXPECT_EQ(*harness.request_seen.get("x-forwarded-for"), "192.0.2.7");
  EXPECT_EQ(*harness.request_seen.get("x-real-ip"), "192.0.2.7");
  EXPECT_EQ(*harness.request_seen.get("x-forwarded-proto"), "https");
  EXPECT_EQ(harness.request_seen.size(), 7u);  // no second copy of any of them
}

TEST(ForwardingHeadersTest, TrustedHopsKeepTheirEntriesAndNameTheClient) {
  test::FilterChainHarness harness;
  harness.start(kName, "trusted_hops: 2");
  http::HeaderMap request = harness.get("/");
  // The client forged the first entry; the CDN and the load balancer appended the last two.
  request.add("x-forwarded-for", "6.6.6.6, 203.0.113.5");
  request.add("x-forwarded-for", "198.51.100.1");
  request.add("x-forwarded-proto", "http");
  harness.request(std::move(request));
  EXPECT_EQ(*harness.request_seen.get("x-forwarded-for"), "203.0.113.5, 198.51.100.1, 192.0.2.7");
  EXPECT_EQ(*harness.request_seen.get("x-real-ip"), "203.0.113.5");
  EXPECT_EQ(*harness.request_seen.get("x-forwarded-proto"), "http");  // a trusted hop said so
}

TEST(ForwardingHeadersTest, TrustedHopsWithoutAnIncomingHeaderUseTheClient) {
  test::FilterChainHarness harness;
  harness.start(kName, "trusted_hops: 1");
  harness.request(harness.get("/"));
  EXPECT_EQ(*harness.request_seen.get("x-forwarded-for"), "192.0.2.7");
  EXPECT_EQ(*harness.request_seen.get("x-real-ip"), "192.0.2.7");
}

TEST(ForwardingHeadersTest, ConfigErrorsNameTheField) {
  EXPECT_EQ(test::configError(kName, "trusted_hops: 65"),
            "listeners[0].routes[0].http_filters[0].trusted_hops: at most 64");
}

}  // namespace
}  // namespace mcproxy::extensions::forwarding_headers

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
  EXPECT_EQ(harness.request_seen.size(), 8u);  // no second copy of any of them (+ x-request-id)
}

// 8-4-4-4-12 lower-case hex, version 4, variant 10xx.
bool isUuid4(const std::string& id) {
  if (id.size() != 36 || id[14] != '4' || std::string("89ab").find(id[19]) == std::string::npos) {
    return false;
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (id[i] == '-')) return false;
    if (!dash && std::string("0123456789abcdef").find(id[i]) == std::string::npos) return false;
  }
  return true;
}

TEST(ForwardingHeadersTest, EveryRequestGetsANewRequestIdUnlessATrustedHopNamedIt) {
  test::FilterChainHarness untrusting;
  untrusting.start(kName, "");
  http::HeaderMap forged = untrusting.get("/");
  forged.add("x-request-id", "chosen-by-the-client");
  untrusting.request(std::move(forged));
  const std::string first = *untrusting.request_seen.get("x-request-id");
  EXPECT_TRUE(isUuid4(first)) << first;
  EXPECT_EQ(untrusting.info.request_id, first);  // what the access log writes

  test::FilterChainHarness again;
  again.start(kName, "");
  again.request(again.get("/"));
  EXPECT_TRUE(isUuid4(*again.request_seen.get("x-request-id")));
  EXPECT_NE(*again.request_seen.get("x-request-id"), first);

  test::FilterChainHarness trusting;
  trusting.start(kName, "trusted_hops: 1");
  http::HeaderMap named = trusting.get("/");
  named.add("x-request-id", "edge-7f3a");
  trusting.request(std::move(named));
  EXPECT_EQ(*trusting.request_seen.get("x-request-id"), "edge-7f3a");
  EXPECT_EQ(trusting.info.request_id, "edge-7f3a");

  test::FilterChainHarness unusable;
  unusable.start(kName, "trusted_hops: 1");
  http::HeaderMap spaced = unusable.get("/");
  spaced.add("x-request-id", "has space");
  unusable.request(std::move(spaced));
  EXPECT_TRUE(isUuid4(*unusable.request_seen.get("x-request-id")));
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

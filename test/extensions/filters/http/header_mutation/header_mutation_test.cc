#include <gtest/gtest.h>

#include "test/mocks/http/filter_chain.h"

namespace mcproxy::extensions::header_mutation {
namespace {

constexpr const char* kName = "mcproxy.filters.http.header_mutation";

TEST(HeaderMutationTest, RequestAndResponseHeadersAreRemovedSetAndAdded) {
  test::FilterChainHarness harness;
  harness.start(kName, R"(
    request {
      remove: "X-Internal"
      set { name: "x-client" value: "%CLIENT_IP%:%CLIENT_PORT% via %PEER_IP%" }
      set { name: "x-copy" value: "%REQ(user-agent)% on %SNI% (%ROUTE%, %LISTENER%) 100%%" }
      add { name: "x-tag" value: "two" }
    }
    response {
      remove: "x-backend"
      set { name: "strict-transport-security" value: "max-age=63072000" }
      add { name: "x-path" value: "%REQ(:path)%" }
    })");
  http::HeaderMap request = harness.get("/p?q=1");
  request.add("user-agent", "curl/8");
  request.add("x-internal", "secret");
  request.add("x-tag", "one");
  request.add("x-client", "forged");
  harness.request(std::move(request));

  const http::HeaderMap& seen = harness.request_seen;
  EXPECT_EQ(seen.get("x-internal"), nullptr);
  EXPECT_EQ(*seen.get("x-client"), "192.0.2.7:4242 via 10.0.0.1");
  EXPECT_EQ(*seen.get("x-copy"), "curl/8 on a.test (a.test, edge) 100%");
  std::vector<std::string> tags;
  for (const auto& header : seen) {
    if (header.name == "x-tag") tags.push_back(header.value);
  }
  EXPECT_EQ(tags, (std::vector<std::string>{"one", "two"}));

  const http::HeaderMap& response = harness.response();
  EXPECT_EQ(response.get("x-backend"), nullptr);
  EXPECT_EQ(*response.get("strict-transport-security"), "max-age=63072000");
  EXPECT_EQ(*response.get("x-path"), "/p?q=1");
}

TEST(HeaderMutationTest, ASubstitutionThatWouldBreakTheFieldIsLeftOut) {
  test::FilterChainHarness harness;
  harness.start(kName, R"(request { set { name: "x-sni" value: "%SNI%" } })");
  harness.connection.requested_server_name = std::string("a\r\nx: y", 7);
  harness.request(harness.get("/"));
  EXPECT_EQ(harness.request_seen.get("x-sni"), nullptr);
}

TEST(HeaderMutationTest, ConfigErrorsNameTheField) {
  const std::string base = "listeners[0].routes[0].http_filters[0].typed_config.";
  const std::string unknown =
      test::configError(kName, R"(request { set { name: "x" value: "%SNII%" } })");
  EXPECT_TRUE(unknown.starts_with(base + "request.set[0].value: unknown %SNII%; known: %TIME% "))
      << unknown;
  EXPECT_TRUE(
      unknown.ends_with(" %USER_AGENT% %CLIENT_CERT_SUBJECT% %CLIENT_CERT_SHA256% %REQ(name)% %%"))
      << unknown;
  EXPECT_EQ(test::configError(kName, R"(response { add { name: "bad name" value: "v" } })"),
            base + "response.add[0].name: \"bad name\" is not a valid header name");
  EXPECT_EQ(test::configError(kName, R"(request { remove: "connection" })"),
            base + "request.remove[0]: \"connection\" is hop-by-hop; the proxy manages it");
  EXPECT_EQ(test::configError(kName, R"(request { set { name: "x" value: "100%" } })"),
            base + "request.set[0].value: unterminated % at offset 3");
}

}  // namespace
}  // namespace mcproxy::extensions::header_mutation

#include "extensions/filters/http/router/router.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <set>

#include "source/common/http/filter_manager.h"
#include "source/common/stats/stats.h"
#include "source/common/upstream/cluster.h"
#include "source/common/upstream/endpoint.h"
#include "test/mocks/http/filter.h"
#include "test/mocks/router/route.h"

namespace mcproxy::extensions::http_router {
namespace {

using http::FilterFactory;
using http::HeaderMap;

network::Address address(const std::string& text) {
  std::string error;
  return *network::Address::parseIpPort(text, error);
}

// One L7 route whose router relays to fake upstream streams.
class RouterTest : public ::testing::Test {
 protected:
  RouterTest() {
    route_ = test::makeRoute(stats_);
    route_->l7->http_pool_key =
        upstream::poolKey(route_->backend, upstream::Protocol::kHttp2, false, "");
    router::HttpRoute api;
    api.path.prefix = "/api/";
    api.backend_text = "127.0.0.1:9001";
    api.backend = address("127.0.0.1:9001");
    api.pool_key = upstream::poolKey(api.backend, upstream::Protocol::kHttp2, false, "");
    api.timeout = std::chrono::milliseconds(20);
    route_->l7->http_routes.push_back(api);
    connection_.route = route_.get();
    connection_.requested_server_name = "a.test";
    connection_.real_client = address("192.0.2.7:5555");
    connection_.downstream_local = address("127.0.0.1:8443");
  }
  void start() {
    factories_.push_back(FilterFactory::of<RouterFilter>(
        "mcproxy.filters.http.router", [](http::FilterCallbacks& callbacks) {
          return std::make_unique<RouterFilter>(callbacks);
        }));
    manager_ = std::make_unique<http::FilterManager>(callbacks_, info_, factories_);
  }
  static HeaderMap request(const std::string& path) {
    return {{":method", "GET"},
            {":scheme", "https"},
            {":path", path},
            {":authority", "a.test"},
            {"expect", "100-continue"}};
  }
  test::FakeStreamPool& pool() { return callbacks_.fakeUpstreams().shared_pool; }
  void runUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 100 && !done(); ++i) callbacks_.runOnce();
  }

  stats::Store stats_;
  std::unique_ptr<router::Route> route_;
  network::StreamInfo connection_;
  http::StreamInfo info_{connection_};
  test::FakeManagerCallbacks callbacks_;
  std::vector<FilterFactory> factories_;
  std::unique_ptr<http::FilterManager> manager_;
};

TEST_F(RouterTest, RequestsGoToTheFirstMatchingHttpRouteElseTheRoutesBackend) {
  start();
  manager_->decodeHeaders(request("/api/users"), true);
  ASSERT_EQ(pool().streams.size(), 1u);
  EXPECT_EQ(pool().addresses[0], "127.0.0.1:9001");
  EXPECT_EQ(pool().keys[0], "h2|127.0.0.1:9001");
  EXPECT_EQ(info_.http_route, &route_->l7->http_routes[0]);
  const HeaderMap& sent = pool().last().headers;
  EXPECT_EQ(*sent.get(":scheme"), "http");  // cleartext to the backend
  EXPECT_EQ(sent.get("expect"), nullptr);   // the proxy answers 100-continue itself
  EXPECT_EQ(pool().proxy_headers[0], "");

  manager_ = nullptr;  // a new stream
  factories_.clear();
  start();
  manager_->decodeHeaders(request("/other"), true);
  EXPECT_EQ(pool().addresses[1], "127.0.0.1:9000");
  EXPECT_EQ(route_->stats.http->requests.value(), 2u);
}

TEST_F(RouterTest, TheResponseAndItsFlowControlAreRelayed) {
  start();
  manager_->decodeHeaders(request("/"), false);
  buffer::Buffer body;
  body.append("upload");
  manager_->decodeData(body, true);
  test::FakeUpstreamStream& upstream = pool().last();
  EXPECT_EQ(upstream.body, "upload");
  EXPECT_TRUE(upstream.request_complete);
  upstream.callbacks->onBodySent(6);
  EXPECT_EQ(callbacks_.released, 6u);  // the client may send as much again

  upstream.callbacks->onHeaders({{":status", "200"}}, false);
  upstream.callbacks->onData("hello", false);
  upstream.callbacks->onTrailers({{"grpc-status", "0"}});
  EXPECT_EQ(callbacks_.response_headers.status(), 200);
  EXPECT_EQ(callbacks_.response_body, "hello");
  EXPECT_EQ(*callbacks_.response_trailers.get("grpc-status"), "0");
  manager_->onResponseBodySent(5);
  EXPECT_EQ(upstream.consumed, 5u);  // the backend may send as much again
  upstream.end(http::StreamEndReason::kComplete, "");
  EXPECT_EQ(callbacks_.resets, 0);
}

TEST_F(RouterTest, AResponseTimeoutAnswers504AndMakesTheConnectionCheckItself) {
  start();
  manager_->decodeHeaders(request("/api/slow"), true);  // this entry's timeout: 20 ms
  test::FakeUpstreamStream& upstream = pool().last();
  runUntil([&] { return callbacks_.response_complete; });
  EXPECT_EQ(callbacks_.response_headers.status(), 504);
  EXPECT_EQ(callbacks_.response_body, "upstream response timeout\n");
  EXPECT_EQ(upstream.response_timeouts, 1);
  EXPECT_TRUE(upstream.detached);
  EXPECT_EQ(route_->stats.http->responses_504.value(), 1u);
}

TEST_F(RouterTest, TheTimeoutRunsFromTheEndOfTheRequest) {
  route_->l7->http_routes.clear();
  route_->l7->timeout = std::chrono::milliseconds(20);
  start();
  manager_->decodeHeaders(request("/"), false);
  callbacks_.runFor(std::chrono::milliseconds(60));  // a slow upload is not late
  EXPECT_FALSE(callbacks_.response_complete);
  buffer::Buffer end;
  manager_->decodeData(end, true);
  runUntil([&] { return callbacks_.response_complete; });
  EXPECT_EQ(callbacks_.response_headers.status(), 504);
}

TEST_F(RouterTest, UpstreamFailuresAnswer502Or504UntilTheResponseStartedThenReset) {
  start();
  manager_->decodeHeaders(request("/"), true);
  pool().last().end(http::StreamEndReason::kConnectionFailure,
                    "connect to 127.0.0.1:9000: refused");
  EXPECT_EQ(callbacks_.response_headers.status(), 502);
  EXPECT_EQ(callbacks_.response_body, "connect to 127.0.0.1:9000: refused\n");
  EXPECT_EQ(info_.response_detail, "connect to 127.0.0.1:9000: refused");

  factories_.clear();
  callbacks_.response_headers.clear();
  start();
  manager_->decodeHeaders(request("/"), true);
  pool().last().end(http::StreamEndReason::kConnectTimeout, "connect timed out");
  EXPECT_EQ(callbacks_.response_headers.status(), 504);

  factories_.clear();
  start();
  manager_->decodeHeaders(request("/"), true);
  pool().last().callbacks->onHeaders({{":status", "200"}}, false);
  pool().last().end(http::StreamEndReason::kRemoteReset, "upstream reset the stream");
  EXPECT_EQ(callbacks_.resets, 1);  // part of a response went out: the stream breaks
  EXPECT_EQ(route_->stats.http->responses_502.value(), 2u);
  EXPECT_EQ(route_->stats.http->responses_504.value(), 1u);
}

TEST_F(RouterTest, ProxyProtocolRoutesUseTheClientsOwnPool) {
  route_->send_proxy_protocol = true;
  start();
  manager_->decodeHeaders(request("/"), true);
  test::FakeStreamPool& client_pool = callbacks_.fakeUpstreams().client_pool;
  ASSERT_EQ(client_pool.streams.size(), 1u);
  EXPECT_TRUE(pool().streams.empty());
  // A PROXY v2 header naming the real client.
  EXPECT_EQ(client_pool.proxy_headers[0].substr(0, 12), std::string("\r\n\r\n\0\r\nQUIT\n", 12));
}

TEST_F(RouterTest, TlsBackendsAreKeyedAndVerifiedByTheClientsServerName) {
  route_->l7->backend_tls_context = std::shared_ptr<ssl_ctx_st>(
      SSL_CTX_new(TLS_client_method()), [](ssl_ctx_st* ctx) { SSL_CTX_free(ctx); });
  start();
  manager_->decodeHeaders(request("/"), true);
  EXPECT_EQ(pool().keys[0], "h2|127.0.0.1:9000|tls:a.test");
  EXPECT_EQ(pool().tls_names[0], "a.test");
  EXPECT_EQ(*pool().last().headers.get(":scheme"), "https");
}

// The route's traffic goes to a cluster of three endpoints.
class RouterClusterTest : public RouterTest {
 protected:
  RouterClusterTest() {
    std::vector<upstream::ClusterEndpoint> endpoints;
    for (const char* text : {"127.0.0.1:9101", "127.0.0.1:9102", "127.0.0.1:9103"}) {
      endpoints.push_back(upstream::ClusterEndpoint{
          text, address(text), 1,
          upstream::poolKey(address(text), upstream::Protocol::kHttp2, false, ""),
          std::make_shared<upstream::EndpointState>(),
          upstream::makeEndpointStats(stats_, "api", text)});
    }
    cluster_ = std::make_unique<upstream::Cluster>(
        "api", upstream::Cluster::Settings{}, std::move(endpoints),
        std::make_shared<upstream::ClusterState>(), upstream::makeClusterStats(stats_, "api"));
    route_->l7->http_routes.clear();
    route_->cluster = cluster_.get();
  }
  // Fails the newest upstream stream as a refused connect and lets the retry timer run.
  void refuseLast() {
    pool().last().end(http::StreamEndReason::kConnectionFailure, "connect: refused");
    callbacks_.runOnce();
  }

  std::unique_ptr<upstream::Cluster> cluster_;
};

TEST_F(RouterClusterTest, ARefusedConnectIsTriedOnEachOtherEndpointThen503) {
  start();
  manager_->decodeHeaders(request("/"), true);
  refuseLast();
  refuseLast();
  ASSERT_EQ(pool().streams.size(), 3u);
  // Three different endpoints, each once.
  std::set<std::string> tried(pool().addresses.begin(), pool().addresses.end());
  EXPECT_EQ(tried.size(), 3u);
  EXPECT_EQ(pool().streams[1]->headers.method(), "GET");  // the same request again
  pool().last().end(http::StreamEndReason::kConnectionFailure, "connect: refused");
  EXPECT_EQ(callbacks_.response_headers.status(), 503);
  EXPECT_EQ(callbacks_.response_body,
            "cluster \"api\": no endpoint could be reached (3 tried): connect: refused\n");
  EXPECT_EQ(cluster_->stats().retries.value(), 2u);
  for (const auto& endpoint : cluster_->endpoints()) {
    EXPECT_EQ(endpoint.stats.failures.value(), 1u);
    EXPECT_EQ(endpoint.stats.active.value(), 0);
  }
  EXPECT_EQ(cluster_->state().active_retries.load(), 0);
}

TEST_F(RouterClusterTest, A503IsRetriedForGetNotForARequestWithABody) {
  start();
  manager_->decodeHeaders(request("/"), true);
  pool().last().callbacks->onHeaders({{":status", "503"}}, true);
  callbacks_.runOnce();
  ASSERT_EQ(pool().streams.size(), 2u);
  EXPECT_TRUE(pool().streams[0]->detached);  // its answer is dropped
  EXPECT_FALSE(callbacks_.response_complete);
  pool().last().callbacks->onHeaders({{":status", "200"}}, true);
  EXPECT_EQ(callbacks_.response_headers.status(), 200);

  factories_.clear();
  callbacks_.response_headers.clear();
  callbacks_.response_complete = false;
  start();
  manager_->decodeHeaders(request("/"), false);
  buffer::Buffer body;
  body.append("payload");
  manager_->decodeData(body, true);
  const size_t before = pool().streams.size();
  pool().last().callbacks->onHeaders({{":status", "503"}}, true);
  callbacks_.runOnce();
  EXPECT_EQ(pool().streams.size(), before);  // not sent again: its body is gone
  EXPECT_EQ(callbacks_.response_headers.status(), 503);
}

TEST_F(RouterClusterTest, AnEmptyRetryBudgetRefusesTheRetry) {
  cluster_->state().active_retries = 3;  // the floor of the budget, all in use
  start();
  manager_->decodeHeaders(request("/"), true);
  pool().last().end(http::StreamEndReason::kConnectionFailure, "connect: refused");
  EXPECT_EQ(pool().streams.size(), 1u);
  EXPECT_EQ(callbacks_.response_headers.status(), 503);
  EXPECT_EQ(callbacks_.response_body,
            "cluster \"api\": no endpoint could be reached (1 tried): connect: refused\n");
  EXPECT_EQ(cluster_->stats().retry_budget_exhausted.value(), 1u);
}

}  // namespace
}  // namespace mcproxy::extensions::http_router

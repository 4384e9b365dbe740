#include "source/snapshot/snapshot.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <fstream>

#include "source/common/config/config_error.h"
#include "source/common/config/shared_objects.h"
#include "source/common/http/filter.h"
#include "source/common/tls/digest.h"
#include "source/snapshot/config_loader.h"
#include "source/snapshot/store.h"

namespace mcproxy::snapshot {
namespace {

CompileResult compileText(const std::string& text, stats::Store& stats) {
  return compile(parseTextConfig(text, "test"), stats, 1);
}

// Compiling `text` fails with a message that starts with `expected_prefix`.
void expectError(const std::string& text, const std::string& expected_prefix) {
  stats::Store stats;
  try {
    compileText(text, stats);
    FAIL() << "compiled, expected error " << expected_prefix;
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(expected_prefix, 0), 0u) << e.what();
  }
}

TEST(SnapshotCompileTest, ContractExampleCompiles) {
  stats::Store stats;
  auto result = compileText(R"(
    listeners {
      address: "127.0.0.1:8443"
      proxy_protocol: false
      routes { hostname: "a.test"   backend: "127.0.0.1:9001" mode: L4 }
      routes { hostname: "*.b.test" backend: "127.0.0.1:9002" mode: L4 }
    }
    listeners { address: "[::1]:8443" routes { hostname: "a.test" backend: "[::1]:9001" } })",
                            stats);
  ASSERT_EQ(result.snapshot->listeners.size(), 2u);
  const CompiledListener& listener = *result.snapshot->listeners[0];
  EXPECT_EQ(listener.filter_factories.size(), 4u);  // the default chain
  EXPECT_EQ(listener.findRoute("a.test")->backend.toString(), "127.0.0.1:9001");
  EXPECT_EQ(listener.findRoute("X.B.test")->backend.toString(), "127.0.0.1:9002");
  EXPECT_EQ(listener.findRoute("c.test"), nullptr);
  EXPECT_EQ(listener.findRoute(""), nullptr);
  EXPECT_TRUE(result.warnings.empty());
  EXPECT_NE(result.snapshot->findListener("[::1]:8443"), nullptr);
}

TEST(SnapshotCompileTest, DefaultRouteCatchesEverythingElse) {
  stats::Store stats;
  auto result = compileText(R"(
    listeners {
      address: "127.0.0.1:0"
      routes { hostname: "a.test" backend: "127.0.0.1:9001" }
      default_route { backend: "127.0.0.1:9009" }
    })",
                            stats);
  const CompiledListener& listener = *result.snapshot->listeners[0];
  EXPECT_EQ(listener.findRoute("zzz.test")->backend.port(), 9009);
  EXPECT_EQ(listener.findRoute("")->backend.port(), 9009);
  EXPECT_EQ(listener.findRoute("a.test")->backend.port(), 9001);
}

TEST(SnapshotCompileTest, ErrorsNameTheFieldPath) {
  expectError("", "listeners: at least one listener");
  expectError(R"(listeners { })", "listeners[0].address: is required");
  expectError(R"(listeners { address: "127.0.0.1" })", "listeners[0].address: expected");
  expectError(R"(listeners { address: "127.0.0.1:1"
                  routes { hostname: "a.test" backend: "127.0.0.1:1" }
                  routes { hostname: "b.test" backend: "127.0.0.1:port" } })",
              "listeners[0].routes[1].backend: port must be a number");
  expectError(R"(listeners { address: "127.0.0.1:1" routes { hostname: "a.test" } })",
              "listeners[0].routes[0].backend: is required");
  expectError(R"(listeners { address: "127.0.0.1:1"
                  routes { hostname: "a.*.test" backend: "127.0.0.1:1" } })",
              "listeners[0].routes[0].hostname: a wildcard");
  expectError(R"(listeners { address: "127.0.0.1:1"
                  routes { hostname: "a.test" backend: "127.0.0.1:1" }
                  routes { hostname: "A.TEST" backend: "127.0.0.1:2" } })",
              "listeners[0].routes[1].hostname: \"A.TEST\" is already routed");
  expectError(R"(listeners { address: "127.0.0.1:1" }
                 listeners { address: "127.0.0.1:1" })",
              "listeners[1].name: \"127.0.0.1:1\" names two listeners");
  expectError(
      R"(listeners { address: "127.0.0.1:1" default_route { hostname: "x.test" backend: "127.0.0.1:1" } })",
      "listeners[0].default_route.hostname:");
  expectError(
      R"(listeners { address: "127.0.0.1:1" routes { hostname: "a.test" backend: "127.0.0.1:0" } })",
      "listeners[0].routes[0].backend: port 0");
  expectError(R"(listeners { address: "127.0.0.1:1" filters { name: "no.such.filter" } })",
              "listeners[0].filters[0].name: unknown filter \"no.such.filter\"");
  // Enums take numbers in text format; one that names nothing is not quietly L4 (fuzzing).
  expectError(R"(listeners { address: "127.0.0.1:1"
                  routes { hostname: "a.test" backend: "127.0.0.1:1" mode: 7 } })",
              "listeners[0].routes[0].mode: unknown mode 7");
  expectError(R"(listeners { address: "127.0.0.1:1"
                  default_route { backend: "127.0.0.1:1" backend_protocol: 5 } })",
              "listeners[0].default_route.backend_protocol: unknown backend protocol 5");
}

TEST(SnapshotCompileTest, L7RoutesNeedALoadableCertificate) {
  expectError(R"(listeners { address: "127.0.0.1:1"
                  routes { hostname: "a.test" backend: "127.0.0.1:1" mode: L7 tls_cert: "c.pem" } })",
              "listeners[0].routes[0].tls_key: an L7 route terminates TLS");
  expectError(R"(listeners { address: "127.0.0.1:1"
                  routes { hostname: "a.test" backend: "127.0.0.1:1" mode: L7
                           tls_cert: "/no/such/cert.pem" tls_key: "/no/such/key.pem" } })",
              "listeners[0].routes[0].tls_cert: cannot load certificate \"/no/such/cert.pem\"");
}

// An L7 route with this certificate, and `extra` fields.
std::string l7Route(const std::string& extra) {
  return R"(listeners { address: "127.0.0.1:1"
    routes { hostname: "w.test" mode: L7 backend: "127.0.0.1:9000"
             tls_cert: "test/fuzz/testdata/a.test.crt" tls_key: "test/fuzz/testdata/a.test.key" )" +
         extra + " } }";
}

constexpr const char* kCluster = R"(clusters { name: "api"
    endpoints { address: "127.0.0.1:9001" }
    endpoints { address: "127.0.0.1:9002" weight: 3 }
    endpoints { address: "localhost:9003" weight: 0 }
    lb_policy: LEAST_REQUEST
    health_check { http { path: "/healthz" } }
    outlier_detection { consecutive_failures: 5 }
    connect_timeout_ms: 250 })";

TEST(SnapshotCompileTest, ClustersCompileAndRoutesPointIntoThem) {
  stats::Store stats;
  auto result = compileText(std::string(kCluster) + R"(
    listeners { address: "127.0.0.1:1"
      routes { hostname: "a.test" cluster: "api" }
      routes { hostname: "w.test" mode: L7 cluster: "api"
               tls_cert: "test/fuzz/testdata/a.test.crt" tls_key: "test/fuzz/testdata/a.test.key"
               http_routes { path_prefix: "/v1/" backend: "127.0.0.1:9100" }
               http_routes { path_prefix: "/v2/" cluster: "api" } } })",
                            stats);
  ASSERT_EQ(result.snapshot->clusters.size(), 1u);
  const upstream::Cluster& cluster = *result.snapshot->clusters[0];
  EXPECT_EQ(cluster.settings().policy, upstream::LbPolicy::kLeastRequest);
  EXPECT_EQ(cluster.settings().connect_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(cluster.settings().health_check.kind, upstream::HealthCheckSpec::Kind::kHttp);
  EXPECT_EQ(cluster.settings().health_check.http_path, "/healthz");
  EXPECT_EQ(cluster.settings().max_connect_attempts, 3u);
  ASSERT_EQ(cluster.endpoints().size(), 3u);
  EXPECT_EQ(cluster.endpoints()[0].weight, 1u);
  EXPECT_EQ(cluster.endpoints()[1].weight, 3u);
  EXPECT_EQ(cluster.endpoints()[2].weight, 0u);
  EXPECT_EQ(cluster.endpoints()[2].address.toString(), "127.0.0.1:9003");
  const CompiledListener& listener = *result.snapshot->listeners[0];
  EXPECT_EQ(listener.findRoute("a.test")->cluster, &cluster);
  const router::Route& l7 = *listener.findRoute("w.test");
  EXPECT_EQ(l7.cluster, &cluster);
  EXPECT_EQ(l7.l7->http_routes[0].cluster, nullptr);
  EXPECT_EQ(l7.l7->http_routes[1].cluster, &cluster);
}

TEST(SnapshotCompileTest, AnEndpointKeepsItsStateAcrossCompiles) {
  stats::Store stats;
  config::SharedObjects shared;
  const auto config = parseTextConfig(std::string(kCluster) + R"(
    listeners { address: "127.0.0.1:1" routes { hostname: "a.test" cluster: "api" } })",
                                      "test");
  auto first = compile(config, stats, 1, shared);
  first.snapshot->clusters[0]->endpoints()[0].state->healthy = false;
  auto second = compile(config, stats, 2, shared);
  EXPECT_EQ(second.snapshot->clusters[0]->endpoints()[0].state,
            first.snapshot->clusters[0]->endpoints()[0].state);
  EXPECT_FALSE(second.snapshot->clusters[0]->endpoints()[0].state->healthy);
}

TEST(SnapshotCompileTest, ClusterErrorsNameTheFieldPath) {
  const std::string listener =
      R"(listeners { address: "127.0.0.1:1" routes { hostname: "a.test" cluster: "api" } })";
  expectError(listener, "listeners[0].routes[0].cluster: no cluster is named \"api\"");
  expectError(R"(clusters { name: "api" endpoints { address: "127.0.0.1:1" } }
    listeners { address: "127.0.0.1:1"
      routes { hostname: "a.test" cluster: "api" backend: "127.0.0.1:2" } })",
              "listeners[0].routes[0].cluster: set either backend or cluster");
  expectError(R"(clusters { name: "api" endpoints { address: "127.0.0.1:1" } }
    listeners { address: "127.0.0.1:1"
      routes { hostname: "a.test" cluster: "api" send_proxy_protocol: true } })",
              "listeners[0].routes[0].send_proxy_protocol: comes from cluster \"api\"");
  expectError(R"(listeners { address: "127.0.0.1:1" routes { hostname: "a.test" } })",
              "listeners[0].routes[0].backend: is required (or cluster)");
  expectError(R"(clusters { name: "api" } )" + listener,
              "clusters[0].endpoints: at least one is required");
  expectError(R"(clusters { name: "a b" endpoints { address: "127.0.0.1:1" } } )" + listener,
              "clusters[0].name:");
  expectError(R"(clusters { name: "api" endpoints { address: "127.0.0.1:1" } }
                 clusters { name: "api" endpoints { address: "127.0.0.1:1" } } )" +
                  listener,
              "clusters[1].name: \"api\" names two clusters");
  expectError(R"(clusters { name: "api" endpoints { address: "127.0.0.1:1" }
                            endpoints { address: "127.0.0.1:1" } } )" +
                  listener,
              "clusters[0].endpoints[1].address: \"127.0.0.1:1\" is listed twice");
  expectError(R"(clusters { name: "api" endpoints { address: "127.0.0.1:0" } } )" + listener,
              "clusters[0].endpoints[0].address: port 0");
  expectError(
      R"(clusters { name: "api" endpoints { address: "127.0.0.1:1" weight: 10001 } } )" + listener,
      "clusters[0].endpoints[0].weight: must be at most 10000");
  expectError(
      R"(clusters { name: "api" endpoints { address: "127.0.0.1:1" } lb_policy: 9 } )" + listener,
      "clusters[0].lb_policy: unknown policy 9");
  expectError(R"(clusters { name: "api" endpoints { address: "127.0.0.1:1" }
                            health_check { interval_ms: 100 } } )" +
                  listener,
              "clusters[0].health_check: needs one of tcp {}");
  expectError(R"(clusters { name: "api" endpoints { address: "127.0.0.1:1" }
                            health_check { http { path: "healthz" } } } )" +
                  listener,
              "clusters[0].health_check.http.path: must be an absolute path");
  expectError(R"(clusters { name: "api" endpoints { address: "127.0.0.1:1" }
                            backend_protocol: HTTP1 health_check { grpc {} } } )" +
                  listener,
              "clusters[0].health_check.grpc: gRPC needs HTTP/2");
  expectError(R"(clusters { name: "api" endpoints { address: "127.0.0.1:1" }
                            retry_budget_percent: 101 } )" +
                  listener,
              "clusters[0].retry_budget_percent: is a percentage");
  expectError(R"(clusters { name: "api" endpoints { address: "127.0.0.1:1" }
                            outlier_detection { max_ejection_percent: 200 } } )" +
                  listener,
              "clusters[0].outlier_detection.max_ejection_percent: is a percentage");
  expectError(l7Route(R"(http_routes { path_prefix: "/x" cluster: "nope" })"),
              "listeners[0].routes[0].http_routes[0].cluster: no cluster is named \"nope\"");
}

TEST(SnapshotCompileTest, RoutesOnOneCertificateShareOneContextAcrossCompiles) {
  // A copy of the pair under other names: the same bytes, so the same context too.
  const std::string dir = ::testing::TempDir();
  for (const char* suffix : {"crt", "key"}) {
    std::ifstream in(std::string("test/fuzz/testdata/a.test.") + suffix, std::ios::binary);
    std::ofstream out(dir + "/copy." + suffix, std::ios::binary);
    out << in.rdbuf();
  }
  const std::string pair = R"(tls_cert: "test/fuzz/testdata/a.test.crt"
                              tls_key: "test/fuzz/testdata/a.test.key")";
  const std::string copy = "tls_cert: \"" + dir + "/copy.crt\" tls_key: \"" + dir + "/copy.key\"";
  const std::string text = R"(listeners { address: "127.0.0.1:0"
      routes { hostname: "a.test" backend: "127.0.0.1:1" mode: L7 )" +
                           pair + R"( }
      routes { hostname: "b.test" backend: "127.0.0.1:1" mode: L7 )" +
                           pair + R"( }
      routes { hostname: "c.test" backend: "127.0.0.1:1" mode: L7 )" +
                           copy + R"( } })";
  stats::Store stats;
  config::SharedObjects shared;
  auto first = compile(parseTextConfig(text, "test"), stats, 1, shared);
  const auto& routes = first.snapshot->listeners[0]->routes;
  EXPECT_EQ(routes[0]->l7->tls_context, routes[1]->l7->tls_context);
  EXPECT_EQ(routes[0]->l7->tls_context, routes[2]->l7->tls_context);
  auto second = compile(parseTextConfig(text, "test"), stats, 2, shared);
  EXPECT_EQ(second.snapshot->listeners[0]->routes[0]->l7->tls_context, routes[0]->l7->tls_context);
  // Each route still gets its own hostname check (b.test and c.test are not in a.test's cert).
  size_t host_warnings = 0;
  for (const auto& warning : first.warnings) {
    if (warning.find("does not cover") != std::string::npos) ++host_warnings;
  }
  EXPECT_EQ(host_warnings, 2u);
  // New bytes in the file: a new context; the old one stays with the snapshots that use it.
  {
    std::ofstream out(dir + "/copy.crt", std::ios::binary | std::ios::trunc);
    std::ifstream in("test/fuzz/testdata/a.test.crt", std::ios::binary);
    out << in.rdbuf() << "\n";
  }
  auto third = compile(parseTextConfig(text, "test"), stats, 3, shared);
  EXPECT_NE(third.snapshot->listeners[0]->routes[2]->l7->tls_context, routes[2]->l7->tls_context);
  EXPECT_EQ(third.snapshot->listeners[0]->routes[0]->l7->tls_context, routes[0]->l7->tls_context);
}

// Route edits compile by patching the snapshot they are made to (patchRoutes).
class PatchRoutesTest : public ::testing::Test {
 protected:
  const std::string kText = R"(
    listeners { name: "edge" address: "127.0.0.1:8443"
      routes { hostname: "a.test" backend: "127.0.0.1:9001" }
      routes { hostname: "*.w.test" backend: "127.0.0.1:9002" }
      default_route { backend: "127.0.0.1:9000" } }
    listeners { name: "other" address: "127.0.0.1:8444"
      routes { hostname: "o.test" backend: "127.0.0.1:9001" } }
    clusters { name: "pool" endpoints { address: "127.0.0.1:9005" } })";

  PatchRoutesTest() {
    base_ = compile(SnapshotStore::normalize(parseTextConfig(kText, "test")), stats_, 1, shared_)
                .snapshot;
  }
  // Made to base_'s bytes (canonical: compiled from the normalized config).
  CompileResult patch(RouteEdit edit) {
    auto prepared = prepareRouteEdit(base_->config_bytes, 1, std::move(edit));
    EXPECT_TRUE(prepared.ok()) << prepared.status();
    return patchRoutes(*base_, *prepared, stats_, shared_);
  }
  static RouteEdit add(size_t listener, const std::string& text) {
    RouteEdit edit{.kind = RouteEdit::Kind::kAdd, .listener_index = listener};
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &edit.route));
    SnapshotStore::normalizeRoute(edit.route);
    return edit;
  }
  static std::string backendFor(const Snapshot& snapshot, size_t listener, const char* name) {
    const router::Route* route = snapshot.listeners[listener]->findRoute(name);
    return route == nullptr ? "none" : route->backend_text;
  }

  stats::Store stats_;
  config::SharedObjects shared_;
  std::shared_ptr<Snapshot> base_;
};

TEST_F(PatchRoutesTest, AnAddSharesEverythingButTheEditedListenersTable) {
  auto patched = patch(add(0, R"(hostname: "N.test" backend: "127.0.0.1:9003")")).snapshot;
  const Snapshot& old = *base_;
  EXPECT_EQ(backendFor(*patched, 0, "n.test"), "127.0.0.1:9003");
  EXPECT_EQ(backendFor(*patched, 0, "a.test"), "127.0.0.1:9001");
  EXPECT_EQ(backendFor(*patched, 0, "x.w.test"), "127.0.0.1:9002");
  EXPECT_EQ(backendFor(*patched, 0, "elsewhere.test"), "127.0.0.1:9000");
  // What it did not change is the same objects; the snapshot it came from is unchanged.
  EXPECT_EQ(patched->listeners[1], old.listeners[1]);
  EXPECT_NE(patched->listeners[0], old.listeners[0]);
  EXPECT_EQ(patched->listeners[0]->routes[0], old.listeners[0]->routes[0]);
  EXPECT_EQ(patched->listeners[0]->default_route, old.listeners[0]->default_route);
  EXPECT_EQ(patched->clusters, old.clusters);
  EXPECT_EQ(backendFor(old, 0, "n.test"), "127.0.0.1:9000");
  // Config order (routes, then the default route), its own filter chain, the edited bytes.
  ASSERT_EQ(patched->listeners[0]->routes.size(), 4u);
  EXPECT_EQ(patched->listeners[0]->routes[2]->hostname, "n.test");
  EXPECT_EQ(patched->listeners[0]->routes[3].get(), patched->listeners[0]->default_route);
  EXPECT_EQ(patched->listeners[0]->filter_names, old.listeners[0]->filter_names);
  EXPECT_EQ(patched->findListener("127.0.0.1:8443"), patched->listeners[0].get());
  EXPECT_EQ(patched->config().listeners(0).routes(2).hostname(), "n.test");
  EXPECT_EQ(patched->config_hash, tls::sha256Hex(patched->config_bytes));
  // The patched snapshot is what a whole compile of the edited config would route.
  auto whole = compile(patched->config(), stats_, 2, shared_).snapshot;
  for (const char* name : {"n.test", "a.test", "x.w.test", "zzz.test", "o.test"}) {
    for (size_t listener = 0; listener < 2; ++listener) {
      EXPECT_EQ(backendFor(*patched, listener, name), backendFor(*whole, listener, name)) << name;
    }
  }
}

TEST_F(PatchRoutesTest, ARemoveDropsTheRouteFromTheCopyOnly) {
  RouteEdit edit{.kind = RouteEdit::Kind::kRemove, .listener_index = 0, .hostname = "*.w.test"};
  auto patched = patch(edit).snapshot;
  EXPECT_EQ(backendFor(*patched, 0, "x.w.test"), "127.0.0.1:9000");  // the default route now
  EXPECT_EQ(backendFor(*base_, 0, "x.w.test"), "127.0.0.1:9002");
  EXPECT_EQ(patched->listeners[0]->routes.size(), 2u);
}

TEST_F(PatchRoutesTest, AnInvalidRouteIsRefusedNamingItsField) {
  // The path is the route's in the edited config: appended after the listener's two routes.
  for (const auto& [text, error] :
       {std::pair{R"(hostname: "n.test" backend: "127.0.0.1:99999")",
                  "listeners[0].routes[2].backend"},
        std::pair{R"(hostname: "n.test" cluster: "nope")", "listeners[0].routes[2].cluster"},
        std::pair{R"(hostname: "bad host" backend: "127.0.0.1:1")",
                  "listeners[0].routes[2].hostname"},
        std::pair{R"(hostname: "n.test" backend: "127.0.0.1:1" mode: L7)",
                  "listeners[0].routes[2].tls_cert"}}) {
    try {
      patch(add(0, text));
      ADD_FAILURE() << "patched: " << text;
    } catch (const config::ConfigError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(error, 0), 0u) << e.what();
    }
  }
  // The new route may use the config's clusters, and an L7 route its certificate.
  auto patched = patch(add(1, R"(hostname: "c.test" cluster: "pool")")).snapshot;
  EXPECT_EQ(patched->listeners[1]->findRoute("c.test")->cluster, base_->clusters[0].get());
  auto l7 = patch(add(1, R"(hostname: "a.test" backend: "127.0.0.1:1" mode: L7
                           tls_cert: "test/fuzz/testdata/a.test.crt"
                           tls_key: "test/fuzz/testdata/a.test.key")"));
  ASSERT_NE(l7.snapshot->listeners[1]->findRoute("a.test")->l7, nullptr);
  EXPECT_EQ(l7.snapshot->watched_files.size(), base_->watched_files.size() + 2);
}

TEST_F(PatchRoutesTest, AnExactRouteUnderAWildcardIsWarnedAboutAsAWholeCompileWould) {
  auto patched = patch(add(0, R"(hostname: "x.w.test" backend: "127.0.0.1:9002")"));
  ASSERT_EQ(patched.warnings.size(), 1u);
  EXPECT_NE(patched.warnings[0].find("listeners[0].routes[2]: \"x.w.test\" is already covered"),
            std::string::npos)
      << patched.warnings[0];
}

TEST(SnapshotCompileTest, HttpRoutesAndTheHttpFilterChainCompile) {
  stats::Store stats;
  auto result = compileText(l7Route(R"(
      timeout_ms: 2500
      http_routes { path_prefix: "/api/" backend: "127.0.0.1:9001" timeout_ms: 100 }
      http_routes { path_exact: "/health" headers { name: "X-Probe" value: "" }
                    backend: "127.0.0.1:9002" }
      http_filters { name: "mcproxy.filters.http.header_mutation"
        typed_config { [type.googleapis.com/mcproxy.extensions.filters.http.header_mutation.v1.HeaderMutation] {
          response { set { name: "x-served-by" value: "%ROUTE%" } } } } }
      http_filters { name: "mcproxy.filters.http.router" })"),
                            stats);
  const router::Route& route = *result.snapshot->listeners[0]->findRoute("w.test");
  EXPECT_EQ(route.l7->timeout, std::chrono::milliseconds(2500));
  ASSERT_EQ(route.l7->http_routes.size(), 2u);
  EXPECT_EQ(route.l7->http_routes[0].backend.port(), 9001);
  EXPECT_EQ(route.l7->http_routes[0].timeout, std::chrono::milliseconds(100));
  EXPECT_EQ(route.l7->http_routes[1].headers[0].name, "x-probe");  // lower-cased
  ASSERT_EQ(route.l7->http_filters.size(), 2u);
  EXPECT_EQ(route.l7->http_filters[0].name, "mcproxy.filters.http.header_mutation");
  EXPECT_EQ(route.l7->http_filters[0].phases,
            static_cast<uint32_t>(http::kRequestHeadersPhase | http::kResponseHeadersPhase));

  http::HeaderMap request{{":path", "/health?x"}, {"x-probe", "1"}};
  EXPECT_EQ(route.matchHttpRoute(request), &route.l7->http_routes[1]);
  request.remove("x-probe");
  EXPECT_EQ(route.matchHttpRoute(request), nullptr);
  request.set(":path", "/api/v1");
  EXPECT_EQ(route.matchHttpRoute(request), &route.l7->http_routes[0]);
}

TEST(SnapshotCompileTest, AnEmptyHttpChainIsForwardingHeadersThenTheRouter) {
  stats::Store stats;
  auto result = compileText(l7Route(""), stats);
  const router::Route& route = *result.snapshot->listeners[0]->findRoute("w.test");
  ASSERT_EQ(route.l7->http_filters.size(), 2u);
  EXPECT_EQ(route.l7->http_filters[0].name, "mcproxy.filters.http.forwarding_headers");
  EXPECT_EQ(route.l7->http_filters[1].name, "mcproxy.filters.http.router");
  // Only the test certificate's own findings (self-signed, issued for a.test).
  for (const std::string& warning : result.warnings) {
    EXPECT_TRUE(warning.starts_with("listeners[0].routes[0].tls_cert: ")) << warning;
  }
}

TEST(SnapshotCompileTest, HttpConfigErrorsNameTheFieldPath) {
  const std::string route = "listeners[0].routes[0]";
  expectError(l7Route(R"(http_filters { name: "mcproxy.filters.http.header_mutation" })"),
              route +
                  ".http_filters[0].name: the chain must end with a terminal filter "
                  "(mcproxy.filters.http.router), not \"mcproxy.filters.http.header_mutation\"");
  expectError(l7Route(R"(http_filters { name: "mcproxy.filters.http.router" }
                         http_filters { name: "mcproxy.filters.http.fault" })"),
              route +
                  ".http_filters[0].name: \"mcproxy.filters.http.router\" answers every "
                  "request, so it must be the last filter");
  expectError(l7Route(R"(http_filters { name: "no.such.filter" })"),
              route + ".http_filters[0].name: unknown HTTP filter \"no.such.filter\"");
  expectError(l7Route(R"(http_filters { name: "mcproxy.filters.http.router"
      typed_config { [type.googleapis.com/mcproxy.extensions.filters.http.fault.v1.Fault] { } } })"),
              route +
                  ".http_filters[0].typed_config: expected "
                  "mcproxy.extensions.filters.http.router.v1.Router");
  expectError(l7Route(R"(http_filters { name: "mcproxy.filters.http.fault"
      typed_config { [type.googleapis.com/mcproxy.extensions.filters.http.fault.v1.Fault] {
        abort { status: 1000 } } } }
      http_filters { name: "mcproxy.filters.http.router" })"),
              route + ".http_filters[0].typed_config.abort.status: must be between 200 and 599");
  expectError(l7Route(R"(http_routes { path_prefix: "api" backend: "127.0.0.1:1" })"),
              route + ".http_routes[0]: \"api\" must start with \"/\"");
  expectError(
      l7Route(R"(http_routes { path_prefix: "/a" path_exact: "/b" backend: "127.0.0.1:1" })"),
      route + ".http_routes[0]: path_prefix and path_exact exclude each other");
  expectError(l7Route(R"(http_routes { path_prefix: "/a" })"),
              route + ".http_routes[0].backend: is required");
  expectError(l7Route(R"(http_routes { headers { name: "bad name" } backend: "127.0.0.1:1" })"),
              route + ".http_routes[0].headers[0].name: \"bad name\" is not a header name");
}

TEST(SnapshotCompileTest, TlsToHttp1BackendsCompileAndHttpFieldsOnL4AreWarnedAbout) {
  stats::Store stats;
  auto result = compileText(l7Route("backend_tls: true backend_protocol: HTTP1"), stats);
  EXPECT_NE(result.snapshot->listeners[0]->findRoute("w.test")->l7->backend_tls_context, nullptr);
  auto l4 = compileText(R"(listeners { address: "127.0.0.1:1"
      routes { hostname: "a.test" backend: "127.0.0.1:1" timeout_ms: 5
               http_routes { backend: "127.0.0.1:2" }
               http_filters { name: "mcproxy.filters.http.router" } } })",
                        stats);
  ASSERT_EQ(l4.warnings.size(), 3u);
  EXPECT_EQ(l4.warnings[0],
            "listeners[0].routes[0].http_routes: ignored on an L4 route (HTTP is not seen)");
}

TEST(SnapshotCompileTest, ProxyProtocolAndFirewallShapeTheDefaultChain) {
  stats::Store stats;
  auto plain = compileText(R"(listeners { address: "127.0.0.1:1" })", stats);
  EXPECT_EQ(plain.snapshot->listeners[0]->filter_factories.size(), 4u);
  auto full = compileText(R"(
    firewall { blocked_ips: "192.0.2.1" }
    listeners { address: "127.0.0.1:1" proxy_protocol: true trusted_sources: "127.0.0.0/8" })",
                          stats);
  EXPECT_EQ(full.snapshot->listeners[0]->filter_factories.size(), 6u);
  EXPECT_EQ(
      defaultFilterChain(true, true),
      (std::vector<std::string>{
          "mcproxy.filters.network.proxy_protocol", "mcproxy.filters.network.firewall",
          "mcproxy.filters.network.tls_inspector", "mcproxy.filters.network.router",
          "mcproxy.filters.network.tcp_proxy", "mcproxy.filters.network.http_connection_manager"}));
  auto open = compileText(R"(listeners { address: "127.0.0.1:1" proxy_protocol: true })", stats);
  ASSERT_EQ(open.warnings.size(), 2u);  // no routes; and trusted_sources empty
  EXPECT_NE(open.warnings[1].find("trusted_sources: empty"), std::string::npos);
}

TEST(SnapshotCompileTest, ProxyProtocolAndFirewallErrorsNameTheField) {
  expectError(R"(listeners { address: "127.0.0.1:1" proxy_protocol: true
                  trusted_sources: "10.0.0.0/8" trusted_sources: "10.0.0.1/8" })",
              "listeners[0].trusted_sources[1]: \"10.0.0.1/8\" has bits set below");
  expectError(
      R"(firewall { blocked_cidrs: "2001:db8::/129" } listeners { address: "127.0.0.1:1" })",
      "firewall.blocked_cidrs[0]: \"2001:db8::/129\": prefix length");
  expectError(R"(listeners { address: "127.0.0.1:1" firewall { blocked_ips: "10.0.0.0/8" } })",
              "listeners[0].firewall.blocked_ips[0]: a network belongs in blocked_cidrs");
  // The store's schema wants ADDRESS/LENGTH; the compiler said yes to less (fuzzing).
  expectError(R"(firewall { blocked_cidrs: "2001:db8::132" } listeners { address: "127.0.0.1:1" })",
              "firewall.blocked_cidrs[0]: \"2001:db8::132\" has no /LENGTH");
  expectError(R"(listeners { address: "127.0.0.1:1" firewall { blocked_ips: "nope" } })",
              "listeners[0].firewall.blocked_ips[0]: \"nope\" is not an IP address");
  expectError(R"(firewall { blocked_countries: "nl" } listeners { address: "127.0.0.1:1" })",
              "firewall.blocked_countries[0]: \"nl\" is not an ISO 3166-1");
  expectError(R"(firewall { blocked_countries: "NL" } listeners { address: "127.0.0.1:1" })",
              "listeners[0].firewall.geoip_db: blocked_countries needs a geoip_db");
  expectError(R"(firewall { blocked_countries: "NL" geoip_db: "/no/such.mmdb" }
                 listeners { address: "127.0.0.1:1" })",
              "firewall.geoip_db: cannot open \"/no/such.mmdb\"");
  expectError(R"(firewall { rate_limit { connections: 5 } } listeners { address: "127.0.0.1:1" })",
              "firewall.rate_limit.per_seconds: must be between 1 and 86400");
  // A custom chain must carry what the listener's settings ask for.
  expectError(R"(listeners { address: "127.0.0.1:1" proxy_protocol: true
                  filters { name: "mcproxy.filters.network.tls_inspector" } })",
              "listeners[0].filters: proxy_protocol: true and a");
  expectError(R"(listeners { address: "127.0.0.1:1"
                  filters { name: "mcproxy.filters.network.proxy_protocol" } })",
              "listeners[0].proxy_protocol: proxy_protocol: true and a");
  expectError(R"(listeners { address: "127.0.0.1:1" proxy_protocol: true
                  filters { name: "mcproxy.filters.network.tls_inspector" }
                  filters { name: "mcproxy.filters.network.proxy_protocol" } })",
              "listeners[0].filters: mcproxy.filters.network.proxy_protocol must be first");
  expectError(R"(firewall { blocked_ips: "192.0.2.1" } listeners { address: "127.0.0.1:1"
                  filters { name: "mcproxy.filters.network.tls_inspector" } })",
              "listeners[0].filters: firewall rules apply to this listener");
}

TEST(SnapshotCompileTest, WarningsAreReported) {
  stats::Store stats;
  auto result = compileText(R"(
    listeners { address: "127.0.0.1:1"
      routes { hostname: "a.test" backend: "127.0.0.1:1" tls_cert: "c.pem" tls_key: "k.pem" } }
    listeners { address: "127.0.0.1:2" })",
                            stats);
  ASSERT_EQ(result.warnings.size(), 2u);
  EXPECT_EQ(result.warnings[0].rfind("listeners[0].routes[0]: tls_cert/tls_key are ignored", 0),
            0u);
  EXPECT_EQ(result.warnings[1].rfind("listeners[1]: no routes", 0), 0u);
}

TEST(SnapshotCompileTest, RedundantAndUnreachableRoutesAreWarnedAbout) {
  stats::Store stats;
  auto result = compileText(R"(
    listeners { address: "127.0.0.1:1"
      routes { hostname: "*.b.test" backend: "127.0.0.1:2" }
      routes { hostname: "x.b.test" backend: "127.0.0.1:2" }
      routes { hostname: "y.b.test" backend: "127.0.0.1:3" }
      routes { hostname: "*.deep.b.test" backend: "127.0.0.1:4" }
      routes { hostname: "z.deep.b.test" backend: "127.0.0.1:2" } }
    listeners { address: "127.0.0.1:2"
      routes { hostname: "a.test" backend: "127.0.0.1:2" }
      filters { name: "mcproxy.filters.network.tls_inspector" }
      filters { name: "mcproxy.filters.network.tcp_proxy" } })",
                            stats);
  ASSERT_EQ(result.warnings.size(), 2u);
  // y.b.test has its own backend, and z.deep.b.test differs from *.deep.b.test, the wildcard
  // that would match it; only x.b.test is redundant.
  EXPECT_EQ(result.warnings[0],
            "listeners[0].routes[1]: \"x.b.test\" is already covered by \"*.b.test\" with the "
            "same backend; the exact route is redundant");
  EXPECT_EQ(result.warnings[1].rfind("listeners[1].filters: the chain has no", 0), 0u);
}

TEST(SnapshotCompileTest, TypedFilterConfigIsValidated) {
  stats::Store stats;
  auto result = compileText(R"(
    listeners { address: "127.0.0.1:1"
      routes { hostname: "a.test" backend: "127.0.0.1:1" }
      filters { name: "mcproxy.filters.network.tls_inspector"
        typed_config { [type.googleapis.com/mcproxy.extensions.filters.network.tls_inspector.v1.TlsInspector] { handshake_timeout_ms: 250 } } }
      filters { name: "mcproxy.filters.network.router" }
      filters { name: "mcproxy.filters.network.tcp_proxy" } })",
                            stats);
  EXPECT_EQ(result.snapshot->listeners[0]->filter_factories.size(), 3u);

  expectError(R"(listeners { address: "127.0.0.1:1"
      filters { name: "mcproxy.filters.network.tcp_proxy"
        typed_config { [type.googleapis.com/mcproxy.extensions.filters.network.tcp_proxy.v1.TcpProxy] { buffer_bytes: 10 } } } })",
              "listeners[0].filters[0].buffer_bytes: must be between");
  expectError(R"(listeners { address: "127.0.0.1:1"
      filters { name: "mcproxy.filters.network.tcp_proxy"
        typed_config { [type.googleapis.com/mcproxy.extensions.filters.network.tls_inspector.v1.TlsInspector] { } } } })",
              "listeners[0].filters[0].typed_config: expected "
              "mcproxy.extensions.filters.network.tcp_proxy.v1.TcpProxy");
}

TEST(SnapshotCompileTest, StringsMustBeUtf8) {
  // Text format takes any bytes in a string; protobuf would then log an error on every
  // serialization of the config (found by fuzzing).
  for (const std::string bytes : {"\\377", "\\300\\200", "\\355\\240\\200"}) {
    try {
      parseTextConfig(R"(listeners { address: "127.0.0.1:1"
                         routes { hostname: "a.test" backend: "127.0.0.1:1" tls_cert: "x)" +
                          bytes + R"(" } })",
                      "f.textproto");
      FAIL() << "parsed " << bytes;
    } catch (const config::ConfigError& e) {
      EXPECT_STREQ(e.what(), "f.textproto: listeners[0].routes[0].tls_cert: is not valid UTF-8");
    }
  }
  EXPECT_NO_THROW(parseTextConfig(
      R"(listeners { name: "caf\303\251 \360\237\230\200" address: "127.0.0.1:1" })", "f"));
}

TEST(SnapshotCompileTest, SyntaxErrorsGiveLineAndColumn) {
  try {
    parseTextConfig("listeners {\n  adress: \"x\"\n}\n", "my.textproto");
    FAIL();
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("my.textproto:2:", 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find("adress"), std::string::npos);
  }
}

TEST(SnapshotCompileTest, EmbeddedDefaultCompiles) {
  stats::Store stats;
  auto result = compile(parseTextConfig(embeddedDefaultConfigText(), "embedded"), stats, 1);
  EXPECT_EQ(result.snapshot->listeners.size(), 1u);
  EXPECT_TRUE(result.warnings.empty());
}

TEST(SnapshotCompileTest, StatsSurviveRecompilation) {
  stats::Store stats;
  const std::string text =
      R"(listeners { name: "l" address: "127.0.0.1:1" routes { hostname: "a.test" backend: "127.0.0.1:1" } })";
  auto first = compileText(text, stats);
  first.snapshot->listeners[0]->stats.connections.inc();
  auto second = compileText(text, stats);
  EXPECT_EQ(second.snapshot->listeners[0]->stats.connections.value(), 1u);
}

}  // namespace
}  // namespace mcproxy::snapshot

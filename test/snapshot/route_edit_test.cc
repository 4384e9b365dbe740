#include "source/snapshot/route_edit.h"

#include <gtest/gtest.h>

#include <string>

#include "source/common/tls/digest.h"
#include "source/snapshot/config_loader.h"
#include "source/snapshot/store.h"

namespace mcproxy::snapshot {
namespace {

using mcproxy::config::v1::Bootstrap;
using mcproxy::config::v1::Route;

// Fields on both sides of a listener's routes (name, address, proxy_protocol before; the
// default route, filters, trusted sources, firewall, access log, TLS after), a listener
// without routes, and top-level fields after the listeners.
const char* kConfig = R"(
  drain_timeout_ms: 5000
  listeners { name: "edge" address: "127.0.0.1:8443" proxy_protocol: true
    routes { hostname: "A.Test" backend: "127.0.0.1:9001" }
    routes { hostname: "*.b.test" backend: "127.0.0.1:9002" mode: L4 }
    routes { hostname: "c.test" cluster: "pool" mode: L7 tls_cert: "c.crt" tls_key: "c.key"
             http_routes { path_prefix: "/api" backend: "127.0.0.1:9004" } }
    default_route { backend: "127.0.0.1:9000" }
    filters { name: "mcproxy.filters.network.proxy_protocol" }
    filters { name: "mcproxy.filters.network.tls_inspector" }
    trusted_sources: "10.0.0.0/8"
    firewall { blocked_ips: "192.0.2.1" }
    access_log { path: "/tmp/edge.log" }
    tls { min_version: TLSv1_3 }
  }
  listeners { address: "127.0.0.1:8444" default_route { backend: "127.0.0.1:9000" }
              firewall { blocked_cidrs: "198.51.100.0/24" } }
  listeners { address: "[::1]:8443" routes { hostname: "v6.test" backend: "[::1]:9001" } }
  firewall { blocked_countries: "XX" }
  clusters { name: "pool" endpoints { address: "127.0.0.1:9005" } }
)";

Bootstrap normalized() { return SnapshotStore::normalize(parseTextConfig(kConfig, "test")); }

Route route(const std::string& hostname) {
  Route out;
  out.set_hostname(hostname);
  out.set_backend("127.0.0.1:9100");
  SnapshotStore::normalizeRoute(out);
  return out;
}

// The edit made to the bytes is the edit made to the parsed config, serialized.
TEST(RouteEditTest, AddAppendsToEachListenerAsTheFullSerializationWould) {
  const std::string before = SnapshotStore::canonicalBytes(normalized());
  for (int listener = 0; listener < 3; ++listener) {
    RouteEdit edit{.kind = RouteEdit::Kind::kAdd,
                   .listener_index = static_cast<size_t>(listener),
                   .route = route("New.Test")};
    auto after = applyRouteEdit(before, edit);
    ASSERT_TRUE(after.ok()) << after.status();
    Bootstrap expected = normalized();
    *expected.mutable_listeners(listener)->add_routes() = edit.route;
    EXPECT_EQ(*after, SnapshotStore::canonicalBytes(expected)) << "listener " << listener;
  }
}

TEST(RouteEditTest, RemoveDropsTheNamedRouteWhereverItIs) {
  const std::string before = SnapshotStore::canonicalBytes(normalized());
  for (int position = 0; position < 3; ++position) {
    Bootstrap expected = normalized();
    const std::string hostname = expected.listeners(0).routes(position).hostname();
    RouteEdit edit{.kind = RouteEdit::Kind::kRemove, .listener_index = 0, .hostname = hostname};
    auto after = applyRouteEdit(before, edit);
    ASSERT_TRUE(after.ok()) << after.status();
    expected.mutable_listeners(0)->mutable_routes()->DeleteSubrange(position, 1);
    EXPECT_EQ(*after, SnapshotStore::canonicalBytes(expected)) << hostname;
  }
  // The last route of a listener: it is left with none.
  RouteEdit edit{.kind = RouteEdit::Kind::kRemove, .listener_index = 2, .hostname = "v6.test"};
  auto after = applyRouteEdit(before, edit);
  ASSERT_TRUE(after.ok());
  Bootstrap expected = normalized();
  expected.mutable_listeners(2)->clear_routes();
  EXPECT_EQ(*after, SnapshotStore::canonicalBytes(expected));
}

TEST(RouteEditTest, RefusesWhatIsNotThere) {
  const std::string before = SnapshotStore::canonicalBytes(normalized());
  RouteEdit add{.kind = RouteEdit::Kind::kAdd, .listener_index = 3, .route = route("x.test")};
  EXPECT_EQ(applyRouteEdit(before, add).status().code(), absl::StatusCode::kNotFound);
  // Not a route of this listener (it is one of another), and the default route has no name.
  for (const std::string hostname : {"v6.test", ""}) {
    RouteEdit remove{.kind = RouteEdit::Kind::kRemove, .listener_index = 0, .hostname = hostname};
    EXPECT_EQ(applyRouteEdit(before, remove).status().code(), absl::StatusCode::kNotFound);
  }
  // Bytes that are not a serialized config.
  add.listener_index = 0;
  EXPECT_EQ(applyRouteEdit(std::string("\x0a\x7f", 2), add).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(skeletonOf(std::string("\x0b", 1)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RouteEditTest, SkeletonIsTheConfigWithoutItsRoutes) {
  auto skeleton = skeletonOf(SnapshotStore::canonicalBytes(normalized()));
  ASSERT_TRUE(skeleton.ok()) << skeleton.status();
  Bootstrap expected = normalized();
  for (auto& listener : *expected.mutable_listeners()) listener.clear_routes();
  EXPECT_EQ(skeleton->config.SerializeAsString(), expected.SerializeAsString());
  EXPECT_EQ(skeleton->route_counts, (std::vector<int64_t>{3, 0, 1}));
}

TEST(RouteEditTest, PreparedEditCarriesTheEditedConfigsHashAndRouteCount) {
  const std::string before = SnapshotStore::canonicalBytes(normalized());
  auto prepared = prepareRouteEdit(
      before, 7,
      RouteEdit{.kind = RouteEdit::Kind::kAdd, .listener_index = 1, .route = route("n.test")});
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  Bootstrap expected = normalized();
  *expected.mutable_listeners(1)->add_routes() = route("n.test");
  EXPECT_EQ(prepared->content_hash, SnapshotStore::contentHash(expected));
  EXPECT_EQ(prepared->content_hash, tls::sha256Hex(prepared->canonical_after));
  // Routes and default routes after the add: edge 3 + 1, the second 0 + 1 + the new one, v6 1.
  EXPECT_EQ(prepared->route_count, 4 + 2 + 1);
  EXPECT_EQ(prepared->base_version, 7);
  EXPECT_EQ(prepared->skeleton.listeners(0).routes_size(), 0);
}

}  // namespace
}  // namespace mcproxy::snapshot

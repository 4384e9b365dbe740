#pragma once

#include <string>

#include "source/common/network/address.h"
#include "source/common/stats/stats.h"

namespace mcproxy::router {

enum class RouteMode { kL4, kL7 };

struct RouteStats {
  stats::Counter& connections;            // connections routed here
  stats::Counter& bytes_from_downstream;  // client -> backend
  stats::Counter& bytes_to_downstream;    // backend -> client
  stats::Counter& upstream_connect_failed;
};

// A compiled route: immutable, owned by a snapshot.
struct Route {
  std::string hostname;      // as configured ("a.test", "*.b.test"; "" for the default route)
  std::string backend_text;  // as configured
  network::Address backend;  // resolved when the snapshot was compiled
  RouteMode mode = RouteMode::kL4;
  std::string tls_cert;
  std::string tls_key;
  bool backend_tls = false;
  bool send_proxy_protocol = false;
  uint32_t proxy_protocol_version = 2;
  RouteStats stats;
};

}  // namespace mcproxy::router

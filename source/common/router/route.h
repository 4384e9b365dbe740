#pragma once

#include <memory>
#include <string>

#include "source/common/network/address.h"
#include "source/common/stats/stats.h"

struct ssl_ctx_st;

namespace mcproxy::router {

enum class RouteMode { kL4, kL7 };

struct RouteStats {
  stats::Counter& connections;            // connections routed here
  stats::Counter& requests;               // L7: HTTP requests routed here
  stats::Counter& responses_502;          // L7: backend refused, reset or broke the protocol
  stats::Counter& responses_504;          // L7: backend connect or response timed out
  stats::Counter& bytes_from_downstream;  // client -> backend
  stats::Counter& bytes_to_downstream;    // backend -> client
  stats::Counter& upstream_connect_failed;
  stats::Histogram& request_latency;  // L7: seconds from request headers to response end
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
  // L7: the server TLS context with this route's certificate, chosen by SNI.
  std::shared_ptr<ssl_ctx_st> tls_context;
  // L7 with backend_tls: the client context that verifies the backend.
  std::shared_ptr<ssl_ctx_st> backend_tls_context;
  // L7: HTTP/1.1 to the backend instead of HTTP/2.
  bool backend_http1 = false;
  // backend.toString(), made once here: upstream pools are keyed by it on every request.
  std::string backend_key;
};

}  // namespace mcproxy::router

#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "source/common/http/filter.h"
#include "source/common/http/headers.h"
#include "source/common/network/address.h"
#include "source/common/stats/stats.h"
#include "source/common/upstream/cluster.h"

struct ssl_ctx_st;

namespace mcproxy::router {

enum class RouteMode { kL4, kL7 };

// An L7 route's request stats (an L4 route has none).
struct HttpRouteStats {
  stats::Counter& requests;           // HTTP requests routed here
  stats::Counter& responses_502;      // backend refused, reset or broke the protocol
  stats::Counter& responses_504;      // backend connect or response timed out
  stats::Histogram& request_latency;  // seconds from request headers to response end
  // Responses sent, by status class (index 0: 1xx ... 4: 5xx).
  std::array<stats::Counter*, 5> responses_by_class;
  stats::Gauge& streams_active;                // requests in flight
  stats::Histogram& upstream_connect_latency;  // seconds to set up a backend connection
  stats::Counter& misdirected_requests;        // 421, the authority belongs elsewhere

  void countResponse(int status) const {
    if (status >= 100 && status < 600) responses_by_class[status / 100 - 1]->inc();
  }
};

struct RouteStats {
  stats::Counter& connections;            // connections routed here
  stats::Counter& bytes_from_downstream;  // client -> backend
  stats::Counter& bytes_to_downstream;    // backend -> client
  stats::Counter& upstream_connect_failed;
  // L7 routes only (null on L4: 100,000 of them carry no request stats).
  std::unique_ptr<const HttpRouteStats> http;
};

// A route's stats in `store`, named "route.<listener>.<hostname or default>.*" and exported with
// the labels listener and route ("(default)" for a default route). An L4 route (`l7` false) has
// only the connection and byte counters.
RouteStats makeRouteStats(stats::Store& store, const std::string& listener,
                          const std::string& hostname, bool is_default, bool l7 = true);

// Which request paths something applies to: a prefix of :path (query included), or exactly
// :path without its query, or (neither) every path.
struct PathMatcher {
  std::string prefix;
  std::string exact;

  bool matches(std::string_view path) const;
  // Why a configured pair cannot be used ("" if it can).
  static std::string validate(const std::string& prefix, const std::string& exact);
};

// One entry of an L7 route's http_routes: the requests it matches go to its backend.
struct HttpRoute {
  struct HeaderMatch {
    std::string name;   // lower case
    std::string value;  // exact; empty: the header is present, with any value
  };
  PathMatcher path;
  std::vector<HeaderMatch> headers;  // all must match
  std::string backend_text;
  network::Address backend;
  std::string pool_key;                        // upstream::poolKey() of the backend, without TLS
  const upstream::Cluster* cluster = nullptr;  // instead of backend; owned by the snapshot
  std::chrono::milliseconds timeout{0};        // response timeout; 0: the route's

  bool matches(const http::HeaderMap& request) const;
  // "/api/ -> 127.0.0.1:9001", for logs and diffs.
  std::string describe() const;
};

// What only an L7 route has: its certificate and everything about HTTP requests. Allocated for
// L7 routes alone, so that 100,000 L4 routes do not carry it.
struct L7Route {
  // The server TLS context with this route's certificate, chosen by SNI.
  std::shared_ptr<ssl_ctx_st> tls_context;
  // With backend_tls: the client context that verifies the backend.
  std::shared_ptr<ssl_ctx_st> backend_tls_context;
  // HTTP/1.1 to the backend instead of HTTP/2.
  bool backend_http1 = false;
  // WebSocket upgrades (HTTP/1.1 Upgrade, HTTP/2 extended CONNECT) may go through.
  bool allow_upgrades = true;
  // http_routes, http_filters or timeout_ms are set (two such routes are not comparable).
  bool http_customized = false;
  // The response timeout for requests no http_routes entry matches (0: the connection manager's
  // response_timeout_ms).
  std::chrono::milliseconds timeout{0};
  // Requests matching an entry go to its backend (first match wins), others to the route's.
  std::vector<HttpRoute> http_routes;
  // The HTTP filter chain every request runs through, ending with the router.
  std::vector<http::FilterFactory> http_filters;
  // upstream::poolKey() of the route's `backend`, without TLS.
  std::string http_pool_key;
};

// A compiled route: immutable, owned by a snapshot.
struct Route {
  std::string hostname;      // as configured ("a.test", "*.b.test"; "" for the default route)
  std::string backend_text;  // as configured
  network::Address backend;  // resolved when the snapshot was compiled
  RouteMode mode = RouteMode::kL4;
  bool backend_tls = false;
  bool send_proxy_protocol = false;
  uint32_t proxy_protocol_version = 2;
  RouteStats stats;
  // The cluster traffic goes to instead of `backend` (invalid then); owned by the snapshot.
  const upstream::Cluster* cluster = nullptr;
  // L7 routes only (mode kL7); null on L4.
  std::unique_ptr<L7Route> l7;

  // The first http_routes entry `request` matches, or null.
  const HttpRoute* matchHttpRoute(const http::HeaderMap& request) const;
};

// The routes of one listener by server name: its compiled route table.
class RouteTable {
 public:
  virtual ~RouteTable() = default;
  // Exact hostname, then the longest wildcard, then the default route; nullptr if none.
  virtual const Route* findRoute(std::string_view server_name) const = 0;
};

// The host of a request's authority ("a.test:8443" -> "a.test", "[::1]:8443" -> "[::1]").
std::string_view authorityHost(std::string_view authority);

// RFC 9110 §15.5.20 and RFC 9113 §9.1.1: a request on a connection routed by its SNI whose
// authority another route serves (or none does) must not be answered by this connection's route,
// which may have another backend and another TLS policy: the client gets 421 and opens a
// connection for that name. A request without an authority (HTTP/1.0) is not misdirected, nor
// one for the connection's own server name (no lookup then: the common case).
bool misdirected(const RouteTable& table, const Route& connection_route,
                 std::string_view server_name, std::string_view authority);

}  // namespace mcproxy::router

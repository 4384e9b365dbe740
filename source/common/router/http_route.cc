#include <absl/strings/match.h>

#include <string_view>

#include "source/common/router/route.h"

namespace mcproxy::router {

bool PathMatcher::matches(std::string_view path) const {
  if (!exact.empty()) return path.substr(0, path.find('?')) == exact;
  return path.starts_with(prefix);
}

std::string PathMatcher::validate(const std::string& prefix, const std::string& exact) {
  if (!prefix.empty() && !exact.empty()) return "path_prefix and path_exact exclude each other";
  for (const std::string* path : {&prefix, &exact}) {
    if (path->empty()) continue;
    if ((*path)[0] != '/') return "\"" + *path + "\" must start with \"/\"";
    if (!http::validPath(*path)) return "\"" + *path + "\" is not a valid path";
  }
  return "";
}

bool HttpRoute::matches(const http::HeaderMap& request) const {
  if (!path.matches(request.path())) return false;
  for (const HeaderMatch& match : headers) {
    bool found = false;
    for (const http::Header& header : request) {
      if (header.name == match.name && (match.value.empty() || header.value == match.value)) {
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

std::string HttpRoute::describe() const {
  std::string out = !path.exact.empty()    ? "path " + path.exact
                    : !path.prefix.empty() ? "prefix " + path.prefix
                                           : std::string("any path");
  for (const HeaderMatch& match : headers) {
    out += " header " + match.name + (match.value.empty() ? "" : "=" + match.value);
  }
  return out + " -> " + backend_text;
}

std::string_view authorityHost(std::string_view authority) {
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    return close == std::string_view::npos ? authority : authority.substr(0, close + 1);
  }
  return authority.substr(0, authority.rfind(':'));
}

bool misdirected(const RouteTable& table, const Route& connection_route,
                 std::string_view server_name, std::string_view authority) {
  if (authority.empty()) return false;
  const std::string_view host = authorityHost(authority);
  if (absl::EqualsIgnoreCase(absl::string_view(host.data(), host.size()),
                             absl::string_view(server_name.data(), server_name.size()))) {
    return false;
  }
  return table.findRoute(host) != &connection_route;
}

const HttpRoute* Route::matchHttpRoute(const http::HeaderMap& request) const {
  if (l7 == nullptr) return nullptr;
  for (const HttpRoute& route : l7->http_routes) {
    if (route.matches(request)) return &route;
  }
  return nullptr;
}

namespace {

using stats::StatSpec;
using Kind = StatSpec::Kind;

// A route's stats, in RouteStats' order; one StatBlock per route.
constexpr StatSpec kRouteStats[] = {
    {Kind::kCounter, "upstream_cx_total", "mcproxy_route_connections_total",
     "Connections routed here."},
    {Kind::kCounter, "rq_total", "mcproxy_route_requests_total", "L7 requests routed here."},
    {Kind::kCounter, "rq_502", "mcproxy_route_responses_502_total",
     "L7 502s: the backend refused, reset or broke the protocol."},
    {Kind::kCounter, "rq_504", "mcproxy_route_responses_504_total",
     "L7 504s: the backend did not connect or answer in time."},
    {Kind::kCounter, "bytes_from_downstream", "mcproxy_route_rx_bytes_total",
     "L4 bytes from clients to the backend."},
    {Kind::kCounter, "bytes_to_downstream", "mcproxy_route_tx_bytes_total",
     "L4 bytes from the backend to clients."},
    {Kind::kCounter, "upstream_cx_connect_fail", "mcproxy_route_connect_failures_total",
     "Backend connections that failed to open."},
    {Kind::kLatencyHistogram, "rq_latency", "mcproxy_route_request_duration_seconds",
     "L7 request headers to response end, in seconds."},
    {Kind::kCounter, "rq_1xx", "mcproxy_route_responses_total",
     "L7 responses sent to clients, by status class.", "class", "1xx"},
    {Kind::kCounter, "rq_2xx", "mcproxy_route_responses_total",
     "L7 responses sent to clients, by status class.", "class", "2xx"},
    {Kind::kCounter, "rq_3xx", "mcproxy_route_responses_total",
     "L7 responses sent to clients, by status class.", "class", "3xx"},
    {Kind::kCounter, "rq_4xx", "mcproxy_route_responses_total",
     "L7 responses sent to clients, by status class.", "class", "4xx"},
    {Kind::kCounter, "rq_5xx", "mcproxy_route_responses_total",
     "L7 responses sent to clients, by status class.", "class", "5xx"},
    {Kind::kGauge, "rq_active", "mcproxy_route_active_requests", "L7 requests in flight."},
    {Kind::kLatencyHistogram, "upstream_cx_connect",
     "mcproxy_route_upstream_connect_duration_seconds",
     "L7 backend connection setup (TCP, PROXY, TLS), in seconds."},
    {Kind::kCounter, "rq_misdirected", "mcproxy_route_misdirected_requests_total",
     "L7 requests answered 421: their authority belongs to another route or none."},
};

}  // namespace

// What an L4 route counts: kRouteStats' connection and byte counters (indices 0, 4, 5, 6).
constexpr StatSpec kL4RouteStats[] = {kRouteStats[0], kRouteStats[4], kRouteStats[5],
                                      kRouteStats[6]};

RouteStats makeRouteStats(stats::Store& store, const std::string& listener,
                          const std::string& hostname, bool is_default, bool l7) {
  const std::string prefix =
      "route." + listener + "." + (is_default ? std::string("default") : hostname) + ".";
  stats::MetricId::Labels labels{{"listener", listener},
                                 {"route", is_default ? "(default)" : hostname}};
  if (!l7) {
    stats::StatBlock& block = store.block(prefix, std::move(labels), kL4RouteStats);
    return RouteStats{block.counter(0), block.counter(1), block.counter(2), block.counter(3),
                      nullptr};
  }
  stats::StatBlock& block = store.block(prefix, std::move(labels), kRouteStats);
  return RouteStats{block.counter(0), block.counter(4), block.counter(5), block.counter(6),
                    std::make_unique<const HttpRouteStats>(
                        HttpRouteStats{block.counter(1),
                                       block.counter(2),
                                       block.counter(3),
                                       block.histogram(7),
                                       {&block.counter(8), &block.counter(9), &block.counter(10),
                                        &block.counter(11), &block.counter(12)},
                                       block.gauge(13),
                                       block.histogram(14),
                                       block.counter(15)})};
}

}  // namespace mcproxy::router

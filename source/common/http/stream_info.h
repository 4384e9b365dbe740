#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "source/common/network/stream_info.h"
#include "source/common/stream_info/filter_state.h"

namespace mcproxy::router {
struct HttpRoute;
}

namespace mcproxy::http {

// What is known about one request, shared by the filters of its chain and the log phase. The
// connection's StreamInfo (real client after PROXY, SNI, the route, that is the virtual host)
// is reached through `connection`.
struct StreamInfo {
  explicit StreamInfo(const network::StreamInfo& connection) : connection(connection) {}

  const network::StreamInfo& connection;
  std::string_view protocol;                         // "HTTP/2", "HTTP/1.1"
  std::chrono::steady_clock::time_point start_time;  // the request began
  std::optional<std::chrono::steady_clock::time_point> request_complete_time;
  std::optional<std::chrono::steady_clock::time_point> upstream_response_time;  // headers came
  std::optional<std::chrono::steady_clock::time_point> end_time;
  int response_status = 0;           // 0 while none was sent
  uint64_t request_body_bytes = 0;   // from the client
  uint64_t response_body_bytes = 0;  // to the client
  // Set by the router: the http_routes entry that matched (null: the route's own backend),
  // and where the request went.
  const router::HttpRoute* http_route = nullptr;
  const network::Address* upstream_address = nullptr;
  // How long the request waited for a backend connection (zero: a pooled one was ready); unset
  // when it never got one.
  std::optional<std::chrono::milliseconds> upstream_connect;
  // x-request-id as forwarded to the backend (forwarding_headers sets it).
  std::string request_id;
  // Why the proxy answered or reset instead of a backend ("upstream response timeout").
  std::string response_detail;
  bool local_reply = false;
  stream_info::FilterState filter_state;
};

}  // namespace mcproxy::http

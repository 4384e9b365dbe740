#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "source/common/network/address.h"

struct ssl_ctx_st;

namespace mcproxy::stats {
class Counter;
class Histogram;
}  // namespace mcproxy::stats

namespace mcproxy::upstream {

enum class Protocol { kHttp2, kHttp1 };

// One backend as an HTTP request reaches it: a view of what the route holds (nothing is copied
// per request; a new connection copies what it keeps).
struct Endpoint {
  const network::Address& address;
  // Connections are shared by requests with the same key: the address, the protocol and, with
  // TLS, the name verified (see poolKey()).
  std::string_view key;
  Protocol protocol;
  // With TLS: the client context (verification, ALPN); null for cleartext.
  const std::shared_ptr<ssl_ctx_st>& tls;
  // The name sent as SNI and verified, with TLS.
  std::string_view tls_server_name;
  // Where a new connection's setup time (TCP, PROXY, TLS) is observed; null: nowhere.
  stats::Histogram* connect_latency = nullptr;
  // Counts the connections opened to it (a cluster endpoint's); null: nowhere.
  stats::Counter* connections_opened = nullptr;
};

// "h2|10.0.0.5:8443", "http1|10.0.0.5:80|tls:api.test": what makes two requests able to share a
// connection.
std::string poolKey(const network::Address& address, Protocol protocol, bool tls,
                    std::string_view tls_server_name);

// How upstream connections behave, from the connection manager's config. Copied into each
// connection: pooled connections outlive the snapshot that made them.
struct PoolSettings {
  std::chrono::milliseconds connect_timeout{5000};
  // A pooled connection without streams for this long is closed.
  std::chrono::milliseconds idle_timeout{60000};
  // After a response timeout, an HTTP/2 connection must answer a PING within this time or it
  // is replaced.
  std::chrono::milliseconds ping_timeout{5000};
  uint32_t stream_window_bytes = 262144;
  uint32_t max_header_bytes = 65536;
};

}  // namespace mcproxy::upstream

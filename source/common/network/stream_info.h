#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "source/common/network/address.h"
#include "source/common/network/close_reason.h"
#include "source/common/network/peer_certificate.h"
#include "source/common/stream_info/filter_state.h"

namespace mcproxy::router {
struct Route;
class RouteTable;
}  // namespace mcproxy::router

namespace mcproxy::network {

// What the filters of one connection know about it, shared by all of them.
struct StreamInfo {
  uint64_t connection_id = 0;
  std::string listener_name;
  Address downstream_remote;  // the TCP peer
  Address downstream_local;   // our address the peer connected to
  // The client's address: the TCP peer, or what an earlier tier reported through PROXY.
  Address real_client;
  // What a PROXY header from an earlier tier said (proxy_protocol_version 0: none came).
  int proxy_protocol_version = 0;
  Address proxy_destination;          // the address the client connected to at the earlier tier
  std::string proxy_authority;        // PP2_TYPE_AUTHORITY
  std::string proxy_alpn;             // PP2_TYPE_ALPN
  std::string proxy_unique_id;        // PP2_TYPE_UNIQUE_ID
  std::string requested_server_name;  // SNI, lower-cased; empty when none was sent
  std::vector<std::string> alpn;      // ALPN protocols the client offered
  // L7, once the TLS handshake with the client is done (OpenSSL's static names).
  std::string_view negotiated_alpn;
  std::string_view tls_version;
  std::string_view tls_cipher;
  // Why the TLS handshake with the client failed ("no_shared_cipher", "timeout", ...).
  std::string_view tls_failure;
  // L7 with mutual TLS: the client's verified certificate; null when it presented none.
  std::shared_ptr<const PeerCertificate> peer_certificate;
  uint64_t requests = 0;  // L7: requests the client sent on this connection
  // Chosen by the router from its listener's table; both owned by the snapshot this connection
  // runs on.
  const router::Route* route = nullptr;
  const router::RouteTable* route_table = nullptr;
  uint64_t bytes_from_downstream = 0;
  uint64_t bytes_to_downstream = 0;
  std::chrono::steady_clock::time_point start_time;
  std::optional<std::chrono::steady_clock::time_point> end_time;  // set when it closed
  CloseReason close_reason = CloseReason::kFinished;
  // With kModule: "module:<module>:<reason>", what the access log says.
  std::string close_detail;
  // What a filter shares with the filters after it (and, later, the access log).
  stream_info::FilterState filter_state;
};

}  // namespace mcproxy::network

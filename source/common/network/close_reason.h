#pragma once

#include <cstddef>

namespace mcproxy::network {

// Why a downstream connection ended. Each reason is counted per listener
// (listener.<name>.close.<reason>), so every way a connection can end has exactly one entry.
enum class CloseReason : size_t {
  kFinished = 0,            // both directions ended cleanly
  kDownstreamReset,         // client reset or a read/write error on the client socket
  kDownstreamClosedEarly,   // client closed before its ClientHello was complete
  kNotTls,                  // first bytes are not TLS
  kBadClientHello,          // TLS framing, but a ClientHello that breaks the spec
  kClientHelloTooLarge,     // ClientHello above tls_inspector's max_client_hello_bytes
  kHandshakeTimeout,        // no complete ClientHello within handshake_timeout_ms
  kNoRoute,                 // SNI matches no route and the listener has no default
  kNoTerminalFilter,        // the chain ran to its end and no filter took the connection
  kUpstreamConnectFailed,   // backend refused or was unreachable
  kUpstreamConnectTimeout,  // backend did not accept within connect_timeout_ms
  kUpstreamReset,           // backend reset or a read/write error on the backend socket
  kNoEndpoint,              // every endpoint of the route's cluster is drained (weight 0)
  kIdleTimeout,             // no bytes either way for idle_timeout_ms
  kDrainTimeout,            // still open when the drain deadline passed at shutdown
  kInternalError,           // a system call failed on our side (socket(), pipe(), ...)
  kProxyUntrustedSource,    // a PROXY listener's peer is not in trusted_sources
  kProxyBadHeader,          // the PROXY header breaks the spec
  kProxyHeaderTimeout,      // no complete PROXY header within header_timeout_ms
  kFirewallBlockedIp,       // client address in blocked_ips
  kFirewallBlockedCidr,     // client address in blocked_cidrs
  kFirewallBlockedCountry,  // client address located in blocked_countries
  kFirewallRateLimited,     // client opened connections faster than rate_limit allows
  kTlsHandshakeFailed,      // L7: the TLS handshake with the client failed or timed out
  kHttpProtocolError,       // L7: the client broke HTTP/2 or HTTP/1.1 framing
  kRequestHeaderTimeout,    // L7 HTTP/1.1: a request's headers did not arrive in time
  kModule,                  // a plugin module closed it, for a reason of its own (close_detail)
  kCount,
};

constexpr size_t kCloseReasonCount = static_cast<size_t>(CloseReason::kCount);

// snake_case name used in stats and logs, e.g. "handshake_timeout".
const char* closeReasonName(CloseReason reason);

}  // namespace mcproxy::network

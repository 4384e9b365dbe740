#include "source/common/network/close_reason.h"

namespace mcproxy::network {

const char* closeReasonName(CloseReason reason) {
  switch (reason) {
    case CloseReason::kFinished:
      return "finished";
    case CloseReason::kDownstreamReset:
      return "downstream_reset";
    case CloseReason::kDownstreamClosedEarly:
      return "downstream_closed_early";
    case CloseReason::kNotTls:
      return "not_tls";
    case CloseReason::kBadClientHello:
      return "bad_client_hello";
    case CloseReason::kClientHelloTooLarge:
      return "client_hello_too_large";
    case CloseReason::kHandshakeTimeout:
      return "handshake_timeout";
    case CloseReason::kNoRoute:
      return "no_route";
    case CloseReason::kNoTerminalFilter:
      return "no_terminal_filter";
    case CloseReason::kUpstreamConnectFailed:
      return "upstream_connect_failed";
    case CloseReason::kUpstreamConnectTimeout:
      return "upstream_connect_timeout";
    case CloseReason::kUpstreamReset:
      return "upstream_reset";
    case CloseReason::kNoEndpoint:
      return "no_endpoint";
    case CloseReason::kIdleTimeout:
      return "idle_timeout";
    case CloseReason::kDrainTimeout:
      return "drain_timeout";
    case CloseReason::kInternalError:
      return "internal_error";
    case CloseReason::kProxyUntrustedSource:
      return "proxy_protocol_untrusted_source";
    case CloseReason::kProxyBadHeader:
      return "proxy_protocol_bad_header";
    case CloseReason::kProxyHeaderTimeout:
      return "proxy_protocol_timeout";
    case CloseReason::kFirewallBlockedIp:
      return "firewall_blocked_ip";
    case CloseReason::kFirewallBlockedCidr:
      return "firewall_blocked_cidr";
    case CloseReason::kFirewallBlockedCountry:
      return "firewall_blocked_country";
    case CloseReason::kFirewallRateLimited:
      return "firewall_rate_limited";
    case CloseReason::kTlsHandshakeFailed:
      return "tls_handshake_failed";
    case CloseReason::kHttpProtocolError:
      return "http_protocol_error";
    case CloseReason::kRequestHeaderTimeout:
      return "request_header_timeout";
    case CloseReason::kModule:
      return "module";
    case CloseReason::kCount:
      break;
  }
  return "unknown";
}

}  // namespace mcproxy::network

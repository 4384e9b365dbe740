#include "source/common/module/attributes.h"

#include <absl/strings/str_join.h>

#include "source/common/module/module.h"
#include "source/common/router/route.h"

namespace mcproxy::module {

mcproxy_result connectionAttribute(const network::StreamInfo& connection,
                                   mcproxy_attribute attribute, std::string& scratch,
                                   mcproxy_str* value) {
  auto view = [value](std::string_view text) {
    *value = toAbi(text);
    return MCPROXY_OK;
  };
  auto made = [&](std::string text) {
    scratch = std::move(text);
    return view(scratch);
  };
  switch (attribute) {
    case MCPROXY_ATTR_CLIENT_IP:
      return made(connection.real_client.ip());
    case MCPROXY_ATTR_CLIENT_PORT:
      return made(std::to_string(connection.real_client.port()));
    case MCPROXY_ATTR_PEER_IP:
      return made(connection.downstream_remote.ip());
    case MCPROXY_ATTR_SNI:
      return view(connection.requested_server_name);
    case MCPROXY_ATTR_ALPN:
      if (!connection.negotiated_alpn.empty()) return view(connection.negotiated_alpn);
      return made(absl::StrJoin(connection.alpn, ","));
    case MCPROXY_ATTR_LISTENER:
      return view(connection.listener_name);
    case MCPROXY_ATTR_ROUTE:
      if (connection.route == nullptr) return MCPROXY_ERR_NOT_FOUND;
      return view(connection.route->hostname.empty()
                      ? std::string_view("default")
                      : std::string_view(connection.route->hostname));
    case MCPROXY_ATTR_TLS_VERSION:
      if (connection.tls_version.empty()) return MCPROXY_ERR_NOT_FOUND;
      return view(connection.tls_version);
    default:
      return MCPROXY_ERR_NOT_FOUND;
  }
}

}  // namespace mcproxy::module

#include "source/common/upstream/endpoint.h"

namespace mcproxy::upstream {

std::string poolKey(const network::Address& address, Protocol protocol, bool tls,
                    std::string_view tls_server_name) {
  std::string key = protocol == Protocol::kHttp2 ? "h2|" : "http1|";
  key += address.toString();
  if (tls) key.append("|tls:").append(tls_server_name);
  return key;
}

}  // namespace mcproxy::upstream

#include "source/common/http/headers.h"

#include <array>

namespace mcproxy::http {

bool isHopByHop(std::string_view name, std::string_view value) {
  static constexpr std::array<std::string_view, 7> kHopByHop = {
      "connection", "keep-alive",         "proxy-connection",   "transfer-encoding",
      "upgrade",    "proxy-authenticate", "proxy-authorization"};
  for (std::string_view hop : kHopByHop) {
    if (name == hop) return true;
  }
  return name == "te" && value != "trailers";
}

const std::string* find(const HeaderList& headers, std::string_view name) {
  for (const Header& header : headers) {
    if (header.name == name) return &header.value;
  }
  return nullptr;
}

HeaderList forwardedRequestHeaders(const HeaderList& request, const std::string& client_ip,
                                   std::string_view proto, std::string_view upstream_scheme) {
  HeaderList out;
  out.reserve(request.size() + 3);
  std::string forwarded_for;
  for (const Header& header : request) {
    if (isHopByHop(header.name, header.value)) continue;
    if (header.name == "x-forwarded-for") {
      forwarded_for += (forwarded_for.empty() ? "" : ", ") + header.value;
      continue;
    }
    if (header.name == "x-forwarded-proto" || header.name == "x-real-ip") continue;
    // The proxy answers "Expect: 100-continue" itself (HTTP/1.1 clients) and streams bodies;
    // a backend asked again would send a 100 nobody waits for.
    if (header.name == "expect") continue;
    if (header.name == ":scheme") {
      out.push_back({":scheme", std::string(upstream_scheme)});
      continue;
    }
    out.push_back(header);
  }
  forwarded_for += (forwarded_for.empty() ? "" : ", ") + client_ip;
  out.push_back({"x-forwarded-for", forwarded_for});
  out.push_back({"x-forwarded-proto", std::string(proto)});
  out.push_back({"x-real-ip", client_ip});
  return out;
}

HeaderList forwardedResponseHeaders(const HeaderList& response) {
  HeaderList out;
  out.reserve(response.size());
  for (const Header& header : response) {
    if (!isHopByHop(header.name, header.value)) out.push_back(header);
  }
  return out;
}

}  // namespace mcproxy::http

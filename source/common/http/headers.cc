#include "source/common/http/headers.h"

#include <nghttp2/nghttp2.h>

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

namespace {

const uint8_t* bytes(std::string_view text) {
  return reinterpret_cast<const uint8_t*>(text.data());
}

}  // namespace

bool validHeaderName(std::string_view name) {
  return !name.empty() && nghttp2_check_header_name(bytes(name), name.size()) != 0;
}

bool validHeaderValue(std::string_view value) {
  return nghttp2_check_header_value(bytes(value), value.size()) != 0;
}

bool validPath(std::string_view path) {
  return !path.empty() && nghttp2_check_path(bytes(path), path.size()) != 0;
}

bool validAuthority(std::string_view authority) {
  return !authority.empty() && nghttp2_check_authority(bytes(authority), authority.size()) != 0;
}

HeaderList forwardedRequestHeaders(HeaderList request, const std::string& client_ip,
                                   std::string_view proto, std::string_view upstream_scheme) {
  // Rewritten in place: the fields move, nothing is copied.
  std::string forwarded_for;
  size_t kept = 0;
  for (size_t i = 0; i < request.size(); ++i) {
    Header& header = request[i];
    if (isHopByHop(header.name, header.value)) continue;
    if (header.name == "x-forwarded-for") {
      forwarded_for += (forwarded_for.empty() ? "" : ", ") + header.value;
      continue;
    }
    if (header.name == "x-forwarded-proto" || header.name == "x-real-ip") continue;
    // The proxy answers "Expect: 100-continue" itself (HTTP/1.1 clients) and streams bodies;
    // a backend asked again would send a 100 nobody waits for.
    if (header.name == "expect") continue;
    if (header.name == ":scheme") header.value = upstream_scheme;
    if (kept != i) request[kept] = std::move(header);
    ++kept;
  }
  request.resize(kept);
  forwarded_for += (forwarded_for.empty() ? "" : ", ") + client_ip;
  request.push_back({"x-forwarded-for", std::move(forwarded_for)});
  request.push_back({"x-forwarded-proto", std::string(proto)});
  request.push_back({"x-real-ip", client_ip});
  return request;
}

}  // namespace mcproxy::http

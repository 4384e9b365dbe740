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

const HttpRoute* Route::matchHttpRoute(const http::HeaderMap& request) const {
  for (const HttpRoute& route : http_routes) {
    if (route.matches(request)) return &route;
  }
  return nullptr;
}

}  // namespace mcproxy::router

#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mcproxy::http {

struct Header {
  std::string name;  // lower case, as HTTP/2 requires; pseudo-headers start with ':'
  std::string value;
};
using HeaderList = std::vector<Header>;

// Connection-specific headers (RFC 9110 §7.6.1, RFC 9113 §8.2.2) that a proxy must not forward.
// "te" is hop-by-hop too, except "te: trailers", which gRPC needs end to end.
bool isHopByHop(std::string_view name, std::string_view value);

const std::string* find(const HeaderList& headers, std::string_view name);

// RFC 9110 syntax, as nghttp2 checks what arrives over HTTP/2. A request that came over HTTP/1.1
// is held to the same rules before it is forwarded, so that no backend ever gets a NUL, CR or
// LF inside a header (which an HTTP/1.1 backend would read as a header or request of its own).
bool validHeaderName(std::string_view name);  // a lower-case token
bool validHeaderValue(std::string_view value);
bool validPath(std::string_view path);  // request target: no whitespace or control bytes
bool validAuthority(std::string_view authority);

// The request headers an upstream gets: hop-by-hop headers removed; X-Forwarded-For appended
// with the client address; X-Forwarded-Proto set to `proto`; X-Real-IP set to the client.
// `:scheme` becomes `upstream_scheme`; `:authority` and `:path` are kept.
HeaderList forwardedRequestHeaders(HeaderList request, const std::string& client_ip,
                                   std::string_view proto, std::string_view upstream_scheme);

}  // namespace mcproxy::http

#include "source/common/http/local_reply.h"

#include <string>

namespace mcproxy::http {

HeaderMap localReplyHeaders(int status, size_t body_size, HeaderMap extra) {
  HeaderMap headers;
  headers.reserve(5 + extra.size());
  headers.push_back({":status", std::to_string(status)});
  if (body_size > 0) headers.push_back({"content-type", "text/plain"});
  headers.push_back({"content-length", std::to_string(body_size)});
  headers.push_back({"server", "mc-proxy"});
  for (Header& header : extra) {
    if (header.name == "content-length") continue;  // the body decides
    if (header.name == "content-type" || header.name == "server") {
      headers.set(header.name, std::move(header.value));
    } else {
      headers.push_back(std::move(header));
    }
  }
  return headers;
}

}  // namespace mcproxy::http

#include "source/common/http/http2/session.h"

namespace mcproxy::http::http2 {

bool produceFrames(nghttp2_session* session, std::string& out, size_t max) {
  while (out.size() < max) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session, &data);
    if (n < 0) return false;
    if (n == 0) return true;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  return true;
}

}  // namespace mcproxy::http::http2

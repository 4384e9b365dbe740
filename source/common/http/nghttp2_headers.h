#pragma once

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "source/common/http/headers.h"

namespace mcproxy::http {

// nghttp2's view of `headers`: pointers into it, so `headers` must outlive the returned vector
// until nghttp2 has copied the fields (nghttp2_submit_* do so before returning).
inline std::vector<nghttp2_nv> toNghttp2(const HeaderList& headers) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(headers.size());
  for (const auto& header : headers) {
    nv.push_back({const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(header.name.data())),
                  const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(header.value.data())),
                  header.name.size(), header.value.size(), NGHTTP2_NV_FLAG_NONE});
  }
  return nv;
}

// An nghttp2 data-source read: moves up to `length` bytes of `body` (what the other side sent
// and nobody took yet) into `buf`. At the end of a `complete` body it sets EOF, and submits
// `trailers` when there are any (so the DATA frame does not end the stream). Returns the bytes
// moved, or NGHTTP2_ERR_DEFERRED when there is nothing to send yet.
inline ssize_t pullBody(nghttp2_session* session, int32_t stream_id, std::string& body,
                        bool complete, const HeaderList& trailers, uint8_t* buf, size_t length,
                        uint32_t* flags) {
  const size_t n = std::min(length, body.size());
  if (n > 0) {
    std::memcpy(buf, body.data(), n);
    body.erase(0, n);
  }
  if (body.empty() && complete) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!trailers.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      const auto nv = toNghttp2(trailers);
      nghttp2_submit_trailer(session, stream_id, nv.data(), nv.size());
    }
    return static_cast<ssize_t>(n);
  }
  return n > 0 ? static_cast<ssize_t>(n) : static_cast<ssize_t>(NGHTTP2_ERR_DEFERRED);
}

}  // namespace mcproxy::http

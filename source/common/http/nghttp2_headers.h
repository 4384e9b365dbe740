#pragma once

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "source/common/buffer/buffer_queue.h"
#include "source/common/http/headers.h"

namespace mcproxy::http {

// nghttp2's view of a HeaderMap: pointers into it, so the list must outlive this until nghttp2
// has copied the fields (nghttp2_submit_* do so before returning). Up to kInline headers live
// on the stack: a request or response costs no allocation for this.
class NvList {
 public:
  explicit NvList(const HeaderMap& headers) : size_(headers.size()) {
    if (size_ > kInline) heap_.resize(size_);
    nghttp2_nv* out = data();
    for (const auto& header : headers) {
      // A value that is new on every message (a request id) would only churn the peer's HPACK
      // table: it goes as a literal the table never keeps.
      const uint8_t flags =
          header.name == "x-request-id" ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE;
      *out++ = {const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(header.name.data())),
                const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(header.value.data())),
                header.name.size(), header.value.size(), flags};
    }
  }
  NvList(const NvList&) = delete;
  NvList& operator=(const NvList&) = delete;

  nghttp2_nv* data() { return size_ > kInline ? heap_.data() : inline_; }
  size_t size() const { return size_; }

 private:
  static constexpr size_t kInline = 32;
  size_t size_;
  nghttp2_nv inline_[kInline];
  std::vector<nghttp2_nv> heap_;
};

// An nghttp2 data-source read: moves up to `length` bytes of `body` (a buffer::BufferQueue or a
// std::string: what the other side sent and nobody took yet) into `buf`. At the end of a
// `complete` body it sets EOF, and submits `trailers` when there are any (so the DATA frame does
// not end the stream). Returns the bytes moved, or NGHTTP2_ERR_DEFERRED when there is nothing to
// send yet.
template <class Body>
ssize_t pullBody(nghttp2_session* session, int32_t stream_id, Body& body, bool complete,
                 const HeaderMap& trailers, uint8_t* buf, size_t length, uint32_t* flags) {
  size_t n = std::min(length, body.size());
  if (n > 0) {
    if constexpr (std::is_same_v<Body, std::string>) {
      std::memcpy(buf, body.data(), n);
      body.erase(0, n);
    } else {
      n = body.copyOut(buf, n);
    }
  }
  if (body.empty() && complete) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!trailers.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      NvList nv(trailers);
      nghttp2_submit_trailer(session, stream_id, nv.data(), nv.size());
    }
    return static_cast<ssize_t>(n);
  }
  return n > 0 ? static_cast<ssize_t>(n) : static_cast<ssize_t>(NGHTTP2_ERR_DEFERRED);
}

}  // namespace mcproxy::http

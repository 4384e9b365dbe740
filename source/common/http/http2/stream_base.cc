#include "source/common/http/http2/stream_base.h"

#include <algorithm>

#include "source/common/http/nghttp2_headers.h"

namespace mcproxy::http::http2 {

void StreamBase::encodeData(buffer::Buffer& data, bool end_stream) {
  body_.append(data);
  if (end_stream) body_complete_ = true;
  resume();
}

void StreamBase::encodeTrailers(const HeaderMap& trailers) {
  trailers_ = trailers;
  body_complete_ = true;
  resume();
}

void StreamBase::resume() {
  if (!canResume()) return;  // submitted later, with what is here
  nghttp2_session_resume_data(session_, id_);
  scheduleFlush();
}

void StreamBase::consumeBody(size_t bytes) {
  bytes = std::min(bytes, unacked_);
  if (bytes == 0 || !canAcknowledge()) return;
  unacked_ -= bytes;
  nghttp2_session_consume(session_, id_, bytes);
  scheduleFlush();
}

ssize_t StreamBase::pull(uint8_t* buf, size_t length, uint32_t* flags) {
  const ssize_t n = pullBody(session_, id_, body_, body_complete_, trailers_, buf, length, flags);
  if (n > 0 && owner_ != nullptr) owner_->onBodySent(static_cast<size_t>(n));
  return n;
}

void StreamBase::releaseUnacked() {
  if (unacked_ > 0 && canAcknowledge()) {
    nghttp2_session_consume_connection(session_, unacked_);
    scheduleFlush();
  }
  unacked_ = 0;
}

}  // namespace mcproxy::http::http2

#pragma once

#include <nghttp2/nghttp2.h>

#include "source/common/buffer/buffer_queue.h"
#include "source/common/http/codec.h"

namespace mcproxy::http::http2 {

// What an HTTP/2 stream keeps on either side of a connection: the body it sends (pulled by
// nghttp2's data provider as the peer's flow control allows, then trailers or the end), and
// the body bytes it received that its owner has not consumed (so not yet acknowledged with
// WINDOW_UPDATE). The server codec's request stream and the client codec's one derive from it.
class StreamBase : public Stream {
 public:
  void encodeData(buffer::Buffer& data, bool end_stream) final;
  void encodeTrailers(const HeaderMap& trailers) final;
  void consumeBody(size_t bytes) final;

 protected:
  explicit StreamBase(nghttp2_session* session) : session_(session) {}

  // The data provider may be resumed (the stream was submitted with one).
  virtual bool canResume() const = 0;
  // The session takes WINDOW_UPDATEs for this stream now.
  virtual bool canAcknowledge() const = 0;
  virtual void scheduleFlush() = 0;

  // nghttp2's read of this stream's outgoing body; tells the owner what left.
  ssize_t pull(uint8_t* buf, size_t length, uint32_t* flags);
  // The stream is over for its connection: received bytes its owner will never consume go back
  // to the connection's window now.
  void releaseUnacked();

  nghttp2_session* const session_;
  int32_t id_ = 0;
  StreamCallbacks* owner_ = nullptr;
  buffer::BufferQueue body_;  // outgoing, not yet pulled
  HeaderMap trailers_;        // outgoing
  bool body_complete_ = false;
  size_t unacked_ = 0;  // received, not yet consumed by the owner

 private:
  void resume();
};

}  // namespace mcproxy::http::http2

#pragma once

#include <list>
#include <memory>

#include "source/common/http/codec.h"
#include "source/common/http/filter_manager.h"
#include "source/common/http/stream_info.h"

namespace mcproxy::extensions::http_connection_manager {

class HttpConnectionManagerFilter;

// One request, owned by its connection manager, between the client's codec stream and the
// route's HTTP filter chain (whose router reaches the backend). Ending it from any side (the
// client resets, the backend fails, a timeout answers, the connection closes or drains) is one
// call, end(); the rest is ownership: its destructor runs the log phase, then its filters go
// (the router's upstream request with them, which detaches from the backend's codec), and its
// handle detaches from the client's codec.
class ActiveStream : public http::StreamCallbacks, public http::FilterManagerCallbacks {
 public:
  ActiveStream(HttpConnectionManagerFilter& connection, http::Stream& downstream);
  ~ActiveStream() override;

  // Detaches from the client's codec (resetting the stream if it is not finished) and hands
  // itself to the connection manager for destruction. Idempotent.
  void end();

  // http::StreamCallbacks: the client's codec.
  void onHeaders(http::HeaderMap&& headers, bool end_stream) override;
  void onData(std::string_view data, bool end_stream) override;
  void onTrailers(http::HeaderMap&& trailers) override;
  void onBodySent(size_t bytes) override;
  void onStreamEnd(http::StreamEndReason reason, std::string_view detail) override;
  void onDecodeError(int status, std::string_view detail) override;

  // http::FilterManagerCallbacks
  void encodeHeaders(http::HeaderMap& headers, bool end_stream) override;
  void encodeData(buffer::Buffer& data, bool end_stream) override;
  void encodeTrailers(http::HeaderMap& trailers) override;
  void resetStream() override;
  void releaseRequestBody(size_t bytes) override;
  bool streamEnded() const override { return ended_; }
  event::Dispatcher& dispatcher() override;
  event::TimeoutQueue& timeoutQueue() override;
  http::Upstreams& upstreams() override;

  // Where the connection manager keeps it.
  std::list<ActiveStream>::iterator position;

 private:
  HttpConnectionManagerFilter& connection_;
  http::StreamHandle downstream_;
  http::StreamInfo info_;
  http::FilterManager filters_;
  // Request body bytes from the client not yet released (the client's window stays shut for
  // them).
  size_t request_unreleased_ = 0;
  bool ended_ = false;
};

}  // namespace mcproxy::extensions::http_connection_manager

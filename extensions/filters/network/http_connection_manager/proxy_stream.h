#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "source/common/event/dispatcher.h"
#include "source/common/http/headers.h"

namespace mcproxy::extensions::http_connection_manager {

class ProxyStream;

// The client-facing side of a request (an HTTP/2 stream or an HTTP/1.1 exchange), as the
// upstream side drives it.
class DownstreamSide {
 public:
  virtual ~DownstreamSide() = default;
  // Response headers (and maybe end of stream) are in the stream; send them on.
  virtual void onResponseHeaders(ProxyStream& stream) = 0;
  // More response body, the end, or trailers are in the stream.
  virtual void onResponseData(ProxyStream& stream) = 0;
  // The upstream cannot answer: `status` is 502 or 504 if no response was sent yet; otherwise
  // the client's stream is reset.
  virtual void onUpstreamFailure(ProxyStream& stream, int status, const std::string& reason) = 0;
  // The upstream took `bytes` of request body out of the stream: the client may send more.
  virtual void onRequestBodyConsumed(ProxyStream& stream, size_t bytes) = 0;
};

// The backend-facing side of a request.
class UpstreamSide {
 public:
  virtual ~UpstreamSide() = default;
  // More request body, its end, or trailers are in the stream.
  virtual void onRequestData(ProxyStream& stream) = 0;
  // The downstream took `bytes` of response body out of the stream.
  virtual void onResponseBodyConsumed(ProxyStream& stream, size_t bytes) = 0;
  // The client went away: stop (RST_STREAM) and forget the stream.
  virtual void cancel(ProxyStream& stream) = 0;
};

class ResponseTimeouts;

// One proxied request: what each side has received and the other has not taken yet. The body
// buffers are bounded by HTTP/2 flow control (or, for HTTP/1.1, by pausing reads), because a
// side only opens its peer's window for bytes the other side has taken.
class ProxyStream {
 public:
  ProxyStream() = default;
  ProxyStream(const ProxyStream&) = delete;
  ProxyStream& operator=(const ProxyStream&) = delete;
  ~ProxyStream() { stopResponseTimeout(); }

  // The response headers came, or the stream failed or ended: no 504 for it any more.
  void stopResponseTimeout();

  // Request, downstream -> upstream.
  http::HeaderList request_headers;  // already rewritten for the upstream
  std::string request_body;
  bool request_complete = false;
  http::HeaderList request_trailers;

  // Response, upstream -> downstream.
  http::HeaderList response_headers;  // with :status
  std::string response_body;
  bool response_complete = false;
  http::HeaderList response_trailers;
  bool response_started = false;  // headers went to the client (a failure now means a reset)

  DownstreamSide* downstream = nullptr;
  UpstreamSide* upstream = nullptr;  // null until attached, and after detaching
  int32_t downstream_id = 0;
  int32_t upstream_id = 0;
  bool routed = false;  // startUpstream() took it (it has an upstream, or has failed)
  std::chrono::steady_clock::time_point started;  // when the request headers were complete
  size_t request_header_bytes = 0;  // HTTP/2: RFC 9113 §6.5.2 size of the header list so far
  // HTTP/2 flow control: bytes received and not yet acknowledged (WINDOW_UPDATE) to the side
  // that sent them. When a stream ends with bytes still owed, they are returned to the
  // connection's window; otherwise every such stream would shrink it for good.
  size_t response_unacked = 0;  // from the upstream
  size_t request_unacked = 0;   // from the client

 private:
  friend class ResponseTimeouts;
  // While the backend's response is awaited: this stream's place in its connection's queue.
  ResponseTimeouts* timeouts_ = nullptr;
  ProxyStream* timeout_prev_ = nullptr;
  ProxyStream* timeout_next_ = nullptr;
  std::chrono::steady_clock::time_point response_deadline_;
};

// The streams of one client connection that wait for their backend's response headers, in
// deadline order. The timeout is the same for every stream of the connection, so the order in
// which timeouts start is their deadline order: an intrusive FIFO and one timer per connection,
// instead of a timer (and its allocations) per request.
class ResponseTimeouts {
 public:
  ResponseTimeouts(event::Dispatcher& dispatcher, std::chrono::milliseconds timeout,
                   std::function<void(ProxyStream&)> on_timeout);
  ~ResponseTimeouts();
  ResponseTimeouts(const ResponseTimeouts&) = delete;
  ResponseTimeouts& operator=(const ResponseTimeouts&) = delete;

  // (Re)starts `stream`'s timeout from now.
  void start(ProxyStream& stream);
  void stop(ProxyStream& stream);

 private:
  void onTimer();
  void armForHead();

  event::Dispatcher& dispatcher_;
  const std::chrono::milliseconds timeout_;
  std::function<void(ProxyStream&)> on_timeout_;
  event::Timer timer_;
  ProxyStream* head_ = nullptr;
  ProxyStream* tail_ = nullptr;
};

inline void ProxyStream::stopResponseTimeout() {
  if (timeouts_ != nullptr) timeouts_->stop(*this);
}

}  // namespace mcproxy::extensions::http_connection_manager

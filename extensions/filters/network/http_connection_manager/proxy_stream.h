#pragma once

#include <chrono>
#include <cstdint>
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

// One proxied request: what each side has received and the other has not taken yet. The body
// buffers are bounded by HTTP/2 flow control (or, for HTTP/1.1, by pausing reads), because a
// side only opens its peer's window for bytes the other side has taken.
class ProxyStream {
 public:
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
  std::unique_ptr<event::Timer> response_timer;   // 504 when no response headers come in time
  std::chrono::steady_clock::time_point started;  // when the request headers were complete
  // HTTP/2 flow control: bytes received and not yet acknowledged (WINDOW_UPDATE) to the side
  // that sent them. When a stream ends with bytes still owed, they are returned to the
  // connection's window; otherwise every such stream would shrink it for good.
  size_t response_unacked = 0;  // from the upstream
  size_t request_unacked = 0;   // from the client
};

}  // namespace mcproxy::extensions::http_connection_manager

#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <type_traits>

#include "source/common/buffer/buffer.h"
#include "source/common/event/dispatcher.h"
#include "source/common/event/timeout_queue.h"
#include "source/common/http/headers.h"
#include "source/common/http/stream_info.h"

namespace mcproxy::upstream {
class StreamPool;
struct PoolSettings;
}  // namespace mcproxy::upstream

namespace mcproxy::http {

enum class FilterStatus {
  kContinue,       // on to the next filter
  kStopIteration,  // hold this (and what follows) here until the filter continues or answers
};

// What a terminal filter (the router) needs to reach backends; lent by the connection manager.
class Upstreams {
 public:
  virtual ~Upstreams() = default;
  // The connection pool for this request: the worker's, or (`per_client`, for connections
  // that carry a PROXY header naming this client) one that ends with the client's connection.
  virtual upstream::StreamPool& pool(bool per_client) = 0;
  virtual const upstream::PoolSettings& settings() const = 0;
  // The connection manager's response_timeout_ms, for routes without their own timeout_ms.
  virtual std::chrono::milliseconds responseTimeout() const = 0;
  // The connection manager's upgrade_idle_timeout_ms: an upgraded stream (a WebSocket) quiet
  // both ways this long is closed.
  virtual std::chrono::milliseconds upgradeIdleTimeout() const { return std::chrono::minutes(5); }
};

// What a filter can do with its stream. Valid for the filter's whole life; after the stream
// ended (a timer or other event that outlives it), every call is a no-op and ended() says so.
class FilterCallbacks {
 public:
  virtual ~FilterCallbacks() = default;
  virtual event::Dispatcher& dispatcher() = 0;
  virtual StreamInfo& streamInfo() = 0;
  // The request's headers once its headers phase began (as earlier filters left them); null
  // before.
  virtual const HeaderMap* requestHeaders() const = 0;
  // Resumes what this filter stopped: the held request (or response) headers, body and
  // trailers go on to the next filters.
  virtual void continueRequest() = 0;
  virtual void continueResponse() = 0;
  // Answers the request here, from any phase: `status`, `body` (text/plain unless
  // `extra_headers` set content-type), `extra_headers`. `detail` says why, for logs (the body
  // when empty). Filters that have seen the request see this response in their response phases
  // (not when it is sent from a response phase). If part of a response reached the client
  // already, the stream is reset instead.
  virtual void sendLocalReply(int status, std::string_view body, HeaderMap extra_headers = {},
                              std::string_view detail = {}) = 0;
  // Ends the stream abnormally (HTTP/2 RST_STREAM; HTTP/1.1 closes the connection).
  virtual void resetStream() = 0;
  virtual bool ended() const = 0;

  // A filter that produces the response itself (the terminal filter, relaying a backend's):
  // it passes through the response phases of this filter and those before it, then to the
  // client. onResponseBodySent() tells it as the client takes the body.
  virtual void encodeResponseHeaders(HeaderMap headers, bool end_stream) = 0;
  virtual void encodeResponseBody(buffer::Buffer& body, bool end_stream) = 0;
  virtual void encodeResponseTrailers(HeaderMap trailers) = 0;
  // Flow control for the terminal filter: `bytes` of request body it took went on to the
  // backend, so the client may send that many more.
  virtual void onRequestBodyForwarded(size_t bytes) = 0;

  // Deadlines without an allocation per request, on one timer per client connection.
  virtual event::TimeoutQueue& timeoutQueue() = 0;
  virtual Upstreams& upstreams() = 0;
};

// An HTTP filter: one instance per request, made by its factory with the stream's callbacks.
// Phases are named after when they run; each returns kContinue or kStopIteration. A filter is
// called only in the phases it overrides (phasesOf()), so the others cost nothing.
//
// Stopping: the event the filter stopped (headers, a body chunk, trailers) waits after it, and
// what arrives meanwhile waits at the start of the chain; continueRequest()/continueResponse()
// (from a timer, say) lets them on. A filter that must see a whole body before deciding can take
// each chunk out of `body` (keeping it), return kContinue, and put it all back at end_stream.
class StreamFilter {
 public:
  virtual ~StreamFilter() = default;
  virtual FilterStatus onRequestHeaders(HeaderMap& headers, bool end_stream) {
    return FilterStatus::kContinue;
  }
  virtual FilterStatus onRequestBody(buffer::Buffer& body, bool end_stream) {
    return FilterStatus::kContinue;
  }
  virtual FilterStatus onRequestTrailers(HeaderMap& trailers) { return FilterStatus::kContinue; }
  // Response phases run in reverse chain order.
  virtual FilterStatus onResponseHeaders(HeaderMap& headers, bool end_stream) {
    return FilterStatus::kContinue;
  }
  virtual FilterStatus onResponseBody(buffer::Buffer& body, bool end_stream) {
    return FilterStatus::kContinue;
  }
  virtual FilterStatus onResponseTrailers(HeaderMap& trailers) { return FilterStatus::kContinue; }
  // The stream ended (completed, reset or failed); everything about it is in `info`.
  virtual void onLog(const StreamInfo& info) {}
  // The client took `bytes` of the response body this filter produced (encodeResponseBody).
  virtual void onResponseBodySent(size_t bytes) {}
};

// The phases a filter implements, as bits.
enum Phase : uint32_t {
  kRequestHeadersPhase = 1u << 0,
  kRequestBodyPhase = 1u << 1,
  kRequestTrailersPhase = 1u << 2,
  kResponseHeadersPhase = 1u << 3,
  kResponseBodyPhase = 1u << 4,
  kResponseTrailersPhase = 1u << 5,
  kLogPhase = 1u << 6,
  kAllPhases = (1u << 7) - 1,
};

// The phases filter class F overrides, found at compile time: a member function F does not
// override has StreamFilter's type.
template <class F>
constexpr uint32_t phasesOf() {
  static_assert(std::is_base_of_v<StreamFilter, F>);
  uint32_t phases = 0;
#define MCPROXY_PHASE_IF_OVERRIDDEN(METHOD, BIT)                                        \
  if constexpr (!std::is_same_v<decltype(&F::METHOD), decltype(&StreamFilter::METHOD)>) \
  phases |= BIT
  MCPROXY_PHASE_IF_OVERRIDDEN(onRequestHeaders, kRequestHeadersPhase);
  MCPROXY_PHASE_IF_OVERRIDDEN(onRequestBody, kRequestBodyPhase);
  MCPROXY_PHASE_IF_OVERRIDDEN(onRequestTrailers, kRequestTrailersPhase);
  MCPROXY_PHASE_IF_OVERRIDDEN(onResponseHeaders, kResponseHeadersPhase);
  MCPROXY_PHASE_IF_OVERRIDDEN(onResponseBody, kResponseBodyPhase);
  MCPROXY_PHASE_IF_OVERRIDDEN(onResponseTrailers, kResponseTrailersPhase);
  MCPROXY_PHASE_IF_OVERRIDDEN(onLog, kLogPhase);
#undef MCPROXY_PHASE_IF_OVERRIDDEN
  return phases;
}

// Makes one filter per request. Built once per snapshot and route from the filter's config.
struct FilterFactory {
  std::string name;  // the registered name, for logs
  std::function<std::unique_ptr<StreamFilter>(FilterCallbacks&)> create;
  uint32_t phases = kAllPhases;

  // A factory for filter class F; `make` builds one from the callbacks.
  template <class F, class Make>
  static FilterFactory of(std::string name, Make make) {
    return FilterFactory{
        std::move(name),
        [make = std::move(make)](FilterCallbacks& callbacks) -> std::unique_ptr<StreamFilter> {
          return make(callbacks);
        },
        phasesOf<F>()};
  }
};

}  // namespace mcproxy::http

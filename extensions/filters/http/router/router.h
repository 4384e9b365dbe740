#pragma once

#include <absl/container/inlined_vector.h>

#include <memory>

#include "source/common/event/dispatcher.h"
#include "source/common/event/timeout_queue.h"
#include "source/common/http/codec.h"
#include "source/common/http/filter.h"

namespace mcproxy::router {
struct Route;
}

namespace mcproxy::upstream {
class Cluster;
struct ClusterEndpoint;
}  // namespace mcproxy::upstream

namespace mcproxy::extensions::http_router {

// What the router changes in a request's headers as they leave for a backend (route tests show
// the same).
void prepareUpstreamHeaders(http::HeaderMap& headers, bool backend_tls);

// The terminal HTTP filter (mcproxy.filters.http.router): chooses the backend for a request by
// the route's http_routes (an address, or an endpoint its cluster picks), and relays the request
// and the response between the filter chain and a stream on a pooled upstream connection
// (HTTP/2 or HTTP/1.1, cleartext or TLS, with a PROXY header when the route sends one). A
// cluster's request without a body that fails before its response started is sent again to
// another endpoint: after a connect failure, and (idempotent methods) after a reset or a 502/503,
// within the cluster's attempts and retry budget.
class RouterFilter : public http::StreamFilter, public http::StreamCallbacks {
 public:
  explicit RouterFilter(http::FilterCallbacks& callbacks);
  ~RouterFilter() override;

  // http::StreamFilter
  http::FilterStatus onRequestHeaders(http::HeaderMap& headers, bool end_stream) override;
  http::FilterStatus onRequestBody(buffer::Buffer& body, bool end_stream) override;
  http::FilterStatus onRequestTrailers(http::HeaderMap& trailers) override;
  void onResponseBodySent(size_t bytes) override;

  // http::StreamCallbacks: the upstream stream.
  void onHeaders(http::HeaderMap&& headers, bool end_stream) override;
  void onData(std::string_view data, bool end_stream) override;
  void onTrailers(http::HeaderMap&& trailers) override;
  void onBodySent(size_t bytes) override;
  void onStreamEnd(http::StreamEndReason reason, std::string_view detail) override;

 private:
  // Opens an upstream stream to the next backend and sends `headers`; false when there is none
  // (the request was answered).
  bool startAttempt(const http::HeaderMap& headers, bool end_stream);
  // The attempt that ended (or is abandoned) no longer counts on its endpoint.
  void endAttempt();
  // After a failed attempt: sends the request again from the loop when it may be; false if not.
  bool retry(bool connect_failure);
  // The whole request went upstream: the backend's time to answer starts now (a long upload
  // is not a 504).
  void onRequestComplete();
  void onResponseTimeout();
  // A WebSocket's bytes went one way: its idle time starts again.
  void onTunnelActivity();
  void fail(int status, std::string_view detail);
  // Sets the request's upstream_connect once its backend connection is known to be ready.
  void noteConnectTime();

  http::FilterCallbacks& callbacks_;
  const router::Route* route_ = nullptr;
  http::StreamHandle upstream_;
  event::TimeoutQueue::Entry timeout_;
  std::chrono::milliseconds timeout_duration_{0};
  std::chrono::steady_clock::time_point upstream_start_;  // handed to the upstream pool
  bool response_started_ = false;
  bool upgrade_ = false;  // the request is a WebSocket handshake
  bool tunnel_ = false;   // the backend accepted it: the bodies are the tunnel
  // With a cluster: the endpoint of the current attempt, those tried before, and whether the
  // request can be sent again (it had no body).
  const upstream::Cluster* cluster_ = nullptr;
  const upstream::ClusterEndpoint* endpoint_ = nullptr;
  absl::InlinedVector<const upstream::ClusterEndpoint*, 2> tried_;
  bool replayable_ = false;
  uint32_t request_retries_ = 0;
  bool holds_retry_budget_ = false;
  std::unique_ptr<event::Timer> retry_timer_;
};

}  // namespace mcproxy::extensions::http_router

#include "extensions/filters/http/router/router.h"

#include "source/common/http/upgrade.h"
#include "source/common/logging/logger.h"
#include "source/common/proxy_protocol/proxy_protocol.h"
#include "source/common/router/route.h"
#include "source/common/upstream/cluster.h"
#include "source/common/upstream/conn_pool.h"
#include "source/common/upstream/endpoint.h"

namespace mcproxy::extensions::http_router {

void prepareUpstreamHeaders(http::HeaderMap& headers, bool backend_tls) {
  headers.set(":scheme", backend_tls ? "https" : "http");
  // The proxy answers "Expect: 100-continue" itself (HTTP/1.1 clients) and streams bodies; a
  // backend asked again would send a 100 nobody waits for.
  headers.remove("expect");
}

RouterFilter::RouterFilter(http::FilterCallbacks& callbacks)
    : callbacks_(callbacks), timeout_([this] { onResponseTimeout(); }) {}

RouterFilter::~RouterFilter() {
  upstream_.reset();
  endAttempt();
  if (cluster_ != nullptr)
    cluster_->state().active_requests.fetch_sub(1, std::memory_order_relaxed);
}

http::FilterStatus RouterFilter::onRequestHeaders(http::HeaderMap& headers, bool end_stream) {
  http::StreamInfo& info = callbacks_.streamInfo();
  const network::StreamInfo& connection = info.connection;
  route_ = connection.route;
  if (const std::string protocol = http::upgrade::requested(headers); !protocol.empty()) {
    if (protocol != "websocket" || !route_->l7->allow_upgrades) {
      const std::string detail = protocol != "websocket"
                                     ? "upgrade to \"" + protocol + "\" is not proxied"
                                     : std::string("WebSocket upgrades are not allowed here");
      callbacks_.sendLocalReply(403, detail + "\n", {}, detail);
      return http::FilterStatus::kStopIteration;
    }
    upgrade_ = true;
  }
  const router::HttpRoute* http_route = route_->matchHttpRoute(headers);
  info.http_route = http_route;
  route_->stats.http->requests.inc();

  const auto route_timeout = http_route != nullptr && http_route->timeout.count() > 0
                                 ? http_route->timeout
                                 : route_->l7->timeout;
  http::Upstreams& upstreams = callbacks_.upstreams();
  timeout_duration_ = route_timeout.count() > 0 ? route_timeout : upstreams.responseTimeout();
  cluster_ = http_route != nullptr ? http_route->cluster : route_->cluster;
  prepareUpstreamHeaders(headers, route_->l7->backend_tls_context != nullptr);
  if (cluster_ != nullptr) {
    cluster_->state().active_requests.fetch_add(1, std::memory_order_relaxed);
    // Only a request that ended with its headers can be sent again as it was: from the
    // stream's own copy of them (callbacks_.requestHeaders()), which this filter is the last
    // to change.
    replayable_ = end_stream && !upgrade_ && cluster_->endpoints().size() > 1;
  }
  upstream_start_ = callbacks_.dispatcher().now();
  if (!startAttempt(headers, end_stream)) return http::FilterStatus::kStopIteration;
  // A handshake's body is the tunnel, which may only start after the answer: the backend's
  // time to answer starts now.
  if (end_stream || upgrade_) onRequestComplete();
  return http::FilterStatus::kContinue;
}

bool RouterFilter::startAttempt(const http::HeaderMap& headers, bool end_stream) {
  http::StreamInfo& info = callbacks_.streamInfo();
  const network::StreamInfo& connection = info.connection;
  const router::HttpRoute* http_route = info.http_route;
  const network::Address* backend;
  std::string_view pool_key;
  if (cluster_ != nullptr) {
    event::Dispatcher& dispatcher = callbacks_.dispatcher();
    endpoint_ =
        cluster_->pick(connection.real_client, dispatcher.random(), dispatcher.now(), tried_);
    if (endpoint_ == nullptr) {
      const std::string detail = "cluster \"" + cluster_->name() + "\": every endpoint is drained";
      callbacks_.sendLocalReply(503, detail + "\n", {}, detail);
      return false;
    }
    endpoint_->stats.requests.inc();
    endpoint_->stats.active.inc();
    backend = &endpoint_->address;
    pool_key = endpoint_->pool_key;
  } else if (http_route != nullptr) {
    backend = &http_route->backend;
    pool_key = http_route->pool_key;
  } else {
    backend = &route_->backend;
    pool_key = route_->l7->http_pool_key;
  }
  info.upstream_address = backend;

  http::Upstreams& upstreams = callbacks_.upstreams();
  const bool tls = route_->l7->backend_tls_context != nullptr;
  const auto protocol =
      route_->l7->backend_http1 ? upstream::Protocol::kHttp1 : upstream::Protocol::kHttp2;
  // With TLS the backend must prove the name the client asked for, so connections are shared
  // per name; cleartext keys are made when the config is compiled.
  const std::string tls_key =
      tls ? upstream::poolKey(*backend, protocol, true, connection.requested_server_name)
          : std::string();
  const upstream::Endpoint endpoint{*backend,
                                    tls ? std::string_view(tls_key) : pool_key,
                                    protocol,
                                    route_->l7->backend_tls_context,
                                    connection.requested_server_name,
                                    &route_->stats.http->upstream_connect_latency,
                                    endpoint_ != nullptr ? &endpoint_->stats.connections : nullptr};
  // With PROXY protocol an upstream connection speaks for this one client: it comes from the
  // client connection's own pool and ends with it.
  const std::string proxy_header =
      route_->send_proxy_protocol
          ? proxy_protocol::encodeFor(connection, route_->proxy_protocol_version)
          : std::string();
  upstream::PoolSettings cluster_settings;
  const upstream::PoolSettings* settings = &upstreams.settings();
  if (cluster_ != nullptr && cluster_->settings().connect_timeout.count() > 0) {
    cluster_settings = *settings;
    cluster_settings.connect_timeout = cluster_->settings().connect_timeout;
    settings = &cluster_settings;
  }
  upstream_ = http::StreamHandle(&upstreams.pool(route_->send_proxy_protocol)
                                      .newStream(endpoint, *settings, proxy_header, *this));
  upstream_->encodeHeaders(headers, end_stream);
  return true;
}

void RouterFilter::endAttempt() {
  if (holds_retry_budget_) {
    holds_retry_budget_ = false;
    cluster_->retryDone();
  }
  if (endpoint_ == nullptr) return;
  endpoint_->stats.active.dec();
  endpoint_ = nullptr;
}

bool RouterFilter::retry(bool connect_failure) {
  const http::HeaderMap* request = callbacks_.requestHeaders();
  if (!replayable_ || request == nullptr || response_started_ || endpoint_ == nullptr) {
    return false;
  }
  const upstream::Cluster::Settings& settings = cluster_->settings();
  // Connect failures: the backend never saw the request. Otherwise it may have acted on it,
  // so only methods that may be repeated are.
  if (connect_failure) {
    if (tried_.size() + 1 >= settings.max_connect_attempts) return false;
  } else {
    if (!upstream::idempotentMethod(request->method())) return false;
    if (request_retries_ + 1 >= settings.max_request_attempts) return false;
  }
  if (!cluster_->tryStartRetry()) return false;
  tried_.push_back(endpoint_);
  endAttempt();  // gives back the slot of the retry before, if this attempt was one
  holds_retry_budget_ = true;
  if (!connect_failure) ++request_retries_;
  if (retry_timer_ == nullptr) {
    retry_timer_ = std::make_unique<event::Timer>(callbacks_.dispatcher(), [this] {
      if (!callbacks_.ended()) startAttempt(*callbacks_.requestHeaders(), true);
    });
  }
  retry_timer_->fireSoon();
  return true;
}

http::FilterStatus RouterFilter::onRequestBody(buffer::Buffer& body, bool end_stream) {
  if (!upstream_) {
    body.clear();
    return http::FilterStatus::kContinue;
  }
  if (tunnel_) onTunnelActivity();
  upstream_->encodeData(body, end_stream);
  if (end_stream) onRequestComplete();
  return http::FilterStatus::kContinue;
}

http::FilterStatus RouterFilter::onRequestTrailers(http::HeaderMap& trailers) {
  if (!upstream_) return http::FilterStatus::kContinue;
  upstream_->encodeTrailers(trailers);
  onRequestComplete();
  return http::FilterStatus::kContinue;
}

void RouterFilter::onRequestComplete() {
  if (!response_started_ && upstream_) {
    callbacks_.timeoutQueue().arm(timeout_, timeout_duration_);
  }
}

void RouterFilter::onTunnelActivity() {
  callbacks_.timeoutQueue().arm(timeout_, callbacks_.upstreams().upgradeIdleTimeout());
}

void RouterFilter::onResponseTimeout() {
  if (tunnel_) {
    upstream_.reset();
    callbacks_.streamInfo().response_detail = "upgrade idle timeout";
    callbacks_.resetStream();
    return;
  }
  if (upstream_) {
    // The connection may be dead while its socket looks fine: it checks itself (HTTP/2 PING)
    // and takes no new request meanwhile.
    upstream_->onResponseTimeout();
    upstream_.reset();
  }
  if (endpoint_ != nullptr) {
    cluster_->onFailure(*endpoint_, callbacks_.dispatcher().now());
    endAttempt();
  }
  fail(504, "upstream response timeout");
}

void RouterFilter::fail(int status, std::string_view detail) {
  timeout_.cancel();
  if (retry_timer_) retry_timer_->cancel();
  if (status == 502) route_->stats.http->responses_502.inc();
  if (status == 504) route_->stats.http->responses_504.inc();
  LOG_DEBUG << "request to "
            << (callbacks_.streamInfo().upstream_address != nullptr
                    ? callbacks_.streamInfo().upstream_address->toString()
                    : std::string("?"))
            << ": " << status << " " << detail;
  // Answers if no response reached the client yet; resets the stream otherwise.
  callbacks_.sendLocalReply(status, std::string(detail) + "\n", {}, detail);
}

void RouterFilter::onResponseBodySent(size_t bytes) {
  if (upstream_) upstream_->consumeBody(bytes);
}

void RouterFilter::noteConnectTime() {
  http::StreamInfo& info = callbacks_.streamInfo();
  if (info.upstream_connect || !upstream_) return;
  if (const auto ready = upstream_->connectionReadyTime()) {
    // A pooled connection that was ready before the request came took no time.
    info.upstream_connect =
        std::max(std::chrono::milliseconds(0),
                 std::chrono::duration_cast<std::chrono::milliseconds>(*ready - upstream_start_));
  }
}

void RouterFilter::onHeaders(http::HeaderMap&& headers, bool end_stream) {
  if (endpoint_ != nullptr) {
    const int status = headers.status();
    const upstream::Cluster& cluster = *cluster_;
    if (status == 502 || status == 503) {
      cluster.onFailure(*endpoint_, callbacks_.dispatcher().now());
      if (retry(false)) {
        upstream_.reset();  // the answer is dropped; another endpoint is asked
        return;
      }
    } else if (status >= 200) {
      cluster.onSuccess(*endpoint_);
    }
  }
  timeout_.cancel();
  response_started_ = true;
  noteConnectTime();
  callbacks_.streamInfo().upstream_response_time = callbacks_.dispatcher().now();
  if (upgrade_ && headers.status() == 101 && !end_stream) {
    tunnel_ = true;
    onTunnelActivity();
  }
  callbacks_.encodeResponseHeaders(std::move(headers), end_stream);
}

void RouterFilter::onData(std::string_view data, bool end_stream) {
  if (tunnel_) onTunnelActivity();
  buffer::Buffer body;
  body.append(data);
  callbacks_.encodeResponseBody(body, end_stream);
}

void RouterFilter::onTrailers(http::HeaderMap&& trailers) {
  callbacks_.encodeResponseTrailers(std::move(trailers));
}

void RouterFilter::onBodySent(size_t bytes) { callbacks_.onRequestBodyForwarded(bytes); }

void RouterFilter::onStreamEnd(http::StreamEndReason reason, std::string_view detail) {
  noteConnectTime();
  const bool connected = upstream_ && upstream_->connectionReadyTime().has_value();
  upstream_.onEnd();
  if (reason == http::StreamEndReason::kComplete) {
    endAttempt();
    return;
  }
  if (endpoint_ != nullptr) {
    cluster_->onFailure(*endpoint_, callbacks_.dispatcher().now());
    if (retry(!connected)) return;
    const size_t attempts = tried_.size() + 1;
    endAttempt();
    // A cluster that could not be reached is unavailable (503, as Envoy); a backend that reset
    // or broke the protocol gave a bad answer (502).
    if (!connected && reason != http::StreamEndReason::kConnectTimeout) {
      fail(503, "cluster \"" + cluster_->name() + "\": no endpoint could be reached (" +
                    std::to_string(attempts) + " tried): " + std::string(detail));
      return;
    }
  }
  fail(reason == http::StreamEndReason::kConnectTimeout ? 504 : 502, detail);
}

}  // namespace mcproxy::extensions::http_router

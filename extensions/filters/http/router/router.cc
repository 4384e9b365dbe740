#include "extensions/filters/http/router/router.h"

#include "source/common/http/upgrade.h"
#include "source/common/logging/logger.h"
#include "source/common/proxy_protocol/proxy_protocol.h"
#include "source/common/router/route.h"
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

RouterFilter::~RouterFilter() = default;  // the handle detaches: the upstream stream is reset

http::FilterStatus RouterFilter::onRequestHeaders(http::HeaderMap& headers, bool end_stream) {
  http::StreamInfo& info = callbacks_.streamInfo();
  const network::StreamInfo& connection = info.connection;
  route_ = connection.route;
  if (const std::string protocol = http::upgrade::requested(headers); !protocol.empty()) {
    if (protocol != "websocket" || !route_->allow_upgrades) {
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
  const network::Address& backend = http_route != nullptr ? http_route->backend : route_->backend;
  info.upstream_address = &backend;
  route_->stats.requests.inc();

  const auto route_timeout = http_route != nullptr && http_route->timeout.count() > 0
                                 ? http_route->timeout
                                 : route_->timeout;
  http::Upstreams& upstreams = callbacks_.upstreams();
  timeout_duration_ = route_timeout.count() > 0 ? route_timeout : upstreams.responseTimeout();

  const bool tls = route_->backend_tls_context != nullptr;
  const auto protocol =
      route_->backend_http1 ? upstream::Protocol::kHttp1 : upstream::Protocol::kHttp2;
  // With TLS the backend must prove the name the client asked for, so connections are shared
  // per name; cleartext keys are made when the config is compiled.
  const std::string tls_key =
      tls ? upstream::poolKey(backend, protocol, true, connection.requested_server_name)
          : std::string();
  const upstream::Endpoint endpoint{
      backend,
      tls ? std::string_view(tls_key)
          : std::string_view(http_route != nullptr ? http_route->pool_key : route_->http_pool_key),
      protocol,
      route_->backend_tls_context,
      connection.requested_server_name,
      &route_->stats.upstream_connect_latency};
  // With PROXY protocol an upstream connection speaks for this one client: it comes from the
  // client connection's own pool and ends with it.
  const std::string proxy_header =
      route_->send_proxy_protocol
          ? proxy_protocol::encodeFor(connection, route_->proxy_protocol_version)
          : std::string();
  prepareUpstreamHeaders(headers, tls);
  upstream_start_ = callbacks_.dispatcher().now();
  upstream_ =
      http::StreamHandle(&upstreams.pool(route_->send_proxy_protocol)
                              .newStream(endpoint, upstreams.settings(), proxy_header, *this));
  upstream_->encodeHeaders(headers, end_stream);
  // A handshake's body is the tunnel, which may only start after the answer: the backend's
  // time to answer starts now.
  if (end_stream || upgrade_) onRequestComplete();
  return http::FilterStatus::kContinue;
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
  fail(504, "upstream response timeout");
}

void RouterFilter::fail(int status, std::string_view detail) {
  timeout_.cancel();
  (status == 504 ? route_->stats.responses_504 : route_->stats.responses_502).inc();
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
  upstream_.onEnd();
  if (reason == http::StreamEndReason::kComplete) return;
  fail(reason == http::StreamEndReason::kConnectTimeout ? 504 : 502, detail);
}

}  // namespace mcproxy::extensions::http_router

#include "extensions/filters/network/http_connection_manager/active_stream.h"

#include "extensions/filters/network/http_connection_manager/http_connection_manager.h"
#include "source/common/access_log/access_log.h"
#include "source/common/router/route.h"
#include "source/common/worker/resources.h"

namespace mcproxy::extensions::http_connection_manager {

ActiveStream::ActiveStream(HttpConnectionManagerFilter& connection, http::Stream& downstream)
    : connection_(connection),
      downstream_(&downstream),
      info_(connection.connectionInfo()),
      filters_(*this, info_, connection.route().l7->http_filters) {
  info_.start_time = connection.dispatcher().now();
  info_.protocol = connection.protocol();
  ++connection.downstream().streamInfo().requests;
  connection.route().stats.http->streams_active.inc();
}

ActiveStream::~ActiveStream() {
  if (!info_.end_time) info_.end_time = connection_.dispatcher().now();
  const router::HttpRouteStats& stats = *connection_.route().stats.http;
  stats.streams_active.dec();
  if (info_.response_status != 0) {
    stats.request_latency.observe(
        std::chrono::duration<double>(*info_.end_time - info_.start_time).count());
    stats.countResponse(info_.response_status);
  }
  filters_.log();
  network::Connection& downstream = connection_.downstream();
  if (const access_log::AccessLog* log = downstream.accessLog()) {
    access_log::write(downstream.worker().accessLog(), *log,
                      log->requestLine({info_.connection, &info_, filters_.requestHeaders()}));
  }
  // Then the members go: the filters (the router's upstream request detaches from the backend's
  // codec), and the handle to the client's codec.
}

void ActiveStream::end() {
  if (ended_) return;
  ended_ = true;
  info_.end_time = connection_.dispatcher().now();
  downstream_.reset();
  connection_.onStreamEnded(*this);
}

void ActiveStream::onHeaders(http::HeaderMap&& headers, bool end_stream) {
  const network::StreamInfo& connection = info_.connection;
  if (connection.route_table != nullptr &&
      router::misdirected(*connection.route_table, connection_.route(),
                          connection.requested_server_name, headers.authority())) {
    connection_.route().stats.http->misdirected_requests.inc();
    const std::string detail = "misdirected: " + std::string(headers.authority()) +
                               " is not served on a connection for \"" +
                               connection.requested_server_name + "\"";
    filters_.refuseRequest(std::move(headers), 421,
                           "misdirected request: open a connection for this host\n", detail);
    return;
  }
  // Only the proxy vouches for a client certificate: a client's own claim never goes on.
  headers.remove("x-forwarded-client-cert");
  if (connection.peer_certificate != nullptr) {
    headers.add("x-forwarded-client-cert", connection.peer_certificate->forwarded);
  }
  filters_.decodeHeaders(std::move(headers), end_stream);
}

void ActiveStream::onData(std::string_view data, bool end_stream) {
  request_unreleased_ += data.size();
  buffer::Buffer body;
  body.append(data);
  filters_.decodeData(body, end_stream);
}

void ActiveStream::onTrailers(http::HeaderMap&& trailers) {
  filters_.decodeTrailers(std::move(trailers));
}

void ActiveStream::onBodySent(size_t bytes) { filters_.onResponseBodySent(bytes); }

void ActiveStream::onStreamEnd(http::StreamEndReason reason, std::string_view detail) {
  downstream_.onEnd();
  if (reason != http::StreamEndReason::kComplete && info_.response_detail.empty()) {
    info_.response_detail = "client: " + std::string(detail);
  }
  end();
}

void ActiveStream::onDecodeError(int status, std::string_view detail) {
  filters_.sendLocalReply(status, std::string(detail) + "\n", {}, detail);
}

void ActiveStream::encodeHeaders(http::HeaderMap& headers, bool end_stream) {
  if (downstream_) downstream_->encodeHeaders(headers, end_stream);
}

void ActiveStream::encodeData(buffer::Buffer& data, bool end_stream) {
  if (downstream_) downstream_->encodeData(data, end_stream);
}

void ActiveStream::encodeTrailers(http::HeaderMap& trailers) {
  if (downstream_) downstream_->encodeTrailers(trailers);
}

void ActiveStream::resetStream() {
  if (info_.response_detail.empty()) info_.response_detail = "reset";
  end();  // detaching resets the client's stream
}

void ActiveStream::releaseRequestBody(size_t bytes) {
  bytes = std::min(bytes, request_unreleased_);
  request_unreleased_ -= bytes;
  if (bytes > 0 && downstream_) downstream_->consumeBody(bytes);
}

event::Dispatcher& ActiveStream::dispatcher() { return connection_.dispatcher(); }

event::TimeoutQueue& ActiveStream::timeoutQueue() { return connection_.timeoutQueue(); }

http::Upstreams& ActiveStream::upstreams() { return connection_; }

}  // namespace mcproxy::extensions::http_connection_manager

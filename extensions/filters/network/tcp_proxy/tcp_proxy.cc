#include "extensions/filters/network/tcp_proxy/tcp_proxy.h"

#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "source/common/logging/logger.h"
#include "source/common/network/connect.h"
#include "source/common/proxy_protocol/proxy_protocol.h"
#include "source/common/router/route.h"
#include "source/common/upstream/cluster.h"
#include "source/common/worker/resources.h"

namespace mcproxy::extensions::tcp_proxy {

network::FilterStatus TcpProxyFilter::onData(buffer::Buffer& data, bool end_stream) {
  const router::Route* route = callbacks_->connection().streamInfo().route;
  if (route == nullptr || route->mode != router::RouteMode::kL4) {
    return network::FilterStatus::kContinue;  // not ours: an L7 route is for the next filter
  }
  route_ = route;
  callbacks_->takeOverTransport();
  initial_bytes_ = data.release();
  downstream_ended_early_ = end_stream;
  connectUpstream();
  return network::FilterStatus::kStopIteration;
}

const network::Address* TcpProxyFilter::chooseBackend() {
  const upstream::Cluster* cluster = route_->cluster;
  if (cluster == nullptr) return &route_->backend;
  network::Connection& connection = callbacks_->connection();
  const network::StreamInfo& info = connection.streamInfo();
  event::Dispatcher& dispatcher = connection.dispatcher();
  endpoint_ = cluster->pick(info.real_client, dispatcher.random(), dispatcher.now(), tried_);
  if (endpoint_ == nullptr) return nullptr;
  endpoint_->stats.connections.inc();
  endpoint_->stats.active.inc();
  return &endpoint_->address;
}

void TcpProxyFilter::releaseEndpoint() {
  if (endpoint_ == nullptr) return;
  endpoint_->stats.active.dec();
  endpoint_ = nullptr;
}

void TcpProxyFilter::connectUpstream() {
  network::Connection& connection = callbacks_->connection();
  event::Dispatcher& dispatcher = connection.dispatcher();
  using Kind = event::IoEvent::Kind;
  if (timer_ == nullptr) {
    downstream_read_ = std::make_unique<event::IoEvent>(
        dispatcher, connection.fd(), Kind::kRead, [this] { to_upstream_->onSourceReadable(); });
    downstream_write_ = std::make_unique<event::IoEvent>(
        dispatcher, connection.fd(), Kind::kWrite, [this] { to_downstream_->onSinkWritable(); });
    timer_ = std::make_unique<event::Timer>(dispatcher, [this] {
      if (retry_pending_) {
        retry_pending_ = false;
        connectUpstream();
      } else if (connecting_) {
        onConnectFailed(network::CloseReason::kUpstreamConnectTimeout);
      } else {
        onIdleTimer();
      }
    });
  }
  backend_ = chooseBackend();
  if (backend_ == nullptr) {
    LOG_DEBUG << "connection " << connection.id() << ": every endpoint of cluster "
              << route_->cluster->name() << " is drained";
    connection.close(network::CloseReason::kNoEndpoint);
    return;
  }
  network::ConnectResult connected = network::connectTcp(*backend_);
  if (connected.status == network::ConnectStatus::kFailed) {
    errno = connected.error;
    const bool out_of_resources =
        errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM;
    if (out_of_resources) {
      LOG_WARN << "connection " << connection.id()
               << ": cannot open a backend socket: " << std::strerror(errno);
      connection.close(network::CloseReason::kInternalError);
    } else {
      onConnectFailed(network::CloseReason::kUpstreamConnectFailed);
    }
    return;
  }
  upstream_ = std::move(connected.fd);
  upstream_read_ = std::make_unique<event::IoEvent>(dispatcher, upstream_.get(), Kind::kRead,
                                                    [this] { to_downstream_->onSourceReadable(); });
  upstream_write_ = std::make_unique<event::IoEvent>(dispatcher, upstream_.get(), Kind::kWrite,
                                                     [this] { onUpstreamWritable(); });

  connecting_ = true;
  if (connected.status == network::ConnectStatus::kConnected) {
    onConnected();
    return;
  }
  upstream_write_->enable();
  const auto cluster_timeout = route_->cluster != nullptr
                                   ? route_->cluster->settings().connect_timeout
                                   : std::chrono::milliseconds(0);
  timer_->arm(cluster_timeout.count() > 0 ? cluster_timeout : config_.connect_timeout);
}

void TcpProxyFilter::onUpstreamWritable() {
  if (!connecting_) {
    to_upstream_->onSinkWritable();
    return;
  }
  const int error = network::connectError(upstream_.get());
  if (error != 0) {
    errno = error;
    onConnectFailed(network::CloseReason::kUpstreamConnectFailed);
    return;
  }
  onConnected();
}

void TcpProxyFilter::onConnected() {
  network::Connection& connection = callbacks_->connection();
  connecting_ = false;
  upstream_write_->disable();
  timer_->cancel();
  if (endpoint_ != nullptr) route_->cluster->onSuccess(*endpoint_);

  const int downstream = connection.fd();
  network::TransferPool& pool = connection.worker().transferPool();
  to_upstream_ = std::make_unique<Relay>(
      Relay::Sockets{downstream, upstream_.get(), *downstream_read_, *upstream_write_,
                     network::CloseReason::kDownstreamReset, network::CloseReason::kUpstreamReset},
      *this, pool);
  to_downstream_ = std::make_unique<Relay>(
      Relay::Sockets{upstream_.get(), downstream, *upstream_read_, *downstream_write_,
                     network::CloseReason::kUpstreamReset, network::CloseReason::kDownstreamReset},
      *this, pool);
  to_upstream_->init(config_.use_splice, config_.buffer_bytes);
  to_downstream_->init(config_.use_splice, config_.buffer_bytes);
  if (route_->send_proxy_protocol) {
    std::string header =
        proxy_protocol::encodeFor(connection.streamInfo(), route_->proxy_protocol_version);
    proxy_header_bytes_ = header.size();
    initial_bytes_.insert(0, header);
  }
  to_upstream_->setPrefix(std::move(initial_bytes_));
  if (downstream_ended_early_) to_upstream_->setSourceEnded();

  last_activity_ = connection.dispatcher().now();
  timer_->arm(config_.idle_timeout);
  to_upstream_->start();
  if (!connection.closed()) to_downstream_->start();
}

void TcpProxyFilter::onConnectFailed(network::CloseReason reason) {
  network::Connection& connection = callbacks_->connection();
  LOG_DEBUG << "connection " << connection.id() << ": backend " << backend_->toString() << " for \""
            << connection.streamInfo().requested_server_name << "\": "
            << (reason == network::CloseReason::kUpstreamConnectTimeout ? "connect timeout"
                                                                        : std::strerror(errno));
  route_->stats.upstream_connect_failed.inc();
  if (retryConnect()) return;
  connection.close(reason);
}

bool TcpProxyFilter::retryConnect() {
  const upstream::Cluster* cluster = route_->cluster;
  if (cluster == nullptr || endpoint_ == nullptr) return false;
  cluster->onFailure(*endpoint_, callbacks_->connection().dispatcher().now());
  tried_.push_back(endpoint_);
  releaseEndpoint();
  if (tried_.size() >= cluster->settings().max_connect_attempts) return false;
  // This may run inside the failed socket's own event: it is switched off here and replaced by
  // the next attempt, which starts from the loop.
  if (upstream_read_) upstream_read_->disable();
  if (upstream_write_) upstream_write_->disable();
  upstream_.reset();
  connecting_ = false;
  cluster->stats().retries.inc();
  retry_pending_ = true;
  timer_->fireSoon();
  return true;
}

void TcpProxyFilter::onIdleTimer() {
  network::Connection& connection = callbacks_->connection();
  const auto idle = connection.dispatcher().now() - last_activity_;
  if (idle >= config_.idle_timeout) {
    connection.close(network::CloseReason::kIdleTimeout);
    return;
  }
  // Activity does not re-arm the timer (that would cost a heap update per read); instead the
  // timer, when it fires, waits out whatever is left.
  timer_->arm(std::chrono::duration_cast<std::chrono::milliseconds>(config_.idle_timeout - idle) +
              std::chrono::milliseconds(1));
}

void TcpProxyFilter::onRelayBytes(const Relay& relay, size_t bytes) {
  network::StreamInfo& stream_info = callbacks_->connection().streamInfo();
  if (&relay == to_upstream_.get()) {
    // The PROXY header we wrote is ours, not the client's.
    const size_t header = std::min(bytes, proxy_header_bytes_);
    proxy_header_bytes_ -= header;
    bytes -= header;
    stream_info.bytes_from_downstream += bytes;
    route_->stats.bytes_from_downstream.inc(bytes);
  } else {
    stream_info.bytes_to_downstream += bytes;
    route_->stats.bytes_to_downstream.inc(bytes);
  }
  last_activity_ = callbacks_->connection().dispatcher().now();
}

void TcpProxyFilter::onRelayDone() {
  if (to_upstream_->done() && to_downstream_->done()) {
    callbacks_->connection().close(network::CloseReason::kFinished);
  }
}

void TcpProxyFilter::onRelayError(network::CloseReason reason) {
  if (endpoint_ != nullptr && reason == network::CloseReason::kUpstreamReset) {
    route_->cluster->onFailure(*endpoint_, callbacks_->connection().dispatcher().now());
  }
  callbacks_->connection().close(reason);
}

void TcpProxyFilter::onConnectionClose() {
  // Relays may be on the stack (this runs from their callbacks): stop their events and close
  // the backend socket, but leave the objects to the filter's deferred destruction.
  for (auto* event : {downstream_read_.get(), downstream_write_.get(), upstream_read_.get(),
                      upstream_write_.get()}) {
    if (event != nullptr) event->disable();
  }
  if (timer_) timer_->cancel();
  retry_pending_ = false;
  upstream_.reset();
  releaseEndpoint();
}

}  // namespace mcproxy::extensions::tcp_proxy

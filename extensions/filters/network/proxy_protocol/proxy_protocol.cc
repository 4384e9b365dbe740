#include "extensions/filters/network/proxy_protocol/proxy_protocol.h"

#include "source/common/logging/logger.h"
#include "source/common/proxy_protocol/proxy_protocol.h"

namespace mcproxy::extensions::proxy_protocol {

network::FilterStatus ProxyProtocolFilter::onNewConnection() {
  network::Connection& connection = callbacks_->connection();
  if (!config_.trusted_sources.empty() &&
      !config_.trusted_sources.contains(connection.streamInfo().downstream_remote)) {
    LOG_DEBUG << "connection " << connection.id() << ": "
              << connection.streamInfo().downstream_remote.toString()
              << " may not send PROXY headers (not in trusted_sources)";
    connection.close(network::CloseReason::kProxyUntrustedSource);
    return network::FilterStatus::kStopIteration;
  }
  timer_ = std::make_unique<event::Timer>(connection.dispatcher(), [&connection] {
    connection.close(network::CloseReason::kProxyHeaderTimeout);
  });
  timer_->arm(config_.header_timeout);
  return network::FilterStatus::kContinue;
}

network::FilterStatus ProxyProtocolFilter::onData(buffer::Buffer& data, bool end_stream) {
  if (done_) return network::FilterStatus::kContinue;
  network::Connection& connection = callbacks_->connection();
  mcproxy::proxy_protocol::ProxyHeader header;
  const auto result = mcproxy::proxy_protocol::parse(data.view(), header);
  if (result.status == mcproxy::proxy_protocol::ParseStatus::kNeedMoreData) {
    if (end_stream) connection.close(network::CloseReason::kDownstreamClosedEarly);
    return network::FilterStatus::kStopIteration;
  }
  if (result.status == mcproxy::proxy_protocol::ParseStatus::kInvalid ||
      (config_.v2_only && header.version == 1)) {
    LOG_DEBUG << "connection " << connection.id() << " from "
              << connection.streamInfo().downstream_remote.toString() << ": bad PROXY header: "
              << (result.error.empty() ? "v1 header on a v2_only listener" : result.error);
    connection.close(network::CloseReason::kProxyBadHeader);
    return network::FilterStatus::kStopIteration;
  }
  done_ = true;
  timer_.reset();
  network::StreamInfo& stream_info = connection.streamInfo();
  stream_info.proxy_protocol_version = header.version;
  if (header.has_inet_addresses) {
    stream_info.real_client = header.source;
    stream_info.proxy_destination = header.destination;
  }
  stream_info.proxy_authority = std::move(header.authority);
  stream_info.proxy_alpn = std::move(header.alpn);
  stream_info.proxy_unique_id = std::move(header.unique_id);
  data.drain(header.header_bytes);  // the next filters see the client's own bytes
  return network::FilterStatus::kContinue;
}

}  // namespace mcproxy::extensions::proxy_protocol

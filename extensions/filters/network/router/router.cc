#include "extensions/filters/network/router/router.h"

#include "source/common/logging/logger.h"

namespace mcproxy::extensions::router {

network::FilterStatus RouterFilter::onData(buffer::Buffer&, bool) {
  network::StreamInfo& stream_info = callbacks_->connection().streamInfo();
  if (stream_info.route != nullptr) return network::FilterStatus::kContinue;
  const mcproxy::router::Route* route = listener_.findRoute(stream_info.requested_server_name);
  if (route == nullptr) {
    LOG_DEBUG << "connection " << stream_info.connection_id << ": no route for SNI \""
              << stream_info.requested_server_name << "\" on listener " << listener_.name;
    callbacks_->connection().close(network::CloseReason::kNoRoute);
    return network::FilterStatus::kStopIteration;
  }
  stream_info.route = route;
  stream_info.route_table = &listener_;
  route->stats.connections.inc();
  return network::FilterStatus::kContinue;
}

}  // namespace mcproxy::extensions::router

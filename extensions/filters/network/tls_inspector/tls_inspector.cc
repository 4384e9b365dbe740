#include "extensions/filters/network/tls_inspector/tls_inspector.h"

#include "source/common/logging/logger.h"
#include "source/common/tls/client_hello.h"

namespace mcproxy::extensions::tls_inspector {

network::FilterStatus TlsInspectorFilter::onNewConnection() {
  network::Connection& connection = callbacks_->connection();
  timer_ = std::make_unique<event::Timer>(connection.dispatcher(), [&connection] {
    connection.close(network::CloseReason::kHandshakeTimeout);
  });
  timer_->arm(config_.handshake_timeout);
  return network::FilterStatus::kContinue;
}

network::FilterStatus TlsInspectorFilter::onData(buffer::Buffer& data, bool end_stream) {
  if (done_) return network::FilterStatus::kContinue;
  network::Connection& connection = callbacks_->connection();
  tls::ClientHelloInfo info;
  const tls::ParseResult result =
      tls::parseClientHello(data.view(), config_.max_client_hello_bytes, info);
  switch (result.status) {
    case tls::ParseStatus::kDone: {
      done_ = true;
      timer_.reset();
      network::StreamInfo& stream_info = connection.streamInfo();
      stream_info.requested_server_name = std::move(info.server_name);
      stream_info.alpn = std::move(info.alpn);
      return network::FilterStatus::kContinue;
    }
    case tls::ParseStatus::kNeedMoreData:
      if (end_stream) connection.close(network::CloseReason::kDownstreamClosedEarly);
      return network::FilterStatus::kStopIteration;
    case tls::ParseStatus::kNotTls:
    case tls::ParseStatus::kMalformed:
    case tls::ParseStatus::kTooLarge:
      break;
  }
  LOG_DEBUG << "connection " << connection.id() << ": ClientHello rejected ("
            << tls::parseStatusName(result.status) << "): " << result.error;
  connection.close(result.status == tls::ParseStatus::kNotTls ? network::CloseReason::kNotTls
                   : result.status == tls::ParseStatus::kTooLarge
                       ? network::CloseReason::kClientHelloTooLarge
                       : network::CloseReason::kBadClientHello);
  return network::FilterStatus::kStopIteration;
}

}  // namespace mcproxy::extensions::tls_inspector

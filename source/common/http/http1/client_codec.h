#pragma once

#include <http_parser.h>

#include <memory>
#include <string>
#include <vector>

#include "source/common/http/codec.h"
#include "source/common/http/http1/header_collector.h"

namespace mcproxy::http::http1 {

// HTTP/1.1 client side of a backend connection: one exchange at a time, kept alive between
// exchanges when the backend agrees. Request bodies go out as they arrive (chunked unless the
// request has a Content-Length); HTTP/1.1 backends get no trailers. The response is read no
// faster than the stream's owner consumes it. A WebSocket handshake answered with 101 turns the
// connection into a tunnel for that exchange, ended by either side closing.
class ClientCodec : public http::ClientCodec {
 public:
  ClientCodec(ClientCodecCallbacks& callbacks, size_t max_header_bytes, size_t max_buffered_body);
  ~ClientCodec() override;

  Stream& newStream(StreamCallbacks& callbacks) override;
  bool receive(const char* data, size_t len) override;
  void produce(std::string& out, size_t max) override;
  bool readPaused() const override;
  size_t activeStreams() const override { return exchange_ ? 1 : 0; }
  bool acceptsStreams() const override { return !exchange_ && keep_alive_ && !ended_; }
  bool exhausted() const override { return !keep_alive_ || ended_; }
  bool finished() const override { return ended_ || (!keep_alive_ && !exchange_); }
  void onConnectionEnd(StreamEndReason reason, std::string_view detail) override;
  std::string_view protocol() const override { return "HTTP/1.1"; }

 private:
  class Exchange;
  static const http_parser_settings& parserSettings();
  static int onMessageBegin(http_parser*);
  static int onHeaderField(http_parser*, const char*, size_t);
  static int onHeaderValue(http_parser*, const char*, size_t);
  static int onHeadersComplete(http_parser*);
  static int onBody(http_parser*, const char*, size_t);
  static int onMessageComplete(http_parser*);

  // The exchange in flight is over for its owner; the connection may carry another (when the
  // request went out whole and the backend keeps the connection).
  void retire(StreamEndReason reason, std::string_view detail);
  void endWith(StreamEndReason reason, std::string_view detail);
  // After a 101: the backend's bytes go to the exchange's owner as they are.
  void passTunnelBytes(std::string_view bytes);

  ClientCodecCallbacks& callbacks_;
  const size_t max_buffered_body_;
  http_parser parser_{};
  HeaderCollector collector_;
  std::string output_;  // the request head (and framing) not yet handed to produce()
  std::unique_ptr<Exchange> exchange_;
  // Ended exchanges, destroyed at the next receive() or produce(): an exchange's own call (its
  // owner letting go) may be on the stack when it ends.
  std::vector<std::unique_ptr<Exchange>> retired_;
  bool keep_alive_ = true;
  bool ended_ = false;
};

}  // namespace mcproxy::http::http1

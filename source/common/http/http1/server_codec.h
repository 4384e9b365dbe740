#pragma once

#include <http_parser.h>

#include <memory>
#include <string>
#include <vector>

#include "source/common/http/codec.h"
#include "source/common/http/http1/header_collector.h"

namespace mcproxy::http::http1 {

// HTTP/1.1 server side of a client connection (Debian's libhttp-parser). One exchange at a
// time: keep-alive, and a pipelined request waits until the response before it is done.
// Requests are held to HTTP/2's field syntax and turned into HTTP/2's shape (lower-case names,
// pseudo-headers first, Host as :authority). Smuggling shapes are refused with 400 through the
// stream's owner (its one local-reply path): Content-Length with Transfer-Encoding, two
// Content-Lengths, a transfer coding other than chunked, a bad chunk size, an oversized header
// section. "Expect: 100-continue" is answered here: bodies are streamed anyway. A WebSocket
// handshake (Upgrade: websocket) turns the connection into a tunnel once the response is a 101.
class ServerCodec : public http::ServerCodec {
 public:
  ServerCodec(ServerCodecCallbacks& callbacks, size_t max_header_bytes, size_t max_buffered_body);
  ~ServerCodec() override;

  bool receive(const char* data, size_t len) override;
  void produce(std::string& out, size_t max) override;
  bool finished() const override { return finished_ && output_.empty(); }
  bool readPaused() const override;
  void drain() override;
  std::optional<std::chrono::steady_clock::time_point> waitingForHeadersSince() const override {
    return waiting_since_;
  }
  void abort() override;
  std::string_view protocol() const override { return "HTTP/1.1"; }

 private:
  class Exchange;
  static const http_parser_settings& parserSettings();
  static int onMessageBegin(http_parser*);
  static int onUrl(http_parser*, const char*, size_t);
  static int onHeaderField(http_parser*, const char*, size_t);
  static int onHeaderValue(http_parser*, const char*, size_t);
  static int onHeadersComplete(http_parser*);
  static int onBody(http_parser*, const char*, size_t);
  static int onMessageComplete(http_parser*);

  // Records why a request is refused; returns the value that stops http_parser.
  int refuse(const char* why);
  // Parses what is buffered; a malformed request is answered with 400.
  void parse();
  void refuseRequest(const std::string& why);
  // After a WebSocket handshake: what the client sends goes to the exchange's owner as is.
  void passTunnelBytes();
  int headersComplete();
  // The response in flight ended: the next request may be parsed.
  void finishExchange();
  Exchange& newExchange();

  ServerCodecCallbacks& callbacks_;
  const size_t max_buffered_body_;
  http_parser parser_{};
  HeaderCollector collector_;
  std::string input_;       // received, not parsed yet (a pipelined request waits here)
  std::string output_;      // response bytes not yet handed to produce()
  size_t unsent_body_ = 0;  // body bytes in output_, reported sent as produce() hands them out
  std::unique_ptr<Exchange> exchange_;  // the request in flight
  // Ended exchanges, destroyed at the next receive() or produce(): an exchange's own call may
  // be on the stack when it ends (a pipelined request can begin inside it).
  std::vector<std::unique_ptr<Exchange>> retired_;
  // The exchange whose request the parser is in. Usually exchange_; a retired one when a
  // response ended before the parser saw its request's end (an answer given from the headers).
  Exchange* parsed_ = nullptr;
  std::string url_;
  std::string refusal_;
  bool keep_alive_ = true;
  bool finished_ = false;
  bool parsing_ = false;             // inside http_parser_execute (its callbacks may run)
  bool finish_after_parse_ = false;  // finishExchange() waits for the parser to return
  // Set while no complete request header section has arrived for the next request.
  std::optional<std::chrono::steady_clock::time_point> waiting_since_;
};

}  // namespace mcproxy::http::http1

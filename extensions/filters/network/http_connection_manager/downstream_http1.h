#pragma once

#include <http_parser.h>

#include <memory>
#include <string>

#include "extensions/filters/network/http_connection_manager/downstream_codec.h"

namespace mcproxy::extensions::http_connection_manager {

// The HTTP/1.1 server side of a client connection (Debian's libhttp-parser). Requests are
// handled one at a time (keep-alive; a pipelined request waits until the previous response is
// done). Request smuggling is refused with 400: Content-Length together with
// Transfer-Encoding, two Content-Lengths, a transfer coding other than chunked, a bad chunk
// size, or a header section larger than the limit.
class Http1DownstreamCodec : public DownstreamCodec, public DownstreamSide {
 public:
  Http1DownstreamCodec(DownstreamConnection& connection, size_t max_header_bytes,
                       size_t max_buffered_body);
  ~Http1DownstreamCodec() override;

  // DownstreamCodec
  bool receive(const char* data, size_t len) override;
  void produce(std::string& out, size_t max) override;
  bool finished() const override { return finished_ && output_.empty(); }
  bool readPaused() const override;
  void drain() override;
  std::optional<std::chrono::steady_clock::time_point> waitingForHeadersSince() const override {
    return waiting_since_;
  }
  void abort() override;

  // DownstreamSide
  void onResponseHeaders(ProxyStream& stream) override;
  void onResponseData(ProxyStream& stream) override;
  void onUpstreamFailure(ProxyStream& stream, int status, const std::string& reason) override;
  void onRequestBodyConsumed(ProxyStream& stream, size_t bytes) override;

 private:
  static int onMessageBegin(http_parser*);
  static int onUrl(http_parser*, const char*, size_t);
  static int onHeaderField(http_parser*, const char*, size_t);
  static int onHeaderValue(http_parser*, const char*, size_t);
  static int onHeadersComplete(http_parser*);
  static int onBody(http_parser*, const char*, size_t);
  static int onMessageComplete(http_parser*);

  // Records why a request is refused; returns the value that stops http_parser.
  int refuse(const char* why);
  // Parses what is buffered; false on a malformed request (a 400 is queued).
  bool parse();
  void badRequest(const std::string& why);
  void writeSimpleResponse(int status, const std::string& body);
  void finishResponse();

  DownstreamConnection& connection_;
  const size_t max_header_bytes_;
  const size_t max_buffered_body_;
  http_parser parser_{};
  http_parser_settings settings_{};
  std::string input_;   // received, not parsed yet (a pipelined request waits here)
  std::string output_;  // serialized response bytes not yet handed to produce()
  std::unique_ptr<ProxyStream> stream_;  // the request in flight
  std::string url_;
  std::string refusal_;
  std::string field_;
  bool last_was_value_ = false;
  size_t header_bytes_ = 0;
  bool keep_alive_ = true;
  bool chunked_response_ = false;
  bool head_request_ = false;
  bool upstream_started_ = false;  // startUpstream() took the request in flight
  bool body_done_ = false;         // the response body (and its end) went into output_
  bool finished_ = false;
  bool parsing_ = false;             // inside http_parser_execute (its callbacks may run)
  bool finish_after_parse_ = false;  // finishResponse() waits for the parser to return
  // Set while no complete request header section has arrived for the next request.
  std::optional<std::chrono::steady_clock::time_point> waiting_since_;
};

}  // namespace mcproxy::extensions::http_connection_manager

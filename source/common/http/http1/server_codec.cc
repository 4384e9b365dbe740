#include "source/common/http/http1/server_codec.h"

#include <climits>
#include <cstdio>

#include "source/common/logging/logger.h"

namespace mcproxy::http::http1 {
namespace {

ServerCodec* self(http_parser* parser) { return static_cast<ServerCodec*>(parser->data); }

// Appends one body piece as it goes on the wire: a chunk, or the bytes themselves.
void appendBody(std::string& out, std::string_view body, bool chunked) {
  if (chunked) {
    char size[24];
    std::snprintf(size, sizeof(size), "%zx\r\n", body.size());
    out.append(size).append(body).append("\r\n");
  } else {
    out.append(body);
  }
}

}  // namespace

// One request and its response.
class ServerCodec::Exchange : public Stream {
 public:
  explicit Exchange(ServerCodec& codec) : codec_(codec) {}

  void encodeHeaders(const HeaderMap& headers, bool end_stream) override {
    headers_encoded_ = true;
    const int status = headers.status();
    if (upgrade && status == 101) {
      encodeSwitchingProtocols(headers, end_stream);
      return;
    }
    bodyless_ = head_request || status == 204 || status == 304 || status < 200;
    const bool has_length = headers.get("content-length") != nullptr;
    chunked_ = !bodyless_ && !has_length && !end_stream;
    // The rest of a request body cannot be skipped safely: the connection ends with this
    // response. An HTTP/1.0 client reads a body of unknown length to the connection's end.
    if (!request_complete || (chunked_ && http_minor == 0)) codec_.keep_alive_ = false;
    std::string& out = codec_.output_;
    // Appended piece by piece: no temporary strings per field.
    out.append("HTTP/1.1 ").append(std::to_string(status)).append(" ");
    out.append(reasonPhrase(status)).append("\r\n");
    for (const Header& header : headers) {
      if (header.name[0] == ':') continue;
      out.append(header.name).append(": ").append(header.value).append("\r\n");
    }
    if (chunked_ && http_minor > 0) out.append("transfer-encoding: chunked\r\n");
    if (!bodyless_ && !has_length && end_stream) out.append("content-length: 0\r\n");
    if (!codec_.keep_alive_) out.append("connection: close\r\n");
    out.append("\r\n");
    codec_.callbacks_.scheduleFlush();
    if (end_stream) complete();
  }

  void encodeData(buffer::Buffer& data, bool end_stream) override {
    if (!data.empty()) {
      if (bodyless_) {
        // A HEAD response or a 204/304: no body goes out, but whoever sent it is not held up.
        const size_t n = data.size();
        data.clear();
        if (owner != nullptr) owner->onBodySent(n);
      } else {
        appendBody(codec_.output_, data.view(), chunked_ && http_minor > 0);
        codec_.unsent_body_ += data.size();
        data.clear();
      }
    }
    codec_.callbacks_.scheduleFlush();
    if (end_stream) {
      if (chunked_ && http_minor > 0) codec_.output_.append("0\r\n\r\n");
      complete();  // last: the exchange may be over after it
    }
  }

  void encodeTrailers(const HeaderMap& trailers) override {
    if (chunked_ && http_minor > 0) {
      std::string& out = codec_.output_;
      out.append("0\r\n");
      for (const Header& trailer : trailers) {
        out.append(trailer.name).append(": ").append(trailer.value).append("\r\n");
      }
      out.append("\r\n");
    }
    codec_.callbacks_.scheduleFlush();
    complete();  // last: the exchange may be over after it
  }

  void consumeBody(size_t bytes) override {
    unacked -= std::min(bytes, unacked);
    codec_.callbacks_.scheduleFlush();  // reading may resume (readPaused() changes)
  }

  void detach() override {
    owner = nullptr;
    if (response_complete_) return;
    // An exchange given up halfway: HTTP/1.1 can only say so by closing the connection.
    if (headers_encoded_) codec_.output_.clear();
    codec_.keep_alive_ = false;
    codec_.finished_ = true;
    codec_.callbacks_.scheduleFlush();
  }

  bool headersEncoded() const override { return headers_encoded_; }

  StreamCallbacks* owner = nullptr;
  HeaderMap request_headers;
  // A WebSocket handshake: after a 101 the connection carries the tunnel's bytes both ways.
  bool upgrade = false;
  HeaderMap trailers;
  bool request_complete = false;
  bool end_delivered = false;  // the owner has heard end_stream for the request
  bool head_request = false;
  unsigned short http_minor = 1;
  size_t unacked = 0;  // request body the owner has not consumed yet

 private:
  // The backend took the upgrade: from here on, both ways, the bytes are the tunnel's, unframed,
  // and the connection ends with them.
  void encodeSwitchingProtocols(const HeaderMap& headers, bool end_stream) {
    codec_.keep_alive_ = false;
    std::string& out = codec_.output_;
    out.append("HTTP/1.1 101 Switching Protocols\r\n");
    for (const Header& header : headers) {
      if (header.name[0] == ':' || header.name == "connection") continue;
      out.append(header.name).append(": ").append(header.value).append("\r\n");
    }
    out.append("connection: upgrade\r\n\r\n");
    codec_.callbacks_.scheduleFlush();
    if (end_stream) complete();
  }

  void complete() {
    response_complete_ = true;
    codec_.finishExchange();  // retires this exchange: its callers touch nothing after this
  }

  ServerCodec& codec_;
  bool headers_encoded_ = false;
  bool response_complete_ = false;
  bool bodyless_ = false;
  bool chunked_ = false;
};

const http_parser_settings& ServerCodec::parserSettings() {
  static const http_parser_settings kSettings = [] {
    http_parser_settings settings{};
    settings.on_message_begin = &onMessageBegin;
    settings.on_url = &onUrl;
    settings.on_header_field = &onHeaderField;
    settings.on_header_value = &onHeaderValue;
    settings.on_headers_complete = &onHeadersComplete;
    settings.on_body = &onBody;
    settings.on_message_complete = &onMessageComplete;
    return settings;
  }();
  return kSettings;
}

ServerCodec::ServerCodec(ServerCodecCallbacks& callbacks, size_t max_header_bytes,
                         size_t max_buffered_body)
    : callbacks_(callbacks), max_buffered_body_(max_buffered_body), collector_(max_header_bytes) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  waiting_since_ = std::chrono::steady_clock::now();
}

ServerCodec::~ServerCodec() { abort(); }

ServerCodec::Exchange& ServerCodec::newExchange() {
  exchange_ = std::make_unique<Exchange>(*this);
  exchange_->owner = &callbacks_.onNewStream(*exchange_);
  return *exchange_;
}

void ServerCodec::drain() {
  keep_alive_ = false;  // the response in flight says "connection: close"; then we close
  if (!exchange_) finished_ = true;
  callbacks_.scheduleFlush();
}

void ServerCodec::abort() {
  if (exchange_ && exchange_->owner != nullptr) {
    std::exchange(exchange_->owner, nullptr)
        ->onStreamEnd(StreamEndReason::kRemoteReset, "client connection closed");
  }
}

int ServerCodec::onMessageBegin(http_parser* parser) {
  ServerCodec* codec = self(parser);
  codec->url_.clear();
  codec->refusal_.clear();
  Exchange& exchange = codec->newExchange();
  codec->parsed_ = &exchange;
  codec->collector_.start(exchange.request_headers);
  return 0;
}

int ServerCodec::onUrl(http_parser* parser, const char* at, size_t len) {
  ServerCodec* codec = self(parser);
  if (!codec->collector_.count(len)) return codec->refuse("headers too large");
  codec->url_.append(at, len);
  return 0;
}

int ServerCodec::onHeaderField(http_parser* parser, const char* at, size_t len) {
  ServerCodec* codec = self(parser);
  return codec->collector_.onField(at, len) ? 0 : codec->refuse("headers too large");
}

int ServerCodec::onHeaderValue(http_parser* parser, const char* at, size_t len) {
  ServerCodec* codec = self(parser);
  return codec->collector_.onValue(at, len) ? 0 : codec->refuse("headers too large");
}

int ServerCodec::onHeadersComplete(http_parser* parser) { return self(parser)->headersComplete(); }

int ServerCodec::headersComplete() {
  Exchange& exchange = *parsed_;
  // As HTTP/2 sees it: lower-case names, pseudo-headers first, Host as :authority.
  if (!validPath(url_)) return refuse("invalid request target");
  HeaderMap& headers = exchange.request_headers;
  std::string authority;
  int content_lengths = 0;
  int hosts = 0;
  bool expects_continue = false;
  std::string upgrade;  // the Upgrade field's value, lower-cased
  // Fields that go on are compacted to the front, in order.
  size_t kept = 0;
  for (Header& header : headers) {
    if (!validHeaderName(header.name)) return refuse("invalid header name");
    if (!validHeaderValue(header.value)) return refuse("invalid character in a header value");
    if (header.name == "upgrade") {
      upgrade = header.value;
      lowerCaseInPlace(upgrade);
    }
    if (header.name == "host") {
      ++hosts;
      authority = std::move(header.value);
      continue;
    }
    if (header.name == "expect") {
      // Bodies are streamed anyway: answer 100 Continue here instead of waiting on a backend.
      std::string value = header.value;
      lowerCaseInPlace(value);
      if (value != "100-continue") return refuse("unknown Expect");
      expects_continue = true;
      continue;
    }
    if (header.name == "content-length") ++content_lengths;
    if (header.name == "transfer-encoding") {
      std::string value = header.value;
      lowerCaseInPlace(value);
      if (value != "chunked") return refuse("Transfer-Encoding other than chunked");
    }
    // Connection, Keep-Alive, Transfer-Encoding and the like describe this hop only.
    if (isHopByHop(header.name, header.value)) continue;
    if (&headers[kept] != &header) headers[kept] = std::move(header);
    ++kept;
  }
  headers.fields().resize(kept);
  if (content_lengths > 1) return refuse("more than one Content-Length");
  if (hosts > 1) return refuse("more than one Host header");  // RFC 9112 §3.2
  if (authority.empty()) return refuse("no Host header");
  if (!validAuthority(authority)) return refuse("invalid Host header");
  if (parser_.method == HTTP_CONNECT) return refuse("CONNECT is not proxied");
  // With Connection: upgrade, http_parser stops after this request: what follows is the new
  // protocol's. A WebSocket handshake goes on as one (the shared shape of http/upgrade.h); any
  // other upgrade (h2c, TLS) is ignored, as RFC 9110 §7.8 allows, and the connection ends with
  // the response.
  // Without Content-Length or chunked framing a request has no body (RFC 9112 §6.3).
  const bool framed_body = (parser_.flags & F_CHUNKED) != 0 ||
                           (parser_.content_length != 0 && parser_.content_length != ULLONG_MAX);
  if (parser_.upgrade) {
    if (upgrade == "websocket" && parser_.method == HTTP_GET) {
      if (framed_body) return refuse("a WebSocket handshake with a body");
      exchange.upgrade = true;
      headers.add("upgrade", "websocket");  // the shared shape keeps it (Connection goes)
    } else {
      keep_alive_ = false;
    }
  }
  headers.fields().insert(headers.begin(), 4, Header{});
  headers[0] = {":method", http_method_str(static_cast<http_method>(parser_.method))};
  headers[1] = {":scheme", "https"};
  headers[2] = {":path", std::move(url_)};
  headers[3] = {":authority", std::move(authority)};
  exchange.head_request = parser_.method == HTTP_HEAD;
  exchange.http_minor = parser_.http_minor;
  waiting_since_.reset();
  keep_alive_ = keep_alive_ && http_should_keep_alive(&parser_) != 0;
  if (expects_continue && parser_.http_minor > 0) {
    output_ += "HTTP/1.1 100 Continue\r\n\r\n";
    callbacks_.scheduleFlush();
  }
  // A request without a body is complete with its headers, and goes upstream without an empty
  // body. An upgrade's body is the tunnel, which ends when the connection does.
  const bool has_body = exchange.upgrade || framed_body;
  if (!has_body) {
    exchange.request_complete = true;
    exchange.end_delivered = true;
  }
  collector_.start(exchange.trailers);  // fields after a chunked body are its trailers
  if (exchange.owner != nullptr) exchange.owner->onHeaders(std::move(headers), !has_body);
  return 0;
}

int ServerCodec::onBody(http_parser* parser, const char* at, size_t len) {
  Exchange& exchange = *self(parser)->parsed_;
  exchange.unacked += len;
  if (exchange.owner != nullptr) exchange.owner->onData({at, len}, false);
  return 0;
}

int ServerCodec::onMessageComplete(http_parser* parser) {
  ServerCodec* codec = self(parser);
  Exchange& exchange = *codec->parsed_;
  codec->parsed_ = nullptr;
  codec->collector_.stop();
  if (exchange.upgrade) {
    // The handshake's end, not the request's: the tunnel's bytes follow (parse()).
    http_parser_pause(parser, 1);
    return 0;
  }
  for (const Header& trailer : exchange.trailers) {
    if (!validHeaderName(trailer.name) || !validHeaderValue(trailer.value) ||
        isHopByHop(trailer.name, trailer.value)) {
      return codec->refuse("invalid trailer field");
    }
  }
  exchange.request_complete = true;
  if (!exchange.end_delivered) {
    exchange.end_delivered = true;
    if (exchange.owner != nullptr) {
      if (exchange.trailers.empty()) {
        exchange.owner->onData({}, true);
      } else {
        exchange.owner->onTrailers(std::move(exchange.trailers));
      }
    }
  }
  // One exchange at a time: the next request (pipelined) waits until this response is done
  // (unless it is done already: answered from the headers).
  if (codec->exchange_.get() == &exchange) http_parser_pause(parser, 1);
  return 0;
}

bool ServerCodec::receive(const char* data, size_t len) {
  retired_.clear();            // no exchange's call is on the stack here
  if (finished_) return true;  // after a 400 or Connection: close, the rest is ignored
  input_.append(data, len);
  parse();
  return true;
}

void ServerCodec::parse() {
  if (input_.empty() || finished_) return;
  if (exchange_ && exchange_->upgrade && parsed_ == nullptr) {
    passTunnelBytes();
    return;
  }
  if (exchange_ && exchange_->request_complete) return;  // paused until the response is done
  parsing_ = true;
  const size_t parsed =
      http_parser_execute(&parser_, &parserSettings(), input_.data(), input_.size());
  parsing_ = false;
  const http_errno error = HTTP_PARSER_ERRNO(&parser_);
  if (error != HPE_OK && error != HPE_PAUSED) {
    refuseRequest(refusal_.empty() ? http_errno_description(error) : refusal_);
    return;
  }
  input_.erase(0, parsed);
  if (finish_after_parse_) {
    finish_after_parse_ = false;
    finishExchange();
    return;
  }
  if (exchange_ && exchange_->upgrade && parsed_ == nullptr) passTunnelBytes();
}

void ServerCodec::passTunnelBytes() {
  if (input_.empty()) return;
  Exchange& exchange = *exchange_;
  exchange.unacked += input_.size();
  std::string bytes;
  bytes.swap(input_);
  if (exchange.owner != nullptr) exchange.owner->onData(bytes, false);
}

int ServerCodec::refuse(const char* why) {
  refusal_ = why;
  return -1;  // any value but 0, 1 and 2 makes http_parser stop with an error
}

void ServerCodec::refuseRequest(const std::string& why) {
  LOG_DEBUG << "HTTP/1.1 from client refused: " << why;
  keep_alive_ = false;
  input_.clear();
  finish_after_parse_ = false;
  parsed_ = nullptr;
  // The answer goes through the stream's owner and its one local-reply path; a request that
  // broke before its first byte parsed gets a stream for that.
  if (!exchange_) newExchange();
  if (exchange_->owner != nullptr && !exchange_->headersEncoded()) {
    exchange_->owner->onDecodeError(400, "bad request: " + why);
  }
  if (exchange_ && exchange_->owner != nullptr) {
    // No answer could be given (a response had started): the connection just ends.
    std::exchange(exchange_->owner, nullptr)->onStreamEnd(StreamEndReason::kRemoteReset, why);
  }
  finished_ = true;
  callbacks_.scheduleFlush();
}

void ServerCodec::finishExchange() {
  if (parsing_) {
    // The response ended from inside a parser callback (answered at once, from the headers):
    // the parser still holds this request, so it stops here and the exchange is let go once
    // http_parser_execute has returned (parse()).
    finish_after_parse_ = true;
    http_parser_pause(&parser_, 1);
    return;
  }
  if (!exchange_) return;
  if (!exchange_->request_complete) keep_alive_ = false;
  Exchange& ended = *exchange_;
  retired_.push_back(std::move(exchange_));
  if (ended.owner != nullptr) {
    std::exchange(ended.owner, nullptr)->onStreamEnd(StreamEndReason::kComplete, "");
  }
  if (!keep_alive_) {
    finished_ = true;
    callbacks_.scheduleFlush();
    return;
  }
  waiting_since_ = std::chrono::steady_clock::now();
  http_parser_pause(&parser_, 0);
  parse();  // a pipelined request may be waiting
  callbacks_.scheduleFlush();
}

bool ServerCodec::readPaused() const {
  if (finished_) return true;
  if (!exchange_) return false;
  // A request in flight whose owner has not taken its body, or a complete request whose response
  // is not done yet (the next request would have to wait anyway).
  return exchange_->unacked >= max_buffered_body_ ||
         (exchange_->request_complete && !input_.empty());
}

void ServerCodec::produce(std::string& out, size_t max) {
  retired_.clear();  // no exchange's call is on the stack here
  size_t moved;
  if (out.empty() && output_.size() <= max) {
    moved = output_.size();
    out.swap(output_);  // the usual case: hand the whole response over without a copy
  } else {
    moved = std::min(max > out.size() ? max - out.size() : 0, output_.size());
    out.append(output_, 0, moved);
    output_.erase(0, moved);
  }
  if (unsent_body_ > 0 && moved > 0) {
    // Framing counts as body here: an estimate that errs towards letting the sender go on.
    const size_t sent = std::min(moved, unsent_body_);
    unsent_body_ -= sent;
    if (exchange_ && exchange_->owner != nullptr) exchange_->owner->onBodySent(sent);
  }
}

}  // namespace mcproxy::http::http1

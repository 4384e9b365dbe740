#include "source/common/http/http1/client_codec.h"

#include <climits>
#include <cstdio>

#include "source/common/buffer/buffer_queue.h"
#include "source/common/logging/logger.h"

namespace mcproxy::http::http1 {
namespace {

ClientCodec* self(http_parser* parser) { return static_cast<ClientCodec*>(parser->data); }

}  // namespace

class ClientCodec::Exchange : public Stream {
 public:
  Exchange(ClientCodec& codec, StreamCallbacks& owner) : owner(&owner), codec_(codec) {}

  std::optional<std::chrono::steady_clock::time_point> connectionReadyTime() const override {
    return codec_.callbacks_.readyTime();
  }

  void encodeHeaders(const HeaderMap& headers, bool end_stream) override {
    headers_encoded_ = true;
    request_complete = end_stream;
    const std::string_view method = headers.method();
    head_request = method == "HEAD";
    std::string& out = codec_.output_;
    out.append(method.empty() ? "GET" : method).append(" ");
    out.append(headers.path().empty() ? "/" : headers.path()).append(" HTTP/1.1\r\n");
    if (!headers.authority().empty())
      out.append("host: ").append(headers.authority()).append("\r\n");
    bool has_length = false;
    for (const Header& header : headers) {
      // HTTP/1.1 cannot carry trailers, so "te: trailers" would promise what cannot come.
      if (header.name[0] == ':' || header.name == "host" || header.name == "te") continue;
      if (header.name == "content-length") has_length = true;
      if (header.name == "upgrade") upgrade = true;
      out.append(header.name).append(": ").append(header.value).append("\r\n");
    }
    // A WebSocket handshake (http/upgrade.h): its body is the tunnel, unframed, sent only once
    // the backend switched protocols.
    if (upgrade) out.append("connection: upgrade\r\n");
    chunked = !has_length && !end_stream && !upgrade;
    if (chunked) out.append("transfer-encoding: chunked\r\n");
    out.append("\r\n");
    if (end_stream) request_sent = true;
    codec_.callbacks_.scheduleFlush();
  }
  void encodeData(buffer::Buffer& data, bool end_stream) override {
    body.append(data);
    if (end_stream) request_complete = true;
    codec_.callbacks_.scheduleFlush();
  }
  void encodeTrailers(const HeaderMap&) override {
    request_complete = true;  // dropped: an HTTP/1.1 backend gets no trailers
    codec_.callbacks_.scheduleFlush();
  }
  void consumeBody(size_t bytes) override {
    const bool was_paused = codec_.readPaused();
    unacked -= std::min(bytes, unacked);
    if (was_paused && !codec_.readPaused()) codec_.callbacks_.onReadResumed();
  }
  void detach() override {
    owner = nullptr;
    if (codec_.exchange_.get() != this) return;
    // Mid-exchange, the connection's state is unknown: it cannot carry another request.
    if (!response_complete || !request_sent) codec_.keep_alive_ = false;
    codec_.retire(StreamEndReason::kComplete, "");
  }
  bool headersEncoded() const override { return headers_encoded_; }

  // Moves request body into `out` as room allows; the final chunk once the body is complete.
  void produceBody(std::string& out, size_t max) {
    if (request_sent || !headers_encoded_ || (upgrade && !upgraded)) return;
    const size_t room = out.size() < max ? max - out.size() : 0;
    const size_t n = std::min(room, body.size());
    if (n > 0) {
      if (chunked) {
        char size[24];
        std::snprintf(size, sizeof(size), "%zx\r\n", n);
        out.append(size);
      }
      body.appendTo(out, n);
      if (chunked) out.append("\r\n");
      if (owner != nullptr) owner->onBodySent(n);
    }
    if (request_complete && body.empty()) {
      if (chunked) out.append("0\r\n\r\n");
      request_sent = true;
    }
  }

  StreamCallbacks* owner;
  buffer::BufferQueue body;  // request body not yet handed to produce()
  HeaderMap response_headers;
  bool request_complete = false;
  bool request_sent = false;  // the whole request went into the output
  bool chunked = false;
  bool head_request = false;
  bool end_delivered = false;
  bool response_complete = false;
  bool upgrade = false;   // the request is a WebSocket handshake
  bool upgraded = false;  // the backend answered it with 101: the bytes are the tunnel's
  size_t unacked = 0;     // response body the owner has not consumed yet

 private:
  ClientCodec& codec_;
  bool headers_encoded_ = false;
};

const http_parser_settings& ClientCodec::parserSettings() {
  static const http_parser_settings kSettings = [] {
    http_parser_settings settings{};
    settings.on_message_begin = &onMessageBegin;
    settings.on_header_field = &onHeaderField;
    settings.on_header_value = &onHeaderValue;
    settings.on_headers_complete = &onHeadersComplete;
    settings.on_body = &onBody;
    settings.on_message_complete = &onMessageComplete;
    return settings;
  }();
  return kSettings;
}

ClientCodec::ClientCodec(ClientCodecCallbacks& callbacks, size_t max_header_bytes,
                         size_t max_buffered_body)
    : callbacks_(callbacks), max_buffered_body_(max_buffered_body), collector_(max_header_bytes) {}

ClientCodec::~ClientCodec() {
  onConnectionEnd(StreamEndReason::kConnectionFailure, "upstream connection closed");
}

Stream& ClientCodec::newStream(StreamCallbacks& callbacks) {
  exchange_ = std::make_unique<Exchange>(*this, callbacks);
  http_parser_init(&parser_, HTTP_RESPONSE);
  parser_.data = this;
  return *exchange_;
}

int ClientCodec::onMessageBegin(http_parser* parser) {
  ClientCodec* codec = self(parser);
  if (!codec->exchange_) return -1;
  codec->exchange_->response_headers.clear();
  codec->collector_.start(codec->exchange_->response_headers);
  return 0;
}

int ClientCodec::onHeaderField(http_parser* parser, const char* at, size_t len) {
  return self(parser)->collector_.onField(at, len) ? 0 : -1;
}

int ClientCodec::onHeaderValue(http_parser* parser, const char* at, size_t len) {
  return self(parser)->collector_.onValue(at, len) ? 0 : -1;
}

int ClientCodec::onHeadersComplete(http_parser* parser) {
  ClientCodec* codec = self(parser);
  if (!codec->exchange_) return -1;  // given up by its owner meanwhile: stop
  Exchange& exchange = *codec->exchange_;
  codec->collector_.stop();
  if (parser->status_code == 101 && exchange.upgrade) {
    exchange.upgraded = true;
    codec->keep_alive_ = false;  // the connection is the tunnel's now
    HeaderMap& headers = exchange.response_headers;
    headers.fields().insert(headers.begin(), {":status", "101"});
    std::erase_if(headers.fields(), [](const Header& header) {
      return header.name != "upgrade" && isHopByHop(header.name, header.value);
    });
    if (exchange.owner != nullptr) exchange.owner->onHeaders(std::move(headers), false);
    codec->callbacks_.scheduleFlush();  // request bytes held for the tunnel may go
    return 0;
  }
  if (parser->status_code < 200) {  // 1xx: no body; the real response follows
    exchange.response_headers.clear();
    return 0;
  }
  HeaderMap& headers = exchange.response_headers;
  headers.fields().insert(headers.begin(), {":status", std::to_string(parser->status_code)});
  // Transfer-Encoding, Connection and the like describe this hop only.
  std::erase_if(headers.fields(),
                [](const Header& header) { return isHopByHop(header.name, header.value); });
  codec->keep_alive_ = codec->keep_alive_ && http_should_keep_alive(parser) != 0;
  const int status = parser->status_code;
  const bool no_body = exchange.head_request || status == 204 || status == 304 ||
                       ((parser->flags & F_CHUNKED) == 0 && parser->content_length == 0);
  exchange.end_delivered = no_body;
  if (exchange.owner != nullptr) exchange.owner->onHeaders(std::move(headers), no_body);
  // A response to HEAD announces a length it does not send.
  return exchange.head_request ? 1 : 0;
}

int ClientCodec::onBody(http_parser* parser, const char* at, size_t len) {
  if (!self(parser)->exchange_) return -1;
  Exchange& exchange = *self(parser)->exchange_;
  exchange.unacked += len;
  if (exchange.owner != nullptr) exchange.owner->onData({at, len}, false);
  return 0;
}

int ClientCodec::onMessageComplete(http_parser* parser) {
  ClientCodec* codec = self(parser);
  if (!codec->exchange_) return -1;
  Exchange& exchange = *codec->exchange_;
  if (exchange.upgraded) {
    http_parser_pause(parser, 1);  // the handshake ended; the tunnel's bytes follow
    return 0;
  }
  if (parser->status_code < 200) return 0;  // a 1xx ended; the real response follows
  exchange.response_complete = true;
  if (!exchange.end_delivered) {
    exchange.end_delivered = true;
    if (exchange.owner != nullptr) exchange.owner->onData({}, true);
  }
  http_parser_pause(parser, 1);  // what follows (if anything) is not ours to parse
  return 0;
}

bool ClientCodec::receive(const char* data, size_t len) {
  retired_.clear();  // no exchange's call is on the stack here
  if (ended_) return true;
  if (!exchange_ || exchange_->response_complete) {
    // Bytes nobody asked for: the connection cannot be trusted with another request.
    keep_alive_ = false;
    return false;
  }
  if (exchange_->upgraded) {
    passTunnelBytes({data, len});
    return true;
  }
  const size_t parsed = http_parser_execute(&parser_, &parserSettings(), data, len);
  const http_errno error = HTTP_PARSER_ERRNO(&parser_);
  if (!exchange_) return keep_alive_;  // its owner let go while it was parsed
  if (exchange_->upgraded && (error == HPE_OK || error == HPE_PAUSED)) {
    passTunnelBytes({data + parsed, len - parsed});
    return true;
  }
  if (error != HPE_OK && error != HPE_PAUSED) {
    keep_alive_ = false;
    endWith(StreamEndReason::kConnectionFailure,
            std::string("upstream sent bad HTTP/1.1: ") + http_errno_description(error));
    return false;
  }
  if (exchange_ && exchange_->response_complete) {
    if (parsed < len) keep_alive_ = false;  // more than the response: not reusable
    retire(StreamEndReason::kComplete, "");
  }
  return true;
}

void ClientCodec::passTunnelBytes(std::string_view bytes) {
  if (bytes.empty()) return;
  exchange_->unacked += bytes.size();
  if (exchange_->owner != nullptr) exchange_->owner->onData(bytes, false);
}

void ClientCodec::retire(StreamEndReason reason, std::string_view detail) {
  if (!exchange_) return;
  // The rest of a request the backend answered early cannot be skipped: not reusable.
  if (!exchange_->request_sent) keep_alive_ = false;
  Exchange& ended = *exchange_;
  retired_.push_back(std::move(exchange_));
  if (ended.owner != nullptr) std::exchange(ended.owner, nullptr)->onStreamEnd(reason, detail);
  callbacks_.onCapacityChanged();
}

void ClientCodec::endWith(StreamEndReason reason, std::string_view detail) {
  if (exchange_) retire(reason, detail);
}

bool ClientCodec::readPaused() const {
  return exchange_ && exchange_->unacked >= max_buffered_body_;
}

void ClientCodec::produce(std::string& out, size_t max) {
  retired_.clear();  // no exchange's call is on the stack here
  if (!output_.empty()) {
    if (out.empty()) {
      out.swap(output_);
    } else {
      out.append(output_);
      output_.clear();
    }
  }
  if (exchange_) exchange_->produceBody(out, max);
}

void ClientCodec::onConnectionEnd(StreamEndReason reason, std::string_view detail) {
  if (ended_) return;
  ended_ = true;
  keep_alive_ = false;
  if (exchange_ && exchange_->upgraded && reason == StreamEndReason::kRemoteReset) {
    // The backend closed the tunnel: its end, as a body's.
    exchange_->response_complete = true;
    if (exchange_->owner != nullptr) exchange_->owner->onData({}, true);
    retire(StreamEndReason::kComplete, "");
    return;
  }
  if (exchange_ && reason == StreamEndReason::kRemoteReset && !exchange_->response_complete) {
    // The backend closed: that ends a response whose length is "until the connection closes".
    http_parser_execute(&parser_, &parserSettings(), nullptr, 0);
    if (exchange_ && exchange_->response_complete) {
      retire(StreamEndReason::kComplete, "");
      return;
    }
  }
  endWith(reason, detail);
}

}  // namespace mcproxy::http::http1

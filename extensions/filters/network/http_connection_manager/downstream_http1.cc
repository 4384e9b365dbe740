#include "extensions/filters/network/http_connection_manager/downstream_http1.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdio>

#include "source/common/logging/logger.h"

namespace mcproxy::extensions::http_connection_manager {
namespace {

void lowerInPlace(std::string& text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

std::string lower(std::string text) {
  lowerInPlace(text);
  return text;
}

const char* reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

Http1DownstreamCodec* self(http_parser* parser) {
  return static_cast<Http1DownstreamCodec*>(parser->data);
}

}  // namespace

Http1DownstreamCodec::Http1DownstreamCodec(DownstreamConnection& connection,
                                           size_t max_header_bytes, size_t max_buffered_body)
    : connection_(connection),
      max_header_bytes_(max_header_bytes),
      max_buffered_body_(max_buffered_body) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  settings_.on_message_begin = &onMessageBegin;
  settings_.on_url = &onUrl;
  settings_.on_header_field = &onHeaderField;
  settings_.on_header_value = &onHeaderValue;
  settings_.on_headers_complete = &onHeadersComplete;
  settings_.on_body = &onBody;
  settings_.on_message_complete = &onMessageComplete;
  waiting_since_ = std::chrono::steady_clock::now();
}

Http1DownstreamCodec::~Http1DownstreamCodec() { abort(); }

void Http1DownstreamCodec::drain() {
  keep_alive_ = false;  // the response in flight says "connection: close"; then we close
  if (!stream_) finished_ = true;
  connection_.scheduleFlush();
}

void Http1DownstreamCodec::abort() {
  if (stream_ && stream_->upstream) stream_->upstream->cancel(*stream_);
}

int Http1DownstreamCodec::onMessageBegin(http_parser* parser) {
  Http1DownstreamCodec* codec = self(parser);
  codec->stream_ = std::make_unique<ProxyStream>();
  codec->stream_->downstream = codec;
  codec->stream_->request_headers.reserve(16);
  codec->url_.clear();
  codec->field_.clear();
  codec->last_was_value_ = false;
  codec->header_bytes_ = 0;
  codec->body_done_ = false;
  codec->upstream_started_ = false;
  return 0;
}

int Http1DownstreamCodec::onUrl(http_parser* parser, const char* at, size_t len) {
  Http1DownstreamCodec* codec = self(parser);
  codec->header_bytes_ += len;
  if (codec->header_bytes_ > codec->max_header_bytes_) return codec->refuse("headers too large");
  codec->url_.append(at, len);
  return 0;
}

int Http1DownstreamCodec::onHeaderField(http_parser* parser, const char* at, size_t len) {
  Http1DownstreamCodec* codec = self(parser);
  codec->header_bytes_ += len;
  if (codec->header_bytes_ > codec->max_header_bytes_) return codec->refuse("headers too large");
  auto& headers = codec->stream_->request_headers;
  if (codec->last_was_value_ || headers.empty()) {
    headers.push_back({std::string(at, len), ""});
  } else {
    headers.back().name.append(at, len);
  }
  codec->last_was_value_ = false;
  return 0;
}

int Http1DownstreamCodec::onHeaderValue(http_parser* parser, const char* at, size_t len) {
  Http1DownstreamCodec* codec = self(parser);
  codec->header_bytes_ += len;
  if (codec->header_bytes_ > codec->max_header_bytes_) return codec->refuse("headers too large");
  codec->stream_->request_headers.back().value.append(at, len);
  codec->last_was_value_ = true;
  return 0;
}

int Http1DownstreamCodec::onHeadersComplete(http_parser* parser) {
  Http1DownstreamCodec* codec = self(parser);
  ProxyStream& stream = *codec->stream_;
  // As HTTP/2 sees it: lower-case names, pseudo-headers first, Host as :authority.
  if (!http::validPath(codec->url_)) return codec->refuse("invalid request target");
  http::HeaderList headers;
  headers.reserve(stream.request_headers.size() + 8);  // + pseudo-headers and forwarding ones
  headers.push_back({":method", http_method_str(static_cast<http_method>(parser->method))});
  headers.push_back({":scheme", "https"});
  headers.push_back({":path", std::move(codec->url_)});
  std::string authority;
  int content_lengths = 0;
  bool expects_continue = false;
  for (auto& header : stream.request_headers) {
    lowerInPlace(header.name);
    if (!http::validHeaderName(header.name)) return codec->refuse("invalid header name");
    if (!http::validHeaderValue(header.value)) {
      return codec->refuse("invalid character in a header value");
    }
    if (header.name == "host") {
      authority = header.value;
      continue;
    }
    if (header.name == "expect") {
      // We stream bodies anyway: answer 100 Continue here instead of waiting on the backend.
      if (lower(header.value) != "100-continue") return codec->refuse("unknown Expect");
      expects_continue = true;
      continue;
    }
    if (header.name == "content-length") ++content_lengths;
    if (header.name == "transfer-encoding" && lower(header.value) != "chunked") {
      return codec->refuse("Transfer-Encoding other than chunked");
    }
    headers.push_back(std::move(header));
  }
  if (content_lengths > 1) return codec->refuse("more than one Content-Length");
  if (authority.empty()) return codec->refuse("no Host header");
  if (!http::validAuthority(authority)) return codec->refuse("invalid Host header");
  if (parser->method == HTTP_CONNECT || parser->upgrade) {
    return codec->refuse("CONNECT and Upgrade are not proxied");
  }
  headers.insert(headers.begin() + 3, {":authority", authority});
  stream.request_headers = std::move(headers);
  codec->waiting_since_.reset();
  codec->keep_alive_ = http_should_keep_alive(parser) != 0;
  codec->head_request_ = parser->method == HTTP_HEAD;
  if (expects_continue && parser->http_minor > 0) {
    codec->output_ += "HTTP/1.1 100 Continue\r\n\r\n";
    codec->connection_.scheduleFlush();
  }
  // A request with no body starts at onMessageComplete, which follows at once: complete from
  // the start, it goes upstream without an empty chunked body (HTTP/1.1) or DATA (HTTP/2).
  const bool has_body = (parser->flags & F_CHUNKED) != 0 ||
                        (parser->content_length != 0 && parser->content_length != ULLONG_MAX);
  if (has_body) {
    codec->upstream_started_ = true;
    codec->connection_.startUpstream(stream);
  }
  return 0;
}

int Http1DownstreamCodec::onBody(http_parser* parser, const char* at, size_t len) {
  Http1DownstreamCodec* codec = self(parser);
  ProxyStream& stream = *codec->stream_;
  stream.request_body.append(at, len);
  if (stream.upstream) stream.upstream->onRequestData(stream);
  return 0;
}

int Http1DownstreamCodec::onMessageComplete(http_parser* parser) {
  Http1DownstreamCodec* codec = self(parser);
  ProxyStream& stream = *codec->stream_;
  stream.request_complete = true;
  if (!codec->upstream_started_) {
    codec->upstream_started_ = true;
    codec->connection_.startUpstream(stream);
  } else {
    codec->connection_.onRequestComplete(stream);
    if (stream.upstream) stream.upstream->onRequestData(stream);
  }
  // One request at a time: the next one (pipelined) waits until this response is done.
  http_parser_pause(parser, 1);
  return 0;
}

bool Http1DownstreamCodec::receive(const char* data, size_t len) {
  if (finished_) return true;  // after a 400 or Connection: close, the rest is ignored
  input_.append(data, len);
  return parse();
}

bool Http1DownstreamCodec::parse() {
  if (input_.empty() || finished_) return true;
  if (stream_ && stream_->request_complete) return true;  // paused until the response is done
  parsing_ = true;
  const size_t parsed = http_parser_execute(&parser_, &settings_, input_.data(), input_.size());
  parsing_ = false;
  const http_errno error = HTTP_PARSER_ERRNO(&parser_);
  if (error != HPE_OK && error != HPE_PAUSED) {
    badRequest(refusal_.empty() ? http_errno_description(error) : refusal_);
    return true;  // the 400 is the answer; the connection closes after it
  }
  input_.erase(0, parsed);
  if (finish_after_parse_) {
    finish_after_parse_ = false;
    finishResponse();
  }
  return true;
}

int Http1DownstreamCodec::refuse(const char* why) {
  refusal_ = why;
  return -1;  // any value but 0, 1 and 2 makes http_parser stop with an error
}

void Http1DownstreamCodec::badRequest(const std::string& why) {
  LOG_DEBUG << "HTTP/1.1 from client refused: " << why;
  if (stream_ && stream_->upstream) stream_->upstream->cancel(*stream_);
  keep_alive_ = false;
  if (!(stream_ && stream_->response_started)) writeSimpleResponse(400, "bad request: " + why);
  finished_ = true;
  input_.clear();
  connection_.scheduleFlush();
}

void Http1DownstreamCodec::writeSimpleResponse(int status, const std::string& body) {
  output_ += "HTTP/1.1 " + std::to_string(status) + " " + reasonPhrase(status) +
             "\r\ncontent-type: text/plain\r\ncontent-length: " + std::to_string(body.size() + 1) +
             "\r\nserver: mc-proxy\r\n" + (keep_alive_ ? "" : "connection: close\r\n") + "\r\n" +
             body + "\n";
}

bool Http1DownstreamCodec::readPaused() const {
  if (finished_) return true;
  if (!stream_) return false;
  // A request in flight with a full body buffer, or a complete request whose response is not
  // done yet (the next request would have to wait anyway).
  return stream_->request_body.size() >= max_buffered_body_ ||
         (stream_->request_complete && !input_.empty());
}

void Http1DownstreamCodec::onResponseHeaders(ProxyStream& stream) {
  stream.response_started = true;
  const std::string* status_text = http::find(stream.response_headers, ":status");
  const int status = status_text ? std::atoi(status_text->c_str()) : 502;
  const bool bodyless = head_request_ || status == 204 || status == 304 || status < 200;
  const std::string* length = http::find(stream.response_headers, "content-length");
  chunked_response_ = !bodyless && length == nullptr;
  if (chunked_response_ && parser_.http_minor == 0)
    keep_alive_ = false;  // HTTP/1.0: close-delimited
  // Appended piece by piece: no temporary strings per header.
  output_.append("HTTP/1.1 ").append(std::to_string(status)).append(" ");
  output_.append(reasonPhrase(status)).append("\r\n");
  // Hop-by-hop fields were dropped when the upstream received the headers.
  for (const auto& header : stream.response_headers) {
    if (header.name[0] == ':') continue;
    output_.append(header.name).append(": ").append(header.value).append("\r\n");
  }
  if (chunked_response_ && parser_.http_minor > 0) output_.append("transfer-encoding: chunked\r\n");
  if (!keep_alive_) output_.append("connection: close\r\n");
  output_.append("\r\n");
  if (bodyless) {
    stream.response_body.clear();
    body_done_ = true;
    if (stream.response_complete) finishResponse();
  } else {
    onResponseData(stream);
  }
  connection_.scheduleFlush();
}

void Http1DownstreamCodec::onResponseData(ProxyStream& stream) {
  if (!stream.response_started || body_done_) return;
  if (!stream.response_body.empty()) {
    const size_t n = stream.response_body.size();
    if (chunked_response_ && parser_.http_minor > 0) {
      char size[24];
      std::snprintf(size, sizeof(size), "%zx\r\n", n);
      output_ += size + stream.response_body + "\r\n";
    } else {
      output_ += stream.response_body;
    }
    stream.response_body.clear();
    if (stream.upstream) stream.upstream->onResponseBodyConsumed(stream, n);
  }
  if (stream.response_complete) {
    if (chunked_response_ && parser_.http_minor > 0) {
      output_ += "0\r\n";
      // Hop-by-hop fields were dropped when the upstream received the trailers.
      for (const auto& trailer : stream.response_trailers) {
        output_ += trailer.name + ": " + trailer.value + "\r\n";
      }
      output_ += "\r\n";
    }
    body_done_ = true;
    finishResponse();
  }
  connection_.scheduleFlush();
}

void Http1DownstreamCodec::finishResponse() {
  if (parsing_) {
    // The response ended from inside a parser callback (an upstream that failed at once, e.g.
    // socket() hit EMFILE): the parser still holds this request, so it stops here and the
    // request is let go once http_parser_execute has returned (parse()).
    finish_after_parse_ = true;
    http_parser_pause(&parser_, 1);
    return;
  }
  if (!stream_ || !stream_->request_complete) {
    // The response ended before the request did: the rest of the body cannot be skipped
    // safely, so this connection ends with the response.
    keep_alive_ = false;
  }
  if (stream_ && stream_->upstream) stream_->upstream->cancel(*stream_);
  if (stream_) connection_.onRequestFinished(*stream_);
  stream_.reset();
  if (!keep_alive_) {
    finished_ = true;
    return;
  }
  waiting_since_ = std::chrono::steady_clock::now();
  http_parser_pause(&parser_, 0);
  parse();  // a pipelined request may be waiting
}

void Http1DownstreamCodec::onUpstreamFailure(ProxyStream& stream, int status,
                                             const std::string& reason) {
  stream.stopResponseTimeout();
  connection_.onUpstreamFailed(status);
  if (stream.response_started) {
    // Part of the response went out: HTTP/1.1 can only say so by closing the connection.
    finished_ = true;
    output_.clear();
    connection_.scheduleFlush();
    return;
  }
  stream.response_started = true;
  if (!stream.request_complete) keep_alive_ = false;
  writeSimpleResponse(status, reason);
  body_done_ = true;
  stream.response_complete = true;
  finishResponse();
  connection_.scheduleFlush();
}

void Http1DownstreamCodec::onRequestBodyConsumed(ProxyStream&, size_t) {
  connection_.scheduleFlush();  // reading may resume (readPaused() changes)
}

void Http1DownstreamCodec::produce(std::string& out, size_t max) {
  if (out.empty() && output_.size() <= max) {
    out.swap(output_);  // the usual case: hand the whole response over without a copy
    return;
  }
  const size_t n = std::min(max > out.size() ? max - out.size() : 0, output_.size());
  out.append(output_, 0, n);
  output_.erase(0, n);
}

}  // namespace mcproxy::extensions::http_connection_manager

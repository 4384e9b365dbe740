#include "extensions/filters/network/http_connection_manager/upstream_http1.h"

#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "source/common/logging/logger.h"
#include "source/common/network/connect.h"

namespace mcproxy::extensions::http_connection_manager {
namespace {

constexpr size_t kMaxPendingOut = 64 * 1024;
constexpr size_t kReadChunk = 32 * 1024;

Http1UpstreamConnection* self(http_parser* parser) {
  return static_cast<Http1UpstreamConnection*>(parser->data);
}

bool wouldBlock() { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }

}  // namespace

Http1UpstreamConnection::Http1UpstreamConnection(event::Dispatcher& dispatcher,
                                                 const network::Address& backend,
                                                 std::string pool_key, std::string proxy_header,
                                                 const UpstreamSettings& settings,
                                                 Http1UpstreamPool& pool)
    : dispatcher_(dispatcher),
      backend_(backend),
      backend_key_(backend.toString()),
      pool_key_(std::move(pool_key)),
      settings_(settings),
      pool_(pool),
      pending_out_(std::move(proxy_header)) {
  http_parser_init(&parser_, HTTP_RESPONSE);
  parser_.data = this;
  settings_parser_.on_header_field = &onHeaderField;
  settings_parser_.on_header_value = &onHeaderValue;
  settings_parser_.on_headers_complete = &onHeadersComplete;
  settings_parser_.on_body = &onBody;
  settings_parser_.on_message_complete = &onMessageComplete;
}

void Http1UpstreamConnection::connect() {
  network::ConnectResult connected = network::connectTcp(backend_);
  if (connected.status == network::ConnectStatus::kFailed) {
    fail(502, "connect to " + backend_key_ + ": " + std::strerror(connected.error));
    return;
  }
  fd_ = std::move(connected.fd);
  read_event_ = std::make_unique<event::IoEvent>(
      dispatcher_, fd_.get(), event::IoEvent::Kind::kRead, [this] { onReadable(); });
  write_event_ = std::make_unique<event::IoEvent>(
      dispatcher_, fd_.get(), event::IoEvent::Kind::kWrite, [this] {
        if (connected_) {
          flush();
          return;
        }
        const int error = network::connectError(fd_.get());
        if (error != 0) {
          fail(502, "connect to " + backend_key_ + ": " + std::strerror(error));
          return;
        }
        onConnected();
      });
  connect_timer_ = std::make_unique<event::Timer>(
      dispatcher_, [this] { fail(504, "connect to " + backend_key_ + " timed out"); });
  if (connected.status == network::ConnectStatus::kConnected) {
    onConnected();
    return;
  }
  write_event_->enable();
  connect_timer_->arm(settings_.connect_timeout);
}

void Http1UpstreamConnection::onConnected() {
  connected_ = true;
  connect_timer_->cancel();
  flush();
}

void Http1UpstreamConnection::attach(ProxyStream& stream) {
  stream_ = &stream;
  stream.upstream = this;
  request_done_ = false;
  http_parser_init(&parser_, HTTP_RESPONSE);
  parser_.data = this;
  writeRequestHead();
  moveRequestBody();
  if (connected_) flush();
}

void Http1UpstreamConnection::writeRequestHead() {
  const auto& headers = stream_->request_headers;
  const std::string* method = http::find(headers, ":method");
  const std::string* path = http::find(headers, ":path");
  const std::string* authority = http::find(headers, ":authority");
  std::string head = (method ? *method : "GET") + " " + (path ? *path : "/") + " HTTP/1.1\r\n";
  if (authority) head += "host: " + *authority + "\r\n";
  bool has_length = false;
  for (const auto& header : headers) {
    if (header.name[0] == ':' || header.name == "host" || header.name == "te") continue;
    if (header.name == "content-length") has_length = true;
    head += header.name + ": " + header.value + "\r\n";
  }
  const bool no_body = stream_->request_complete && stream_->request_body.empty();
  chunked_request_ = !has_length && !no_body;
  if (chunked_request_) head += "transfer-encoding: chunked\r\n";
  pending_out_ += head + "\r\n";
}

void Http1UpstreamConnection::moveRequestBody() {
  if (stream_ == nullptr || request_done_) return;
  const size_t room =
      pending_out_.size() < kMaxPendingOut ? kMaxPendingOut - pending_out_.size() : 0;
  const size_t n = std::min(room, stream_->request_body.size());
  if (n > 0) {
    if (chunked_request_) {
      char size[24];
      std::snprintf(size, sizeof(size), "%zx\r\n", n);
      pending_out_ += size;
    }
    pending_out_.append(stream_->request_body, 0, n);
    if (chunked_request_) pending_out_ += "\r\n";
    stream_->request_body.erase(0, n);
    stream_->downstream->onRequestBodyConsumed(*stream_, n);
  }
  if (stream_->request_complete && stream_->request_body.empty()) {
    if (chunked_request_) pending_out_ += "0\r\n\r\n";  // HTTP/1.1 backends get no trailers
    request_done_ = true;
  }
}

void Http1UpstreamConnection::onRequestData(ProxyStream&) {
  moveRequestBody();
  if (connected_) flush();
}

void Http1UpstreamConnection::onResponseBodyConsumed(ProxyStream&, size_t) { updateInterest(); }

void Http1UpstreamConnection::cancel(ProxyStream& stream) {
  if (stream_ != &stream) return;
  stream.upstream = nullptr;
  stream_ = nullptr;
  // Mid-exchange, the connection's state is unknown: it cannot carry another request.
  close();
}

int Http1UpstreamConnection::onHeaderField(http_parser* parser, const char* at, size_t len) {
  Http1UpstreamConnection* c = self(parser);
  if (c->stream_ == nullptr) return 0;
  auto& headers = c->stream_->response_headers;
  std::string piece(at, len);
  std::transform(piece.begin(), piece.end(), piece.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (c->last_was_value_ || headers.empty()) {
    headers.push_back({piece, ""});
  } else {
    headers.back().name += piece;
  }
  c->last_was_value_ = false;
  return 0;
}

int Http1UpstreamConnection::onHeaderValue(http_parser* parser, const char* at, size_t len) {
  Http1UpstreamConnection* c = self(parser);
  if (c->stream_ == nullptr) return 0;
  c->stream_->response_headers.back().value.append(at, len);
  c->last_was_value_ = true;
  return 0;
}

int Http1UpstreamConnection::onHeadersComplete(http_parser* parser) {
  Http1UpstreamConnection* c = self(parser);
  if (c->stream_ == nullptr) return 0;
  if (parser->status_code < 200) {  // 1xx: no body; the real response follows
    c->stream_->response_headers.clear();
    return 1;
  }
  auto& headers = c->stream_->response_headers;
  headers.insert(headers.begin(), {":status", std::to_string(parser->status_code)});
  // Transfer-Encoding, Connection and the like describe this hop only.
  std::erase_if(headers, [](const http::Header& h) { return http::isHopByHop(h.name, h.value); });
  c->keep_alive_ = http_should_keep_alive(parser) != 0;
  c->stream_->stopResponseTimeout();
  c->stream_->downstream->onResponseHeaders(*c->stream_);
  return 0;
}

int Http1UpstreamConnection::onBody(http_parser* parser, const char* at, size_t len) {
  Http1UpstreamConnection* c = self(parser);
  if (c->stream_ == nullptr) return 0;
  c->stream_->response_body.append(at, len);
  c->stream_->downstream->onResponseData(*c->stream_);
  return 0;
}

int Http1UpstreamConnection::onMessageComplete(http_parser* parser) {
  Http1UpstreamConnection* c = self(parser);
  if (c->stream_ == nullptr) return 0;
  if (c->stream_->response_headers.empty()) return 0;  // a 1xx ended
  ProxyStream* stream = c->stream_;
  stream->response_complete = true;
  stream->upstream = nullptr;
  c->stream_ = nullptr;
  stream->downstream->onResponseData(*stream);
  http_parser_pause(parser, 1);  // the rest (if any) is not ours to parse
  return 0;
}

bool Http1UpstreamConnection::stillOpen() const {
  if (closed_ || !fd_.valid()) return false;
  char byte;
  const ssize_t n = ::recv(fd_.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && wouldBlock();  // no EOF and no stray bytes waiting
}

void Http1UpstreamConnection::onReadable() {
  if (stream_ == nullptr) {
    // An idle connection the backend closed (or sent something unasked): not reusable.
    close();
    return;
  }
  char buffer[kReadChunk];
  while (stream_ != nullptr && stream_->response_body.size() < settings_.stream_window_bytes) {
    const ssize_t n = ::recv(fd_.get(), buffer, sizeof(buffer), 0);
    if (n < 0 && wouldBlock()) break;
    if (n <= 0) {
      // EOF ends a close-delimited body; anything else is a broken response.
      if (n == 0) http_parser_execute(&parser_, &settings_parser_, nullptr, 0);
      if (stream_ != nullptr) {
        fail(502, n == 0 ? "upstream closed before the response ended" : "upstream read failed");
      } else {
        close();
      }
      return;
    }
    const size_t parsed =
        http_parser_execute(&parser_, &settings_parser_, buffer, static_cast<size_t>(n));
    const http_errno error = HTTP_PARSER_ERRNO(&parser_);
    if (error != HPE_OK && error != HPE_PAUSED) {
      fail(502, std::string("upstream sent bad HTTP/1.1: ") + http_errno_description(error));
      return;
    }
    if (stream_ == nullptr) {  // the response is complete
      if (keep_alive_ && request_done_ && parsed == static_cast<size_t>(n)) {
        read_event_->enable();  // while idle, readable means the backend closed it
        pool_.release(*this);
      } else {
        close();
      }
      return;
    }
  }
  updateInterest();
}

void Http1UpstreamConnection::flush() {
  while (!pending_out_.empty()) {
    const ssize_t n = ::send(fd_.get(), pending_out_.data(), pending_out_.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (wouldBlock()) break;
      fail(502, std::string("upstream write: ") + std::strerror(errno));
      return;
    }
    pending_out_.erase(0, static_cast<size_t>(n));
    moveRequestBody();
  }
  updateInterest();
}

void Http1UpstreamConnection::updateInterest() {
  if (closed_ || !connected_) return;
  if (pending_out_.empty()) {
    write_event_->disable();
  } else {
    write_event_->enable();
  }
  // Read the response only as fast as the client takes it; idle, watch for the backend closing.
  if (stream_ == nullptr || stream_->response_body.size() < settings_.stream_window_bytes) {
    read_event_->enable();
  } else {
    read_event_->disable();
  }
}

void Http1UpstreamConnection::fail(int status, const std::string& reason) {
  ProxyStream* stream = stream_;
  stream_ = nullptr;
  close();
  if (stream != nullptr) {
    stream->upstream = nullptr;
    stream->downstream->onUpstreamFailure(*stream, status, reason);
  }
}

void Http1UpstreamConnection::close() {
  if (closed_) return;
  closed_ = true;
  LOG_DEBUG << "upstream " << backend_key_ << " (HTTP/1.1) closed";
  if (read_event_) read_event_->disable();
  if (write_event_) write_event_->disable();
  if (connect_timer_) connect_timer_->cancel();
  fd_.reset();
  pool_.remove(*this);
}

Http1UpstreamPool& Http1UpstreamPool::forThisThread(event::Dispatcher& dispatcher) {
  // One pool per worker thread: its connections use that worker's event loop only.
  thread_local std::unique_ptr<Http1UpstreamPool> pool;
  if (!pool) pool = std::make_unique<Http1UpstreamPool>(dispatcher);
  return *pool;
}

void Http1UpstreamPool::send(ProxyStream& stream, const router::Route& route,
                             const UpstreamSettings& settings, const std::string& proxy_header) {
  const std::string key =
      proxy_header.empty() ? route.backend_key : route.backend_key + "|" + proxy_header;
  auto& idle = idle_[key];
  while (!idle.empty()) {
    std::unique_ptr<Http1UpstreamConnection> connection = std::move(idle.back());
    idle.pop_back();
    if (!connection->stillOpen()) {
      dispatcher_.deferredDelete(std::move(connection));
      continue;
    }
    Http1UpstreamConnection& raw = *connection;
    busy_.push_back(std::move(connection));
    raw.attach(stream);
    return;
  }
  busy_.push_back(std::make_unique<Http1UpstreamConnection>(dispatcher_, route.backend, key,
                                                            proxy_header, settings, *this));
  Http1UpstreamConnection& connection = *busy_.back();
  connection.attach(stream);
  connection.connect();
}

void Http1UpstreamPool::release(Http1UpstreamConnection& connection) {
  auto it = std::find_if(busy_.begin(), busy_.end(),
                         [&](const auto& entry) { return entry.get() == &connection; });
  if (it == busy_.end()) return;
  idle_[connection.poolKey()].push_back(std::move(*it));
  busy_.erase(it);
}

void Http1UpstreamPool::remove(Http1UpstreamConnection& connection) {
  auto take = [&](std::vector<std::unique_ptr<Http1UpstreamConnection>>& list) {
    auto it = std::find_if(list.begin(), list.end(),
                           [&](const auto& entry) { return entry.get() == &connection; });
    if (it == list.end()) return false;
    dispatcher_.deferredDelete(std::move(*it));
    list.erase(it);
    return true;
  };
  if (take(busy_)) return;
  auto idle = idle_.find(connection.poolKey());
  if (idle != idle_.end()) take(idle->second);
}

}  // namespace mcproxy::extensions::http_connection_manager

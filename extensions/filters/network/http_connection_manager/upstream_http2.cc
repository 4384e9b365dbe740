#include "extensions/filters/network/http_connection_manager/upstream_http2.h"

#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "source/common/http/nghttp2_headers.h"
#include "source/common/http/nghttp2_memory.h"
#include "source/common/logging/logger.h"
#include "source/common/network/connect.h"

namespace mcproxy::extensions::http_connection_manager {
namespace {

constexpr size_t kMaxPendingOut = 64 * 1024;  // stop producing frames above this
constexpr size_t kReadChunk = 32 * 1024;
constexpr int kReadRounds = 16;  // reads per readiness callback before yielding
constexpr int32_t kConnectionWindow = 16 * 1024 * 1024;

}  // namespace

Http2UpstreamConnection::Http2UpstreamConnection(event::Dispatcher& dispatcher,
                                                 const network::Address& backend,
                                                 std::string pool_key, std::string proxy_header,
                                                 std::shared_ptr<ssl_ctx_st> tls_context,
                                                 std::string sni, const UpstreamSettings& settings,
                                                 UpstreamPool& pool)
    : dispatcher_(dispatcher),
      backend_(backend),
      backend_key_(backend.toString()),
      pool_key_(std::move(pool_key)),
      settings_(settings),
      pool_(pool),
      tls_context_(std::move(tls_context)),
      sni_(std::move(sni)) {
  // Plain: the header goes out first in the byte stream. TLS: before the handshake, raw.
  (tls_context_ ? raw_header_ : pending_out_) = std::move(proxy_header);
}

Http2UpstreamConnection::~Http2UpstreamConnection() {
  if (session_ != nullptr) nghttp2_session_del(session_);
}

nghttp2_session_callbacks* Http2UpstreamConnection::callbacks() {
  static nghttp2_session_callbacks* const kCallbacks = [] {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &onHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &onFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &onDataChunkRecv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &onStreamClose);
    return cbs;
  }();
  return kCallbacks;
}

void Http2UpstreamConnection::connect() {
  network::ConnectResult connected = network::connectTcp(backend_);
  if (connected.status == network::ConnectStatus::kFailed) {
    fail(502, "connect to " + backend_key_ + ": " + std::strerror(connected.error));
    return;
  }
  fd_ = std::move(connected.fd);
  read_event_ = std::make_unique<event::IoEvent>(
      dispatcher_, fd_.get(), event::IoEvent::Kind::kRead,
      [this] { state_ == State::kTlsHandshake ? handshake() : onReadable(); });
  write_event_ = std::make_unique<event::IoEvent>(
      dispatcher_, fd_.get(), event::IoEvent::Kind::kWrite, [this] {
        switch (state_) {
          case State::kConnecting: {
            const int error = network::connectError(fd_.get());
            if (error != 0) {
              fail(502, "connect to " + backend_key_ + ": " + std::strerror(error));
              return;
            }
            afterTcpConnect();
            return;
          }
          case State::kProxyHeader:
            sendProxyHeader();
            return;
          case State::kTlsHandshake:
            handshake();
            return;
          case State::kReady:
            flush();
            return;
        }
      });
  flush_timer_ = std::make_unique<event::Timer>(dispatcher_, [this] { flush(); });
  connect_timer_ = std::make_unique<event::Timer>(
      dispatcher_, [this] { fail(504, "connect to " + backend_key_ + " timed out"); });

  nghttp2_option* option;
  nghttp2_option_new(&option);
  nghttp2_option_set_no_auto_window_update(option, 1);  // windows open as the client takes data
  nghttp2_session_client_new3(&session_, callbacks(), this, option, http::lazyPagesAllocator());
  nghttp2_option_del(option);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings_.stream_window_bytes}};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 2);
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);

  if (connected.status == network::ConnectStatus::kConnected) {
    afterTcpConnect();
    return;
  }
  write_event_->enable();
  connect_timer_->arm(settings_.connect_timeout);
}

void Http2UpstreamConnection::afterTcpConnect() {
  if (!tls_context_) {
    onConnected();
    return;
  }
  state_ = State::kProxyHeader;
  sendProxyHeader();
}

void Http2UpstreamConnection::sendProxyHeader() {
  while (!raw_header_.empty()) {
    const ssize_t n = ::send(fd_.get(), raw_header_.data(), raw_header_.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        write_event_->enable();
        return;
      }
      fail(502, std::string("upstream write: ") + std::strerror(errno));
      return;
    }
    raw_header_.erase(0, static_cast<size_t>(n));
  }
  startTls();
}

void Http2UpstreamConnection::startTls() {
  state_ = State::kTlsHandshake;
  ssl_.reset(SSL_new(tls_context_.get()));
  SSL_set_fd(ssl_.get(), fd_.get());
  if (!sni_.empty()) {
    SSL_set_tlsext_host_name(ssl_.get(), sni_.c_str());
    SSL_set1_host(ssl_.get(), sni_.c_str());  // the certificate must name it
  }
  SSL_set_connect_state(ssl_.get());
  handshake();
}

void Http2UpstreamConnection::handshake() {
  ERR_clear_error();  // SSL_get_error() reads the thread's queue: start from an empty one
  const int rc = SSL_do_handshake(ssl_.get());
  if (rc == 1) {
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(ssl_.get(), &alpn, &alpn_len);
    if (std::string(reinterpret_cast<const char*>(alpn), alpn_len) != "h2") {
      fail(502, "backend " + backend_key_ + " did not negotiate h2 over TLS");
      return;
    }
    onConnected();
    return;
  }
  switch (SSL_get_error(ssl_.get(), rc)) {
    case SSL_ERROR_WANT_READ:
      read_event_->enable();
      write_event_->disable();
      return;
    case SSL_ERROR_WANT_WRITE:
      write_event_->enable();
      return;
    default: {
      const long verify = SSL_get_verify_result(ssl_.get());
      // opensslErrors() also empties this thread's error queue, which every other SSL
      // connection on the worker would otherwise mistake for its own error.
      const std::string errors = tls::opensslErrors();
      fail(502, "TLS to backend " + backend_key_ + " failed: " +
                    (verify != X509_V_OK ? X509_verify_cert_error_string(verify) : errors));
    }
  }
}

ssize_t Http2UpstreamConnection::readSome(char* buffer, size_t len, bool& would_block) {
  would_block = false;
  if (!ssl_) {
    const ssize_t n = ::recv(fd_.get(), buffer, len, 0);
    would_block = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    return n;
  }
  ERR_clear_error();
  const int n = SSL_read(ssl_.get(), buffer, static_cast<int>(len));
  if (n > 0) return n;
  const int error = SSL_get_error(ssl_.get(), n);
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
    would_block = true;
    return -1;
  }
  ERR_clear_error();
  return error == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

ssize_t Http2UpstreamConnection::writeSome(const char* data, size_t len, bool& would_block) {
  would_block = false;
  if (!ssl_) {
    const ssize_t n = ::send(fd_.get(), data, len, MSG_NOSIGNAL);
    would_block = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    return n;
  }
  ERR_clear_error();
  const int n = SSL_write(ssl_.get(), data, static_cast<int>(len));
  if (n > 0) return n;
  const int error = SSL_get_error(ssl_.get(), n);
  would_block = error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE;
  ERR_clear_error();
  return -1;
}

void Http2UpstreamConnection::onConnected() {
  state_ = State::kReady;
  connected_ = true;
  connect_timer_->cancel();
  write_event_->disable();
  read_event_->enable();
  std::vector<ProxyStream*> waiting;
  waiting.swap(waiting_);
  for (ProxyStream* stream : waiting) submit(*stream);
  flush();
}

bool Http2UpstreamConnection::acceptsStreams() const {
  if (closed_ || session_ == nullptr) return false;
  if (!connected_) return true;
  if (!nghttp2_session_check_request_allowed(session_)) return false;  // GOAWAY seen
  const uint32_t max =
      nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return streams_.size() < max;
}

void Http2UpstreamConnection::attach(ProxyStream& stream) {
  if (closed_) {  // e.g. connect() failed at once
    stream.downstream->onUpstreamFailure(stream, failure_status_, failure_reason_);
    return;
  }
  stream.upstream = this;
  if (!connected_) {
    waiting_.push_back(&stream);
    return;
  }
  submit(stream);
  scheduleFlush();
}

void Http2UpstreamConnection::submit(ProxyStream& stream) {
  http::NvList nv(stream.request_headers);
  nghttp2_data_provider provider{};
  provider.source.ptr = &stream;
  provider.read_callback = &readRequestBody;
  const bool has_body =
      !(stream.request_complete && stream.request_body.empty() && stream.request_trailers.empty());
  const int32_t id = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(),
                                            has_body ? &provider : nullptr, &stream);
  if (id < 0) {
    stream.upstream = nullptr;
    stream.downstream->onUpstreamFailure(stream, 502, nghttp2_strerror(id));
    return;
  }
  stream.upstream_id = id;
  streams_.insert(id, &stream);
}

ssize_t Http2UpstreamConnection::readRequestBody(nghttp2_session* session, int32_t stream_id,
                                                 uint8_t* buf, size_t length, uint32_t* flags,
                                                 nghttp2_data_source* source, void*) {
  auto* stream = static_cast<ProxyStream*>(source->ptr);
  const ssize_t n =
      http::pullBody(session, stream_id, stream->request_body, stream->request_complete,
                     stream->request_trailers, buf, length, flags);
  if (n > 0) stream->downstream->onRequestBodyConsumed(*stream, static_cast<size_t>(n));
  return n;
}

void Http2UpstreamConnection::onRequestData(ProxyStream& stream) {
  if (!connected_ || stream.upstream_id <= 0) return;  // submitted once connected
  nghttp2_session_resume_data(session_, stream.upstream_id);
  scheduleFlush();
}

void Http2UpstreamConnection::onResponseBodyConsumed(ProxyStream& stream, size_t bytes) {
  if (closed_ || stream.upstream_id <= 0) return;
  bytes = std::min(bytes, stream.response_unacked);
  stream.response_unacked -= bytes;
  nghttp2_session_consume(session_, stream.upstream_id, bytes);
  scheduleFlush();
}

void Http2UpstreamConnection::releaseUnacked(ProxyStream& stream) {
  // The stream is over for this connection: what the client has not taken yet stays in our
  // buffer (bounded by the stream window), but the connection's window gets it back now.
  if (!closed_ && stream.response_unacked > 0) {
    nghttp2_session_consume_connection(session_, stream.response_unacked);
    scheduleFlush();
  }
  stream.response_unacked = 0;
}

void Http2UpstreamConnection::cancel(ProxyStream& stream) {
  releaseUnacked(stream);
  stream.upstream = nullptr;
  std::erase(waiting_, &stream);
  if (stream.upstream_id > 0) {
    streams_.take(stream.upstream_id);
    // A stream whose exchange finished both ways is just forgotten: resetting it would be a
    // pointless RST_STREAM, and backends (nghttp2's own rapid-reset limit among them) answer
    // a stream of those with GOAWAY.
    const bool finished =
        stream.response_complete && stream.request_complete && stream.request_body.empty();
    if (!closed_ && !finished) {
      nghttp2_session_set_stream_user_data(session_, stream.upstream_id, nullptr);
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream.upstream_id, NGHTTP2_CANCEL);
      scheduleFlush();
    }
  }
}

ProxyStream* Http2UpstreamConnection::streamById(int32_t id) {
  ProxyStream** stream = streams_.find(id);
  return stream != nullptr ? *stream : nullptr;
}

int Http2UpstreamConnection::onHeader(nghttp2_session*, const nghttp2_frame* frame,
                                      const uint8_t* name, size_t namelen, const uint8_t* value,
                                      size_t valuelen, uint8_t, void* user_data) {
  auto* self = static_cast<Http2UpstreamConnection*>(user_data);
  ProxyStream* stream = self->streamById(frame->hd.stream_id);
  if (stream == nullptr || frame->hd.type != NGHTTP2_HEADERS) return 0;
  const std::string_view name_view(reinterpret_cast<const char*>(name), namelen);
  const std::string_view value_view(reinterpret_cast<const char*>(value), valuelen);
  if (http::isHopByHop(name_view, value_view)) return 0;  // this hop's business only
  // Until the final response went to the client, a HEADERS block is the response (nghttp2
  // files a final response that follows a 1xx under NGHTTP2_HCAT_HEADERS); after it, trailers.
  http::HeaderList& list =
      stream->response_started ? stream->response_trailers : stream->response_headers;
  if (list.empty()) list.reserve(12);
  list.push_back({std::string(name_view), std::string(value_view)});
  return 0;
}

int Http2UpstreamConnection::onFrameRecv(nghttp2_session*, const nghttp2_frame* frame,
                                         void* user_data) {
  auto* self = static_cast<Http2UpstreamConnection*>(user_data);
  ProxyStream* stream = self->streamById(frame->hd.stream_id);
  if (stream == nullptr) return 0;
  const bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (frame->hd.type == NGHTTP2_HEADERS) {
    const std::string* status = http::find(stream->response_headers, ":status");
    if (status != nullptr && (*status)[0] == '1' && !end) {
      stream->response_headers.clear();  // 100 Continue and friends: wait for the real one
      return 0;
    }
    if (!stream->response_started) {
      stream->response_complete = end;
      stream->stopResponseTimeout();
      stream->downstream->onResponseHeaders(*stream);
    } else if (end) {
      stream->response_complete = true;  // trailers
      stream->downstream->onResponseData(*stream);
    }
  } else if (frame->hd.type == NGHTTP2_DATA && end) {
    stream->response_complete = true;
    stream->downstream->onResponseData(*stream);
  }
  return 0;
}

int Http2UpstreamConnection::onDataChunkRecv(nghttp2_session* session, uint8_t, int32_t stream_id,
                                             const uint8_t* data, size_t len, void* user_data) {
  auto* self = static_cast<Http2UpstreamConnection*>(user_data);
  ProxyStream* stream = self->streamById(stream_id);
  if (stream == nullptr) {
    nghttp2_session_consume_connection(session, len);  // a cancelled stream: discard
    return 0;
  }
  stream->response_body.append(reinterpret_cast<const char*>(data), len);
  stream->response_unacked += len;
  stream->downstream->onResponseData(*stream);
  return 0;
}

int Http2UpstreamConnection::onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                                           void* user_data) {
  auto* self = static_cast<Http2UpstreamConnection*>(user_data);
  ProxyStream* stream = self->streams_.take(stream_id);
  if (stream == nullptr) return 0;
  self->releaseUnacked(*stream);
  stream->upstream = nullptr;
  stream->upstream_id = 0;
  if (!stream->response_complete) {
    stream->downstream->onUpstreamFailure(
        *stream, 502,
        "upstream reset the stream (" + std::string(nghttp2_http2_strerror(error_code)) + ")");
  }
  return 0;
}

void Http2UpstreamConnection::onReadable() {
  char buffer[kReadChunk];
  for (int round = 0;; ++round) {
    if (round == kReadRounds) {
      // Continue in a later turn (fair to other connections); OpenSSL may hold the rest of
      // the batch (read-ahead) with the socket empty, so epoll would not call back.
      read_event_->activate();
      break;
    }
    bool would_block = false;
    const ssize_t n = readSome(buffer, sizeof(buffer), would_block);
    if (n > 0) {
      const ssize_t rc = nghttp2_session_mem_recv(session_, reinterpret_cast<uint8_t*>(buffer),
                                                  static_cast<size_t>(n));
      if (rc < 0) {
        fail(502,
             std::string("upstream sent bad HTTP/2: ") + nghttp2_strerror(static_cast<int>(rc)));
        return;
      }
      if (closed_) return;
      // A short read emptied the socket; but with TLS, OpenSSL may hold further records it
      // read ahead, and the socket will not say so.
      if (static_cast<size_t>(n) < sizeof(buffer) && !(ssl_ && SSL_has_pending(ssl_.get()))) {
        break;
      }
      continue;
    }
    if (n == 0) {
      fail(502, "upstream closed the connection");
      return;
    }
    if (would_block) break;
    fail(502, "upstream read failed");
    return;
  }
  flush();
}

void Http2UpstreamConnection::scheduleFlush() {
  if (closed_ || !connected_ || flush_timer_->armed()) return;
  flush_timer_->fireSoon();
}

void Http2UpstreamConnection::flush() {
  if (closed_ || !connected_) return;
  while (true) {
    while (pending_out_.size() < kMaxPendingOut) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        fail(502, std::string("HTTP/2 session: ") + nghttp2_strerror(static_cast<int>(n)));
        return;
      }
      if (n == 0) break;
      pending_out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (pending_out_.empty()) break;
    bool would_block = false;
    const ssize_t sent = writeSome(pending_out_.data(), pending_out_.size(), would_block);
    if (sent < 0) {
      if (would_block) {
        write_event_->enable();
        return;
      }
      fail(502, "upstream write failed");
      return;
    }
    pending_out_.erase(0, static_cast<size_t>(sent));
  }
  write_event_->disable();
  if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
    fail(502, "upstream HTTP/2 session ended");
  }
}

void Http2UpstreamConnection::fail(int status, const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  failure_status_ = status;
  failure_reason_ = reason;
  LOG_DEBUG << "upstream " << backend_key_ << ": " << reason;
  if (read_event_) read_event_->disable();
  if (write_event_) write_event_->disable();
  if (connect_timer_) connect_timer_->cancel();
  if (flush_timer_) flush_timer_->cancel();
  std::vector<ProxyStream*> affected = waiting_;
  streams_.forEach([&](int32_t, ProxyStream* stream) { affected.push_back(stream); });
  waiting_.clear();
  streams_.clear();
  for (ProxyStream* stream : affected) {
    stream->upstream = nullptr;
    stream->upstream_id = 0;
    stream->downstream->onUpstreamFailure(*stream, status, reason);
  }
  fd_.reset();
  pool_.remove(*this);
}

UpstreamPool& UpstreamPool::forThisThread(event::Dispatcher& dispatcher) {
  // One pool per worker thread: its connections use that worker's event loop only.
  thread_local std::unique_ptr<UpstreamPool> pool;
  if (!pool) pool = std::make_unique<UpstreamPool>(dispatcher);
  return *pool;
}

Http2UpstreamConnection& UpstreamPool::connectionFor(const router::Route& route,
                                                     const UpstreamSettings& settings,
                                                     const std::string& proxy_header,
                                                     const std::string& sni) {
  const bool tls = route.backend_tls_context != nullptr;
  // The usual case (no TLS, no PROXY header) looks the route's precomputed key up as it is.
  std::string composite;
  const std::string* key = &route.backend_key;
  if (tls || !proxy_header.empty()) {
    composite = route.backend_key + (tls ? "|tls:" + sni : "") +
                (proxy_header.empty() ? "" : "|" + proxy_header);
    key = &composite;
  }
  auto& list = connections_[*key];
  for (auto& connection : list) {
    if (connection->acceptsStreams()) return *connection;
  }
  list.push_back(std::make_unique<Http2UpstreamConnection>(dispatcher_, route.backend, *key,
                                                           proxy_header, route.backend_tls_context,
                                                           sni, settings, *this));
  Http2UpstreamConnection& connection = *list.back();
  connection.connect();
  return connection;
}

void UpstreamPool::remove(Http2UpstreamConnection& connection) {
  auto it = connections_.find(connection.poolKey());
  if (it == connections_.end()) return;
  auto& list = it->second;
  for (auto entry = list.begin(); entry != list.end(); ++entry) {
    if (entry->get() == &connection) {
      dispatcher_.deferredDelete(std::move(*entry));
      list.erase(entry);
      break;
    }
  }
}

}  // namespace mcproxy::extensions::http_connection_manager

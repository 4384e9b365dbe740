#include "extensions/filters/network/http_connection_manager/http_connection_manager.h"

#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "extensions/filters/network/http_connection_manager/downstream_http1.h"
#include "extensions/filters/network/http_connection_manager/upstream_http1.h"
#include "source/common/logging/logger.h"
#include "source/common/proxy_protocol/proxy_protocol.h"
#include "source/common/router/route.h"
#include "source/common/tls/prefixed_socket_bio.h"

namespace mcproxy::extensions::http_connection_manager {
namespace {

constexpr size_t kMaxPendingOut = 64 * 1024;
constexpr size_t kReadChunk = 16 * 1024;
// TLS records read per readiness callback before yielding to other connections.
constexpr int kReadRounds = 16;
constexpr std::chrono::milliseconds kLingerTime{1000};
// A connection quiet this long gives back what it keeps for the next burst (nghttp2's frame
// buffer page): most idle connections stay idle, and 4 KiB each is 40 MiB at 10,000.
constexpr std::chrono::milliseconds kQuietRelease{500};

}  // namespace

HttpConnectionManagerFilter::~HttpConnectionManagerFilter() {
  if (codec_) codec_->abort();
}

network::FilterStatus HttpConnectionManagerFilter::onData(buffer::Buffer& data, bool) {
  network::Connection& connection = callbacks_->connection();
  const router::Route* route = connection.streamInfo().route;
  if (route == nullptr || route->mode != router::RouteMode::kL7) {
    return network::FilterStatus::kContinue;
  }
  route_ = route;
  callbacks_->takeOverTransport();
  ssl_.reset(SSL_new(route->tls_context.get()));
  BIO* bio = tls::newPrefixedSocketBio(connection.fd(), data.release());
  SSL_set_bio(ssl_.get(), bio, bio);
  SSL_set_accept_state(ssl_.get());

  event::Dispatcher& loop = connection.dispatcher();
  read_event_ = std::make_unique<event::IoEvent>(loop, connection.fd(), event::IoEvent::Kind::kRead,
                                                 [this] { onReadable(); });
  write_event_ =
      std::make_unique<event::IoEvent>(loop, connection.fd(), event::IoEvent::Kind::kWrite,
                                       [this] { handshake_done_ ? flush() : doHandshake(); });
  flush_timer_ = std::make_unique<event::Timer>(loop, [this] { flush(); });
  handshake_timer_ = std::make_unique<event::Timer>(
      loop, [this] { close(network::CloseReason::kTlsHandshakeFailed); });
  handshake_timer_->arm(config_.tls_handshake_timeout);
  doHandshake();
  return network::FilterStatus::kStopIteration;
}

void HttpConnectionManagerFilter::doHandshake() {
  ERR_clear_error();  // SSL_get_error() reads the thread's queue: start from an empty one
  const int rc = SSL_do_handshake(ssl_.get());
  if (rc == 1) {
    handshake_done_ = true;
    handshake_timer_.reset();
    write_event_->disable();
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(ssl_.get(), &alpn, &alpn_len);
    const std::string protocol(reinterpret_cast<const char*>(alpn), alpn_len);
    if (protocol == "h2") {
      codec_ = std::make_unique<Http2DownstreamCodec>(*this, config_.http2);
    } else {  // "http/1.1", or no ALPN at all
      codec_ = std::make_unique<Http1DownstreamCodec>(*this, config_.http2.max_header_list_bytes,
                                                      config_.http2.stream_window_bytes);
    }
    timeout_timer_ = std::make_unique<event::Timer>(dispatcher(), [this] { onTimeoutCheck(); });
    onActivity();
    armTimeoutCheck(last_activity_ + std::min({config_.idle_timeout, config_.request_header_timeout,
                                               kQuietRelease}));
    read_event_->enable();
    onReadable();  // OpenSSL may hold application data that came with the handshake
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
    default:
      LOG_DEBUG << "connection " << callbacks_->connection().id()
                << ": TLS handshake failed: " << tls::opensslErrors();
      close(network::CloseReason::kTlsHandshakeFailed);
  }
}

void HttpConnectionManagerFilter::onTimeoutCheck() {
  if (closing_ || lingering_) return;
  const auto now = dispatcher().now();
  auto next = last_activity_ + config_.idle_timeout;
  if (now >= next) {
    close(network::CloseReason::kIdleTimeout);
    return;
  }
  if (const auto since = codec_->waitingForHeadersSince()) {
    const auto deadline = *since + config_.request_header_timeout;
    if (now >= deadline) {
      LOG_DEBUG << "connection " << callbacks_->connection().id()
                << ": no complete request header section in time";
      close(network::CloseReason::kRequestHeaderTimeout);
      return;
    }
    next = std::min(next, deadline);
  }
  if (!quiet_memory_released_) {
    const auto quiet_at = last_activity_ + kQuietRelease;
    if (now < quiet_at) {
      next = std::min(next, quiet_at);
    } else if (!pending_out_.empty()) {  // a client that stopped reading: not quiet yet
      next = std::min(next, now + kQuietRelease);
    } else {
      codec_->releaseIdleMemory();
      quiet_memory_released_ = true;
      LOG_DEBUG << "connection " << callbacks_->connection().id() << ": quiet for "
                << kQuietRelease.count() << " ms, idle buffers released";
    }
  }
  armTimeoutCheck(next);
}

void HttpConnectionManagerFilter::armTimeoutCheck(std::chrono::steady_clock::time_point at) {
  check_at_ = at;
  const auto now = dispatcher().now();
  timeout_timer_->arm(at > now ? std::chrono::duration_cast<std::chrono::milliseconds>(at - now) +
                                     std::chrono::milliseconds(1)
                               : std::chrono::milliseconds(1));
}

void HttpConnectionManagerFilter::onActivity() {
  last_activity_ = dispatcher().now();
  if (quiet_memory_released_) {
    // Busy again: the next quiet spell must be noticed, though the timer may be set far off.
    quiet_memory_released_ = false;
    if (check_at_ > last_activity_ + kQuietRelease) armTimeoutCheck(last_activity_ + kQuietRelease);
  }
}

void HttpConnectionManagerFilter::beginLingeringClose() {
  if (lingering_) return;
  lingering_ = true;
  // Closing with the client's bytes still unread would send a RST, which can destroy the
  // response we just sent (a 400, say) before the client reads it. Instead: close_notify and
  // FIN now, then read and discard until the client closes too, for at most kLingerTime.
  SSL_shutdown(ssl_.get());
  ::shutdown(callbacks_->connection().fd(), SHUT_WR);
  flush_timer_->cancel();
  write_event_->disable();
  linger_timer_ = std::make_unique<event::Timer>(dispatcher(), [this] { close(linger_reason_); });
  linger_timer_->arm(kLingerTime);
  read_event_->enable();
  onReadable();
}

void HttpConnectionManagerFilter::onReadable() {
  if (!handshake_done_) {
    doHandshake();
    return;
  }
  if (lingering_) {
    char scratch[kReadChunk];
    while (true) {
      ERR_clear_error();
      const int n = SSL_read(ssl_.get(), scratch, sizeof(scratch));
      if (n > 0) continue;
      const int error = SSL_get_error(ssl_.get(), n);
      ERR_clear_error();
      if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return;
      close(linger_reason_);  // the client closed (or broke): done
      return;
    }
  }
  char buffer[kReadChunk];
  for (int round = 0; !closing_ && !codec_->readPaused(); ++round) {
    if (round == kReadRounds) {
      // Fair to the worker's other connections: continue in a later turn. OpenSSL may hold
      // the rest of this batch (read-ahead) with the socket empty, so epoll would not call back.
      read_event_->activate();
      break;
    }
    ERR_clear_error();
    const int n = SSL_read(ssl_.get(), buffer, sizeof(buffer));
    if (n > 0) {
      onActivity();
      callbacks_->connection().streamInfo().bytes_from_downstream += static_cast<uint64_t>(n);
      if (!codec_->receive(buffer, static_cast<size_t>(n))) {
        // Send what the codec has to say (GOAWAY, a 400), then close without a RST.
        linger_reason_ = network::CloseReason::kHttpProtocolError;
        flush();
        beginLingeringClose();
        return;
      }
      // Nothing buffered in OpenSSL and the socket was empty at the last read: skip the read
      // that would only say EAGAIN.
      if (!SSL_has_pending(ssl_.get()) && tls::prefixedSocketBioDrained(SSL_get_rbio(ssl_.get()))) {
        break;
      }
      continue;
    }
    const int error = SSL_get_error(ssl_.get(), n);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) break;
    ERR_clear_error();
    close(error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && n == 0)
              ? network::CloseReason::kFinished
              : network::CloseReason::kDownstreamReset);
    return;
  }
  flush();
}

void HttpConnectionManagerFilter::scheduleFlush() {
  if (!closing_ && flush_timer_ && !flush_timer_->armed()) {
    flush_timer_->fireSoon();
  }
}

void HttpConnectionManagerFilter::flush() {
  if (closing_ || !codec_) return;
  while (true) {
    if (pending_out_.size() < kMaxPendingOut) codec_->produce(pending_out_, kMaxPendingOut);
    if (pending_out_.empty()) break;
    ERR_clear_error();
    const int n = SSL_write(ssl_.get(), pending_out_.data(), static_cast<int>(pending_out_.size()));
    if (n > 0) {
      onActivity();
      callbacks_->connection().streamInfo().bytes_to_downstream += static_cast<uint64_t>(n);
      pending_out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    const int error = SSL_get_error(ssl_.get(), n);
    if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
      write_event_->enable();
      return;
    }
    ERR_clear_error();
    close(network::CloseReason::kDownstreamReset);
    return;
  }
  // All sent: an idle connection keeps no big buffer from its last large response.
  if (pending_out_.capacity() > kReadChunk) std::string().swap(pending_out_);
  write_event_->disable();
  if (codec_->finished()) {
    beginLingeringClose();
    return;
  }
  // HTTP/1.1 stops reading while the upstream has not taken the request body yet.
  if (codec_->readPaused()) {
    read_event_->disable();
  } else if (!read_event_->enabled()) {
    read_event_->enable();
    // What arrived while paused may sit in OpenSSL's buffer, not in the socket.
    if (SSL_has_pending(ssl_.get())) read_event_->activate();
  }
}

void HttpConnectionManagerFilter::startUpstream(ProxyStream& stream) {
  network::StreamInfo& info = callbacks_->connection().streamInfo();
  route_->stats.requests.inc();
  stream.started = dispatcher().now();
  stream.request_headers =
      http::forwardedRequestHeaders(std::move(stream.request_headers), info.real_client.ip(),
                                    "https", route_->backend_tls_context ? "https" : "http");
  if (route_->backend_http1) {
    // HTTP/1.1 backends cannot carry trailers; a client asking for them (gRPC) will not get them.
    std::erase_if(stream.request_headers, [](const http::Header& h) { return h.name == "te"; });
  }
  stream.routed = true;
  if (!response_timeouts_) {  // made with the first request: an idle connection has no timer
    response_timeouts_ = std::make_unique<ResponseTimeouts>(
        dispatcher(), config_.response_timeout, [](ProxyStream& expired) {
          if (expired.upstream != nullptr) expired.upstream->cancel(expired);
          expired.downstream->onUpstreamFailure(expired, 504, "upstream response timeout");
        });
  }
  // A backend's time to answer runs from the end of the request: a long upload is not late.
  if (stream.request_complete) response_timeouts_->start(stream);
  // With PROXY protocol, an upstream connection speaks for this one client connection.
  const std::string proxy_header =
      route_->send_proxy_protocol ? proxy_protocol::encodeFor(info, route_->proxy_protocol_version)
                                  : std::string();
  if (route_->backend_http1) {
    Http1UpstreamPool::forThisThread(dispatcher())
        .send(stream, *route_, config_.upstream, proxy_header);
    return;
  }
  UpstreamPool::forThisThread(dispatcher())
      .connectionFor(*route_, config_.upstream, proxy_header, info.requested_server_name)
      .attach(stream);
}

void HttpConnectionManagerFilter::onRequestComplete(ProxyStream& stream) {
  if (stream.routed && !stream.response_started) response_timeouts_->start(stream);
}

void HttpConnectionManagerFilter::onRequestFinished(const ProxyStream& stream) {
  route_->stats.request_latency.observe(
      std::chrono::duration<double>(dispatcher().now() - stream.started).count());
}

void HttpConnectionManagerFilter::onUpstreamFailed(int status) {
  (status == 504 ? route_->stats.responses_504 : route_->stats.responses_502).inc();
}

void HttpConnectionManagerFilter::close(network::CloseReason reason) {
  if (closing_) return;
  closing_ = true;
  callbacks_->connection().close(reason);
}

void HttpConnectionManagerFilter::onDrain() {
  if (codec_ && !closing_) {
    codec_->drain();
    scheduleFlush();
  }
}

void HttpConnectionManagerFilter::onConnectionClose() {
  closing_ = true;
  if (codec_) codec_->abort();
  if (read_event_) read_event_->disable();
  if (write_event_) write_event_->disable();
  if (flush_timer_) flush_timer_->cancel();
  if (linger_timer_) linger_timer_->cancel();
  if (timeout_timer_) timeout_timer_->cancel();
  handshake_timer_.reset();
}

}  // namespace mcproxy::extensions::http_connection_manager

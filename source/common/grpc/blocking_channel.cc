#include "source/common/grpc/blocking_channel.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "source/common/grpc/framing.h"
#include "source/common/http/nghttp2_headers.h"
#include "source/common/tls/server_context.h"

namespace mcproxy::grpc {
namespace {

using Clock = std::chrono::steady_clock;

std::string frame(const google::protobuf::Message& message) {
  return frameMessage(message.SerializeAsString());
}

int millisecondsLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(left.count());
}

void setNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

bool isIpAddress(const std::string& host) {
  in6_addr v6;
  in_addr v4;
  return ::inet_pton(AF_INET, host.c_str(), &v4) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

}  // namespace

BlockingChannel::BlockingChannel(network::UniqueFd fd, std::string authority, std::string scheme,
                                 SSL* ssl)
    : fd_(std::move(fd)),
      ssl_(ssl, &SSL_free),
      authority_(std::move(authority)),
      scheme_(std::move(scheme)),
      session_(nullptr, &nghttp2_session_del) {
  initSession();
}

BlockingChannel::~BlockingChannel() = default;

void BlockingChannel::initSession() {
  nghttp2_session_callbacks* callbacks;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, &onHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &onData);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &onStreamClose);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &onFrameRecv);
  nghttp2_session* session;
  nghttp2_session_client_new(&session, callbacks, this);
  nghttp2_session_callbacks_del(callbacks);
  session_.reset(session);
  // A watch stream can sit idle for hours: the window it gives the server is the default one,
  // and it is given back as messages are consumed (nghttp2's automatic WINDOW_UPDATE).
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, nullptr, 0);
}

absl::StatusOr<std::unique_ptr<BlockingChannel>> BlockingChannel::connectUnix(
    const std::string& path, Milliseconds timeout) {
  sockaddr_un address{};
  if (path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError("socket path too long: " + path);
  }
  network::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", path, ": ", std::strerror(errno)));
  }
  (void)timeout;  // a local connect does not wait
  setNonBlocking(fd.get());
  return std::unique_ptr<BlockingChannel>(
      new BlockingChannel(std::move(fd), "localhost", "http", nullptr));
}

absl::StatusOr<std::unique_ptr<BlockingChannel>> BlockingChannel::connectTcp(
    const std::string& host, uint16_t port, std::shared_ptr<SSL_CTX> tls, Milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string where = absl::StrCat(host, ":", port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", host, ": ", gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> addresses(found, &freeaddrinfo);
  network::UniqueFd fd;
  std::string last_error = "no address";
  for (addrinfo* a = addresses.get(); a != nullptr && !fd.valid(); a = a->ai_next) {
    network::UniqueFd attempt(
        ::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!attempt.valid()) continue;
    int rc = ::connect(attempt.get(), a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd pfd{attempt.get(), POLLOUT, 0};
      rc = ::poll(&pfd, 1, millisecondsLeft(deadline));
      if (rc == 0) {
        last_error = "connect timed out";
        rc = -1;
      } else {
        int error = 0;
        socklen_t len = sizeof(error);
        ::getsockopt(attempt.get(), SOL_SOCKET, SO_ERROR, &error, &len);
        rc = error == 0 ? 0 : -1;
        if (error != 0) last_error = std::strerror(error);
      }
    } else if (rc != 0) {
      last_error = std::strerror(errno);
    }
    if (rc == 0) fd = std::move(attempt);
  }
  if (!fd.valid()) {
    return absl::UnavailableError(absl::StrCat("cannot connect to ", where, ": ", last_error));
  }
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  SSL* ssl = nullptr;
  if (tls) {
    ssl = SSL_new(tls.get());
    std::unique_ptr<BlockingChannel> channel(
        new BlockingChannel(std::move(fd), where, "https", ssl));
    SSL_set_fd(ssl, channel->fd_.get());
    if (isIpAddress(host)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, host.c_str());
      SSL_set1_host(ssl, host.c_str());
    }
    while (true) {
      const int rc = SSL_connect(ssl);
      if (rc == 1) break;
      const int error = SSL_get_error(ssl, rc);
      absl::Status waited;
      if (error == SSL_ERROR_WANT_READ) {
        waited = channel->waitFor(POLLIN, deadline);
      } else if (error == SSL_ERROR_WANT_WRITE) {
        waited = channel->waitFor(POLLOUT, deadline);
      } else {
        const long verify = SSL_get_verify_result(ssl);
        return absl::UnavailableError(absl::StrCat(
            "TLS handshake with ", where, " failed: ",
            verify != X509_V_OK ? X509_verify_cert_error_string(verify) : tls::opensslErrors()));
      }
      if (!waited.ok()) return absl::UnavailableError("TLS handshake with " + where + " timed out");
    }
    return channel;
  }
  return std::unique_ptr<BlockingChannel>(
      new BlockingChannel(std::move(fd), where, "http", nullptr));
}

absl::Status BlockingChannel::fail(absl::Status status) {
  if (broken_.ok()) broken_ = std::move(status);
  return broken_;
}

absl::Status BlockingChannel::waitFor(short events, Clock::time_point deadline) {
  pollfd pfd{fd_.get(), events, 0};
  while (true) {
    const int rc = ::poll(&pfd, 1, millisecondsLeft(deadline));
    if (rc > 0) return absl::OkStatus();
    if (rc == 0) return absl::DeadlineExceededError("timed out");
    if (errno != EINTR) return absl::UnavailableError(std::strerror(errno));
  }
}

absl::Status BlockingChannel::flush(Clock::time_point deadline) {
  while (nghttp2_session_want_write(session_.get())) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_.get(), &data);
    if (n < 0) return fail(absl::InternalError(nghttp2_strerror(static_cast<int>(n))));
    if (n == 0) break;
    size_t sent = 0;
    while (sent < static_cast<size_t>(n)) {
      const size_t left = static_cast<size_t>(n) - sent;
      if (ssl_) {
        const int rc = SSL_write(ssl_.get(), data + sent, static_cast<int>(left));
        if (rc > 0) {
          sent += static_cast<size_t>(rc);
          continue;
        }
        const int error = SSL_get_error(ssl_.get(), rc);
        if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
          return fail(absl::UnavailableError("write to " + authority_ + " failed"));
        }
        auto waited = waitFor(error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
        if (!waited.ok())
          return fail(absl::UnavailableError("write to " + authority_ + " stalled"));
      } else {
        const ssize_t rc = ::send(fd_.get(), data + sent, left, MSG_NOSIGNAL);
        if (rc > 0) {
          sent += static_cast<size_t>(rc);
          continue;
        }
        if (rc < 0 && errno != EAGAIN && errno != EINTR) {
          return fail(absl::UnavailableError(
              absl::StrCat("write to ", authority_, ": ", std::strerror(errno))));
        }
        auto waited = waitFor(POLLOUT, deadline);
        if (!waited.ok())
          return fail(absl::UnavailableError("write to " + authority_ + " stalled"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status BlockingChannel::readSome(Clock::time_point deadline) {
  uint8_t buffer[16384];
  while (true) {
    ssize_t got;
    short wait_events = POLLIN;
    if (ssl_) {
      const int rc = SSL_read(ssl_.get(), buffer, sizeof(buffer));
      got = rc;
      if (rc <= 0) {
        const int error = SSL_get_error(ssl_.get(), rc);
        if (error == SSL_ERROR_WANT_WRITE) {
          wait_events = POLLOUT;
        } else if (error != SSL_ERROR_WANT_READ) {
          return fail(absl::UnavailableError(authority_ + " closed the connection"));
        }
      }
    } else {
      got = ::recv(fd_.get(), buffer, sizeof(buffer), 0);
      if (got == 0) return fail(absl::UnavailableError(authority_ + " closed the connection"));
      if (got < 0 && errno != EAGAIN && errno != EINTR) {
        return fail(absl::UnavailableError(
            absl::StrCat("read from ", authority_, ": ", std::strerror(errno))));
      }
    }
    if (got > 0) {
      const ssize_t used =
          nghttp2_session_mem_recv(session_.get(), buffer, static_cast<size_t>(got));
      if (used < 0) {
        return fail(absl::UnavailableError(absl::StrCat("HTTP/2 error from ", authority_, ": ",
                                                        nghttp2_strerror(static_cast<int>(used)))));
      }
      return absl::OkStatus();
    }
    absl::Status waited = waitFor(wait_events, deadline);
    if (!waited.ok()) return waited;  // a deadline is the caller's, not the connection's
  }
}

template <class Done>
absl::Status BlockingChannel::pumpUntil(Done done, Clock::time_point deadline) {
  while (true) {
    if (!broken_.ok()) return broken_;
    if (absl::Status flushed = flush(deadline); !flushed.ok()) return flushed;
    if (done()) return absl::OkStatus();
    if (!nghttp2_session_want_read(session_.get())) {
      return fail(absl::UnavailableError(authority_ + " ended the HTTP/2 session"));
    }
    if (absl::Status read = readSome(deadline); !read.ok()) return read;
  }
}

absl::StatusOr<int32_t> BlockingChannel::openStream(std::string_view path) {
  if (!broken_.ok()) return broken_;
  if (goaway_) return absl::UnavailableError(authority_ + " is going away");
  auto stream = std::make_unique<Stream>();
  const http::HeaderMap headers = {{":method", "POST"},
                                   {":scheme", scheme_},
                                   {":path", std::string(path)},
                                   {":authority", authority_},
                                   {"content-type", "application/grpc"},
                                   {"te", "trailers"}};
  http::NvList nv(headers);
  nghttp2_data_provider provider{};
  provider.source.ptr = stream.get();
  provider.read_callback = &readOutgoing;
  const int32_t id =
      nghttp2_submit_request(session_.get(), nullptr, nv.data(), nv.size(), &provider, nullptr);
  if (id < 0) return absl::UnavailableError(nghttp2_strerror(id));
  streams_[id] = std::move(stream);
  return id;
}

absl::Status BlockingChannel::send(int32_t id, const google::protobuf::Message& message,
                                   bool last) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return absl::NotFoundError("no such stream");
  it->second->outgoing += frame(message);
  it->second->outgoing_done = last;
  nghttp2_session_resume_data(session_.get(), id);
  return flush(Clock::now() + std::chrono::seconds(10));
}

absl::Status BlockingChannel::streamStatus(const Stream& stream) const {
  if (stream.grpc_status.empty()) {
    if (stream.reset_code != 0) {
      return absl::UnavailableError(absl::StrCat(
          authority_, " reset the stream: ", nghttp2_http2_strerror(stream.reset_code)));
    }
    return absl::UnavailableError(authority_ + " sent no grpc-status");
  }
  int code = 0;
  if (!absl::SimpleAtoi(stream.grpc_status, &code) || code < 0 || code > 16) code = 2;
  return absl::Status(static_cast<absl::StatusCode>(code), decodeMessageText(stream.grpc_message));
}

absl::Status BlockingChannel::read(int32_t id, google::protobuf::Message& message,
                                   Milliseconds timeout) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return absl::NotFoundError("no such stream");
  Stream& stream = *it->second;
  absl::Status pumped =
      pumpUntil([&] { return !stream.messages.empty() || stream.closed; }, Clock::now() + timeout);
  if (!stream.messages.empty()) {
    const std::string body = std::move(stream.messages.front());
    stream.messages.pop_front();
    if (!message.ParseFromString(body)) {
      return absl::InternalError("malformed " + message.GetTypeName() + " from " + authority_);
    }
    return absl::OkStatus();
  }
  if (!pumped.ok()) return pumped;
  absl::Status status = streamStatus(stream);
  return status.ok() ? absl::NotFoundError("the stream ended") : status;
}

void BlockingChannel::cancel(int32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  if (!it->second->closed) {
    nghttp2_submit_rst_stream(session_.get(), NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    (void)flush(Clock::now() + std::chrono::seconds(1));
  }
  // nghttp2 may still call the data source until the stream is closed: keep the node until then.
  if (it->second->closed) {
    streams_.erase(it);
  } else {
    it->second->cancelled = true;
  }
}

absl::Status BlockingChannel::call(std::string_view path, const google::protobuf::Message& request,
                                   google::protobuf::Message& response, Milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  absl::StatusOr<int32_t> id = openStream(path);
  if (!id.ok()) return id.status();
  Stream& stream = *streams_[*id];
  stream.outgoing = frame(request);
  stream.outgoing_done = true;
  absl::Status pumped = pumpUntil([&] { return stream.closed; }, deadline);
  if (!pumped.ok()) {
    cancel(*id);
    if (absl::IsDeadlineExceeded(pumped)) {
      return absl::DeadlineExceededError(
          absl::StrCat("no reply from ", authority_, " within ", timeout.count(), " ms"));
    }
    return pumped;
  }
  absl::Status status = streamStatus(stream);
  if (status.ok()) {
    if (stream.messages.empty() || !response.ParseFromString(stream.messages.front())) {
      status =
          absl::InternalError("no " + response.GetTypeName() + " in the reply from " + authority_);
    }
  }
  streams_.erase(*id);
  return status;
}

int BlockingChannel::onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                              size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                              void* user) {
  auto* self = static_cast<BlockingChannel*>(user);
  auto it = self->streams_.find(frame->hd.stream_id);
  if (it == self->streams_.end()) return 0;
  const std::string_view key(reinterpret_cast<const char*>(name), namelen);
  const std::string_view text(reinterpret_cast<const char*>(value), valuelen);
  if (key == "grpc-status") it->second->grpc_status = std::string(text);
  if (key == "grpc-message") it->second->grpc_message = std::string(text);
  if (key == ":status" && text != "200") {
    it->second->grpc_status = "14";  // not a gRPC server: UNAVAILABLE, as gRPC maps it
    it->second->grpc_message = "HTTP status " + std::string(text);
  }
  return 0;
}

int BlockingChannel::onData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                            void* user) {
  auto* self = static_cast<BlockingChannel*>(user);
  auto it = self->streams_.find(id);
  if (it == self->streams_.end()) return 0;
  Stream& stream = *it->second;
  stream.incoming.append(reinterpret_cast<const char*>(data), len);
  while (auto header = frameHeader(stream.incoming)) {
    const size_t length = header->length;
    if (stream.incoming.size() < 5 + length) break;
    stream.messages.push_back(stream.incoming.substr(5, length));
    stream.incoming.erase(0, 5 + length);
  }
  return 0;
}

int BlockingChannel::onStreamClose(nghttp2_session*, int32_t id, uint32_t error_code, void* user) {
  auto* self = static_cast<BlockingChannel*>(user);
  auto it = self->streams_.find(id);
  if (it == self->streams_.end()) return 0;
  it->second->closed = true;
  it->second->reset_code = error_code;
  if (it->second->cancelled) self->streams_.erase(it);
  return 0;
}

int BlockingChannel::onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type == NGHTTP2_GOAWAY) static_cast<BlockingChannel*>(user)->goaway_ = true;
  return 0;
}

ssize_t BlockingChannel::readOutgoing(nghttp2_session* session, int32_t id, uint8_t* buf,
                                      size_t length, uint32_t* flags, nghttp2_data_source* source,
                                      void*) {
  auto* stream = static_cast<Stream*>(source->ptr);
  return http::pullBody(session, id, stream->outgoing, stream->outgoing_done, {}, buf, length,
                        flags);
}

}  // namespace mcproxy::grpc

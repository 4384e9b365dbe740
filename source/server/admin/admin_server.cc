#include "source/server/admin/admin_server.h"

#include <google/protobuf/util/json_util.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "source/common/http/nghttp2_headers.h"
#include "source/common/logging/logger.h"
#include "source/server/admin/admin_service.h"

namespace mcproxy::server {
namespace {

constexpr const char* kGrpcPrefix = "/mcproxy.admin.v1.Admin/";
constexpr size_t kMaxRequestBytes = 4 * 1024 * 1024;

// Percent-encodes a grpc-message value (RFC 3986 unreserved bytes and space pass).
std::string grpcMessage(const std::string& text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace

// One admin client connection: an nghttp2 server session over the Unix socket.
class AdminConnection : public event::DeferredDeletable {
 public:
  AdminConnection(AdminServer& server, event::Dispatcher& dispatcher, network::UniqueFd fd)
      : server_(server), dispatcher_(dispatcher), fd_(std::move(fd)) {
    nghttp2_session_callbacks* callbacks;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, &onHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &onData);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &onFrame);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &onClose);
    nghttp2_session_server_new(&session_, callbacks, this);
    nghttp2_session_callbacks_del(callbacks);
    const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 1);
    read_event_ = std::make_unique<event::IoEvent>(
        dispatcher_, fd_.get(), event::IoEvent::Kind::kRead, [this] { onRead(); });
    write_event_ = std::make_unique<event::IoEvent>(
        dispatcher_, fd_.get(), event::IoEvent::Kind::kWrite, [this] { flush(); });
  }
  ~AdminConnection() override { nghttp2_session_del(session_); }

  // After the server recorded `position`: from here on the connection may close itself.
  void start() {
    read_event_->enable();
    flush();
  }

  std::list<std::unique_ptr<AdminConnection>>::iterator position;

 private:
  struct Stream {
    std::map<std::string, std::string> headers;
    std::string body;
    std::string response;
    http::HeaderMap trailers;
  };

  static AdminConnection* self(void* user_data) { return static_cast<AdminConnection*>(user_data); }

  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    self(user)
        ->streams_[frame->hd.stream_id]
        .headers[std::string(reinterpret_cast<const char*>(name), namelen)] =
        std::string(reinterpret_cast<const char*>(value), valuelen);
    return 0;
  }

  static int onData(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data, size_t len,
                    void* user) {
    Stream& stream = self(user)->streams_[id];
    if (stream.body.size() + len > kMaxRequestBytes) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
      return 0;
    }
    stream.body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int onFrame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      self(user)->respond(frame->hd.stream_id);
    }
    return 0;
  }

  static int onClose(nghttp2_session*, int32_t id, uint32_t, void* user) {
    self(user)->streams_.erase(id);
    return 0;
  }

  static ssize_t readResponse(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length,
                              uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* stream = static_cast<Stream*>(source->ptr);
    return http::pullBody(session, id, stream->response, true, stream->trailers, buf, length,
                          flags);
  }

  void respond(int32_t id) {
    Stream& stream = streams_[id];
    const std::string& path = stream.headers[":path"];
    http::HeaderMap headers;
    if (path.rfind(kGrpcPrefix, 0) == 0) {
      GrpcReply reply;
      const std::string& body = stream.body;
      auto framedLength = [&body] {
        uint32_t len = 0;
        for (int i = 1; i <= 4; ++i) len = (len << 8) | static_cast<uint8_t>(body[i]);
        return static_cast<size_t>(len);
      };
      if (body.size() < 5 || body[0] != 0 || body.size() - 5 != framedLength()) {
        reply = {GrpcCode::kInvalidArgument, "not one uncompressed gRPC message", ""};
      } else {
        reply = handleAdminCall(path.substr(std::strlen(kGrpcPrefix)), body.substr(5),
                                server_.backend());
      }
      headers = {{":status", "200"}, {"content-type", "application/grpc"}};
      if (reply.code == GrpcCode::kOk) {
        const uint32_t len = static_cast<uint32_t>(reply.response.size());
        stream.response = std::string{0, static_cast<char>(len >> 24), static_cast<char>(len >> 16),
                                      static_cast<char>(len >> 8), static_cast<char>(len)} +
                          reply.response;
        stream.trailers = {{"grpc-status", "0"}};
      } else {
        // Trailers-only: the status goes in the one HEADERS frame.
        headers.push_back({"grpc-status", std::to_string(static_cast<int>(reply.code))});
        headers.push_back({"grpc-message", grpcMessage(reply.message)});
        submit(id, headers, nullptr);
        return;
      }
    } else {
      std::string status = "200";
      std::string content_type = "text/plain; charset=utf-8";
      AdminBackend& backend = server_.backend();
      if (path == "/healthz") {
        stream.response = "ok\n";
      } else if (path == "/readyz") {
        const bool ready = backend.ready();
        status = ready ? "200" : "503";
        stream.response = ready ? "ready\n" : "not ready\n";
      } else if (path == "/metrics") {
        content_type = "text/plain; version=0.0.4; charset=utf-8";
        stream.response = renderPrometheus(backend.stats(), backend);
      } else if (path == "/config_dump") {
        content_type = "application/json";
        mcproxy::config::v1::Bootstrap config = backend.currentSnapshot()->config;
        config.clear_admin();
        google::protobuf::util::JsonPrintOptions options;
        options.add_whitespace = true;
        (void)google::protobuf::util::MessageToJsonString(config, &stream.response, options);
        stream.response = "{\"version\": " + std::to_string(backend.currentSnapshot()->version) +
                          ", \"config\": " + stream.response + "}\n";
      } else {
        status = "404";
        stream.response = "no such endpoint: " + path + "\n";
      }
      headers = {{":status", status}, {"content-type", content_type}};
    }
    nghttp2_data_provider provider{};
    provider.source.ptr = &stream;
    provider.read_callback = &readResponse;
    submit(id, headers, &provider);
  }

  void submit(int32_t id, const http::HeaderMap& headers, nghttp2_data_provider* provider) {
    http::NvList nv(headers);
    nghttp2_submit_response(session_, id, nv.data(), nv.size(), provider);
  }

  void onRead() {
    char buffer[16384];
    while (true) {
      const ssize_t n = ::recv(fd_.get(), buffer, sizeof(buffer), 0);
      if (n > 0) {
        if (nghttp2_session_mem_recv(session_, reinterpret_cast<uint8_t*>(buffer),
                                     static_cast<size_t>(n)) < 0) {
          close();
          return;
        }
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
      close();
      return;
    }
    flush();
  }

  void flush() {
    while (true) {
      if (pending_.size() < 65536) {
        const uint8_t* data = nullptr;
        const ssize_t n = nghttp2_session_mem_send(session_, &data);
        if (n < 0) {
          close();
          return;
        }
        pending_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
        if (n > 0) continue;
      }
      if (pending_.empty()) break;
      const ssize_t sent = ::send(fd_.get(), pending_.data(), pending_.size(), MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
          write_event_->enable();
          return;
        }
        close();
        return;
      }
      pending_.erase(0, static_cast<size_t>(sent));
    }
    write_event_->disable();
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) close();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    read_event_->disable();
    write_event_->disable();
    fd_.reset();
    server_.onConnectionClosed(*this);
  }

  AdminServer& server_;
  event::Dispatcher& dispatcher_;
  network::UniqueFd fd_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, Stream> streams_;
  std::string pending_;
  std::unique_ptr<event::IoEvent> read_event_;
  std::unique_ptr<event::IoEvent> write_event_;
  bool closed_ = false;
};

AdminServer::AdminServer(event::Dispatcher& dispatcher, AdminBackend& backend,
                         std::string socket_path, std::vector<uid_t> allowed_uids)
    : dispatcher_(dispatcher),
      backend_(backend),
      socket_path_(std::move(socket_path)),
      allowed_uids_(std::move(allowed_uids)) {}

AdminServer::~AdminServer() {
  connections_.clear();
  accept_event_.reset();
  if (socket_.valid()) ::unlink(socket_path_.c_str());
}

bool AdminServer::start(std::string& error) {
  sockaddr_un address{};
  if (socket_path_.size() >= sizeof(address.sun_path)) {
    error = "admin.socket: path longer than " + std::to_string(sizeof(address.sun_path) - 1);
    return false;
  }
  // A directory others may write to would let them replace the socket with their own.
  const std::string directory = socket_path_.find('/') == std::string::npos
                                    ? "."
                                    : socket_path_.substr(0, socket_path_.rfind('/') + 1);
  struct stat info {};
  if (::stat(directory.c_str(), &info) != 0) {
    error = "admin.socket: directory " + directory + ": " + std::strerror(errno);
    return false;
  }
  if ((info.st_mode & S_IWOTH) && !(info.st_mode & S_ISVTX)) {
    error = "admin.socket: directory " + directory + " is writable by other users";
    return false;
  }
  socket_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_path_.data(), socket_path_.size());
  struct stat existing {};
  if (::lstat(socket_path_.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) {
      error = "admin.socket: " + socket_path_ + " exists and is not a socket";
      return false;
    }
    ::unlink(socket_path_.c_str());  // a stale socket from an earlier run
  }
  const mode_t old_umask = ::umask(0177);  // created 0600, never briefly wider
  const int rc = ::bind(socket_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address));
  ::umask(old_umask);
  if (rc != 0 || ::chmod(socket_path_.c_str(), 0600) != 0 || ::listen(socket_.get(), 64) != 0) {
    error = "admin.socket: " + socket_path_ + ": " + std::strerror(errno);
    return false;
  }
  accept_event_ = std::make_unique<event::IoEvent>(
      dispatcher_, socket_.get(), event::IoEvent::Kind::kRead, [this] { onAccept(); });
  accept_event_->enable();
  LOG_INFO << "admin API on " << socket_path_ << " (mode 0600)";
  return true;
}

void AdminServer::onAccept() {
  while (true) {
    network::UniqueFd fd(::accept4(socket_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) return;
    ucred peer{};
    socklen_t len = sizeof(peer);
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 ||
        (peer.uid != ::geteuid() &&
         std::find(allowed_uids_.begin(), allowed_uids_.end(), peer.uid) == allowed_uids_.end())) {
      LOG_WARN << "admin API: refused a client with uid " << peer.uid << " (pid " << peer.pid
               << "); list it in admin { allowed_uids } to let it in";
      continue;  // closing fd refuses it
    }
    auto connection = std::make_unique<AdminConnection>(*this, dispatcher_, std::move(fd));
    AdminConnection* raw = connection.get();
    connections_.push_front(std::move(connection));
    raw->position = connections_.begin();
    raw->start();
  }
}

void AdminServer::onConnectionClosed(AdminConnection& connection) {
  std::unique_ptr<AdminConnection> owned = std::move(*connection.position);
  connections_.erase(connection.position);
  dispatcher_.deferredDelete(std::move(owned));
}

}  // namespace mcproxy::server

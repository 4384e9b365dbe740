#include "source/server/admin/admin_server.h"

#include <google/protobuf/util/json_util.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "source/common/buffer/buffer.h"
#include "source/common/grpc/framing.h"
#include "source/common/http/codec.h"
#include "source/common/http/http1/server_codec.h"
#include "source/common/http/http2/server_codec.h"
#include "source/common/logging/logger.h"
#include "source/common/network/transport_connection.h"
#include "source/common/network/transport_socket.h"
#include "source/server/admin/admin_service.h"
#include "source/server/listen_socket.h"

namespace mcproxy::server {
namespace {

constexpr const char* kGrpcPrefix = "/mcproxy.admin.v1.Admin/";

// /readyz's lines after "ready": what runs ("version 7 hash 3f2a..."), and with --fleet how the
// node follows ("fleet edge version 12 applied, etcd connected").
std::string describeRunning(const mcproxy::admin::v1::Status& status) {
  std::string text = "version " + std::to_string(status.snapshot_version());
  if (!status.snapshot_hash().empty()) text += " hash " + status.snapshot_hash();
  text += "\n";
  if (!status.fleet().empty()) {
    const auto& node = status.fleet_node();
    text += "fleet " + status.fleet() + " node " + node.node_id() + " version " +
            std::to_string(node.applied_version()) + " " + node.state() + ", etcd " +
            (status.etcd_connected() ? "connected" : "UNREACHABLE") + "\n";
    if (!node.error().empty()) {
      text +=
          "refused version " + std::to_string(node.refused_version()) + ": " + node.error() + "\n";
    }
  }
  return text;
}
constexpr size_t kMaxRequestBytes = 4 * 1024 * 1024;
// What is read and dropped of a request refused as too large before its stream is reset.
constexpr size_t kMaxDiscardBytes = 256 * 1024 * 1024;
// An HTTP/2 client with prior knowledge starts with this; anything else is HTTP/1.1.
constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::chrono::milliseconds kFirstBytesTimeout{10000};
constexpr std::chrono::milliseconds kLingerTime{1000};
constexpr http::http2::ServerLimits kHttp2Limits{100, 65536, 1024 * 1024};

}  // namespace

class AdminStream;

// One admin client connection: the proxy's TransportConnection over a raw socket, with the
// HTTP/2 codec (prior knowledge) or the HTTP/1.1 one, chosen by the first bytes.
class AdminConnection : public network::TransportCallbacks,
                        public http::ServerCodecCallbacks,
                        public event::DeferredDeletable {
 public:
  AdminConnection(AdminServer& server, event::Dispatcher& dispatcher, network::UniqueFd fd,
                  bool grpc)
      : server_(server),
        dispatcher_(dispatcher),
        fd_(std::move(fd)),
        grpc_(grpc),
        transport_(dispatcher, *this) {}
  ~AdminConnection() override;

  void start() {
    transport_.accept(fd_.get(), network::makeRawTransportSocket(fd_.get()), kFirstBytesTimeout);
  }
  AdminServer& server() { return server_; }
  bool grpcAllowed() const { return grpc_; }
  void onStreamEnded(AdminStream& stream);

  // network::TransportCallbacks
  void onTransportReady() override {}
  void onTransportData(const char* data, size_t len) override;
  void produceOutput(std::string& out, size_t max) override {
    if (codec_) codec_->produce(out, max);
  }
  void onTransportFlushed() override {
    if (codec_ && codec_->finished()) transport_.lingeringClose(kLingerTime);
  }
  bool readPaused() const override { return codec_ && codec_->readPaused(); }
  void onTransportEnd(network::TransportEnd, const std::string&) override { close(); }

  // http::ServerCodecCallbacks
  http::StreamCallbacks& onNewStream(http::Stream& stream) override;
  void scheduleFlush() override { transport_.scheduleFlush(); }

  std::list<std::unique_ptr<AdminConnection>>::iterator position;

 private:
  void close();

  AdminServer& server_;
  event::Dispatcher& dispatcher_;
  network::UniqueFd fd_;
  const bool grpc_;  // the Unix socket: the gRPC API too
  network::TransportConnection transport_;
  std::string first_bytes_;  // until the protocol is known
  std::unique_ptr<http::ServerCodec> codec_;
  std::list<std::unique_ptr<AdminStream>> streams_;
  bool closed_ = false;
};

// One request: its headers and body, then one response.
class AdminStream : public http::StreamCallbacks, public event::DeferredDeletable {
 public:
  AdminStream(AdminConnection& connection, http::Stream& stream)
      : connection_(connection), stream_(&stream) {}

  void onHeaders(http::HeaderMap&& headers, bool end_stream) override {
    headers_ = std::move(headers);
    if (end_stream) respond();
  }
  void onData(std::string_view data, bool end_stream) override {
    if (refused_) {
      discard(data.size());
      return;
    }
    if (body_.size() + data.size() > kMaxRequestBytes) {
      refuseTooLarge();
      discard(data.size());
      return;
    }
    body_.append(data);
    if (stream_) stream_->consumeBody(data.size());
    if (end_stream) respond();
  }
  void onTrailers(http::HeaderMap&&) override { respond(); }
  void onBodySent(size_t) override {}
  void onStreamEnd(http::StreamEndReason, std::string_view) override {
    stream_.onEnd();
    connection_.onStreamEnded(*this);
  }
  void onDecodeError(int status, std::string_view detail) override {
    send(std::to_string(status), "text/plain; charset=utf-8", std::string(detail) + "\n", {});
  }

  std::list<std::unique_ptr<AdminStream>>::iterator position;

 private:
  void respond();
  void send(const std::string& status, const std::string& content_type, std::string body,
            const http::HeaderMap& trailers);
  // A gRPC error: trailers-only, the status in the one HEADERS frame.
  void sendGrpcError(const GrpcReply& reply);
  // Answers a request over kMaxRequestBytes (gRPC: RESOURCE_EXHAUSTED, which clients do not
  // retry; HTTP: 413). The rest of the request is read and dropped, so the client sees the
  // answer (gRPC clients report a reset that arrives while they still send as INTERNAL), up to
  // kMaxDiscardBytes; past that the stream is reset.
  void refuseTooLarge();
  void discard(size_t bytes);
  void sendGrpcReply(const GrpcReply& reply);

  AdminConnection& connection_;
  // A change's reply comes back from the change thread through the main loop; by then this
  // stream may be gone (the client left): the reply is dropped.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  http::StreamHandle stream_;
  http::HeaderMap headers_;
  std::string body_;
  bool responded_ = false;
  bool refused_ = false;
  size_t discarded_ = 0;
};

void AdminStream::send(const std::string& status, const std::string& content_type, std::string body,
                       const http::HeaderMap& trailers) {
  if (responded_ || !stream_) return;
  responded_ = true;
  http::HeaderMap headers{{":status", status}, {"content-type", content_type}};
  if (trailers.empty()) headers.add("content-length", std::to_string(body.size()));
  stream_->encodeHeaders(headers, false);
  buffer::Buffer data;
  data.append(body);
  if (!stream_) return;
  stream_->encodeData(data, trailers.empty());
  if (!trailers.empty() && stream_) stream_->encodeTrailers(trailers);
}

void AdminStream::sendGrpcError(const GrpcReply& reply) {
  if (responded_) return;
  responded_ = true;
  http::HeaderMap headers{{":status", "200"},
                          {"content-type", "application/grpc"},
                          {"grpc-status", std::to_string(static_cast<int>(reply.code))},
                          {"grpc-message", grpc::encodeMessageText(reply.message)}};
  if (stream_) stream_->encodeHeaders(headers, true);
}

void AdminStream::sendGrpcReply(const GrpcReply& reply) {
  if (reply.code != GrpcCode::kOk) {
    sendGrpcError(reply);
    return;
  }
  send("200", "application/grpc", grpc::frameMessage(reply.response), {{"grpc-status", "0"}});
}

void AdminStream::refuseTooLarge() {
  const std::string why = "the request is larger than the admin API's limit of " +
                          std::to_string(kMaxRequestBytes) + " bytes";
  if (connection_.grpcAllowed() && headers_.path().starts_with(kGrpcPrefix)) {
    sendGrpcError({GrpcCode::kResourceExhausted, why, ""});
  } else {
    send("413", "text/plain; charset=utf-8", why + "\n", {});
  }
  refused_ = true;
  body_.clear();
  body_.shrink_to_fit();
}

void AdminStream::discard(size_t bytes) {
  discarded_ += bytes;
  if (discarded_ > kMaxDiscardBytes) {
    stream_.reset();
    connection_.onStreamEnded(*this);
    return;
  }
  if (stream_) stream_->consumeBody(bytes);
}

void AdminStream::respond() {
  if (responded_) return;
  const std::string path(headers_.path());
  AdminBackend& backend = connection_.server().backend();
  if (connection_.grpcAllowed() && path.rfind(kGrpcPrefix, 0) == 0) {
    GrpcReply reply;
    const std::string method = path.substr(std::strlen(kGrpcPrefix));
    const auto header = grpc::frameHeader(body_);
    if (!header || header->compressed || body_.size() - 5 != header->length) {
      reply = {GrpcCode::kInvalidArgument, "not one uncompressed gRPC message", ""};
    } else if (changesConfig(method)) {
      event::Dispatcher& dispatcher = connection_.server().dispatcher();
      backend.runChange([method, request = body_.substr(5), &dispatcher, self = this,
                         alive = std::weak_ptr<bool>(alive_)](ConfigChanges& where) {
        GrpcReply result = handleAdminChange(method, request, where);
        dispatcher.post([self, alive, result = std::move(result)] {
          if (alive.lock()) self->sendGrpcReply(result);
        });
      });
      return;
    } else {
      reply = handleAdminRead(method, body_.substr(5), backend);
    }
    sendGrpcReply(reply);
    return;
  }
  if (path.rfind(kGrpcPrefix, 0) == 0) {  // over TCP: changes stay behind the socket's mode
    send("404", "text/plain; charset=utf-8",
         "the admin API is served on the admin socket (admin.socket) only\n", {});
    return;
  }
  const std::string_view method = headers_.method();
  if (method != "GET" && method != "HEAD") {
    send("405", "text/plain; charset=utf-8", "only GET here\n", {});
    return;
  }
  if (path == "/healthz") {
    send("200", "text/plain; charset=utf-8", "ok\n", {});
  } else if (path == "/readyz") {
    const bool ready = backend.ready();
    send(ready ? "200" : "503", "text/plain; charset=utf-8",
         std::string(ready ? "ready\n" : "not ready\n") + describeRunning(backend.status()), {});
  } else if (path == "/metrics") {
    send("200", "text/plain; version=0.0.4; charset=utf-8",
         renderPrometheus(backend.stats(), backend), {});
  } else if (path == "/config_dump") {
    mcproxy::config::v1::Bootstrap config = backend.currentSnapshot()->config();
    config.clear_admin();
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(config, &json, options);
    send("200", "application/json",
         "{\"version\": " + std::to_string(backend.currentSnapshot()->version) +
             ", \"config\": " + json + "}\n",
         {});
  } else {
    send("404", "text/plain; charset=utf-8", "no such endpoint: " + path + "\n", {});
  }
}

AdminConnection::~AdminConnection() {
  streams_.clear();
  codec_.reset();
}

void AdminConnection::onTransportData(const char* data, size_t len) {
  if (!codec_) {
    first_bytes_.append(data, len);
    const size_t known = std::min(first_bytes_.size(), kHttp2Preface.size());
    const bool h2 = first_bytes_.compare(0, known, kHttp2Preface.substr(0, known)) == 0;
    if (h2 && known < 4) return;  // "P", "PR", "PRI": POST or PUT may still follow
    if (h2) {
      codec_ = std::make_unique<http::http2::ServerCodec>(*this, kHttp2Limits);
    } else {
      codec_ = std::make_unique<http::http1::ServerCodec>(*this, kHttp2Limits.max_header_list_bytes,
                                                          kMaxRequestBytes);
    }
    data = first_bytes_.data();
    len = first_bytes_.size();
  }
  const bool ok = codec_->receive(data, len);
  std::string().swap(first_bytes_);
  if (!ok) {
    transport_.flush();
    transport_.lingeringClose(kLingerTime);
  }
}

http::StreamCallbacks& AdminConnection::onNewStream(http::Stream& stream) {
  streams_.push_front(std::make_unique<AdminStream>(*this, stream));
  streams_.front()->position = streams_.begin();
  return *streams_.front();
}

void AdminConnection::onStreamEnded(AdminStream& stream) {
  // Destroyed after the codec callback it ends in has returned.
  std::unique_ptr<AdminStream> owned = std::move(*stream.position);
  streams_.erase(stream.position);
  dispatcher_.deferredDelete(std::move(owned));
}

void AdminConnection::close() {
  if (closed_) return;
  closed_ = true;
  if (codec_) codec_->abort();  // every open stream ends
  transport_.close();
  server_.onConnectionClosed(*this);
}

AdminServer::AdminServer(event::Dispatcher& dispatcher, AdminBackend& backend,
                         std::string socket_path, std::vector<uid_t> allowed_uids,
                         std::string http_address)
    : dispatcher_(dispatcher),
      backend_(backend),
      socket_path_(std::move(socket_path)),
      allowed_uids_(std::move(allowed_uids)),
      http_address_(std::move(http_address)) {}

AdminServer::~AdminServer() {
  connections_.clear();
  accept_event_.reset();
  http_accept_event_.reset();
  if (socket_.valid()) ::unlink(socket_path_.c_str());
}

bool AdminServer::start(std::string& error) {
  if (!socket_path_.empty() && !startSocket(error)) return false;
  if (!http_address_.empty() && !startHttp(error)) return false;
  return true;
}

bool AdminServer::startSocket(std::string& error) {
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
  accept_event_ =
      std::make_unique<event::IoEvent>(dispatcher_, socket_.get(), event::IoEvent::Kind::kRead,
                                       [this] { onAccept(socket_.get(), /*grpc=*/true); });
  accept_event_->enable();
  LOG_INFO << "admin API on " << socket_path_ << " (mode 0600)";
  return true;
}

bool AdminServer::startHttp(std::string& error) {
  auto address = network::Address::parseIpPort(http_address_, error);
  if (!address) {
    error = "admin.http_address: " + error;
    return false;
  }
  http_socket_ = createListenSocket(*address, 64, error);
  if (!http_socket_.valid()) {
    error = "admin.http_address: " + http_address_ + ": " + error;
    return false;
  }
  http_bound_ = boundAddress(http_socket_.get());
  http_accept_event_ =
      std::make_unique<event::IoEvent>(dispatcher_, http_socket_.get(), event::IoEvent::Kind::kRead,
                                       [this] { onAccept(http_socket_.get(), /*grpc=*/false); });
  http_accept_event_->enable();
  LOG_INFO << "admin HTTP (/metrics, /healthz, /readyz, /config_dump) on "
           << http_bound_.toString();
  return true;
}

void AdminServer::onAccept(int listen_fd, bool grpc) {
  while (true) {
    network::UniqueFd fd(::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) return;
    if (grpc) {
      ucred peer{};
      socklen_t len = sizeof(peer);
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 ||
          (peer.uid != ::geteuid() && std::find(allowed_uids_.begin(), allowed_uids_.end(),
                                                peer.uid) == allowed_uids_.end())) {
        LOG_WARN << "admin API: refused a client with uid " << peer.uid << " (pid " << peer.pid
                 << "); list it in admin { allowed_uids } to let it in";
        continue;  // closing fd refuses it
      }
    }
    connections_.push_front(
        std::make_unique<AdminConnection>(*this, dispatcher_, std::move(fd), grpc));
    AdminConnection& connection = *connections_.front();
    connection.position = connections_.begin();
    connection.start();
  }
}

void AdminServer::onConnectionClosed(AdminConnection& connection) {
  std::unique_ptr<AdminConnection> owned = std::move(*connection.position);
  connections_.erase(connection.position);
  dispatcher_.deferredDelete(std::move(owned));
}

}  // namespace mcproxy::server

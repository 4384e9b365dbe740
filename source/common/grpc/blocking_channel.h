#pragma once

#include <google/protobuf/message.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "source/common/network/fd.h"

namespace mcproxy::grpc {

// A gRPC client connection for tools and background threads (mcproxyctl, the fleet follower),
// never the data path: blocking calls with deadlines, over HTTP/2 with prior knowledge on a Unix
// socket or TCP, or over TLS (ALPN h2). Several streams share the connection: a watch stream
// stays open while unary calls come and go. Not thread-safe; one thread uses a channel. TLS
// writes go through write(2): the process ignores SIGPIPE (mc-proxy and mcproxyctl do).
//
// Errors are absl::Status whose code is the gRPC status the server sent (absl's codes are
// gRPC's), or UNAVAILABLE / DEADLINE_EXCEEDED for the connection itself.
class BlockingChannel {
 public:
  using Milliseconds = std::chrono::milliseconds;

  static absl::StatusOr<std::unique_ptr<BlockingChannel>> connectUnix(const std::string& path,
                                                                      Milliseconds timeout);
  // `tls`: a client context (tls::makeClientContext), or null for h2c. `host` is resolved
  // (every address is tried) and, over TLS, is the name or IP address the certificate must have.
  static absl::StatusOr<std::unique_ptr<BlockingChannel>> connectTcp(const std::string& host,
                                                                     uint16_t port,
                                                                     std::shared_ptr<SSL_CTX> tls,
                                                                     Milliseconds timeout);
  ~BlockingChannel();
  BlockingChannel(const BlockingChannel&) = delete;
  BlockingChannel& operator=(const BlockingChannel&) = delete;

  // One request, one response; `path` is "/package.Service/Method".
  absl::Status call(std::string_view path, const google::protobuf::Message& request,
                    google::protobuf::Message& response, Milliseconds timeout);

  // A streaming call: open it, send messages (the last one ends the client's side), read
  // messages as they come.
  absl::StatusOr<int32_t> openStream(std::string_view path);
  absl::Status send(int32_t stream, const google::protobuf::Message& message, bool last);
  // The stream's next message: DEADLINE_EXCEEDED when none came within `timeout` (the stream
  // stays usable); the call's status once the server ended it (OK when it ended cleanly without
  // another message: then NOT_FOUND is returned, meaning "no more messages").
  absl::Status read(int32_t stream, google::protobuf::Message& message, Milliseconds timeout);
  // Cancels the stream (RST_STREAM) and forgets it.
  void cancel(int32_t stream);

  // False once the connection failed or the server said GOAWAY: make a new channel.
  bool usable() const { return broken_.ok() && !goaway_; }

 private:
  struct Stream {
    std::string outgoing;  // framed messages nghttp2 has not taken yet
    bool outgoing_done = false;
    std::string incoming;  // bytes of messages not complete yet
    std::deque<std::string> messages;
    bool closed = false;
    std::string grpc_status;
    std::string grpc_message;
    uint32_t reset_code = 0;
    bool cancelled = false;  // forgotten once nghttp2 closes it
  };

  BlockingChannel(network::UniqueFd fd, std::string authority, std::string scheme, SSL* ssl);
  void initSession();
  // Sends what nghttp2 has, then waits for and processes input until `done()` or `deadline`.
  template <class Done>
  absl::Status pumpUntil(Done done, std::chrono::steady_clock::time_point deadline);
  absl::Status flush(std::chrono::steady_clock::time_point deadline);
  absl::Status readSome(std::chrono::steady_clock::time_point deadline);
  absl::Status waitFor(short events, std::chrono::steady_clock::time_point deadline);
  absl::Status streamStatus(const Stream& stream) const;
  absl::Status fail(absl::Status status);

  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user);
  static int onData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                    void* user);
  static int onStreamClose(nghttp2_session*, int32_t id, uint32_t error_code, void* user);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static ssize_t readOutgoing(nghttp2_session*, int32_t id, uint8_t* buf, size_t length,
                              uint32_t* flags, nghttp2_data_source* source, void* user);

  network::UniqueFd fd_;
  std::unique_ptr<SSL, void (*)(SSL*)> ssl_;
  std::string authority_;
  std::string scheme_;
  std::unique_ptr<nghttp2_session, void (*)(nghttp2_session*)> session_;
  // Heap nodes: nghttp2's data source points at a stream before its id is known.
  std::map<int32_t, std::unique_ptr<Stream>> streams_;
  absl::Status broken_;
  bool goaway_ = false;
};

}  // namespace mcproxy::grpc

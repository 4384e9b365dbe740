#pragma once

// Fakes for HTTP codec tests: a stream owner and connection that record what a codec tells
// them, and real nghttp2 peers (a client for server codecs, a server for client codecs) that
// exchange bytes with a codec in memory, without sockets.
#include <nghttp2/nghttp2.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "source/common/http/codec.h"
#include "source/common/http/nghttp2_headers.h"

namespace mcproxy::test {

// Records what a codec tells one stream's owner.
class FakeStreamOwner : public http::StreamCallbacks {
 public:
  explicit FakeStreamOwner(http::Stream* stream = nullptr) : stream(stream), handle(stream) {}

  void onHeaders(http::HeaderMap&& decoded, bool end_stream) override {
    headers = std::move(decoded);
    headers_count++;
    if (end_stream) request_complete = true;
    if (on_headers) on_headers(*this);
  }
  void onData(std::string_view data, bool end_stream) override {
    body.append(data);
    if (end_stream) request_complete = true;
    if (consume && !data.empty() && stream != nullptr) stream->consumeBody(data.size());
  }
  void onTrailers(http::HeaderMap&& decoded) override {
    trailers = std::move(decoded);
    request_complete = true;
  }
  void onBodySent(size_t bytes) override { body_sent += bytes; }
  void onStreamEnd(http::StreamEndReason reason, std::string_view detail) override {
    handle.onEnd();
    stream = nullptr;
    ended = true;
    end_reason = reason;
    end_detail = std::string(detail);
  }
  void onDecodeError(int status, std::string_view detail) override {
    decode_error_status = status;
    decode_error = std::string(detail);
    if (stream == nullptr) return;
    // As the connection manager answers: its one local reply.
    stream->encodeHeaders({{":status", std::to_string(status)}, {"content-length", "0"}}, true);
  }

  http::Stream* stream;
  http::StreamHandle handle;
  http::HeaderMap headers;
  http::HeaderMap trailers;
  std::string body;
  int headers_count = 0;
  bool request_complete = false;  // (or the response, for a client codec's owner)
  bool consume = true;
  size_t body_sent = 0;
  bool ended = false;
  http::StreamEndReason end_reason = http::StreamEndReason::kComplete;
  std::string end_detail;
  int decode_error_status = 0;
  std::string decode_error;
  std::function<void(FakeStreamOwner&)> on_headers;
};

// A server codec's connection: one FakeStreamOwner per request; answer_at_headers answers
// each with a bare 200 as its headers arrive.
class FakeServerConnection : public http::ServerCodecCallbacks {
 public:
  http::StreamCallbacks& onNewStream(http::Stream& stream) override {
    streams.push_back(std::make_unique<FakeStreamOwner>(&stream));
    FakeStreamOwner& owner = *streams.back();
    owner.consume = consume_bodies;
    if (answer_at_headers) {
      owner.on_headers = [](FakeStreamOwner& self) {
        self.stream->encodeHeaders({{":status", "200"}}, true);
      };
    }
    return owner;
  }
  void scheduleFlush() override { ++flushes; }
  size_t ended() const {
    size_t count = 0;
    for (const auto& owner : streams) count += owner->ended ? 1 : 0;
    return count;
  }

  http::ServerCodec* codec = nullptr;
  bool answer_at_headers = false;
  bool consume_bodies = true;
  int flushes = 0;
  std::vector<std::unique_ptr<FakeStreamOwner>> streams;
};

// A client codec's connection.
class FakeClientConnection : public http::ClientCodecCallbacks {
 public:
  void scheduleFlush() override { ++flushes; }
  void onCapacityChanged() override { ++capacity_changes; }
  void onPingAck() override { ++ping_acks; }
  void onResponseTimeout() override { ++response_timeouts; }
  void onReadResumed() override { ++read_resumes; }

  int flushes = 0;
  int capacity_changes = 0;
  int ping_acks = 0;
  int response_timeouts = 0;
  int read_resumes = 0;
};

// What an nghttp2 peer received on one stream.
struct PeerStream {
  http::HeaderMap headers;
  std::string body;
  http::HeaderMap trailers;
  bool closed = false;
  uint32_t reset_code = 0;
};

// A real nghttp2 session (client or server) that talks to a codec in memory.
class Http2Peer {
 public:
  explicit Http2Peer(bool server);
  ~Http2Peer();

  // Client: starts a request; returns its stream id. `end` false leaves the request open.
  int32_t submit(const http::HeaderMap& headers, std::string body = "",
                 const http::HeaderMap& trailers = {}, bool end = true);
  // Server: answers stream `id`.
  void respond(int32_t id, const http::HeaderMap& headers, std::string body = "",
               const http::HeaderMap& trailers = {});
  void reset(int32_t id, uint32_t code = NGHTTP2_CANCEL);
  void ping();
  // The bytes this peer has to send.
  std::string output();
  // Feeds the codec's bytes in; false when nghttp2 refuses them.
  bool input(const std::string& bytes);
  // One round trip with a server or client codec: our output to it, its output to us.
  template <class Codec>
  bool exchange(Codec& codec) {
    const std::string out = output();
    if (!out.empty() && !codec.receive(out.data(), out.size())) return false;
    std::string in;
    codec.produce(in, 1 << 24);
    return input(in);
  }

  std::map<int32_t, PeerStream> streams;  // by stream id
  int ping_acks = 0;
  nghttp2_session* session() { return session_; }

 private:
  struct Outgoing {
    buffer::BufferQueue body;
    http::HeaderMap trailers;
  };
  static ssize_t readBody(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                          nghttp2_data_source*, void*);
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, std::unique_ptr<Outgoing>> outgoing_;
};

}  // namespace mcproxy::test

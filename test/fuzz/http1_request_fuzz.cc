// libFuzzer target: the HTTP/1.1 request path of the L7 proxy, i.e. what a client's decrypted
// bytes go through before a request reaches a backend: http1::ServerCodec (libhttp-parser, the
// request-smuggling refusals, keep-alive, pipelining, 100-continue, request trailers), with an
// in-process stream owner that answers every request the way the connection manager would
// (a response from the backend, or its one local-reply path).
//
// Input: byte 0 chooses how the owner answers (bits 0-1) and how the client's bytes are cut
// into reads (bits 2-7: reads of 1 to 64 bytes); the rest is what the client sent.
//
// Aborts when a request reaches the owner malformed (pseudo-headers missing or out of order;
// upper-case or hop-by-hop names; control bytes in a name or value, or whitespace in the path or
// authority, which an HTTP/1.1 backend would read as a header or request of its own), or when
// the bytes for the client are not HTTP/1.1 responses.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "source/common/http/headers.h"
#include "source/common/http/http1/server_codec.h"
#include "source/common/http/local_reply.h"
#include "test/fuzz/fuzz_check.h"

namespace mcproxy::http {
namespace {

enum class Behaviour {
  kRespondWithLength,  // 200 with content-length, once the request is complete
  kRespondChunked,     // 200 without length (chunked to the client) + trailers, in two steps
  kFailAtOnce,         // a 502 local reply from inside the request headers callback
  kFailLater,          // a 504 local reply on the next loop turn, as a response timeout does
};

// Control bytes but HTAB, and DEL: never valid in a field (RFC 9110 §5.5).
bool forbiddenByte(char c) { return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f; }

void checkRequest(const HeaderMap& headers) {
  FUZZ_CHECK(headers.size() >= 4);
  FUZZ_CHECK(headers[0].name == ":method" && headers[1].name == ":scheme" &&
             headers[2].name == ":path" && headers[3].name == ":authority");
  for (size_t i = 0; i < headers.size(); ++i) {
    const Header& header = headers[i];
    FUZZ_CHECK(!header.name.empty());
    FUZZ_CHECK(i < 4 || header.name[0] != ':');
    for (char c : header.name) {
      FUZZ_CHECK(!forbiddenByte(c) && c != ' ' && c != '\t' && !(c >= 'A' && c <= 'Z'));
    }
    for (char c : header.value) FUZZ_CHECK(!forbiddenByte(c));
    if (i == 2 || i == 3) {  // :path and :authority end up in the request line and Host
      for (char c : header.value) FUZZ_CHECK(c != ' ' && c != '\t');
    }
    // Only a WebSocket handshake keeps one, in the shared shape of http/upgrade.h.
    FUZZ_CHECK(!isHopByHop(header.name, header.value) ||
               (header.name == "upgrade" && header.value == "websocket"));
  }
}

// One request's owner, as the connection manager's ActiveStream is.
class FuzzStream : public StreamCallbacks {
 public:
  FuzzStream(Stream& stream, Behaviour behaviour) : stream_(&stream), behaviour_(behaviour) {}

  void onHeaders(HeaderMap&& headers, bool end_stream) override {
    checkRequest(headers);
    headers_seen_ = true;
    request_complete_ = end_stream;
    if (behaviour_ == Behaviour::kFailAtOnce) localReply(502, "connect: too many open files");
  }
  void onData(std::string_view data, bool end_stream) override {
    FUZZ_CHECK(headers_seen_);
    FUZZ_CHECK(!request_complete_);
    if (!data.empty() && stream_ != nullptr) stream_->consumeBody(data.size());
    request_complete_ = end_stream;
  }
  void onTrailers(HeaderMap&& trailers) override {
    FUZZ_CHECK(headers_seen_ && !request_complete_);
    for (const Header& trailer : trailers) FUZZ_CHECK(!trailer.name.empty());
    request_complete_ = true;
  }
  void onBodySent(size_t) override {}
  void onStreamEnd(StreamEndReason, std::string_view) override { stream_ = nullptr; }
  void onDecodeError(int status, std::string_view detail) override {
    FUZZ_CHECK(status == 400);
    localReply(status, detail);
  }

  // One turn of the loop: the backend answers what it can.
  void answer() {
    if (stream_ == nullptr || responded_ || !headers_seen_) return;
    switch (behaviour_) {
      case Behaviour::kFailLater:
        localReply(504, "upstream response timeout");
        break;
      case Behaviour::kRespondWithLength: {
        if (!request_complete_) break;
        responded_ = true;
        stream_->encodeHeaders({{":status", "200"}, {"content-length", "2"}}, false);
        buffer::Buffer body;
        body.append("ok");
        if (stream_ != nullptr) stream_->encodeData(body, true);
        break;
      }
      case Behaviour::kRespondChunked:
        if (!stream_->headersEncoded()) {
          stream_->encodeHeaders({{":status", "200"}}, false);
          buffer::Buffer body;
          body.append("part");
          if (stream_ != nullptr) stream_->encodeData(body, false);
        } else if (request_complete_) {
          responded_ = true;
          buffer::Buffer body;
          body.append("rest");
          stream_->encodeData(body, false);
          if (stream_ != nullptr) stream_->encodeTrailers({{"grpc-status", "0"}});
        }
        break;
      case Behaviour::kFailAtOnce:
        break;
    }
  }
  bool done() const { return stream_ == nullptr; }

 private:
  // The connection manager's local reply, as its filter manager sends it.
  void localReply(int status, std::string_view detail) {
    if (stream_ == nullptr || responded_) return;
    responded_ = true;
    if (stream_->headersEncoded()) {
      std::exchange(stream_, nullptr)->detach();
      return;
    }
    const std::string body = std::string(detail) + "\n";
    stream_->encodeHeaders(localReplyHeaders(status, body.size(), {}), false);
    buffer::Buffer data;
    data.append(body);
    if (stream_ != nullptr) stream_->encodeData(data, true);
  }

  Stream* stream_;
  const Behaviour behaviour_;
  bool headers_seen_ = false;
  bool request_complete_ = false;
  bool responded_ = false;
};

class FuzzConnection : public ServerCodecCallbacks {
 public:
  explicit FuzzConnection(Behaviour behaviour) : behaviour_(behaviour) {}
  StreamCallbacks& onNewStream(Stream& stream) override {
    streams_.push_back(std::make_unique<FuzzStream>(stream, behaviour_));
    return *streams_.back();
  }
  void scheduleFlush() override {}
  void answer() {
    for (size_t i = 0; i < streams_.size(); ++i) streams_[i]->answer();
    std::erase_if(streams_, [](const auto& stream) { return stream->done(); });
  }

 private:
  const Behaviour behaviour_;
  std::vector<std::unique_ptr<FuzzStream>> streams_;
};

void checkOutput(const std::string& out) {
  static constexpr std::string_view kStatusLine = "HTTP/1.1 ";
  FUZZ_CHECK(out.empty() || out.compare(0, kStatusLine.size(), kStatusLine) == 0 ||
             kStatusLine.compare(0, out.size(), out) == 0);
}

}  // namespace
}  // namespace mcproxy::http

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mcproxy::http;
  if (size < 1) return 0;
  const auto behaviour = static_cast<Behaviour>(data[0] & 3);
  const size_t read_size = (data[0] >> 2) + 1;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  FuzzConnection connection(behaviour);
  std::string to_client;
  {
    http1::ServerCodec codec(connection, /*max_header_bytes=*/2048, /*max_buffered_body=*/256);
    size_t offset = 0;
    int idle_turns = 0;
    while (!codec.finished() && idle_turns < 3) {
      const bool can_read = offset < input.size() && !codec.readPaused();
      if (can_read) {
        const size_t n = std::min(read_size, input.size() - offset);
        codec.receive(input.data() + offset, n);
        offset += n;
      }
      connection.answer();
      codec.produce(to_client, 1 << 20);
      idle_turns = can_read ? 0 : idle_turns + 1;
    }
  }
  checkOutput(to_client);
  return 0;
}

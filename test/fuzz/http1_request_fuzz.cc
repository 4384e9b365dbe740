// libFuzzer target: the HTTP/1.1 request path of http_connection_manager, i.e. what a client's
// decrypted bytes go through before a request reaches a backend: Http1DownstreamCodec
// (libhttp-parser, the request-smuggling refusals, keep-alive, pipelining, 100-continue) and the
// forwarding-header rewrite, with an in-process upstream that answers every request.
//
// Input: byte 0 chooses how the upstream answers (bits 0-1) and how the client's bytes are cut
// into reads (bits 2-7: reads of 1 to 64 bytes); the rest is what the client sent.
//
// Aborts when a request reaches the upstream malformed (pseudo-headers missing or out of order;
// upper-case or hop-by-hop names; control bytes in a name or value, or whitespace in the path or
// authority, which an HTTP/1.1 backend would read as a header or request of its own), or when
// the bytes for the client are not HTTP/1.1 responses.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "extensions/filters/network/http_connection_manager/downstream_http1.h"
#include "source/common/event/dispatcher.h"
#include "source/common/http/headers.h"
#include "test/fuzz/fuzz_check.h"

namespace mcproxy::extensions::http_connection_manager {
namespace {

enum class UpstreamBehaviour {
  kRespondWithLength,  // 200 with content-length, once the request is complete
  kRespondChunked,     // 200 without length (chunked to the client) + trailers, in two steps
  kFailAtOnce,         // 502 from inside startUpstream, as when socket() fails (EMFILE)
  kFailLater,          // 504 on the next loop turn, as a response timeout does
};

// Control bytes but HTAB, and DEL: never valid in a field (RFC 9110 §5.5).
bool forbiddenByte(char c) { return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f; }

void checkForwarded(const http::HeaderList& headers) {
  FUZZ_CHECK(headers.size() >= 4);
  FUZZ_CHECK(headers[0].name == ":method" && headers[1].name == ":scheme" &&
             headers[2].name == ":path" && headers[3].name == ":authority");
  for (size_t i = 0; i < headers.size(); ++i) {
    const http::Header& header = headers[i];
    FUZZ_CHECK(!header.name.empty());
    FUZZ_CHECK(i < 4 || header.name[0] != ':');
    for (char c : header.name) {
      FUZZ_CHECK(!forbiddenByte(c) && c != ' ' && c != '\t' && !(c >= 'A' && c <= 'Z'));
    }
    for (char c : header.value) FUZZ_CHECK(!forbiddenByte(c));
    if (i == 2 || i == 3) {  // :path and :authority end up in the request line and Host
      for (char c : header.value) FUZZ_CHECK(c != ' ' && c != '\t');
    }
    FUZZ_CHECK(!http::isHopByHop(header.name, header.value));
  }
}

class FuzzConnection : public DownstreamConnection, public UpstreamSide {
 public:
  explicit FuzzConnection(UpstreamBehaviour behaviour) : behaviour_(behaviour) {}

  // DownstreamConnection
  void scheduleFlush() override {}
  void startUpstream(ProxyStream& stream) override {
    stream.request_headers = http::forwardedRequestHeaders(std::move(stream.request_headers),
                                                           "192.0.2.1", "https", "http");
    checkForwarded(stream.request_headers);
    if (behaviour_ == UpstreamBehaviour::kFailAtOnce) {
      stream.downstream->onUpstreamFailure(stream, 502, "connect: too many open files");
      return;
    }
    stream.upstream = this;
    in_flight_.push_back(&stream);
  }
  void onRequestComplete(ProxyStream& stream) override { FUZZ_CHECK(stream.request_complete); }
  event::Dispatcher& dispatcher() override { return dispatcher_; }
  void onUpstreamFailed(int) override {}
  void onRequestFinished(const ProxyStream&) override {}

  // UpstreamSide
  void onRequestData(ProxyStream& stream) override {
    const size_t taken = stream.request_body.size();
    stream.request_body.clear();
    if (taken > 0) stream.downstream->onRequestBodyConsumed(stream, taken);
  }
  void onResponseBodyConsumed(ProxyStream&, size_t) override {}
  void cancel(ProxyStream& stream) override {
    std::erase(in_flight_, &stream);
    stream.upstream = nullptr;
  }

  // One event-loop turn of the upstream: answers what it can.
  void answer() {
    const std::vector<ProxyStream*> streams = in_flight_;
    for (ProxyStream* stream : streams) {
      if (std::find(in_flight_.begin(), in_flight_.end(), stream) == in_flight_.end()) continue;
      switch (behaviour_) {
        case UpstreamBehaviour::kFailLater:
          cancel(*stream);
          stream->downstream->onUpstreamFailure(*stream, 504, "upstream response timeout");
          break;
        case UpstreamBehaviour::kRespondWithLength:
          if (!stream->request_complete) break;
          stream->response_headers = {{":status", "200"}, {"content-length", "2"}};
          stream->response_body = "ok";
          stream->response_complete = true;
          cancel(*stream);
          stream->downstream->onResponseHeaders(*stream);
          break;
        case UpstreamBehaviour::kRespondChunked:
          if (!stream->response_started) {
            stream->response_headers = {{":status", "200"}, {"connection", "close"}};
            stream->response_body = "part";
            stream->downstream->onResponseHeaders(*stream);
          } else if (stream->request_complete) {
            stream->response_body = "rest";
            stream->response_trailers = {{"grpc-status", "0"}};
            stream->response_complete = true;
            cancel(*stream);
            stream->downstream->onResponseData(*stream);
          }
          break;
        case UpstreamBehaviour::kFailAtOnce:
          break;
      }
    }
  }

 private:
  const UpstreamBehaviour behaviour_;
  event::Dispatcher dispatcher_;
  std::vector<ProxyStream*> in_flight_;
};

void checkOutput(const std::string& out) {
  static constexpr std::string_view kStatusLine = "HTTP/1.1 ";
  FUZZ_CHECK(out.empty() || out.compare(0, kStatusLine.size(), kStatusLine) == 0 ||
             kStatusLine.compare(0, out.size(), out) == 0);
}

}  // namespace
}  // namespace mcproxy::extensions::http_connection_manager

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mcproxy::extensions::http_connection_manager;
  if (size < 1) return 0;
  const auto behaviour = static_cast<UpstreamBehaviour>(data[0] & 3);
  const size_t read_size = (data[0] >> 2) + 1;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  FuzzConnection connection(behaviour);
  std::string to_client;
  {
    Http1DownstreamCodec codec(connection, /*max_header_bytes=*/2048, /*max_buffered_body=*/256);
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

#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "source/common/buffer/buffer.h"
#include "source/common/http/headers.h"

namespace mcproxy::http {

// How an HTTP stream ended, as its codec saw it.
enum class StreamEndReason {
  kComplete,           // both directions finished normally
  kRemoteReset,        // the peer reset it (RST_STREAM; HTTP/1.1: the connection ended early)
  kConnectionFailure,  // the connection failed: refused, reset, TLS, or the peer broke the protocol
  kConnectTimeout,     // the connection could not be set up in time
  kRefused,            // the peer refused it before processing (REFUSED_STREAM, GOAWAY)
};

const char* streamEndReasonName(StreamEndReason reason);

// What the owner of a stream (the connection manager's ActiveStream, the router's upstream
// request) hears from the codec. Decoded messages go one way: requests on a server codec,
// responses on a client codec.
class StreamCallbacks {
 public:
  virtual ~StreamCallbacks() = default;
  virtual void onHeaders(HeaderMap&& headers, bool end_stream) = 0;
  // Body bytes. The codec's peer may send more only as the owner calls consumeBody().
  virtual void onData(std::string_view data, bool end_stream) = 0;
  virtual void onTrailers(HeaderMap&& trailers) = 0;
  // `bytes` of the body this stream encodes left for the peer: whoever feeds it may take as
  // many more from its own side.
  virtual void onBodySent(size_t bytes) = 0;
  // The stream is over and the codec forgets the owner: no call follows, and the owner must
  // not use its Stream any more.
  virtual void onStreamEnd(StreamEndReason reason, std::string_view detail) = 0;
  // Server side, HTTP/1.1: the request could not be decoded. The owner answers with `status`
  // (400) through its local-reply path if no response has started; the connection closes after.
  virtual void onDecodeError(int status, std::string_view detail) {}
};

// One HTTP stream of a codec (an HTTP/2 stream, an HTTP/1.1 exchange), as its owner drives it.
// The codec owns it; the owner holds it through a StreamHandle.
class Stream {
 public:
  virtual ~Stream() = default;
  // The outgoing message: a response on a server codec, a request on a client codec.
  virtual void encodeHeaders(const HeaderMap& headers, bool end_stream) = 0;
  // Takes the bytes out of `data`.
  virtual void encodeData(buffer::Buffer& data, bool end_stream) = 0;
  virtual void encodeTrailers(const HeaderMap& trailers) = 0;
  // The owner took `bytes` of the body this stream decoded: its peer may send that many more.
  virtual void consumeBody(size_t bytes) = 0;
  // The owner lets go: the codec forgets it and, unless the exchange finished both ways, ends
  // the stream (HTTP/2 RST_STREAM; HTTP/1.1 closes the connection). No callback follows.
  virtual void detach() = 0;
  // Whether outgoing headers went out already (a failure after that can only reset).
  virtual bool headersEncoded() const = 0;
  // Client side: the owner stopped waiting for the response. The connection may be dead while
  // its socket looks fine; an HTTP/2 connection checks with a PING and takes no new stream
  // until it is answered.
  virtual void onResponseTimeout() {}
  // Client side: when the connection carrying it was ready to send (TCP, PROXY, TLS done);
  // unset while it is still being set up.
  virtual std::optional<std::chrono::steady_clock::time_point> connectionReadyTime() const {
    return std::nullopt;
  }
};

// The owner's side of the link to a codec stream: detaches on destruction (RAII), and forgets
// the stream without detaching when the codec ends it (call onEnd() from onStreamEnd()).
class StreamHandle {
 public:
  StreamHandle() = default;
  explicit StreamHandle(Stream* stream) : stream_(stream) {}
  ~StreamHandle() { reset(); }
  StreamHandle(StreamHandle&& other) noexcept : stream_(std::exchange(other.stream_, nullptr)) {}
  StreamHandle& operator=(StreamHandle&& other) noexcept {
    if (this != &other) {
      reset();
      stream_ = std::exchange(other.stream_, nullptr);
    }
    return *this;
  }
  StreamHandle(const StreamHandle&) = delete;
  StreamHandle& operator=(const StreamHandle&) = delete;

  Stream* operator->() const { return stream_; }
  Stream* get() const { return stream_; }
  explicit operator bool() const { return stream_ != nullptr; }
  // Detaches now.
  void reset() {
    if (stream_ != nullptr) std::exchange(stream_, nullptr)->detach();
  }
  // The codec ended the stream: forget it, nothing to tell.
  void onEnd() { stream_ = nullptr; }

 private:
  Stream* stream_ = nullptr;
};

// What a server (downstream) codec needs from its connection.
class ServerCodecCallbacks {
 public:
  virtual ~ServerCodecCallbacks() = default;
  // A request stream begins; returns who hears about it.
  virtual StreamCallbacks& onNewStream(Stream& stream) = 0;
  // The codec has bytes to send: pull them with produce() soon.
  virtual void scheduleFlush() = 0;
};

// The client-facing protocol of one connection: bytes in, bytes out. The connection does the
// socket and TLS work.
class ServerCodec {
 public:
  virtual ~ServerCodec() = default;
  // Bytes from the client. False on a connection-level protocol error: flush what produce()
  // gives (GOAWAY, a 400), then close.
  virtual bool receive(const char* data, size_t len) = 0;
  // Appends bytes for the client to `out`, about up to `max` in all.
  virtual void produce(std::string& out, size_t max) = 0;
  // Nothing more will be sent or received: close once the output is flushed.
  virtual bool finished() const = 0;
  // The client should not be read for now.
  virtual bool readPaused() const { return false; }
  // The proxy drains: finish open streams, take no new ones (HTTP/2 GOAWAY; HTTP/1.1 closes
  // after the response in flight).
  virtual void drain() = 0;
  // Since when a request header section has been awaited (HTTP/1.1), if one is.
  virtual std::optional<std::chrono::steady_clock::time_point> waitingForHeadersSince() const {
    return std::nullopt;
  }
  // The connection has been quiet with its output sent: buffers kept for the next burst may go.
  virtual void releaseIdleMemory() {}
  // Ends every stream (the connection is closing).
  virtual void abort() = 0;
  virtual std::string_view protocol() const = 0;  // "HTTP/2", "HTTP/1.1"
};

// What a client (upstream) codec needs from its connection.
class ClientCodecCallbacks {
 public:
  virtual ~ClientCodecCallbacks() = default;
  virtual void scheduleFlush() = 0;
  // A stream ended or the codec's capacity changed (SETTINGS, GOAWAY, keep-alive decided).
  virtual void onCapacityChanged() = 0;
  // An HTTP/2 PING this connection sent was acknowledged.
  virtual void onPingAck() {}
  // A stream's owner stopped waiting for its response (Stream::onResponseTimeout()).
  virtual void onResponseTimeout() {}
  // The codec stopped reading on backpressure and may read again.
  virtual void onReadResumed() {}
  // When the connection was ready to send; unset while it is being set up.
  virtual std::optional<std::chrono::steady_clock::time_point> readyTime() const {
    return std::nullopt;
  }
};

// The backend-facing protocol of one connection.
class ClientCodec {
 public:
  virtual ~ClientCodec() = default;
  // Starts a request stream. Only when acceptsStreams().
  virtual Stream& newStream(StreamCallbacks& callbacks) = 0;
  // Bytes from the backend. False on a protocol error (the connection must end).
  virtual bool receive(const char* data, size_t len) = 0;
  virtual void produce(std::string& out, size_t max) = 0;
  virtual bool readPaused() const { return false; }
  // Streams open now.
  virtual size_t activeStreams() const = 0;
  // Room for another stream now (HTTP/2: no GOAWAY, under the peer's concurrency limit;
  // HTTP/1.1: idle and kept alive).
  virtual bool acceptsStreams() const = 0;
  // The connection will take no stream again (HTTP/2 GOAWAY; HTTP/1.1 not kept alive).
  virtual bool exhausted() const = 0;
  // The session is over (HTTP/2: failed, or GOAWAY with nothing left to finish): the connection
  // should close.
  virtual bool finished() const = 0;
  // Sends an HTTP/2 PING; false when the protocol has none.
  virtual bool ping() { return false; }
  // The connection ended (or could not be set up): every stream ends with `reason`.
  virtual void onConnectionEnd(StreamEndReason reason, std::string_view detail) = 0;
  virtual std::string_view protocol() const = 0;
};

}  // namespace mcproxy::http

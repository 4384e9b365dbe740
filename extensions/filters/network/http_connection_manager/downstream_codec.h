#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "extensions/filters/network/http_connection_manager/proxy_stream.h"

namespace mcproxy::extensions::http_connection_manager {

// What a downstream codec needs from the connection that owns it.
class DownstreamConnection {
 public:
  virtual ~DownstreamConnection() = default;
  // The codec has bytes to send; they are pulled with produce() soon after.
  virtual void scheduleFlush() = 0;
  // A request's headers are complete: route it to an upstream.
  virtual void startUpstream(ProxyStream& stream) = 0;
  // A started request's body (or its trailers) ended: the backend's time to answer starts now.
  virtual void onRequestComplete(ProxyStream& stream) = 0;
  virtual event::Dispatcher& dispatcher() = 0;
  // A request got a 502 or 504 from the proxy (counted per route).
  virtual void onUpstreamFailed(int status) = 0;
  // A request ended (its response was sent or its stream closed): latency is recorded.
  virtual void onRequestFinished(const ProxyStream& stream) = 0;
};

// One client connection's HTTP protocol (HTTP/2 or HTTP/1.1), as bytes in and bytes out: the
// connection does the TLS and socket work.
class DownstreamCodec {
 public:
  virtual ~DownstreamCodec() = default;
  // Bytes from the client. False on a protocol error: flush what produce() gives, then close.
  virtual bool receive(const char* data, size_t len) = 0;
  // Appends bytes for the client, roughly up to `max`.
  virtual void produce(std::string& out, size_t max) = 0;
  // Nothing more will be sent or received: close once the output is flushed.
  virtual bool finished() const = 0;
  // The client should not be read for now (its request bodies wait for the upstream).
  virtual bool readPaused() const { return false; }
  // Start a graceful shutdown (HTTP/2 GOAWAY) because the proxy drains.
  virtual void drain() {}
  // Since when the codec has been waiting for a request's header section (HTTP/1.1), if it is.
  virtual std::optional<std::chrono::steady_clock::time_point> waitingForHeadersSince() const {
    return std::nullopt;
  }
  // The connection is closing: cancel every upstream stream now.
  virtual void abort() = 0;
  // The connection has been quiet for a while, with everything produce() gave sent: buffers
  // kept for the next burst may go.
  virtual void releaseIdleMemory() {}
};

}  // namespace mcproxy::extensions::http_connection_manager

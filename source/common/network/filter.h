#pragma once

#include <cstdint>

#include "source/common/buffer/buffer.h"
#include "source/common/event/dispatcher.h"
#include "source/common/network/close_reason.h"
#include "source/common/network/stream_info.h"

namespace mcproxy::worker {
class Resources;
}
namespace mcproxy::access_log {
class AccessLog;
}

namespace mcproxy::network {

enum class FilterStatus {
  kContinue,       // hand the connection to the next filter
  kStopIteration,  // stop here; the filter resumes the chain with continueReading() or closes
};

// The downstream connection, as filters see it.
class Connection {
 public:
  virtual ~Connection() = default;
  virtual uint64_t id() const = 0;
  // The client socket. Only the filter that took over the transport does I/O on it.
  virtual int fd() const = 0;
  virtual event::Dispatcher& dispatcher() = 0;
  // The worker this connection runs on: its pools and buffers.
  virtual worker::Resources& worker() = 0;
  virtual StreamInfo& streamInfo() = 0;
  // The access log of this connection's listener, or null. A terminal filter that serves
  // requests logs each (access_log::write on the worker's queue); the connection logs itself.
  virtual const access_log::AccessLog* accessLog() const = 0;
  // Closes the connection now and counts `reason`. Every filter's onConnectionClose() runs;
  // the filters themselves are destroyed after the current event callback returns.
  virtual void close(CloseReason reason) = 0;
  virtual bool closed() const = 0;
};

class ReadFilterCallbacks {
 public:
  virtual ~ReadFilterCallbacks() = default;
  virtual Connection& connection() = 0;
  // Resumes the chain at the next filter after one returned kStopIteration.
  virtual void continueReading() = 0;
  // The calling filter (a terminal one: tcp_proxy, http_connection_manager) does all further
  // I/O on the client socket itself; the connection stops reading and running the chain.
  // Bytes already read stay in the buffer the filter got in onData(); it drains what it takes.
  virtual void takeOverTransport() = 0;
};

// A network filter. One instance per connection, made by its factory (filter_factory.h).
class ReadFilter {
 public:
  virtual ~ReadFilter() = default;
  virtual void initializeReadFilterCallbacks(ReadFilterCallbacks& callbacks) = 0;
  // The connection was accepted; no bytes have been read yet.
  virtual FilterStatus onNewConnection() = 0;
  // Bytes the client sent that earlier filters let through. Peeking filters leave `data` as it
  // is; `end_stream` means the client has closed its sending side.
  virtual FilterStatus onData(buffer::Buffer& data, bool end_stream) = 0;
  // The proxy is shutting down: finish what is in flight and take no new work (an HTTP/2
  // connection sends GOAWAY). The connection stays open until it ends or the drain deadline.
  virtual void onDrain() {}
  // The connection is closing: release sockets and stop every timer and event now.
  virtual void onConnectionClose() {}
};

}  // namespace mcproxy::network

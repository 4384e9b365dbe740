#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "source/common/event/dispatcher.h"
#include "source/common/network/close_reason.h"
#include "source/common/network/fd.h"
#include "source/common/network/transfer_pool.h"

namespace mcproxy::extensions::tcp_proxy {

class RelayCallbacks {
 public:
  virtual ~RelayCallbacks() = default;
  // `bytes` were delivered to the sink of `relay`.
  virtual void onRelayBytes(const class Relay& relay, size_t bytes) = 0;
  // The source ended and everything was delivered; the sink's write side is shut down.
  virtual void onRelayDone() = 0;
  // A socket failed; the connection must close with `reason`.
  virtual void onRelayError(network::CloseReason reason) = 0;
};

// One direction of a proxied connection: bytes from `source` to `sink`. At most `capacity`
// bytes are in flight: the relay reads from the source only once everything read before has
// reached the sink, so a slow reader on one side stops the proxy from reading the other side
// (backpressure) instead of making it buffer. Bytes move through a kernel pipe with splice(2)
// (no copy through user space) or, with splice off, through a user-space buffer.
class Relay {
 public:
  struct Sockets {
    int source;
    int sink;
    event::IoEvent& source_read;
    event::IoEvent& sink_write;
    network::CloseReason source_error;  // reported when the source fails
    network::CloseReason sink_error;    // reported when the sink fails
  };

  // Borrows its pipe or buffer from `pool` (its worker's) while bytes are in flight.
  Relay(const Sockets& sockets, RelayCallbacks& callbacks, network::TransferPool& pool);

  // Moves bytes through a pipe (`use_splice`) or a user-space buffer, at most `capacity` at a
  // time. Neither exists until bytes arrive.
  void init(bool use_splice, size_t capacity);
  // Bytes sent to the sink before anything read from the source (the peeked ClientHello).
  void setPrefix(std::string prefix) { prefix_ = std::move(prefix); }
  // The source already ended before the relay started.
  void setSourceEnded() { source_ended_ = true; }
  // Delivers the prefix and starts reading the source.
  void start();

  void onSourceReadable();
  void onSinkWritable();
  bool done() const { return done_; }

 private:
  size_t pending() const { return prefix_.size() - prefix_sent_ + buffered_; }
  void releaseSpace();
  // Reads from the source into the empty pipe/buffer: >0 bytes, 0 at end, -1 with errno.
  // Takes a TransferSpace from the pool first; false (callbacks told) if none can be had.
  bool pull(ssize_t& result);
  // Writes what is pending to the sink; false if the sink failed (callbacks were told).
  bool push();
  // Decides which of source-read / sink-write to wait for; finishes the relay at source end.
  void updateInterest();

  Sockets sockets_;
  RelayCallbacks& callbacks_;
  bool use_splice_ = true;
  size_t capacity_ = 0;
  network::TransferPool& pool_;
  std::unique_ptr<network::TransferSpace> space_;  // only while bytes are in flight
  size_t buffer_offset_ = 0;
  size_t buffered_ = 0;  // bytes read from the source and not yet written to the sink
  std::string prefix_;
  size_t prefix_sent_ = 0;
  bool source_ended_ = false;
  bool done_ = false;
};

}  // namespace mcproxy::extensions::tcp_proxy

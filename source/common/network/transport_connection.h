#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "source/common/event/dispatcher.h"
#include "source/common/network/address.h"
#include "source/common/network/fd.h"
#include "source/common/network/transport_socket.h"

namespace mcproxy::network {

// How a TransportConnection ended.
enum class TransportEnd {
  kPeerClosed,        // the peer closed its sending side (FIN, close_notify)
  kReset,             // a read or write failed (reset, broken pipe, TLS error)
  kConnectFailed,     // the TCP connect was refused or could not start (EMFILE, ...)
  kConnectTimeout,    // connect, prefix and handshake did not finish in time
  kHandshakeFailed,   // the TLS handshake failed (TransportSocket::failureKind() says how)
  kHandshakeTimeout,  // server side: the handshake did not finish in time
  kLingerDone,        // lingeringClose() is over: the peer closed, or the linger time passed
};

const char* transportEndName(TransportEnd end);

// What the owner of a TransportConnection does with it: a codec's bytes in and out.
class TransportCallbacks {
 public:
  virtual ~TransportCallbacks() = default;
  // Connected and the handshake is done: bytes may flow both ways.
  virtual void onTransportReady() = 0;
  // Bytes from the peer. The owner may close the connection from here.
  virtual void onTransportData(const char* data, size_t len) = 0;
  // Appends bytes for the peer to `out`, about up to `max` in all (pull: called when the
  // connection can take more).
  virtual void produceOutput(std::string& out, size_t max) = 0;
  // Everything produced so far has been written.
  virtual void onTransportFlushed() {}
  // Reading stops while this is true (backpressure); resumeReading() when it turns false.
  virtual bool readPaused() const { return false; }
  // The connection ended; it is closed already. Not called after the owner's own close().
  // Must not destroy the TransportConnection synchronously (defer it).
  virtual void onTransportEnd(TransportEnd end, const std::string& detail) = 0;
};

// One non-blocking socket carrying a byte stream through a TransportSocket: the one read loop
// (at most a few records per turn, so one busy peer cannot starve the others, re-activated for
// input the transport holds), the one flush loop (pull from the owner, write, wait for the
// socket), and for client sides the one connect sequence (TCP connect, a raw prefix such as a
// PROXY header, the transport's handshake, all under one timeout). The downstream side of L7
// and every upstream use it alike.
class TransportConnection {
 public:
  TransportConnection(event::Dispatcher& dispatcher, TransportCallbacks& callbacks);
  ~TransportConnection();
  TransportConnection(const TransportConnection&) = delete;
  TransportConnection& operator=(const TransportConnection&) = delete;

  // Server side: `fd` stays the caller's. The handshake must finish within `handshake_timeout`
  // (then kHandshakeTimeout).
  void accept(int fd, std::unique_ptr<TransportSocket> transport,
              std::chrono::milliseconds handshake_timeout);
  // Client side: connects to `address`, writes `prefix` as it is (a PROXY header precedes TLS),
  // makes the transport with `factory` and runs its handshake, all within `timeout`. A failure,
  // even an immediate one, is reported from the event loop, never from inside connect().
  void connect(const Address& address, std::string prefix, TransportSocketFactory factory,
               std::chrono::milliseconds timeout);

  // Pulls and writes output once the events ready in this turn of the loop have run, so one
  // write carries everything they produced.
  void scheduleFlush();
  void flush();
  // The owner's readPaused() turned false.
  void resumeReading();
  // Graceful end: close_notify and FIN now, then what the peer still sends is read and
  // discarded until it closes or `linger` passes; then onTransportEnd(kLingerDone). Closing
  // with unread input would send a RST, which can destroy a response the peer has not read.
  void lingeringClose(std::chrono::milliseconds linger);
  // Closes now, without callbacks. Idempotent.
  void close();

  bool ready() const { return state_ == State::kReady; }
  bool closed() const { return state_ == State::kClosed; }
  bool lingering() const { return state_ == State::kLingering; }
  // Output produced and not yet written.
  bool hasPendingOutput() const { return pending_.size() > pending_offset_; }
  // For a pooled, idle connection: the peer has neither closed nor sent anything unasked, as far
  // as a non-blocking peek can tell.
  bool peerStillOpen() const;
  TransportSocket* transport() { return transport_.get(); }
  int fd() const { return fd_; }
  std::chrono::steady_clock::time_point lastActivity() const { return last_activity_; }
  uint64_t bytesRead() const { return bytes_read_; }
  uint64_t bytesWritten() const { return bytes_written_; }

 private:
  enum class State {
    kIdle,
    kConnecting,
    kSendingPrefix,
    kHandshaking,
    kReady,
    kLingering,
    kClosed
  };

  void onReadReady();
  void onWriteReady();
  void onTimer();
  void afterTcpConnect();
  void sendPrefix();
  void handshake();
  void readLoop();
  void discardLoop();
  void updateReadInterest();
  // Closes and tells the owner.
  void end(TransportEnd end, const std::string& detail);
  // Tells the owner from the event loop (connect() must not call back).
  void endSoon(TransportEnd end, std::string detail);
  void makeEvents();
  // The connect, handshake or linger deadline (made when first needed).
  event::Timer& deadline();

  // What a client connection needs only until it is up.
  struct Connecting {
    TransportSocketFactory factory;
    std::string prefix;  // bytes still to send before the transport's own (a PROXY header)
    // A failure connect() found, delivered from the event loop.
    bool end_pending = false;
    TransportEnd end = TransportEnd::kConnectFailed;
    std::string detail;
  };

  event::Dispatcher& dispatcher_;
  TransportCallbacks& callbacks_;
  State state_ = State::kIdle;
  UniqueFd owned_fd_;  // client side only
  int fd_ = -1;
  std::unique_ptr<TransportSocket> transport_;
  std::unique_ptr<Connecting> connecting_;
  std::unique_ptr<event::IoEvent> read_event_;
  std::unique_ptr<event::IoEvent> write_event_;
  std::unique_ptr<event::Timer> flush_timer_;
  // Connect or handshake deadline, then the linger deadline; also delivers endSoon().
  std::unique_ptr<event::Timer> timer_;
  std::string pending_;  // produced, not yet written from pending_offset_ on
  size_t pending_offset_ = 0;
  std::chrono::steady_clock::time_point last_activity_;
  uint64_t bytes_read_ = 0;
  uint64_t bytes_written_ = 0;
};

}  // namespace mcproxy::network

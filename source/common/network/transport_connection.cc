#include "source/common/network/transport_connection.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "source/common/network/connect.h"

namespace mcproxy::network {
namespace {

// Output pulled from the owner and not yet written: above this, producing stops until the
// socket takes some (a slow peer holds at most this much, plus what the transport buffers).
constexpr size_t kMaxPendingOut = 64 * 1024;
constexpr size_t kReadChunk = 32 * 1024;
// Reads per readiness callback before yielding to the worker's other connections.
constexpr int kReadRounds = 16;

}  // namespace

const char* transportEndName(TransportEnd end) {
  switch (end) {
    case TransportEnd::kPeerClosed:
      return "peer closed";
    case TransportEnd::kReset:
      return "reset";
    case TransportEnd::kConnectFailed:
      return "connect failed";
    case TransportEnd::kConnectTimeout:
      return "connect timeout";
    case TransportEnd::kHandshakeFailed:
      return "TLS handshake failed";
    case TransportEnd::kHandshakeTimeout:
      return "TLS handshake timed out";
    case TransportEnd::kLingerDone:
      return "closed";
  }
  return "unknown";
}

TransportConnection::TransportConnection(event::Dispatcher& dispatcher,
                                         TransportCallbacks& callbacks)
    : dispatcher_(dispatcher), callbacks_(callbacks) {}

event::Timer& TransportConnection::deadline() {
  if (!timer_) timer_ = std::make_unique<event::Timer>(dispatcher_, [this] { onTimer(); });
  return *timer_;
}

TransportConnection::~TransportConnection() = default;

void TransportConnection::makeEvents() {
  read_event_ = std::make_unique<event::IoEvent>(dispatcher_, fd_, event::IoEvent::Kind::kRead,
                                                 [this] { onReadReady(); });
  write_event_ = std::make_unique<event::IoEvent>(dispatcher_, fd_, event::IoEvent::Kind::kWrite,
                                                  [this] { onWriteReady(); });
  flush_timer_ = std::make_unique<event::Timer>(dispatcher_, [this] { flush(); });
}

void TransportConnection::accept(int fd, std::unique_ptr<TransportSocket> transport,
                                 std::chrono::milliseconds handshake_timeout) {
  fd_ = fd;
  transport_ = std::move(transport);
  last_activity_ = dispatcher_.now();
  makeEvents();
  state_ = State::kHandshaking;
  deadline().arm(handshake_timeout);
  handshake();
}

void TransportConnection::connect(const Address& address, std::string prefix,
                                  TransportSocketFactory factory,
                                  std::chrono::milliseconds timeout) {
  connecting_ = std::make_unique<Connecting>();
  connecting_->prefix = std::move(prefix);
  connecting_->factory = std::move(factory);
  last_activity_ = dispatcher_.now();
  state_ = State::kConnecting;
  ConnectResult connected = connectTcp(address);
  if (connected.status == ConnectStatus::kFailed) {
    endSoon(TransportEnd::kConnectFailed,
            "connect to " + address.toString() + ": " + std::strerror(connected.error));
    return;
  }
  owned_fd_ = std::move(connected.fd);
  fd_ = owned_fd_.get();
  makeEvents();
  deadline().arm(timeout);
  if (connected.status == ConnectStatus::kConnected) {
    afterTcpConnect();
    return;
  }
  write_event_->enable();
}

void TransportConnection::endSoon(TransportEnd end, std::string detail) {
  connecting_->end_pending = true;
  connecting_->end = end;
  connecting_->detail = std::move(detail);
  deadline().fireSoon();
}

void TransportConnection::onTimer() {
  if (connecting_ && connecting_->end_pending) {
    connecting_->end_pending = false;
    end(connecting_->end, connecting_->detail);
    return;
  }
  switch (state_) {
    case State::kConnecting:
    case State::kSendingPrefix:
      end(TransportEnd::kConnectTimeout, "connect timed out");
      return;
    case State::kHandshaking:
      // A client side counts the handshake into its connect time; a server side's peer was slow.
      end(owned_fd_.valid() ? TransportEnd::kConnectTimeout : TransportEnd::kHandshakeTimeout,
          "TLS handshake timed out");
      return;
    case State::kLingering:
      end(TransportEnd::kLingerDone, "");
      return;
    case State::kIdle:
    case State::kReady:
    case State::kClosed:
      return;
  }
}

void TransportConnection::onReadReady() {
  switch (state_) {
    case State::kHandshaking:
      handshake();
      return;
    case State::kReady:
      readLoop();
      return;
    case State::kLingering:
      discardLoop();
      return;
    default:
      return;
  }
}

void TransportConnection::onWriteReady() {
  switch (state_) {
    case State::kConnecting: {
      const int error = connectError(fd_);
      if (error != 0) {
        end(TransportEnd::kConnectFailed, std::string("connect: ") + std::strerror(error));
        return;
      }
      afterTcpConnect();
      return;
    }
    case State::kSendingPrefix:
      sendPrefix();
      return;
    case State::kHandshaking:
      handshake();
      return;
    case State::kReady:
      flush();
      return;
    default:
      write_event_->disable();
      return;
  }
}

void TransportConnection::afterTcpConnect() {
  state_ = State::kSendingPrefix;
  sendPrefix();
}

void TransportConnection::sendPrefix() {
  std::string& prefix = connecting_->prefix;
  while (!prefix.empty()) {
    const ssize_t n = ::send(fd_, prefix.data(), prefix.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        write_event_->enable();
        return;
      }
      end(TransportEnd::kReset, std::string("write: ") + std::strerror(errno));
      return;
    }
    prefix.erase(0, static_cast<size_t>(n));
  }
  transport_ = connecting_->factory(fd_);
  connecting_.reset();
  state_ = State::kHandshaking;
  handshake();
}

void TransportConnection::handshake() {
  switch (transport_->handshake()) {
    case TransportSocket::HandshakeStatus::kDone:
      break;
    case TransportSocket::HandshakeStatus::kWantRead:
      read_event_->enable();
      write_event_->disable();
      return;
    case TransportSocket::HandshakeStatus::kWantWrite:
      write_event_->enable();
      return;
    case TransportSocket::HandshakeStatus::kFailed:
      end(TransportEnd::kHandshakeFailed, transport_->failureReason());
      return;
  }
  state_ = State::kReady;
  // An established connection keeps no deadline of its own (its owner has the idle timeout):
  // one timer less per idle connection. Lingering makes another.
  timer_.reset();
  write_event_->disable();
  last_activity_ = dispatcher_.now();
  callbacks_.onTransportReady();
  if (state_ != State::kReady) return;
  // Application data may have come with the handshake (it sits in the transport), and output
  // may have been produced before the connection was up.
  readLoop();
}

void TransportConnection::readLoop() {
  char buffer[kReadChunk];
  for (int round = 0;; ++round) {
    if (state_ != State::kReady) return;
    if (callbacks_.readPaused()) break;
    if (round == kReadRounds) {
      // Fair to the worker's other connections: go on in a later turn. The transport may hold
      // the rest of the batch (TLS read-ahead) with the socket empty, so epoll would not call.
      read_event_->activate();
      break;
    }
    const IoResult result = transport_->read(buffer, sizeof(buffer));
    if (result.status == IoStatus::kOk) {
      last_activity_ = dispatcher_.now();
      bytes_read_ += result.bytes;
      callbacks_.onTransportData(buffer, result.bytes);
      if (state_ != State::kReady) return;
      // Nothing held by the transport and the socket was empty at the last read: skip the read
      // that would only say "would block".
      if (!transport_->hasBufferedInput() && transport_->socketDrained()) break;
      continue;
    }
    if (result.status == IoStatus::kWouldBlock) break;
    if (result.status == IoStatus::kEnd) {
      end(TransportEnd::kPeerClosed, "peer closed the connection");
    } else {
      end(TransportEnd::kReset, transport_->failureReason());
    }
    return;
  }
  flush();
}

void TransportConnection::updateReadInterest() {
  if (state_ != State::kReady) return;
  if (callbacks_.readPaused()) {
    read_event_->disable();
  } else if (!read_event_->enabled()) {
    read_event_->enable();
    // What arrived while paused may sit in the transport, not in the socket.
    if (transport_->hasBufferedInput()) read_event_->activate();
  }
}

void TransportConnection::resumeReading() { updateReadInterest(); }

void TransportConnection::scheduleFlush() {
  if (state_ == State::kReady && !flush_timer_->armed()) flush_timer_->fireSoon();
}

void TransportConnection::flush() {
  if (state_ != State::kReady) return;
  while (true) {
    if (pending_.size() - pending_offset_ < kMaxPendingOut) {
      if (pending_offset_ > 0) {
        pending_.erase(0, pending_offset_);
        pending_offset_ = 0;
      }
      callbacks_.produceOutput(pending_, kMaxPendingOut);
      if (state_ != State::kReady) return;
    }
    if (pending_.size() == pending_offset_) break;
    const IoResult result =
        transport_->write(pending_.data() + pending_offset_, pending_.size() - pending_offset_);
    if (result.status == IoStatus::kOk) {
      last_activity_ = dispatcher_.now();
      bytes_written_ += result.bytes;
      pending_offset_ += result.bytes;
      continue;
    }
    if (result.status == IoStatus::kWouldBlock) {
      write_event_->enable();
      return;
    }
    end(TransportEnd::kReset, transport_->failureReason());
    return;
  }
  // All written: an idle connection keeps no big buffer from its last large burst.
  pending_offset_ = 0;
  if (pending_.capacity() > 16 * 1024) {
    std::string().swap(pending_);
  } else {
    pending_.clear();
  }
  write_event_->disable();
  callbacks_.onTransportFlushed();
  updateReadInterest();
}

void TransportConnection::lingeringClose(std::chrono::milliseconds linger) {
  if (state_ != State::kReady) {
    if (state_ != State::kLingering) close();
    return;
  }
  state_ = State::kLingering;
  transport_->shutdown();
  ::shutdown(fd_, SHUT_WR);
  flush_timer_->cancel();
  write_event_->disable();
  deadline().arm(linger);
  read_event_->enable();
  discardLoop();
}

void TransportConnection::discardLoop() {
  char scratch[kReadChunk];
  for (int round = 0; round < kReadRounds; ++round) {
    const IoResult result = transport_->read(scratch, sizeof(scratch));
    if (result.status == IoStatus::kOk) continue;
    if (result.status == IoStatus::kWouldBlock) return;
    end(TransportEnd::kLingerDone, "");  // the peer closed (or broke): done
    return;
  }
  read_event_->activate();
}

bool TransportConnection::peerStillOpen() const {
  if (state_ != State::kReady) return false;
  if (transport_->hasBufferedInput()) return false;
  char byte;
  const ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void TransportConnection::end(TransportEnd end, const std::string& detail) {
  if (state_ == State::kClosed) return;
  close();
  callbacks_.onTransportEnd(end, detail);
}

void TransportConnection::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  if (read_event_) read_event_->disable();
  if (write_event_) write_event_->disable();
  if (flush_timer_) flush_timer_->cancel();
  if (connecting_) connecting_->end_pending = false;
  if (timer_) timer_->cancel();
  owned_fd_.reset();
}

}  // namespace mcproxy::network

#include "extensions/filters/network/tcp_proxy/relay.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mcproxy::extensions::tcp_proxy {
namespace {

// Read/write rounds per readiness event, so one fast connection cannot starve the others on
// its worker.
constexpr int kMaxRoundsPerEvent = 16;

bool wouldBlock(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

}  // namespace

Relay::Relay(const Sockets& sockets, RelayCallbacks& callbacks)
    : sockets_(sockets), callbacks_(callbacks) {}

bool Relay::init(bool use_splice, size_t capacity, std::string& error) {
  use_splice_ = use_splice;
  capacity_ = capacity;
  if (!use_splice_) {
    buffer_ = std::make_unique_for_overwrite<char[]>(capacity_);
    return true;
  }
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    error = std::string("pipe2: ") + std::strerror(errno);
    return false;
  }
  pipe_read_.reset(fds[0]);
  pipe_write_.reset(fds[1]);
  // The kernel rounds up to whole pages and may refuse sizes above pipe-max-size; the pipe's
  // real size is what bounds the bytes in flight.
  ::fcntl(pipe_write_.get(), F_SETPIPE_SZ, static_cast<int>(capacity_));
  const int actual = ::fcntl(pipe_write_.get(), F_GETPIPE_SZ);
  if (actual > 0) capacity_ = static_cast<size_t>(actual);
  return true;
}

void Relay::start() {
  if (!push()) return;
  updateInterest();
}

ssize_t Relay::pull() {
  if (use_splice_) {
    return ::splice(sockets_.source, nullptr, pipe_write_.get(), nullptr, capacity_,
                    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  }
  buffer_offset_ = 0;
  return ::recv(sockets_.source, buffer_.get(), capacity_, 0);
}

bool Relay::push() {
  while (prefix_sent_ < prefix_.size()) {
    const ssize_t n = ::send(sockets_.sink, prefix_.data() + prefix_sent_,
                             prefix_.size() - prefix_sent_, MSG_NOSIGNAL);
    if (n < 0) {
      if (wouldBlock(errno)) return true;
      callbacks_.onRelayError(sockets_.sink_error);
      return false;
    }
    prefix_sent_ += static_cast<size_t>(n);
    callbacks_.onRelayBytes(*this, static_cast<size_t>(n));
  }
  if (!prefix_.empty()) {
    prefix_.clear();  // sent in full; free it
    prefix_.shrink_to_fit();
    prefix_sent_ = 0;
  }
  while (buffered_ > 0) {
    const ssize_t n = use_splice_ ? ::splice(pipe_read_.get(), nullptr, sockets_.sink, nullptr,
                                             buffered_, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                                  : ::send(sockets_.sink, buffer_.get() + buffer_offset_, buffered_,
                                           MSG_NOSIGNAL);
    if (n < 0) {
      if (wouldBlock(errno)) return true;
      callbacks_.onRelayError(sockets_.sink_error);
      return false;
    }
    buffered_ -= static_cast<size_t>(n);
    buffer_offset_ += static_cast<size_t>(n);
    callbacks_.onRelayBytes(*this, static_cast<size_t>(n));
  }
  return true;
}

void Relay::onSourceReadable() {
  for (int round = 0; round < kMaxRoundsPerEvent && pending() == 0 && !source_ended_; ++round) {
    const ssize_t n = pull();
    if (n > 0) {
      buffered_ = static_cast<size_t>(n);
      if (!push()) return;
      // A read shorter than asked for drained the socket: another try would only return
      // EAGAIN. Level-triggered readiness brings us back when more (or the FIN) arrives.
      if (static_cast<size_t>(n) < capacity_) break;
    } else if (n == 0) {
      source_ended_ = true;
    } else if (wouldBlock(errno)) {
      break;
    } else {
      callbacks_.onRelayError(sockets_.source_error);
      return;
    }
  }
  updateInterest();
}

void Relay::onSinkWritable() {
  if (!push()) return;
  if (pending() == 0 && !source_ended_) {
    onSourceReadable();  // the source likely has more; skip a trip through the event loop
    return;
  }
  updateInterest();
}

void Relay::updateInterest() {
  if (done_) return;
  if (pending() > 0) {
    sockets_.source_read.disable();
    sockets_.sink_write.enable();
    return;
  }
  sockets_.sink_write.disable();
  if (!source_ended_) {
    sockets_.source_read.enable();
    return;
  }
  sockets_.source_read.disable();
  done_ = true;
  ::shutdown(sockets_.sink, SHUT_WR);  // pass the half-close on
  callbacks_.onRelayDone();
}

}  // namespace mcproxy::extensions::tcp_proxy

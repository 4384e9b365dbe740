#include "extensions/filters/network/tcp_proxy/relay.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "source/common/logging/logger.h"

namespace mcproxy::extensions::tcp_proxy {
namespace {

// Read/write rounds per readiness event, so one fast connection cannot starve the others on
// its worker.
constexpr int kMaxRoundsPerEvent = 16;

bool wouldBlock(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

}  // namespace

Relay::Relay(const Sockets& sockets, RelayCallbacks& callbacks, network::TransferPool& pool)
    : sockets_(sockets), callbacks_(callbacks), pool_(pool) {}

void Relay::init(bool use_splice, size_t capacity) {
  use_splice_ = use_splice;
  capacity_ = capacity;
}

void Relay::start() {
  if (!push()) return;
  updateInterest();
}

bool Relay::pull(ssize_t& result) {
  if (!space_) {
    std::string error;
    space_ = pool_.acquire(use_splice_, capacity_, error);
    if (!space_) {
      LOG_WARN << "relay: " << error;
      callbacks_.onRelayError(network::CloseReason::kInternalError);
      return false;
    }
  }
  if (use_splice_) {
    result = ::splice(sockets_.source, nullptr, space_->pipe_write.get(), nullptr, space_->capacity,
                      SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  } else {
    buffer_offset_ = 0;
    result = ::recv(sockets_.source, space_->buffer.get(), space_->capacity, 0);
  }
  return true;
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
    const ssize_t n = use_splice_ ? ::splice(space_->pipe_read.get(), nullptr, sockets_.sink,
                                             nullptr, buffered_, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                                  : ::send(sockets_.sink, space_->buffer.get() + buffer_offset_,
                                           buffered_, MSG_NOSIGNAL);
    if (n < 0) {
      if (wouldBlock(errno)) return true;
      callbacks_.onRelayError(sockets_.sink_error);
      return false;
    }
    buffered_ -= static_cast<size_t>(n);
    buffer_offset_ += static_cast<size_t>(n);
    callbacks_.onRelayBytes(*this, static_cast<size_t>(n));
  }
  releaseSpace();
  return true;
}

void Relay::releaseSpace() {
  // Empty: back to the pool until the next bytes arrive. A read that found nothing (EAGAIN, or
  // the end) leaves it empty too: kept, it would go down with the relay, and the pool make a new
  // pipe (pipe2, two fcntl and two close) for every connection.
  if (space_ && buffered_ == 0) pool_.release(std::move(space_));
}

void Relay::onSourceReadable() {
  for (int round = 0; round < kMaxRoundsPerEvent && pending() == 0 && !source_ended_; ++round) {
    ssize_t n;
    if (!pull(n)) return;
    if (n > 0) {
      buffered_ = static_cast<size_t>(n);
      const size_t asked = space_->capacity;
      if (!push()) return;
      // A read shorter than asked for drained the socket: another try would only return
      // EAGAIN. Level-triggered readiness brings us back when more (or the FIN) arrives.
      if (static_cast<size_t>(n) < asked) break;
    } else if (n == 0) {
      source_ended_ = true;
      releaseSpace();
    } else if (wouldBlock(errno)) {
      releaseSpace();
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

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "source/common/network/transport_socket.h"

namespace mcproxy::network {
namespace {

bool retryable(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

class RawTransportSocket : public TransportSocket {
 public:
  explicit RawTransportSocket(int fd) : fd_(fd) {}

  HandshakeStatus handshake() override { return HandshakeStatus::kDone; }

  IoResult read(char* buffer, size_t len) override {
    const ssize_t n = ::recv(fd_, buffer, len, 0);
    if (n > 0) {
      drained_ = static_cast<size_t>(n) < len;
      return {IoStatus::kOk, static_cast<size_t>(n)};
    }
    drained_ = true;
    if (n == 0) return {IoStatus::kEnd};
    if (retryable(errno)) return {IoStatus::kWouldBlock};
    error_ = errno;
    return {IoStatus::kError};
  }

  IoResult write(const char* data, size_t len) override {
    const ssize_t n = ::send(fd_, data, len, MSG_NOSIGNAL);
    if (n >= 0) return {IoStatus::kOk, static_cast<size_t>(n)};
    if (retryable(errno)) return {IoStatus::kWouldBlock};
    error_ = errno;
    return {IoStatus::kError};
  }

  bool hasBufferedInput() const override { return false; }
  bool socketDrained() const override { return drained_; }
  std::string failureReason() override { return std::strerror(error_); }

 private:
  const int fd_;
  bool drained_ = false;
  int error_ = 0;
};

}  // namespace

std::unique_ptr<TransportSocket> makeRawTransportSocket(int fd) {
  return std::make_unique<RawTransportSocket>(fd);
}

}  // namespace mcproxy::network

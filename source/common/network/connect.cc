#include "source/common/network/connect.h"

#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>

namespace mcproxy::network {

ConnectResult connectTcp(const Address& address) {
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return {UniqueFd(), ConnectStatus::kFailed, errno};
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (::connect(fd.get(), address.sockaddrPtr(), address.sockaddrLen()) == 0) {
    return {std::move(fd), ConnectStatus::kConnected, 0};
  }
  if (errno == EINPROGRESS) return {std::move(fd), ConnectStatus::kInProgress, 0};
  return {UniqueFd(), ConnectStatus::kFailed, errno};
}

int connectError(int fd) {
  int error = 0;
  socklen_t len = sizeof(error);
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
  return error;
}

}  // namespace mcproxy::network

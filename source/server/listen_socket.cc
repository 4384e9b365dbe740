#include "source/server/listen_socket.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace mcproxy::server {

network::UniqueFd createListenSocket(const network::Address& address, int backlog,
                                     std::string& error) {
  network::UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    error = std::string("socket: ") + std::strerror(errno);
    return {};
  }
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    error = std::string("SO_REUSEPORT: ") + std::strerror(errno);
    return {};
  }
  if (address.family() == AF_INET6) {
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  if (::bind(fd.get(), address.sockaddrPtr(), address.sockaddrLen()) != 0) {
    error = "bind " + address.toString() + ": " + std::strerror(errno);
    return {};
  }
  if (::listen(fd.get(), backlog) != 0) {
    error = "listen " + address.toString() + ": " + std::strerror(errno);
    return {};
  }
  return fd;
}

network::Address boundAddress(int fd) {
  sockaddr_storage storage{};
  socklen_t len = sizeof(storage);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &len);
  return network::Address::fromSockaddr(reinterpret_cast<sockaddr*>(&storage), len);
}

}  // namespace mcproxy::server

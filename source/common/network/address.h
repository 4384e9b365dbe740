#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>
#include <string>

namespace mcproxy::network {

// An IPv4 or IPv6 socket address.
class Address {
 public:
  Address() = default;
  // From a kernel-filled sockaddr (accept, getsockname).
  static Address fromSockaddr(const sockaddr* sa, socklen_t len);
  // Parses a numeric "1.2.3.4:80" or "[::1]:80". Returns nullopt and fills `error` otherwise.
  static std::optional<Address> parseIpPort(const std::string& text, std::string& error);
  // Like parseIpPort but also accepts "hostname:port", resolved with getaddrinfo (blocking; for
  // config compilation only, never the data path).
  static std::optional<Address> resolveHostPort(const std::string& text, std::string& error);

  const sockaddr* sockaddrPtr() const { return &storage_.any; }
  socklen_t sockaddrLen() const { return len_; }
  int family() const { return storage_.any.sa_family; }
  uint16_t port() const;
  // "1.2.3.4" or "::1".
  std::string ip() const;
  // "1.2.3.4:80" or "[::1]:80".
  std::string toString() const;
  bool valid() const { return len_ != 0; }

 private:
  // 28 bytes, not sockaddr_storage's 128: a connection's StreamInfo holds four addresses and a
  // route one or more, so this is memory per connection and per route.
  union Storage {
    sockaddr any;
    sockaddr_in in4;
    sockaddr_in6 in6;
  };
  Storage storage_{};
  socklen_t len_ = 0;
};

// splitmix64's finalizer: spreads the bits of `x` over the whole word.
uint64_t mixBits(uint64_t x);

// A well-spread 64-bit hash of the address's IP alone (not its port): the same for every
// connection from one client. Stable across runs and builds.
uint64_t hashIp(const Address& address);

}  // namespace mcproxy::network

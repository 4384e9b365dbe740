#include "source/common/network/address.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <charconv>
#include <cstring>
#include <string_view>

namespace mcproxy::network {
namespace {

// Splits "host:port" / "[v6]:port" into its parts; false with `error` set when malformed.
bool splitHostPort(const std::string& text, std::string& host, uint16_t& port, bool& bracketed,
                   std::string& error) {
  size_t colon;
  bracketed = !text.empty() && text[0] == '[';
  if (bracketed) {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      error = "expected \"[IPv6]:port\", got \"" + text + "\"";
      return false;
    }
    host = text.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      error = "expected \"host:port\", got \"" + text + "\"";
      return false;
    }
    host = text.substr(0, colon);
    if (host.find(':') != std::string::npos) {
      error = "IPv6 addresses need brackets: \"[" + host + "]:port\"";
      return false;
    }
  }
  const std::string port_text = text.substr(colon + 1);
  unsigned value = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
  // At most five digits and no leading zero: "8443", not "08443" or "000000000008443".
  const bool canonical = port_text.size() <= 5 && (port_text.size() == 1 || port_text[0] != '0');
  if (port_text.empty() || !canonical || ec != std::errc() ||
      end != port_text.data() + port_text.size() || value > 65535) {
    error = "port must be a number from 0 to 65535, got \"" + port_text + "\"";
    return false;
  }
  port = static_cast<uint16_t>(value);
  return true;
}

}  // namespace

Address Address::fromSockaddr(const sockaddr* sa, socklen_t len) {
  Address address;
  // IPv4 and IPv6 only (listeners and backends are TCP over IP): anything else stays invalid.
  if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) || len > sizeof(address.storage_)) {
    return address;
  }
  std::memcpy(&address.storage_, sa, len);
  address.len_ = len;
  return address;
}

std::optional<Address> Address::parseIpPort(const std::string& text, std::string& error) {
  std::string host;
  uint16_t port = 0;
  bool bracketed = false;
  if (!splitHostPort(text, host, port, bracketed, error)) return std::nullopt;
  Address address;
  if (bracketed) {
    auto* in6 = &address.storage_.in6;
    if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) != 1) {
      error = "\"" + host + "\" is not an IPv6 address";
      return std::nullopt;
    }
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    address.len_ = sizeof(sockaddr_in6);
  } else {
    auto* in4 = &address.storage_.in4;
    if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) != 1) {
      error = "\"" + host + "\" is not an IPv4 address";
      return std::nullopt;
    }
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    address.len_ = sizeof(sockaddr_in);
  }
  return address;
}

std::optional<Address> Address::resolveHostPort(const std::string& text, std::string& error) {
  std::string ignored;
  if (auto numeric = parseIpPort(text, ignored)) return numeric;
  std::string host;
  uint16_t port = 0;
  bool bracketed = false;
  if (!splitHostPort(text, host, port, bracketed, error)) return std::nullopt;
  // getaddrinfo() reads up to a NUL and takes legacy numeric forms ("064.0.0.1" is octal, so
  // 52.0.0.1): what it would resolve is not what the operator wrote. Names are letters, digits,
  // '-', '.' and '_'; numbers are strict dotted quads (parsed above).
  static constexpr std::string_view kNameBytes =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._";
  if (bracketed || host.empty() || host.find_first_not_of(kNameBytes) != std::string::npos) {
    error = "\"" + host + "\" is not an IP address or a host name";
    return std::nullopt;
  }
  // A name whose last label is a number (decimal or 0x-hex) is an IPv4 address in a legacy
  // spelling ("127.1", "0x7f.1"), as URL parsers treat it too.
  const std::string_view last_label = std::string_view(host).substr(host.rfind('.') + 1);
  const bool hex = last_label.size() > 2 &&
                   (last_label.starts_with("0x") || last_label.starts_with("0X")) &&
                   last_label.find_first_not_of("0123456789abcdefABCDEF", 2) == std::string::npos;
  if (hex ||
      (!last_label.empty() && last_label.find_first_not_of("0123456789") == std::string::npos)) {
    error =
        "\"" + host + "\" is not an IPv4 address (four decimal numbers 0-255, no leading zeros)";
    return std::nullopt;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rc != 0 || result == nullptr) {
    error = "cannot resolve \"" + host + "\": " + gai_strerror(rc);
    return std::nullopt;
  }
  Address address = fromSockaddr(result->ai_addr, result->ai_addrlen);
  freeaddrinfo(result);
  if (address.family() == AF_INET) {
    address.storage_.in4.sin_port = htons(port);
  } else {
    address.storage_.in6.sin6_port = htons(port);
  }
  return address;
}

uint16_t Address::port() const {
  if (family() == AF_INET) return ntohs(storage_.in4.sin_port);
  if (family() == AF_INET6) {
    return ntohs(storage_.in6.sin6_port);
  }
  return 0;
}

std::string Address::ip() const {
  char text[INET6_ADDRSTRLEN] = {0};
  if (family() == AF_INET) {
    // Formatted here, not by inet_ntop (which goes through sprintf): forwarding headers ask for
    // the client's address on every request.
    const auto* octets = reinterpret_cast<const uint8_t*>(&storage_.in4.sin_addr);
    char* out = text;
    for (int i = 0; i < 4; ++i) {
      if (i > 0) *out++ = '.';
      out = std::to_chars(out, text + sizeof(text), octets[i]).ptr;
    }
    return std::string(text, out);
  }
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &storage_.in6.sin6_addr, text, sizeof(text));
  }
  return text;
}

std::string Address::toString() const {
  if (family() == AF_INET6) return "[" + ip() + "]:" + std::to_string(port());
  return ip() + ":" + std::to_string(port());
}

uint64_t mixBits(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t hashIp(const Address& address) {
  if (address.family() == AF_INET) {
    uint32_t ip;
    std::memcpy(&ip, &reinterpret_cast<const sockaddr_in*>(address.sockaddrPtr())->sin_addr, 4);
    return mixBits(ip);
  }
  uint64_t halves[2];
  std::memcpy(halves, &reinterpret_cast<const sockaddr_in6*>(address.sockaddrPtr())->sin6_addr, 16);
  return mixBits(halves[0] ^ mixBits(halves[1]));
}

}  // namespace mcproxy::network

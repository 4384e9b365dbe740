#include "source/common/network/cidr.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace mcproxy::network {
namespace {

template <typename T>
void mergeRanges(std::vector<std::pair<T, T>>& ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<T, T>> merged;
  for (const auto& range : ranges) {
    // Adjacent ranges merge too (last + 1 == first), guarding the wrap at the top.
    if (!merged.empty() &&
        (range.first <= merged.back().second || (merged.back().second != static_cast<T>(~T(0)) &&
                                                 range.first == merged.back().second + 1))) {
      merged.back().second = std::max(merged.back().second, range.second);
    } else {
      merged.push_back(range);
    }
  }
  ranges.swap(merged);
}

template <typename T>
bool inRanges(const std::vector<std::pair<T, T>>& ranges, T value) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), value,
                             [](T v, const std::pair<T, T>& range) { return v < range.first; });
  return it != ranges.begin() && value <= std::prev(it)->second;
}

}  // namespace

bool CidrSet::add(const std::string& text, std::string& error) {
  const size_t slash = text.find('/');
  const std::string ip = text.substr(0, slash);
  unsigned char bytes[16];
  const bool v6 = ip.find(':') != std::string::npos;
  if (inet_pton(v6 ? AF_INET6 : AF_INET, ip.c_str(), bytes) != 1) {
    error = "\"" + text + "\" is not an IP address or CIDR";
    return false;
  }
  const int bits = v6 ? 128 : 32;
  int prefix = bits;
  if (slash != std::string::npos) {
    const std::string length = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(length.data(), length.data() + length.size(), prefix);
    if (length.empty() || ec != std::errc() || end != length.data() + length.size() || prefix < 0 ||
        prefix > bits) {
      error = "\"" + text + "\": prefix length must be 0 to " + std::to_string(bits);
      return false;
    }
  }
  if (v6) {
    U128 value = 0;
    for (unsigned char byte : std::string_view(reinterpret_cast<char*>(bytes), 16)) {
      value = (value << 8) | byte;
    }
    const U128 host_mask = prefix == 128 ? 0 : (~U128(0)) >> prefix;
    if ((value & host_mask) != 0) {
      error = "\"" + text + "\" has bits set below its prefix length";
      return false;
    }
    v6_.emplace_back(value, value | host_mask);
  } else {
    uint32_t value;
    std::memcpy(&value, bytes, 4);
    value = ntohl(value);
    const uint32_t host_mask = prefix == 32 ? 0 : (~uint32_t(0)) >> prefix;
    if ((value & host_mask) != 0) {
      error = "\"" + text + "\" has bits set below its prefix length";
      return false;
    }
    v4_.emplace_back(value, value | host_mask);
  }
  return true;
}

void CidrSet::build() {
  mergeRanges(v4_);
  mergeRanges(v6_);
}

bool CidrSet::contains(const Address& address) const {
  if (address.family() == AF_INET) {
    uint32_t value;
    std::memcpy(&value, &reinterpret_cast<const sockaddr_in*>(address.sockaddrPtr())->sin_addr, 4);
    return inRanges(v4_, ntohl(value));
  }
  if (address.family() != AF_INET6) return false;
  const auto* bytes =
      reinterpret_cast<const sockaddr_in6*>(address.sockaddrPtr())->sin6_addr.s6_addr;
  static const unsigned char kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(bytes, kMappedPrefix, 12) == 0) {
    const uint32_t value = (uint32_t(bytes[12]) << 24) | (uint32_t(bytes[13]) << 16) |
                           (uint32_t(bytes[14]) << 8) | bytes[15];
    return inRanges(v4_, value);
  }
  U128 value = 0;
  for (int i = 0; i < 16; ++i) value = (value << 8) | bytes[i];
  return inRanges(v6_, value);
}

}  // namespace mcproxy::network

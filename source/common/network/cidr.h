#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "source/common/network/address.h"

namespace mcproxy::network {

// A set of IPv4 and IPv6 networks with a fast membership test. Networks are merged into sorted,
// non-overlapping ranges, so a lookup is a binary search (about 17 steps at 100,000 entries)
// and memory is 16 or 32 bytes per range. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is
// looked up as the IPv4 address it carries.
class CidrSet {
 public:
  // Adds "10.0.0.0/8", "2001:db8::/32", or a single address ("192.0.2.1", "::1"). Bits set
  // below the prefix length are an error ("10.0.0.1/8"), as is anything that does not parse.
  // Returns false and sets `error` then.
  bool add(const std::string& text, std::string& error);
  // Sorts and merges; call once after the last add() and before contains().
  void build();
  bool contains(const Address& address) const;
  bool empty() const { return v4_.empty() && v6_.empty(); }
  size_t ranges() const { return v4_.size() + v6_.size(); }

 private:
  using U128 = unsigned __int128;
  std::vector<std::pair<uint32_t, uint32_t>> v4_;  // inclusive [first, last]
  std::vector<std::pair<U128, U128>> v6_;
};

}  // namespace mcproxy::network

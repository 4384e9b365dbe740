#pragma once

#include <string>

#include "source/common/network/address.h"

namespace mcproxy::network {

// Which country a client address is in: a GeoIP database for the proxy, the country a route
// test names for `mcproxyctl check`.
class CountryLookup {
 public:
  virtual ~CountryLookup() = default;
  // The ISO 3166-1 alpha-2 code of `address`, or "" when unknown.
  virtual std::string country(const Address& address) const = 0;
};

}  // namespace mcproxy::network

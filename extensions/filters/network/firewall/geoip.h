#pragma once

#include <maxminddb.h>

#include <memory>
#include <string>

#include "source/common/network/address.h"
#include "source/common/network/country_lookup.h"

namespace mcproxy::extensions::firewall {

// A MaxMind .mmdb opened once (memory-mapped) when a snapshot is compiled. Lookups are
// read-only and safe from every worker at once.
class GeoIpDatabase : public network::CountryLookup {
 public:
  // nullptr with `error` set when the file cannot be opened or is not an .mmdb.
  static std::shared_ptr<GeoIpDatabase> open(const std::string& path, std::string& error);
  ~GeoIpDatabase() override;
  GeoIpDatabase(const GeoIpDatabase&) = delete;
  GeoIpDatabase& operator=(const GeoIpDatabase&) = delete;

  // The ISO 3166-1 alpha-2 code of `address` ("country", else "registered_country"), or "".
  std::string country(const network::Address& address) const override;

 private:
  GeoIpDatabase() = default;
  MMDB_s mmdb_{};
  bool open_ = false;
};

}  // namespace mcproxy::extensions::firewall

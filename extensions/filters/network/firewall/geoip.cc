#include "extensions/filters/network/firewall/geoip.h"

namespace mcproxy::extensions::firewall {

std::shared_ptr<GeoIpDatabase> GeoIpDatabase::open(const std::string& path, std::string& error) {
  std::shared_ptr<GeoIpDatabase> database(new GeoIpDatabase());  // private constructor
  const int status = MMDB_open(path.c_str(), MMDB_MODE_MMAP, &database->mmdb_);
  if (status != MMDB_SUCCESS) {
    error = "cannot open \"" + path + "\": " + MMDB_strerror(status);
    return nullptr;
  }
  database->open_ = true;
  return database;
}

GeoIpDatabase::~GeoIpDatabase() {
  if (open_) MMDB_close(&mmdb_);
}

std::string GeoIpDatabase::country(const network::Address& address) const {
  int mmdb_error = 0;
  MMDB_lookup_result_s result =
      MMDB_lookup_sockaddr(const_cast<MMDB_s*>(&mmdb_), address.sockaddrPtr(), &mmdb_error);
  if (mmdb_error != MMDB_SUCCESS || !result.found_entry) return "";
  for (const char* field : {"country", "registered_country"}) {
    MMDB_entry_data_s data{};
    if (MMDB_get_value(&result.entry, &data, field, "iso_code", nullptr) == MMDB_SUCCESS &&
        data.has_data && data.type == MMDB_DATA_TYPE_UTF8_STRING) {
      return std::string(data.utf8_string, data.data_size);
    }
  }
  return "";
}

}  // namespace mcproxy::extensions::firewall

#pragma once

#include <memory>
#include <string>
#include <vector>

#include "extensions/filters/network/firewall/geoip.h"
#include "extensions/filters/network/firewall/rate_limiter.h"
#include "source/common/network/cidr.h"
#include "source/common/network/filter.h"

namespace mcproxy::extensions::firewall {

struct FirewallConfig {
  network::CidrSet blocked_ips;
  network::CidrSet blocked_cidrs;
  std::vector<std::string> blocked_countries;  // sorted, upper case
  // Set when blocked_countries is not empty: the GeoIP database, or a route test's country.
  std::shared_ptr<const network::CountryLookup> geoip;
  std::shared_ptr<RateLimiter> rate_limiter;  // null: no limit
  // The client address is known at accept unless a PROXY header has yet to say it.
  bool judge_at_accept = true;
};

// Refuses a connection by its real client address (after PROXY protocol) before any byte
// reaches a backend: blocked address, blocked network, blocked country, then the rate limit
// (so refused connections spend no tokens). Each refusal is counted by its own close reason.
class FirewallFilter : public network::ReadFilter {
 public:
  explicit FirewallFilter(const FirewallConfig& config) : config_(config) {}

  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) override {
    callbacks_ = &callbacks;
  }
  network::FilterStatus onNewConnection() override;
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override;

 private:
  // Continue, or close the connection and StopIteration.
  network::FilterStatus judge();

  const FirewallConfig& config_;
  network::ReadFilterCallbacks* callbacks_ = nullptr;
  bool judged_ = false;
};

}  // namespace mcproxy::extensions::firewall

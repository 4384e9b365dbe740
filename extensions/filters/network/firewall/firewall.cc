#include "extensions/filters/network/firewall/firewall.h"

#include <algorithm>

#include "source/common/logging/logger.h"

namespace mcproxy::extensions::firewall {

network::FilterStatus FirewallFilter::onNewConnection() {
  return config_.judge_at_accept ? judge() : network::FilterStatus::kContinue;
}

network::FilterStatus FirewallFilter::onData(buffer::Buffer&, bool) {
  return judged_ ? network::FilterStatus::kContinue : judge();
}

network::FilterStatus FirewallFilter::judge() {
  judged_ = true;
  network::Connection& connection = callbacks_->connection();
  const network::Address& client = connection.streamInfo().real_client;
  auto refuse = [&](network::CloseReason reason, const std::string& why) {
    LOG_DEBUG << "connection " << connection.id() << ": firewall refuses " << client.ip() << ": "
              << why;
    connection.close(reason);
    return network::FilterStatus::kStopIteration;
  };
  if (config_.blocked_ips.contains(client)) {
    return refuse(network::CloseReason::kFirewallBlockedIp, "blocked address");
  }
  if (config_.blocked_cidrs.contains(client)) {
    return refuse(network::CloseReason::kFirewallBlockedCidr, "blocked network");
  }
  if (config_.geoip) {
    const std::string country = config_.geoip->country(client);
    if (!country.empty() && std::binary_search(config_.blocked_countries.begin(),
                                               config_.blocked_countries.end(), country)) {
      return refuse(network::CloseReason::kFirewallBlockedCountry, "country " + country);
    }
  }
  if (config_.rate_limiter && !config_.rate_limiter->allow(client, connection.dispatcher().now())) {
    return refuse(network::CloseReason::kFirewallRateLimited, "rate limit");
  }
  return network::FilterStatus::kContinue;
}

}  // namespace mcproxy::extensions::firewall

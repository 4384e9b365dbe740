// Factory and registration of mcproxy.filters.network.firewall.
#include <algorithm>

#include "api/mcproxy/extensions/filters/network/firewall/v1/firewall.pb.h"
#include "extensions/filters/network/firewall/firewall.h"
#include "source/common/config/config_error.h"
#include "source/common/network/filter_factory.h"

namespace mcproxy::extensions::firewall {
namespace {

using ProtoConfig = mcproxy::extensions::filters::network::firewall::v1::Firewall;
using mcproxy::config::v1::Firewall;

constexpr uint32_t kDefaultTrackedAddresses = 65536;

void addAll(network::CidrSet& set, const google::protobuf::RepeatedPtrField<std::string>& items,
            const std::string& path) {
  for (int i = 0; i < items.size(); ++i) {
    std::string error;
    if (!set.add(items[i], error)) {
      throw config::ConfigError(path + "[" + std::to_string(i) + "]", error);
    }
  }
}

class FirewallConfigFactory : public network::TypedNetworkFilterConfigFactory<ProtoConfig> {
 public:
  std::string name() const override { return "mcproxy.filters.network.firewall"; }

 protected:
  network::FilterFactoryCb createTypedFilterFactory(
      const ProtoConfig&, network::FilterFactoryContext& context) const override {
    auto config = std::make_shared<FirewallConfig>();
    config->judge_at_accept = !context.listener_config.proxy_protocol();
    const Firewall& global = context.bootstrap.firewall();
    const Firewall& local = context.listener_config.firewall();
    const std::string local_path = context.listener_path + ".firewall";

    for (const auto& [firewall, path] :
         {std::pair{&global, std::string("firewall")}, std::pair{&local, local_path}}) {
      addAll(config->blocked_ips, firewall->blocked_ips(), path + ".blocked_ips");
      for (int i = 0; i < firewall->blocked_ips_size(); ++i) {
        if (firewall->blocked_ips(i).find('/') != std::string::npos) {
          throw config::ConfigError(path + ".blocked_ips[" + std::to_string(i) + "]",
                                    "a network belongs in blocked_cidrs");
        }
      }
      addAll(config->blocked_cidrs, firewall->blocked_cidrs(), path + ".blocked_cidrs");
      for (int i = 0; i < firewall->blocked_cidrs_size(); ++i) {
        if (firewall->blocked_cidrs(i).find('/') == std::string::npos) {
          throw config::ConfigError(
              path + ".blocked_cidrs[" + std::to_string(i) + "]",
              "\"" + firewall->blocked_cidrs(i) +
                  "\" has no /LENGTH; a single address belongs in blocked_ips");
        }
      }
      for (int i = 0; i < firewall->blocked_countries_size(); ++i) {
        const std::string& code = firewall->blocked_countries(i);
        if (code.size() != 2 || !std::isupper(static_cast<unsigned char>(code[0])) ||
            !std::isupper(static_cast<unsigned char>(code[1]))) {
          throw config::ConfigError(
              path + ".blocked_countries[" + std::to_string(i) + "]",
              "\"" + code + "\" is not an ISO 3166-1 alpha-2 code like \"NL\"");
        }
        config->blocked_countries.push_back(code);
      }
    }
    config->blocked_ips.build();
    config->blocked_cidrs.build();
    std::sort(config->blocked_countries.begin(), config->blocked_countries.end());

    if (!config->blocked_countries.empty()) {
      const bool local_db = !local.geoip_db().empty();
      const std::string& db = local_db ? local.geoip_db() : global.geoip_db();
      const std::string db_path = (local_db ? local_path : std::string("firewall")) + ".geoip_db";
      if (db.empty()) {
        throw config::ConfigError(local_path + ".geoip_db",
                                  "blocked_countries needs a geoip_db (here or at the top level)");
      }
      if (auto given = context.shared_objects.countryOverride()) {
        config->geoip = std::move(given);  // a route test: the database is not opened
      } else {
        std::string error;
        config->geoip = GeoIpDatabase::open(db, error);
        if (!config->geoip) throw config::ConfigError(db_path, error);
        context.watched_files.push_back(db);
      }
    }

    const bool local_limit = local.has_rate_limit() && local.rate_limit().connections() > 0;
    const auto& limit = local_limit ? local.rate_limit() : global.rate_limit();
    if (limit.connections() > 0) {
      const std::string path = (local_limit ? local_path : std::string("firewall")) + ".rate_limit";
      if (limit.per_seconds() == 0 || limit.per_seconds() > 86400) {
        throw config::ConfigError(path + ".per_seconds", "must be between 1 and 86400");
      }
      const size_t slots = limit.max_tracked_addresses() == 0 ? kDefaultTrackedAddresses
                                                              : limit.max_tracked_addresses();
      if (slots > (1u << 24)) {
        throw config::ConfigError(path + ".max_tracked_addresses", "at most 16777216");
      }
      // Rate limiters outlive snapshots: a reload must not hand every client a fresh bucket. A
      // limiter is reused while some snapshot still holds it and its settings are unchanged.
      const uint32_t burst = limit.connections();
      const std::chrono::seconds period(limit.per_seconds());
      config->rate_limiter = context.shared_objects.getOrCreate<RateLimiter>(
          "firewall.rate_limiter." + (context.listener_config.name().empty()
                                          ? context.listener_config.address()
                                          : context.listener_config.name()),
          [&](const RateLimiter& existing) {
            return existing.burst() == burst && existing.period() == period &&
                   existing.slots() >= slots;
          },
          [&] { return std::make_shared<RateLimiter>(burst, period, slots); });
    }
    return [config] { return std::make_unique<FirewallFilter>(*config); };
  }
};

}  // namespace

MCPROXY_REGISTER_NETWORK_FILTER(FirewallConfigFactory)

}  // namespace mcproxy::extensions::firewall

// Factory and registration of mcproxy.filters.network.proxy_protocol.
#include "api/mcproxy/extensions/filters/network/proxy_protocol/v1/proxy_protocol.pb.h"
#include "extensions/filters/network/proxy_protocol/proxy_protocol.h"
#include "source/common/config/config_error.h"
#include "source/common/network/filter_factory.h"

namespace mcproxy::extensions::proxy_protocol {
namespace {

using ProtoConfig = mcproxy::extensions::filters::network::proxy_protocol::v1::ProxyProtocol;

constexpr uint32_t kDefaultHeaderTimeoutMs = 5000;

class ProxyProtocolConfigFactory : public network::TypedNetworkFilterConfigFactory<ProtoConfig> {
 public:
  std::string name() const override { return "mcproxy.filters.network.proxy_protocol"; }

 protected:
  network::FilterFactoryCb createTypedFilterFactory(
      const ProtoConfig& proto, network::FilterFactoryContext& context) const override {
    auto config = std::make_shared<ProxyProtocolConfig>();
    config->header_timeout = std::chrono::milliseconds(
        proto.header_timeout_ms() == 0 ? kDefaultHeaderTimeoutMs : proto.header_timeout_ms());
    config->v2_only = proto.v2_only();
    const auto& sources = context.listener_config.trusted_sources();
    for (int i = 0; i < sources.size(); ++i) {
      std::string error;
      if (!config->trusted_sources.add(sources[i], error)) {
        throw config::ConfigError(
            context.listener_path + ".trusted_sources[" + std::to_string(i) + "]", error);
      }
    }
    config->trusted_sources.build();
    if (sources.empty()) {
      context.warnings.push_back(context.listener_path +
                                 ".trusted_sources: empty, so any peer may send a PROXY header "
                                 "and claim any client address");
    }
    return [config] { return std::make_unique<ProxyProtocolFilter>(*config); };
  }
};

}  // namespace

MCPROXY_REGISTER_NETWORK_FILTER(ProxyProtocolConfigFactory)

}  // namespace mcproxy::extensions::proxy_protocol

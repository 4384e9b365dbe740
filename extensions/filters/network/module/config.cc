// Factory and registration of mcproxy.filters.network.module.
#include "api/mcproxy/extensions/modules/v1/module_filter.pb.h"
#include "extensions/filters/network/module/module_filter.h"
#include "source/common/module/filter_config.h"
#include "source/common/network/filter_factory.h"

namespace mcproxy::extensions::module_filter {
namespace {

using ProtoConfig = mcproxy::extensions::modules::v1::ModuleFilter;

class NetworkModuleConfigFactory : public network::TypedNetworkFilterConfigFactory<ProtoConfig> {
 public:
  std::string name() const override { return "mcproxy.filters.network.module"; }

 protected:
  network::FilterFactoryCb createTypedFilterFactory(
      const ProtoConfig& proto, network::FilterFactoryContext& context) const override {
    std::shared_ptr<const module::FilterConfig> config = module::makeFilterConfig(
        module::FilterKind::kNetwork, context.modules, context.stats, context.field_path,
        proto.module(), proto.filter_name(), proto.config());
    return [config] { return std::make_unique<NetworkModuleFilter>(config); };
  }
};

}  // namespace

MCPROXY_REGISTER_NETWORK_FILTER(NetworkModuleConfigFactory)

}  // namespace mcproxy::extensions::module_filter

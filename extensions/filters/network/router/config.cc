// Factory and registration of mcproxy.filters.network.router.
#include "api/mcproxy/extensions/filters/network/router/v1/router.pb.h"
#include "extensions/filters/network/router/router.h"
#include "source/common/network/filter_factory.h"

namespace mcproxy::extensions::router {
namespace {

using ProtoConfig = mcproxy::extensions::filters::network::router::v1::Router;

class RouterConfigFactory : public network::TypedNetworkFilterConfigFactory<ProtoConfig> {
 public:
  std::string name() const override { return "mcproxy.filters.network.router"; }

 protected:
  network::FilterFactoryCb createTypedFilterFactory(
      const ProtoConfig&, network::FilterFactoryContext& context) const override {
    const snapshot::CompiledListener* listener = &context.listener;
    return [listener] { return std::make_unique<RouterFilter>(*listener); };
  }
};

}  // namespace

MCPROXY_REGISTER_NETWORK_FILTER(RouterConfigFactory)

}  // namespace mcproxy::extensions::router

// Factory and registration of mcproxy.filters.http.forwarding_headers.
#include "api/mcproxy/extensions/filters/http/forwarding_headers/v1/forwarding_headers.pb.h"
#include "extensions/filters/http/forwarding_headers/forwarding_headers.h"
#include "source/common/config/config_error.h"
#include "source/common/http/filter_factory.h"

namespace mcproxy::extensions::forwarding_headers {
namespace {

using ProtoConfig = mcproxy::extensions::filters::http::forwarding_headers::v1::ForwardingHeaders;

class ForwardingHeadersConfigFactory : public http::TypedHttpFilterConfigFactory<ProtoConfig> {
 public:
  std::string name() const override { return "mcproxy.filters.http.forwarding_headers"; }

 protected:
  http::FilterFactory createTypedFilterFactory(const ProtoConfig& proto,
                                               http::FilterFactoryContext& context) const override {
    if (proto.trusted_hops() > 64) {
      throw config::ConfigError(context.field_path + ".trusted_hops", "at most 64");
    }
    auto config = std::make_shared<ForwardingHeadersConfig>();
    config->trusted_hops = proto.trusted_hops();
    return http::FilterFactory::of<ForwardingHeadersFilter>(
        name(), [config](http::FilterCallbacks& callbacks) {
          return std::make_unique<ForwardingHeadersFilter>(*config, callbacks);
        });
  }
};

}  // namespace

MCPROXY_REGISTER_HTTP_FILTER(ForwardingHeadersConfigFactory)

}  // namespace mcproxy::extensions::forwarding_headers

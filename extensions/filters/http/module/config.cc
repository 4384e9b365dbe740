// Factory and registration of mcproxy.filters.http.module.
#include "api/mcproxy/extensions/modules/v1/module_filter.pb.h"
#include "extensions/filters/http/module/module_filter.h"
#include "source/common/http/filter_factory.h"
#include "source/common/module/filter_config.h"

namespace mcproxy::extensions::http_module_filter {
namespace {

using ProtoConfig = mcproxy::extensions::modules::v1::ModuleFilter;

class HttpModuleConfigFactory : public http::TypedHttpFilterConfigFactory<ProtoConfig> {
 public:
  std::string name() const override { return "mcproxy.filters.http.module"; }

 protected:
  http::FilterFactory createTypedFilterFactory(const ProtoConfig& proto,
                                               http::FilterFactoryContext& context) const override {
    std::shared_ptr<const module::FilterConfig> config = module::makeFilterConfig(
        module::FilterKind::kHttp, context.modules, context.stats, context.field_path,
        proto.module(), proto.filter_name(), proto.config());
    return http::FilterFactory{
        name(),
        [config](http::FilterCallbacks& callbacks) -> std::unique_ptr<http::StreamFilter> {
          return std::make_unique<HttpModuleFilter>(config, callbacks);
        },
        HttpModuleFilter::phases(config->module().http())};
  }
};

}  // namespace

MCPROXY_REGISTER_HTTP_FILTER(HttpModuleConfigFactory)

}  // namespace mcproxy::extensions::http_module_filter

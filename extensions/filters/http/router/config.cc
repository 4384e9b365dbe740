// Factory and registration of mcproxy.filters.http.router.
#include "api/mcproxy/extensions/filters/http/router/v1/router.pb.h"
#include "extensions/filters/http/router/router.h"
#include "source/common/http/filter_factory.h"

namespace mcproxy::extensions::http_router {
namespace {

using ProtoConfig = mcproxy::extensions::filters::http::router::v1::Router;

class RouterConfigFactory : public http::TypedHttpFilterConfigFactory<ProtoConfig> {
 public:
  std::string name() const override { return "mcproxy.filters.http.router"; }
  bool terminal() const override { return true; }

 protected:
  http::FilterFactory createTypedFilterFactory(const ProtoConfig&,
                                               http::FilterFactoryContext&) const override {
    return http::FilterFactory::of<RouterFilter>(name(), [](http::FilterCallbacks& callbacks) {
      return std::make_unique<RouterFilter>(callbacks);
    });
  }
};

}  // namespace

MCPROXY_REGISTER_HTTP_FILTER(RouterConfigFactory)

}  // namespace mcproxy::extensions::http_router

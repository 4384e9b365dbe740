// Factory and registration of mcproxy.filters.http.direct_response.
#include <absl/strings/ascii.h>

#include "api/mcproxy/extensions/filters/http/direct_response/v1/direct_response.pb.h"
#include "extensions/filters/http/direct_response/direct_response.h"
#include "source/common/config/config_error.h"
#include "source/common/http/filter_factory.h"

namespace mcproxy::extensions::direct_response {
namespace {

using ProtoConfig = mcproxy::extensions::filters::http::direct_response::v1::DirectResponse;

class DirectResponseConfigFactory : public http::TypedHttpFilterConfigFactory<ProtoConfig> {
 public:
  std::string name() const override { return "mcproxy.filters.http.direct_response"; }

 protected:
  http::FilterFactory createTypedFilterFactory(const ProtoConfig& proto,
                                               http::FilterFactoryContext& context) const override {
    auto config = std::make_shared<DirectResponseConfig>();
    for (int i = 0; i < proto.rules_size(); ++i) {
      const auto& rule = proto.rules(i);
      const std::string path =
          context.field_path + ".typed_config.rules[" + std::to_string(i) + "]";
      if (std::string why = router::PathMatcher::validate(rule.path_prefix(), rule.path_exact());
          !why.empty()) {
        throw config::ConfigError(path, why);
      }
      if (rule.status() < 200 || rule.status() > 599) {
        throw config::ConfigError(path + ".status", "must be between 200 and 599");
      }
      Rule compiled{{rule.path_prefix(), rule.path_exact()},
                    static_cast<int>(rule.status()),
                    {},
                    rule.body()};
      for (int j = 0; j < rule.headers_size(); ++j) {
        const std::string entry = path + ".headers[" + std::to_string(j) + "]";
        std::string name = absl::AsciiStrToLower(rule.headers(j).name());
        if (!http::validHeaderName(name) || http::isHopByHop(name, "")) {
          throw config::ConfigError(entry + ".name",
                                    "\"" + rule.headers(j).name() + "\" cannot be set here");
        }
        auto value = formatter::Formatter::parse(rule.headers(j).value());
        if (!value.ok()) {
          throw config::ConfigError(entry + ".value", std::string(value.status().message()));
        }
        compiled.headers.emplace_back(std::move(name), *std::move(value));
      }
      config->rules.push_back(std::move(compiled));
    }
    if (config->rules.empty()) {
      context.warnings.push_back(context.field_path + ": no rules; the filter answers nothing");
    }
    return http::FilterFactory::of<DirectResponseFilter>(
        name(), [config](http::FilterCallbacks& callbacks) {
          return std::make_unique<DirectResponseFilter>(*config, callbacks);
        });
  }
};

}  // namespace

MCPROXY_REGISTER_HTTP_FILTER(DirectResponseConfigFactory)

}  // namespace mcproxy::extensions::direct_response

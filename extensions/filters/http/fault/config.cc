// Factory and registration of mcproxy.filters.http.fault.
#include <absl/strings/ascii.h>

#include "api/mcproxy/extensions/filters/http/fault/v1/fault.pb.h"
#include "extensions/filters/http/fault/fault.h"
#include "source/common/config/config_error.h"
#include "source/common/http/filter_factory.h"

namespace mcproxy::extensions::fault {
namespace {

using ProtoConfig = mcproxy::extensions::filters::http::fault::v1::Fault;

uint32_t percentOf(uint32_t value, const std::string& path) {
  if (value > 100) throw config::ConfigError(path, "a percentage, 1 to 100 (0 means 100)");
  return value == 0 ? 100 : value;
}

class FaultConfigFactory : public http::TypedHttpFilterConfigFactory<ProtoConfig> {
 public:
  std::string name() const override { return "mcproxy.filters.http.fault"; }

 protected:
  http::FilterFactory createTypedFilterFactory(const ProtoConfig& proto,
                                               http::FilterFactoryContext& context) const override {
    const std::string path = context.field_path + ".typed_config";
    auto config = std::make_shared<FaultConfig>();
    if (proto.has_delay() && proto.delay().fixed_delay_ms() > 0) {
      if (proto.delay().fixed_delay_ms() > 3600000) {
        throw config::ConfigError(path + ".delay.fixed_delay_ms", "at most 3600000 (an hour)");
      }
      config->delay = std::chrono::milliseconds(proto.delay().fixed_delay_ms());
      config->delay_percent = percentOf(proto.delay().percent(), path + ".delay.percent");
    }
    if (proto.has_abort() && proto.abort().status() != 0) {
      if (proto.abort().status() < 200 || proto.abort().status() > 599) {
        throw config::ConfigError(path + ".abort.status", "must be between 200 and 599");
      }
      config->abort_status = static_cast<int>(proto.abort().status());
      config->abort_percent = percentOf(proto.abort().percent(), path + ".abort.percent");
    }
    if (!proto.header().empty()) {
      config->header = absl::AsciiStrToLower(proto.header());
      if (!http::validHeaderName(config->header)) {
        throw config::ConfigError(path + ".header",
                                  "\"" + proto.header() + "\" is not a header name");
      }
    }
    if (config->delay_percent == 0 && config->abort_status == 0) {
      context.warnings.push_back(context.field_path +
                                 ": neither delay nor abort; the filter does nothing");
    }
    return http::FilterFactory::of<FaultFilter>(name(), [config](http::FilterCallbacks& callbacks) {
      return std::make_unique<FaultFilter>(*config, callbacks);
    });
  }
};

}  // namespace

MCPROXY_REGISTER_HTTP_FILTER(FaultConfigFactory)

}  // namespace mcproxy::extensions::fault

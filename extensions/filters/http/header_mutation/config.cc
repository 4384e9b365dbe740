// Factory and registration of mcproxy.filters.http.header_mutation.
#include <absl/strings/ascii.h>

#include <tuple>

#include "api/mcproxy/extensions/filters/http/header_mutation/v1/header_mutation.pb.h"
#include "extensions/filters/http/header_mutation/header_mutation.h"
#include "source/common/config/config_error.h"
#include "source/common/http/filter_factory.h"

namespace mcproxy::extensions::header_mutation {
namespace {

using ProtoConfig = mcproxy::extensions::filters::http::header_mutation::v1::HeaderMutation;
using ProtoMutations = mcproxy::extensions::filters::http::header_mutation::v1::Mutations;

// A name a filter may change: a lower-case token, not a pseudo-header and not a hop-by-hop
// field (the proxy manages those).
std::string checkedName(const std::string& name, const std::string& path) {
  std::string lower = absl::AsciiStrToLower(name);
  if (!http::validHeaderName(lower)) {
    throw config::ConfigError(path, "\"" + name + "\" is not a valid header name");
  }
  if (http::isHopByHop(lower, "")) {
    throw config::ConfigError(path, "\"" + name + "\" is hop-by-hop; the proxy manages it");
  }
  return lower;
}

Mutations compile(const ProtoMutations& proto, const std::string& path) {
  Mutations out;
  for (int i = 0; i < proto.remove_size(); ++i) {
    out.remove.push_back(checkedName(proto.remove(i), path + ".remove[" + std::to_string(i) + "]"));
  }
  for (const auto& [list, target, field] :
       {std::tuple{&proto.set(), &out.set, "set"}, std::tuple{&proto.add(), &out.add, "add"}}) {
    for (int i = 0; i < list->size(); ++i) {
      const auto& header = (*list)[i];
      const std::string entry = path + "." + field + "[" + std::to_string(i) + "]";
      std::string name = checkedName(header.name(), entry + ".name");
      auto value = formatter::Formatter::parse(header.value());
      if (!value.ok())
        throw config::ConfigError(entry + ".value", std::string(value.status().message()));
      if (value->literal() && !http::validHeaderValue(header.value())) {
        throw config::ConfigError(entry + ".value", "control characters are not allowed");
      }
      out.reads_request_headers = out.reads_request_headers || value->readsRequestHeaders();
      target->push_back({std::move(name), *std::move(value)});
    }
  }
  return out;
}

class HeaderMutationConfigFactory : public http::TypedHttpFilterConfigFactory<ProtoConfig> {
 public:
  std::string name() const override { return "mcproxy.filters.http.header_mutation"; }

 protected:
  http::FilterFactory createTypedFilterFactory(const ProtoConfig& proto,
                                               http::FilterFactoryContext& context) const override {
    auto config = std::make_shared<HeaderMutationConfig>();
    config->request = compile(proto.request(), context.field_path + ".typed_config.request");
    config->response = compile(proto.response(), context.field_path + ".typed_config.response");
    if (config->request.empty() && config->response.empty()) {
      context.warnings.push_back(context.field_path + ": no mutations; the filter does nothing");
    }
    return http::FilterFactory::of<HeaderMutationFilter>(
        name(), [config](http::FilterCallbacks& callbacks) {
          return std::make_unique<HeaderMutationFilter>(*config, callbacks);
        });
  }
};

}  // namespace

MCPROXY_REGISTER_HTTP_FILTER(HeaderMutationConfigFactory)

}  // namespace mcproxy::extensions::header_mutation

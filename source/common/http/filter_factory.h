#pragma once

#include <google/protobuf/message.h>

#include <memory>
#include <string>
#include <vector>

#include "source/common/config/registry.h"
#include "source/common/http/filter.h"
#include "source/common/stats/stats.h"

namespace mcproxy::module {
class ModuleSet;
}

namespace mcproxy::http {

// What an HTTP filter factory may use while it compiles its config, once per snapshot and route.
struct FilterFactoryContext {
  // Where this filter's config sits, for error messages
  // ("listeners[0].routes[1].http_filters[2]"), and where its route does.
  std::string field_path;
  std::string route_path;
  // The route's hostname ("(default)" for the default route), for stats and logs.
  std::string route_name;
  stats::Store& stats;
  // Non-fatal findings, logged by the caller.
  std::vector<std::string>& warnings;
  // Files the filter read; when one changes, the config is compiled again (a new snapshot).
  std::vector<std::string>& watched_files;
  // The plugin modules the config loaded, by name (mcproxy.filters.http.module).
  const module::ModuleSet* modules = nullptr;
};

// An HTTP filter type, registered by name ("mcproxy.filters.http.header_mutation").
class NamedHttpFilterConfigFactory {
 public:
  virtual ~NamedHttpFilterConfigFactory() = default;
  virtual std::string name() const = 0;
  // An empty instance of the filter's typed config message.
  virtual std::unique_ptr<google::protobuf::Message> createEmptyConfigProto() const = 0;
  // Validates `config` (of the type createEmptyConfigProto() returns) and compiles it. Throws
  // config::ConfigError naming context.field_path for a config that cannot be used.
  virtual FilterFactory createFilterFactory(const google::protobuf::Message& config,
                                            FilterFactoryContext& context) const = 0;
  // A terminal filter answers every request that reaches it (the router); a chain must end
  // with one, and only there.
  virtual bool terminal() const { return false; }
};

// Base for factories with a typed config: a filter author writes name() and the typed
// createTypedFilterFactory().
template <typename ConfigProto>
class TypedHttpFilterConfigFactory : public NamedHttpFilterConfigFactory {
 public:
  std::unique_ptr<google::protobuf::Message> createEmptyConfigProto() const final {
    return std::make_unique<ConfigProto>();
  }
  FilterFactory createFilterFactory(const google::protobuf::Message& config,
                                    FilterFactoryContext& context) const final {
    return createTypedFilterFactory(dynamic_cast<const ConfigProto&>(config), context);
  }

 protected:
  virtual FilterFactory createTypedFilterFactory(const ConfigProto& config,
                                                 FilterFactoryContext& context) const = 0;
};

// Every HTTP filter factory linked into the binary, by name.
using HttpFilterRegistry = config::Registry<NamedHttpFilterConfigFactory>;

}  // namespace mcproxy::http

#define MCPROXY_REGISTER_HTTP_FILTER(FACTORY)                              \
  namespace {                                                              \
  [[maybe_unused]] const bool registered_##FACTORY = [] {                  \
    ::mcproxy::http::HttpFilterRegistry::add(std::make_unique<FACTORY>()); \
    return true;                                                           \
  }();                                                                     \
  }

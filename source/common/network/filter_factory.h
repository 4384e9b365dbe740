#pragma once

#include <google/protobuf/message.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "api/mcproxy/config/v1/bootstrap.pb.h"
#include "source/common/config/registry.h"
#include "source/common/config/shared_objects.h"
#include "source/common/network/filter.h"
#include "source/common/stats/stats.h"

namespace mcproxy::snapshot {
struct CompiledListener;
}
namespace mcproxy::module {
class ModuleSet;
}

namespace mcproxy::network {

// Builds one filter instance for one connection. Made once per snapshot and listener.
using FilterFactoryCb = std::function<std::unique_ptr<ReadFilter>()>;

// What a factory may use while it compiles its config.
struct FilterFactoryContext {
  // The listener whose chain is being built; it outlives every filter made for it.
  const snapshot::CompiledListener& listener;
  // The whole config and this listener's part of it, for filters whose settings live there
  // (trusted_sources, firewall).
  const mcproxy::config::v1::Bootstrap& bootstrap;
  const mcproxy::config::v1::Listener& listener_config;
  stats::Store& stats;
  // Where this filter's config sits, for error messages ("listeners[0].filters[2]"), and
  // where its listener does ("listeners[0]").
  std::string field_path;
  std::string listener_path;
  // Non-fatal findings, logged by the caller.
  std::vector<std::string>& warnings;
  // Files the filter read; when one changes, the config is compiled again (a new snapshot).
  std::vector<std::string>& watched_files;
  // State that outlives this snapshot and is handed on to the next (the firewall's rate limiter).
  config::SharedObjects& shared_objects;
  // The plugin modules the config loaded, by name (mcproxy.filters.network.module).
  const module::ModuleSet* modules = nullptr;
};

// A filter type, registered by name ("mcproxy.filters.network.tcp_proxy").
class NamedNetworkFilterConfigFactory {
 public:
  virtual ~NamedNetworkFilterConfigFactory() = default;
  virtual std::string name() const = 0;
  // An empty instance of the filter's typed config message.
  virtual std::unique_ptr<google::protobuf::Message> createEmptyConfigProto() const = 0;
  // Validates `config` (of the type createEmptyConfigProto() returns) and compiles it. Throws
  // config::ConfigError naming context.field_path for a config that cannot be used.
  virtual FilterFactoryCb createFilterFactory(const google::protobuf::Message& config,
                                              FilterFactoryContext& context) const = 0;
  // A terminal filter takes the connection over (tcp_proxy, http_connection_manager): the
  // chain ends with it, and route tests (mcproxyctl check) evaluate the filters before it.
  virtual bool terminal() const { return false; }
};

// Base for factories with a typed config: implements the proto plumbing so a filter author
// writes only name() and the typed createFilterFactory().
template <typename ConfigProto>
class TypedNetworkFilterConfigFactory : public NamedNetworkFilterConfigFactory {
 public:
  std::unique_ptr<google::protobuf::Message> createEmptyConfigProto() const final {
    return std::make_unique<ConfigProto>();
  }
  FilterFactoryCb createFilterFactory(const google::protobuf::Message& config,
                                      FilterFactoryContext& context) const final {
    return createTypedFilterFactory(dynamic_cast<const ConfigProto&>(config), context);
  }

 protected:
  virtual FilterFactoryCb createTypedFilterFactory(const ConfigProto& config,
                                                   FilterFactoryContext& context) const = 0;
};

// Every network filter factory linked into the binary, by name.
using FilterRegistry = config::Registry<NamedNetworkFilterConfigFactory>;

}  // namespace mcproxy::network

#define MCPROXY_REGISTER_NETWORK_FILTER(FACTORY)                          \
  namespace {                                                             \
  [[maybe_unused]] const bool registered_##FACTORY = [] {                 \
    ::mcproxy::network::FilterRegistry::add(std::make_unique<FACTORY>()); \
    return true;                                                          \
  }();                                                                    \
  }

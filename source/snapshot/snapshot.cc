#include "source/snapshot/snapshot.h"

#include <google/protobuf/any.pb.h>

#include <algorithm>
#include <atomic>
#include <set>

#include "source/common/config/config_error.h"

namespace mcproxy::snapshot {
namespace {

using config::ConfigError;
using mcproxy::config::v1::Bootstrap;
using mcproxy::config::v1::Listener;
using mcproxy::config::v1::Route;

constexpr uint32_t kDefaultBacklog = 1024;
constexpr uint32_t kDefaultDrainTimeoutMs = 15000;

std::string routePath(size_t listener_index, int route_index) {
  return "listeners[" + std::to_string(listener_index) + "].routes[" + std::to_string(route_index) +
         "]";
}

ListenerStats makeListenerStats(stats::Store& store, const std::string& name) {
  const std::string prefix = "listener." + name + ".";
  ListenerStats out{store.counter(prefix + "downstream_cx_total"),
                    store.gauge(prefix + "downstream_cx_active"),
                    store.counter(prefix + "downstream_cx_overflow"),
                    {}};
  for (size_t i = 0; i < network::kCloseReasonCount; ++i) {
    out.closes.push_back(&store.counter(
        prefix + "close." + network::closeReasonName(static_cast<network::CloseReason>(i))));
  }
  return out;
}

std::unique_ptr<router::Route> compileRoute(const Route& proto, const std::string& path,
                                            const std::string& listener_name, bool is_default,
                                            stats::Store& store,
                                            std::vector<std::string>& warnings) {
  if (is_default) {
    if (!proto.hostname().empty()) {
      throw ConfigError(path + ".hostname", "the default route matches every name; leave it empty");
    }
  } else if (std::string why = router::validateHostnamePattern(proto.hostname()); !why.empty()) {
    throw ConfigError(path + ".hostname", why);
  }
  if (proto.backend().empty()) throw ConfigError(path + ".backend", "is required");
  std::string error;
  auto backend = network::Address::resolveHostPort(proto.backend(), error);
  if (!backend) throw ConfigError(path + ".backend", error);
  if (backend->port() == 0) throw ConfigError(path + ".backend", "port 0 cannot be connected to");

  const bool l7 = proto.mode() == Route::L7;
  if (l7) {
    throw ConfigError(path + ".mode",
                      "L7 routes (TLS termination) are not implemented in this build yet; use L4");
  }
  if (!proto.tls_cert().empty() || !proto.tls_key().empty()) {
    warnings.push_back(path + ": tls_cert/tls_key are ignored on an L4 route (TLS passes through)");
  }
  if (proto.backend_tls()) {
    warnings.push_back(path +
                       ".backend_tls: ignored on an L4 route (the client's TLS passes through)");
  }
  if (proto.send_proxy_protocol()) {
    throw ConfigError(path + ".send_proxy_protocol",
                      "sending PROXY protocol is not implemented in this build yet");
  }
  if (proto.proxy_protocol_version() != 0 && proto.proxy_protocol_version() != 1 &&
      proto.proxy_protocol_version() != 2) {
    throw ConfigError(path + ".proxy_protocol_version", "must be 1 or 2");
  }

  const std::string stat_prefix = "route." + listener_name + "." +
                                  (is_default ? std::string("default") : proto.hostname()) + ".";
  auto route = std::make_unique<router::Route>(
      router::Route{router::toLowerAscii(proto.hostname()), proto.backend(), *backend,
                    router::RouteMode::kL4, proto.tls_cert(), proto.tls_key(), proto.backend_tls(),
                    proto.send_proxy_protocol(), proto.proxy_protocol_version() == 1 ? 1u : 2u,
                    router::RouteStats{store.counter(stat_prefix + "upstream_cx_total"),
                                       store.counter(stat_prefix + "bytes_from_downstream"),
                                       store.counter(stat_prefix + "bytes_to_downstream"),
                                       store.counter(stat_prefix + "upstream_cx_connect_fail")}});
  return route;
}

void compileFilterChain(const Listener& proto, size_t index, CompiledListener& listener,
                        stats::Store& store, std::vector<std::string>& warnings) {
  const std::string path = "listeners[" + std::to_string(index) + "].filters";
  struct Entry {
    std::string name;
    std::unique_ptr<google::protobuf::Message> config;
    std::string path;
  };
  std::vector<Entry> entries;
  if (proto.filters().empty()) {
    for (const std::string& name : defaultFilterChain()) {
      const auto* factory = network::FilterRegistry::find(name);
      if (factory == nullptr) {
        throw ConfigError(path, "built-in filter " + name + " is not linked into this binary");
      }
      entries.push_back({name, factory->createEmptyConfigProto(), path + "(default " + name + ")"});
    }
  }
  for (int i = 0; i < proto.filters_size(); ++i) {
    const auto& filter = proto.filters(i);
    const std::string filter_path = path + "[" + std::to_string(i) + "]";
    const auto* factory = network::FilterRegistry::find(filter.name());
    if (factory == nullptr) {
      std::string known;
      for (const auto& name : network::FilterRegistry::names()) known += " " + name;
      throw ConfigError(filter_path + ".name",
                        "unknown filter \"" + filter.name() + "\"; registered:" + known);
    }
    auto config = factory->createEmptyConfigProto();
    if (filter.has_typed_config()) {
      if (!filter.typed_config().UnpackTo(config.get())) {
        throw ConfigError(filter_path + ".typed_config",
                          "expected " + config->GetDescriptor()->full_name() + ", got " +
                              filter.typed_config().type_url());
      }
    }
    entries.push_back({filter.name(), std::move(config), filter_path});
  }
  for (auto& entry : entries) {
    network::FilterFactoryContext context{listener, store, entry.path, warnings};
    listener.filter_factories.push_back(
        network::FilterRegistry::find(entry.name)->createFilterFactory(*entry.config, context));
  }
}

// An exact route that a wildcard already covers with the same backend and settings adds
// nothing; most often it is a leftover from before the wildcard was added.
void warnRedundantRoutes(const CompiledListener& listener, size_t index,
                         std::vector<std::string>& warnings) {
  for (size_t i = 0; i < listener.routes.size(); ++i) {
    const router::Route& route = *listener.routes[i];
    if (route.hostname.empty() || route.hostname.starts_with("*.")) continue;
    const auto* covering = listener.route_table.findWildcard(route.hostname);
    if (covering == nullptr) continue;
    const router::Route& wildcard = **covering;
    if (wildcard.backend_text == route.backend_text && wildcard.mode == route.mode &&
        wildcard.tls_cert == route.tls_cert &&
        wildcard.send_proxy_protocol == route.send_proxy_protocol) {
      warnings.push_back(routePath(index, static_cast<int>(i)) + ": \"" + route.hostname +
                         "\" is already covered by \"" + wildcard.hostname +
                         "\" with the same backend; the exact route is redundant");
    }
  }
}

std::unique_ptr<CompiledListener> compileListener(const Listener& proto, size_t index,
                                                  stats::Store& store,
                                                  std::vector<std::string>& warnings) {
  const std::string path = "listeners[" + std::to_string(index) + "]";
  if (proto.address().empty()) throw ConfigError(path + ".address", "is required");
  std::string error;
  auto address = network::Address::parseIpPort(proto.address(), error);
  if (!address) throw ConfigError(path + ".address", error);
  if (proto.proxy_protocol()) {
    throw ConfigError(path + ".proxy_protocol",
                      "accepting PROXY protocol is not implemented in this build yet");
  }
  const std::string name = proto.name().empty() ? proto.address() : proto.name();
  auto listener = std::make_unique<CompiledListener>(
      CompiledListener{name,
                       proto.address(),
                       *address,
                       proto.proxy_protocol(),
                       proto.backlog() == 0 ? kDefaultBacklog : proto.backlog(),
                       {},
                       {},
                       nullptr,
                       {},
                       makeListenerStats(store, name)});

  for (int i = 0; i < proto.routes_size(); ++i) {
    auto route = compileRoute(proto.routes(i), routePath(index, i), name, false, store, warnings);
    if (!listener->route_table.add(route->hostname, route.get())) {
      throw ConfigError(
          routePath(index, i) + ".hostname",
          "\"" + proto.routes(i).hostname() + "\" is already routed on this listener");
    }
    listener->routes.push_back(std::move(route));
  }
  if (proto.has_default_route()) {
    auto route =
        compileRoute(proto.default_route(), path + ".default_route", name, true, store, warnings);
    listener->default_route = route.get();
    listener->routes.push_back(std::move(route));
  }
  if (listener->routes.empty()) {
    warnings.push_back(path + ": no routes and no default_route; every connection is refused");
  }
  warnRedundantRoutes(*listener, index, warnings);
  if (!proto.filters().empty() && !listener->routes.empty()) {
    const bool has_router = std::any_of(
        proto.filters().begin(), proto.filters().end(),
        [](const auto& filter) { return filter.name() == "mcproxy.filters.network.router"; });
    if (!has_router) {
      warnings.push_back(path +
                         ".filters: the chain has no mcproxy.filters.network.router, so its "
                         "routes and default_route are unreachable");
    }
  }
  compileFilterChain(proto, index, *listener, store, warnings);
  return listener;
}

std::atomic<int64_t> g_alive_snapshots{0};

}  // namespace

Snapshot::Snapshot() { g_alive_snapshots.fetch_add(1, std::memory_order_relaxed); }

Snapshot::~Snapshot() { g_alive_snapshots.fetch_sub(1, std::memory_order_relaxed); }

int64_t Snapshot::alive() { return g_alive_snapshots.load(std::memory_order_relaxed); }

const router::Route* CompiledListener::findRoute(std::string_view server_name) const {
  if (!server_name.empty()) {
    if (const auto* found = route_table.find(server_name)) return *found;
  }
  return default_route;
}

const CompiledListener* Snapshot::findListener(const std::string& address_text) const {
  auto it = listeners_by_address.find(address_text);
  return it == listeners_by_address.end() ? nullptr : it->second;
}

std::vector<std::string> defaultFilterChain() {
  return {"mcproxy.filters.network.tls_inspector", "mcproxy.filters.network.router",
          "mcproxy.filters.network.tcp_proxy"};
}

CompileResult compile(const Bootstrap& config, stats::Store& store, uint64_t version) {
  CompileResult result;
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->version = version;
  snapshot->config = config;
  snapshot->drain_timeout = std::chrono::milliseconds(
      config.drain_timeout_ms() == 0 ? kDefaultDrainTimeoutMs : config.drain_timeout_ms());
  if (config.listeners().empty())
    throw ConfigError("listeners", "at least one listener is required");
  std::set<std::string> names;
  for (int i = 0; i < config.listeners_size(); ++i) {
    auto listener = compileListener(config.listeners(i), i, store, result.warnings);
    const std::string path = "listeners[" + std::to_string(i) + "]";
    if (!names.insert(listener->name).second) {
      throw ConfigError(path + ".name", "\"" + listener->name + "\" names two listeners");
    }
    if (!snapshot->listeners_by_address.emplace(listener->address_text, listener.get()).second) {
      throw ConfigError(path + ".address", "\"" + listener->address_text + "\" is used twice");
    }
    snapshot->listeners.push_back(std::move(listener));
  }
  result.snapshot = std::move(snapshot);
  return result;
}

}  // namespace mcproxy::snapshot

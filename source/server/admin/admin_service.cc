#include "source/server/admin/admin_service.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>

#include "source/common/config/config_error.h"
#include "source/common/logging/logger.h"
#include "source/common/router/hostname_matcher.h"

namespace mcproxy::server {
namespace {

using mcproxy::admin::v1::ChangeResponse;
using mcproxy::config::v1::Bootstrap;
using mcproxy::config::v1::Firewall;
using mcproxy::config::v1::Listener;

GrpcReply error(GrpcCode code, std::string message) { return {code, std::move(message), ""}; }

GrpcReply ok(const google::protobuf::Message& response) {
  GrpcReply reply;
  response.SerializeToString(&reply.response);
  return reply;
}

GrpcReply changed(const ChangeResult& result) {
  ChangeResponse response;
  response.set_snapshot_version(result.snapshot_version);
  response.set_changed(result.changed);
  return ok(response);
}

// An admin request names a listener by its name or by its address.
bool namesListener(std::string_view name, std::string_view address, std::string_view wanted) {
  return address == wanted || name == wanted;
}

bool matchesListener(const Listener& listener, const std::string& wanted) {
  return namesListener(listener.name(), listener.address(), wanted);
}

// What a change is made to: the newest stored version (not only what runs), and its number.
struct ChangeBase {
  Bootstrap config;
  int64_t version = 0;  // 0: the store is empty, the running config is the base
};

ChangeBase newestBase(ConfigChanges& backend) {
  auto latest = backend.store()->loadLatest();
  if (!latest) return {backend.currentSnapshot()->config(), 0};
  return {std::move(latest->config), latest->info.version};
}

Listener* findListener(Bootstrap& config, const std::string& wanted) {
  for (Listener& listener : *config.mutable_listeners()) {
    if (matchesListener(listener, wanted)) return &listener;
  }
  return nullptr;
}

// Runs a change; maps a config error to INVALID_ARGUMENT (field path and reason). Returns what
// the change returns (a reply, or none for a change that was not made).
template <class Change>
auto mapChangeErrors(const Change& change) -> decltype(change()) {
  try {
    return change();
  } catch (const config::ConfigError& e) {
    return error(GrpcCode::kInvalidArgument, e.what());
  } catch (const snapshot::VersionConflict&) {
    throw;  // applyChange builds the change again
  } catch (const snapshot::FleetMember& e) {
    return error(GrpcCode::kFailedPrecondition, e.what());
  } catch (const snapshot::StoreError& e) {
    return error(GrpcCode::kInternal, e.what());
  }
}

GrpcReply apply(ConfigChanges& backend, const Bootstrap& config, const std::string& what,
                std::optional<int64_t> built_on = std::nullopt) {
  return mapChangeErrors(
      [&] { return changed(backend.applyConfig(config, "api: " + what, built_on)); });
}

// The index of the running listener `wanted` names (by name or address).
std::optional<size_t> runningListener(const snapshot::Snapshot& running,
                                      const std::string& wanted) {
  for (size_t i = 0; i < running.listeners.size(); ++i) {
    const auto& listener = *running.listeners[i];
    if (namesListener(listener.name, listener.address_text, wanted)) return i;
  }
  return std::nullopt;
}

// A route added or removed by patching what runs (ConfigChanges::applyRouteEdit), which costs
// one route at any number of routes. nullopt when the edit does not apply to the running
// snapshot as asked (no such listener, the hostname already routed or not routed) or cannot be
// made there: applyChange then makes it to the newest stored version, and says what is wrong.
std::optional<GrpcReply> patchRunning(ConfigChanges& backend, const std::string& what,
                                      const std::string& listener, snapshot::RouteEdit edit) {
  const auto running = backend.currentSnapshot();
  const auto index = runningListener(*running, listener);
  if (!index) return std::nullopt;
  const auto& table = running->listeners[*index]->route_table;
  const bool add = edit.kind == snapshot::RouteEdit::Kind::kAdd;
  const std::string& hostname = add ? edit.route.hostname() : edit.hostname;
  if (hostname.empty() || table.contains(hostname) == add) return std::nullopt;
  edit.listener_index = *index;
  return mapChangeErrors([&]() -> std::optional<GrpcReply> {
    const auto result = backend.applyRouteEdit(std::move(edit), "api: " + what);
    if (!result) return std::nullopt;
    return changed(*result);
  });
}

// Edits a config in place; a reply when the change is refused (not found, already there) or
// needs no write.
using Edit = std::function<std::optional<GrpcReply>(Bootstrap&)>;

// How often a change is built again when other writers (mcproxyctl compile, a rollback from
// the CLI) keep committing first.
constexpr int kChangeAttempts = 8;

// A change to the newest stored version, written only if that is still the newest when it
// commits (a compare-and-set in one BEGIN IMMEDIATE transaction). When another writer got
// there first, the change is made again to its version, so no write is lost and none is
// silently undone; after kChangeAttempts conflicts in a row: ABORTED, nothing written.
GrpcReply applyChange(ConfigChanges& backend, const std::string& what, const Edit& edit) {
  for (int attempt = 0; attempt < kChangeAttempts; ++attempt) {
    ChangeBase base = newestBase(backend);
    if (auto reply = edit(base.config)) return *reply;
    try {
      return apply(backend, base.config, what, base.version);
    } catch (const snapshot::VersionConflict&) {
      continue;
    }
  }
  return error(GrpcCode::kAborted, "other writers changed the database " +
                                       std::to_string(kChangeAttempts) +
                                       " times while this change was made; nothing was written");
}

GrpcReply listRoutes(const std::string& request, AdminBackend& backend) {
  mcproxy::admin::v1::ListRoutesRequest in;
  in.ParseFromString(request);
  mcproxy::admin::v1::ListRoutesResponse out;
  const Bootstrap config = backend.currentSnapshot()->config();
  for (const Listener& listener : config.listeners()) {
    if (!in.listener().empty() && !matchesListener(listener, in.listener())) continue;
    for (const auto& route : listener.routes()) {
      auto* entry = out.add_routes();
      entry->set_listener(listener.address());
      *entry->mutable_route() = route;
    }
    if (listener.has_default_route()) {
      auto* entry = out.add_routes();
      entry->set_listener(listener.address());
      *entry->mutable_route() = listener.default_route();
    }
  }
  return ok(out);
}

GrpcReply addRoute(const std::string& request, ConfigChanges& backend) {
  mcproxy::admin::v1::AddRouteRequest in;
  if (!in.ParseFromString(request)) return error(GrpcCode::kInvalidArgument, "bad request");
  snapshot::RouteEdit edit{.kind = snapshot::RouteEdit::Kind::kAdd, .route = in.route()};
  snapshot::SnapshotStore::normalizeRoute(edit.route);
  const std::string hostname = edit.route.hostname();  // lower-cased
  const std::string what = "add route " + in.route().hostname();
  if (auto reply = patchRunning(backend, what, in.listener(), std::move(edit))) return *reply;
  return applyChange(backend, what, [&](Bootstrap& config) -> std::optional<GrpcReply> {
    Listener* listener = findListener(config, in.listener());
    if (listener == nullptr) {
      return error(GrpcCode::kNotFound, "listener: no listener \"" + in.listener() + "\"");
    }
    for (const auto& route : listener->routes()) {
      if (router::toLowerAscii(route.hostname()) == hostname) {
        return error(GrpcCode::kAlreadyExists, "route.hostname: \"" + in.route().hostname() +
                                                   "\" is already routed on " + in.listener());
      }
    }
    *listener->add_routes() = in.route();
    return std::nullopt;
  });
}

GrpcReply removeRoute(const std::string& request, ConfigChanges& backend) {
  mcproxy::admin::v1::RemoveRouteRequest in;
  if (!in.ParseFromString(request)) return error(GrpcCode::kInvalidArgument, "bad request");
  const std::string what = "remove route " + in.hostname();
  const std::string hostname = router::toLowerAscii(in.hostname());
  snapshot::RouteEdit edit{.kind = snapshot::RouteEdit::Kind::kRemove, .hostname = hostname};
  if (auto reply = patchRunning(backend, what, in.listener(), std::move(edit))) return *reply;
  return applyChange(backend, what, [&](Bootstrap& config) -> std::optional<GrpcReply> {
    Listener* listener = findListener(config, in.listener());
    if (listener == nullptr) {
      return error(GrpcCode::kNotFound, "listener: no listener \"" + in.listener() + "\"");
    }
    auto* routes = listener->mutable_routes();
    auto it = std::find_if(routes->begin(), routes->end(), [&](const auto& route) {
      return router::toLowerAscii(route.hostname()) == hostname;
    });
    if (it == routes->end()) {
      return error(GrpcCode::kNotFound,
                   "hostname: \"" + in.hostname() + "\" is not routed on " + in.listener());
    }
    routes->erase(it);
    return std::nullopt;
  });
}

google::protobuf::RepeatedPtrField<std::string>* ruleList(
    Firewall& firewall, const mcproxy::admin::v1::FirewallRule& rule, std::string& value) {
  switch (rule.rule_case()) {
    case mcproxy::admin::v1::FirewallRule::kIp:
      value = rule.ip();
      return firewall.mutable_blocked_ips();
    case mcproxy::admin::v1::FirewallRule::kCidr:
      value = rule.cidr();
      return firewall.mutable_blocked_cidrs();
    case mcproxy::admin::v1::FirewallRule::kCountry:
      value = rule.country();
      return firewall.mutable_blocked_countries();
    default:
      return nullptr;
  }
}

GrpcReply changeFirewall(const std::string& request, ConfigChanges& backend, bool add) {
  mcproxy::admin::v1::FirewallRuleRequest in;
  if (!in.ParseFromString(request)) return error(GrpcCode::kInvalidArgument, "bad request");
  std::string value;
  Firewall probe;
  if (ruleList(probe, in.rule(), value) == nullptr) {
    return error(GrpcCode::kInvalidArgument, "rule: one of ip, cidr, country");
  }
  return applyChange(backend, std::string(add ? "add" : "remove") + " firewall rule " + value,
                     [&](Bootstrap& config) -> std::optional<GrpcReply> {
                       Firewall* firewall = config.mutable_firewall();
                       if (!in.rule().listener().empty()) {
                         Listener* listener = findListener(config, in.rule().listener());
                         if (listener == nullptr) {
                           return error(GrpcCode::kNotFound, "rule.listener: no listener \"" +
                                                                 in.rule().listener() + "\"");
                         }
                         firewall = listener->mutable_firewall();
                       }
                       auto* list = ruleList(*firewall, in.rule(), value);
                       auto it = std::find(list->begin(), list->end(), value);
                       if (add) {
                         if (it != list->end())
                           return changed({backend.currentSnapshot()->version, false});
                         *list->Add() = value;
                       } else {
                         if (it == list->end()) {
                           return error(GrpcCode::kNotFound, "rule: \"" + value + "\" is not set");
                         }
                         list->erase(it);
                       }
                       return std::nullopt;
                     });
}

GrpcReply listFirewall(AdminBackend& backend) {
  mcproxy::admin::v1::ListFirewallRulesResponse out;
  auto addAll = [&](const Firewall& firewall, const std::string& listener) {
    for (const auto& ip : firewall.blocked_ips()) {
      auto* rule = out.add_rules();
      rule->set_listener(listener);
      rule->set_ip(ip);
    }
    for (const auto& cidr : firewall.blocked_cidrs()) {
      auto* rule = out.add_rules();
      rule->set_listener(listener);
      rule->set_cidr(cidr);
    }
    for (const auto& country : firewall.blocked_countries()) {
      auto* rule = out.add_rules();
      rule->set_listener(listener);
      rule->set_country(country);
    }
  };
  const Bootstrap config = backend.currentSnapshot()->config();
  addAll(config.firewall(), "");
  for (const Listener& listener : config.listeners())
    addAll(listener.firewall(), listener.address());
  return ok(out);
}

GrpcReply listSnapshots(AdminBackend& backend) {
  mcproxy::admin::v1::ListSnapshotsResponse out;
  for (const auto& info : backend.store()->history()) {
    auto* s = out.add_snapshots();
    s->set_version(static_cast<uint64_t>(info.version));
    s->set_created_at(info.created_at);
    s->set_source(info.source);
    s->set_content_hash(info.content_hash);
    s->set_rollback_of(static_cast<uint64_t>(info.rollback_of));
    s->set_listeners(static_cast<uint64_t>(info.listeners));
    s->set_routes(static_cast<uint64_t>(info.routes));
  }
  return ok(out);
}

GrpcReply rollback(const std::string& request, ConfigChanges& backend) {
  mcproxy::admin::v1::RollbackRequest in;
  in.ParseFromString(request);
  try {
    const auto old = backend.store()->load(static_cast<int64_t>(in.version()));
    return apply(backend, old.config, "rollback to version " + std::to_string(in.version()));
  } catch (const snapshot::StoreError& e) {
    return error(GrpcCode::kNotFound, e.what());
  }
}

GrpcReply listClusters(const std::string& request, AdminBackend& backend) {
  mcproxy::admin::v1::ListClustersRequest in;
  if (!in.ParseFromString(request)) return error(GrpcCode::kInvalidArgument, "bad request");
  const auto snapshot = backend.currentSnapshot();
  const int64_t now = upstream::steadyMs(std::chrono::steady_clock::now());
  mcproxy::admin::v1::ListClustersResponse out;
  for (const auto& cluster : snapshot->clusters) {
    if (!in.cluster().empty() && cluster->name() != in.cluster()) continue;
    auto* status = out.add_clusters();
    status->set_name(cluster->name());
    status->set_lb_policy(upstream::lbPolicyName(cluster->settings().policy));
    status->set_health_check(upstream::healthCheckKindName(cluster->settings().health_check.kind));
    status->set_retries(cluster->stats().retries.value());
    status->set_retry_budget_exhausted(cluster->stats().retry_budget_exhausted.value());
    status->set_panic(cluster->stats().panic.value());
    for (const auto& endpoint : cluster->endpoints()) {
      auto* entry = status->add_endpoints();
      entry->set_address(endpoint.address_text);
      entry->set_resolved_address(endpoint.address.toString());
      entry->set_weight(endpoint.weight);
      entry->set_healthy(endpoint.state->healthy.load(std::memory_order_relaxed));
      entry->set_ejected(endpoint.state->ejected(now));
      entry->set_active(endpoint.stats.active.value());
      entry->set_connections(endpoint.stats.connections.value());
      entry->set_requests(endpoint.stats.requests.value());
      entry->set_failures(endpoint.stats.failures.value());
      entry->set_ejections(endpoint.stats.ejections.value());
      entry->set_last_check_failure(endpoint.state->last_check_failure);
    }
  }
  if (!in.cluster().empty() && out.clusters().empty()) {
    return error(GrpcCode::kNotFound, "cluster: no cluster \"" + in.cluster() + "\"");
  }
  return ok(out);
}

GrpcReply setEndpointWeight(const std::string& request, ConfigChanges& backend) {
  mcproxy::admin::v1::SetEndpointWeightRequest in;
  if (!in.ParseFromString(request)) return error(GrpcCode::kInvalidArgument, "bad request");
  if (in.weight() > 10000) return error(GrpcCode::kInvalidArgument, "weight: at most 10000");
  const std::string what = in.weight() == 0
                               ? "drain " + in.cluster() + " " + in.endpoint()
                               : "set weight of " + in.cluster() + " " + in.endpoint() + " to " +
                                     std::to_string(in.weight());
  return applyChange(backend, what, [&](Bootstrap& config) -> std::optional<GrpcReply> {
    for (auto& cluster : *config.mutable_clusters()) {
      if (cluster.name() != in.cluster()) continue;
      for (auto& endpoint : *cluster.mutable_endpoints()) {
        if (endpoint.address() != in.endpoint()) continue;
        endpoint.set_weight(in.weight());
        return std::nullopt;
      }
      return error(GrpcCode::kNotFound, "endpoint: cluster \"" + in.cluster() +
                                            "\" has no endpoint \"" + in.endpoint() + "\"");
    }
    return error(GrpcCode::kNotFound, "cluster: no cluster \"" + in.cluster() + "\"");
  });
}

}  // namespace

bool changesConfig(const std::string& method) {
  return method == "AddRoute" || method == "RemoveRoute" || method == "AddFirewallRule" ||
         method == "RemoveFirewallRule" || method == "Rollback" || method == "SetEndpointWeight" ||
         method == "ReloadCertificates";
}

GrpcReply handleAdminChange(const std::string& method, const std::string& request,
                            ConfigChanges& backend) {
  if (method != "ReloadCertificates" && backend.store() == nullptr) {
    return error(GrpcCode::kFailedPrecondition,
                 "this proxy runs without --db; admin changes need the snapshot database");
  }
  if (method == "AddRoute") return addRoute(request, backend);
  if (method == "RemoveRoute") return removeRoute(request, backend);
  if (method == "AddFirewallRule") return changeFirewall(request, backend, true);
  if (method == "RemoveFirewallRule") return changeFirewall(request, backend, false);
  if (method == "Rollback") return rollback(request, backend);
  if (method == "SetEndpointWeight") return setEndpointWeight(request, backend);
  if (method == "ReloadCertificates") {
    try {
      return changed(backend.reloadCertificates());
    } catch (const config::ConfigError& e) {
      return error(GrpcCode::kFailedPrecondition,
                   std::string("refused, still running: ") + e.what());
    }
  }
  return error(GrpcCode::kUnimplemented, "no method " + method);
}

GrpcReply handleAdminRead(const std::string& method, const std::string& request,
                          AdminBackend& backend) {
  if (method == "ListSnapshots" && backend.store() == nullptr) {
    return error(GrpcCode::kFailedPrecondition,
                 "this proxy runs without --db; the snapshot history is in the database");
  }
  if (method == "ListRoutes") return listRoutes(request, backend);
  if (method == "ListFirewallRules") return listFirewall(backend);
  if (method == "GetStatus") return ok(backend.status());
  if (method == "ListSnapshots") return listSnapshots(backend);
  if (method == "ListClusters") return listClusters(request, backend);
  return error(GrpcCode::kUnimplemented, "no method " + method);
}

std::string renderPrometheus(const stats::Store& stats, const AdminBackend& backend) {
  auto escape = [](const std::string& value) {
    std::string out;
    for (char c : value) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";  // a newline inside a label value is written as \n
        continue;
      }
      out += c;
    }
    return out;
  };
  // Group by family: # HELP and # TYPE once each, then its samples.
  struct Family {
    bool gauge = false;
    std::string help;
    std::vector<std::string> lines;
  };
  std::map<std::string, Family> families;
  auto help = [](const std::string& text) { return text.empty() ? "(undocumented)" : text; };
  for (const auto& sample : stats.samples()) {
    if (sample.metric.family.empty()) continue;
    std::string line = sample.metric.family;
    if (!sample.metric.labels.empty()) {
      line += "{";
      for (size_t i = 0; i < sample.metric.labels.size(); ++i) {
        const auto& [name, value] = sample.metric.labels[i];
        line += (i ? "," : "") + name + "=\"" + escape(value) + "\"";
      }
      line += "}";
    }
    line += " " + std::to_string(sample.value);
    auto& family = families[sample.metric.family];
    family.gauge = sample.is_gauge;
    if (family.help.empty()) family.help = sample.metric.help;
    family.lines.push_back(std::move(line));
  }
  std::ostringstream out;
  out << "# HELP mcproxy_snapshot_version The config version new connections use.\n"
      << "# TYPE mcproxy_snapshot_version gauge\n"
      << "mcproxy_snapshot_version " << backend.currentSnapshot()->version << "\n"
      << "# HELP mcproxy_uptime_seconds Seconds since the process started.\n"
      << "# TYPE mcproxy_uptime_seconds gauge\n"
      << "mcproxy_uptime_seconds " << backend.status().uptime_seconds() << "\n";
  for (const auto& [family, entry] : families) {
    out << "# HELP " << family << " " << help(entry.help) << "\n";
    out << "# TYPE " << family << (entry.gauge ? " gauge" : " counter") << "\n";
    for (const auto& line : entry.lines) out << line << "\n";
  }
  std::map<std::string, std::vector<stats::Store::HistogramSample>> histograms;
  for (const auto& sample : stats.histograms()) histograms[sample.metric.family].push_back(sample);
  for (const auto& [family, samples] : histograms) {
    out << "# HELP " << family << " " << help(samples.front().metric.help) << "\n";
    out << "# TYPE " << family << " histogram\n";
    for (const auto& sample : samples) {
      std::string labels;
      for (const auto& [name, value] : sample.metric.labels) {
        labels += name + "=\"" + escape(value) + "\",";
      }
      const auto counts = sample.histogram->cumulativeCounts();
      const auto& bounds = sample.histogram->bounds();
      for (size_t i = 0; i < counts.size(); ++i) {
        std::ostringstream le;
        if (i < bounds.size()) {
          le << bounds[i];
        } else {
          le << "+Inf";
        }
        out << family << "_bucket{" << labels << "le=\"" << le.str() << "\"} " << counts[i] << "\n";
      }
      const std::string plain =
          labels.empty() ? "" : "{" + labels.substr(0, labels.size() - 1) + "}";
      out << family << "_sum" << plain << " " << sample.histogram->sum() << "\n";
      out << family << "_count" << plain << " " << sample.histogram->count() << "\n";
    }
  }
  return out.str();
}

}  // namespace mcproxy::server

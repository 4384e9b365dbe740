// mcproxyctl: the operator's command line for mc-proxy.
#include <absl/strings/numbers.h>
#include <absl/strings/str_format.h>
#include <google/protobuf/util/json_util.h>
#include <pwd.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "api/mcproxy/admin/v1/admin.pb.h"
#include "api/mcproxy/check/v1/check.pb.h"
#include "source/check/route_check.h"
#include "source/common/config/config_error.h"
#include "source/common/json/json_string.h"
#include "source/common/network/host_name.h"
#include "source/common/stats/stats.h"
#include "source/fleet/fleet.h"
#include "source/server/admin/admin_client.h"
#include "source/snapshot/config_loader.h"
#include "source/snapshot/migrations.h"
#include "source/snapshot/snapshot.h"
#include "source/snapshot/store.h"

namespace {

using mcproxy::snapshot::SnapshotStore;

// Exit codes scripts can rely on.
constexpr int kOk = 0;
constexpr int kInvalid = 1;  // the config (or the request) is invalid; nothing was changed
constexpr int kUsage = 2;    // the command line is wrong
constexpr int kFailed = 3;   // the database could not be read or written

constexpr const char* kUsageText = R"(usage: mcproxyctl COMMAND [options]

Config:
  validate --config FILE [--strict]  check a config (text format, or JSON when FILE ends in
                                     .json) without writing anything; prints warnings (with
                                     --strict a warning fails it: exit 1)
  compile --config FILE --db DB      validate, then store it as the newest snapshot version
                                     (nothing is written when invalid or unchanged)
Running proxy (admin API on --socket S; default $MCPROXY_ADMIN_SOCKET or /run/mc-proxy/admin.sock):
  routes list [--listener L] [--json]
  routes add --listener L --hostname H (--backend B | --cluster C) --mode l4|l7
             [--tls-cert F --tls-key F] [--backend-tls] [--send-proxy-protocol]
  routes remove --listener L --hostname H
  clusters list [--cluster C] [--json] endpoints with health, weight, traffic, ejections
  clusters drain --cluster C --endpoint E
                                     weight 0: no new traffic; open connections finish
  clusters set-weight --cluster C --endpoint E --weight N
  firewall list [--json]
  firewall add|remove (--ip X | --cidr C | --country CC) [--listener L]
  status [--json]
Snapshots (with --db DB: the database file directly; without: the running proxy):
  snapshots list [--json]            every version, newest first
  snapshots diff A B --db DB         what changed from version A to version B
  snapshots rollback N               make version N's config the newest version again
  snapshots verify --db DB           recompute every version's content hash from its rows
  snapshots prune --db DB (--keep N | --older-than D) [--dry-run]
                                     delete old versions (D: 90m, 12h, 30d); never the
                                     newest, one a running proxy runs, or one a kept
                                     rollback restored
Route tests (offline: no socket, no connection; see docs/ci.md):
  check (--config FILE | --db DB [--version N]) --tests FILE [--fail-under PCT]
        [--junit FILE] [--details]
                                     run route tests (text format, or JSON when FILE ends in
                                     .json): exit 0 all passed, 1 a test failed or coverage
                                     is under PCT, 2 usage, 3 unreadable config, tests or
                                     database
Fleet (nodes following one config through etcd; see docs/fleet.md):
  publish --db DB --etcd URLS --fleet NAME [--version N] [--if-current V]
                                     publish version N (default: the newest) as the fleet's
                                     current config; an older N is a rollback. --if-current:
                                     only while the fleet runs version V (0: nothing yet).
                                     Losing a race to another publisher: exit 1
  fleet status --etcd URLS --fleet NAME [--json]
                                     every node: applied version, hash, state, error
  fleet prune --etcd URLS --fleet NAME --keep N [--dry-run]
                                     delete published versions but the newest N and
                                     current, and the chunks no kept version uses
  (--etcd-ca F, --etcd-cert F --etcd-key F: etcd over https with a client certificate)
Database:
  db migrate --db DB [--to N]        upgrade the schema (mc-proxy also does this at start)
Other:
  version

Exit codes: 0 ok, 1 invalid config or request (nothing changed: bad field, unknown or
duplicate route), 2 usage, 3 cannot reach the proxy or the database.
A running mc-proxy --db DB picks up new versions by itself.
)";

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;  // "--db" -> value; boolean flags -> ""
};

bool parseArgs(const std::vector<std::string>& raw, Args& out, std::string& error) {
  static const std::map<std::string, bool> kKnown = {{"--config", true},
                                                     {"--db", true},
                                                     {"--to", true},
                                                     {"--json", false},
                                                     {"--socket", true},
                                                     {"--listener", true},
                                                     {"--hostname", true},
                                                     {"--backend", true},
                                                     {"--mode", true},
                                                     {"--tls-cert", true},
                                                     {"--tls-key", true},
                                                     {"--backend-tls", false},
                                                     {"--send-proxy-protocol", false},
                                                     {"--ip", true},
                                                     {"--cidr", true},
                                                     {"--country", true},
                                                     {"--strict", false},
                                                     {"--tests", true},
                                                     {"--version", true},
                                                     {"--fail-under", true},
                                                     {"--junit", true},
                                                     {"--details", false},
                                                     {"--keep", true},
                                                     {"--older-than", true},
                                                     {"--dry-run", false},
                                                     {"--cluster", true},
                                                     {"--endpoint", true},
                                                     {"--weight", true},
                                                     {"--etcd", true},
                                                     {"--etcd-ca", true},
                                                     {"--etcd-cert", true},
                                                     {"--etcd-key", true},
                                                     {"--fleet", true},
                                                     {"--if-current", true}};
  for (size_t i = 0; i < raw.size(); ++i) {
    std::string arg = raw[i];
    if (!arg.starts_with("--")) {
      out.positional.push_back(arg);
      continue;
    }
    std::string value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto known = kKnown.find(arg);
    if (known == kKnown.end()) {
      error = "unknown option " + arg;
      return false;
    }
    if (known->second && eq == std::string::npos) {
      if (i + 1 >= raw.size()) {
        error = arg + " needs a value";
        return false;
      }
      value = raw[++i];
    }
    out.flags[arg] = value;
  }
  return true;
}

// Loads and compiles FILE; prints warnings. Throws ConfigError.
mcproxy::snapshot::CompileResult validateFile(const std::string& path) {
  mcproxy::stats::Store stats;
  auto result = mcproxy::snapshot::compile(mcproxy::snapshot::loadConfigFile(path), stats, 1);
  for (const auto& warning : result.warnings)
    std::cerr << "warning: " << path << ": " << warning << "\n";
  return result;
}

size_t routeCount(const mcproxy::snapshot::Snapshot& snapshot) {
  size_t routes = 0;
  for (const auto& listener : snapshot.listeners) routes += listener->routes.size();
  return routes;
}

int validateCommand(const Args& args) {
  auto config = args.flags.find("--config");
  if (config == args.flags.end()) {
    std::cerr << "mcproxyctl validate: --config FILE is required\n";
    return kUsage;
  }
  try {
    auto result = validateFile(config->second);
    if (args.flags.count("--strict") && !result.warnings.empty()) {
      std::cerr << config->second << ": " << result.warnings.size()
                << " warning(s); --strict fails on any\n";
      return kInvalid;
    }
    std::cout << config->second << ": valid (" << result.snapshot->listeners.size()
              << " listener(s), " << routeCount(*result.snapshot) << " route(s))\n";
    return kOk;
  } catch (const mcproxy::config::ConfigError& e) {
    std::cerr << config->second << ": " << e.what() << "\n";
    return kInvalid;
  }
}

int compileCommand(const Args& args) {
  auto config = args.flags.find("--config");
  auto db = args.flags.find("--db");
  if (config == args.flags.end() || db == args.flags.end()) {
    std::cerr << "mcproxyctl compile: --config FILE and --db DB are required\n";
    return kUsage;
  }
  mcproxy::snapshot::CompileResult compiled;
  try {
    compiled = validateFile(config->second);
  } catch (const mcproxy::config::ConfigError& e) {
    std::cerr << config->second << ": " << e.what() << "\n";
    return kInvalid;
  }
  const auto started = std::chrono::steady_clock::now();
  SnapshotStore store(db->second);
  const auto written = store.write(compiled.snapshot->config(), "file:" + config->second);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  if (written.created) {
    std::cout << db->second << ": version " << written.version << " written ("
              << routeCount(*compiled.snapshot) << " routes, " << std::fixed << std::setprecision(1)
              << ms << " ms)\n";
  } else {
    std::cout << db->second << ": unchanged, version " << written.version
              << " already holds this config\n";
  }
  return kOk;
}

int snapshotsViaSocket(const Args& args);
std::string flag(const Args& args, const std::string& name);

int snapshotsCommand(const Args& args) {
  auto db = args.flags.find("--db");
  if (args.positional.empty()) {
    std::cerr << "mcproxyctl snapshots: list|diff|rollback|verify|prune\n";
    return kUsage;
  }
  if (db == args.flags.end()) return snapshotsViaSocket(args);
  const std::string& action = args.positional[0];
  SnapshotStore store(db->second);
  auto versionArg = [&](size_t index, int64_t& out) {
    if (args.positional.size() <= index) return false;
    try {
      out = std::stoll(args.positional[index]);
      return out > 0;
    } catch (const std::exception&) {
      return false;
    }
  };
  if (action == "list") {
    const auto history = store.history();
    if (args.flags.count("--json")) {
      std::cout << "[";
      for (size_t i = 0; i < history.size(); ++i) {
        const auto& s = history[i];
        std::cout << (i ? "," : "") << "\n  {\"version\": " << s.version << ", \"created_at\": \""
                  << s.created_at << "\", \"source\": " << mcproxy::json::quoted(s.source)
                  << ", \"content_hash\": \"" << s.content_hash
                  << "\", \"rollback_of\": " << s.rollback_of << ", \"listeners\": " << s.listeners
                  << ", \"routes\": " << s.routes << "}";
      }
      std::cout << (history.empty() ? "]\n" : "\n]\n");
      return kOk;
    }
    std::cout << std::left << std::setw(8) << "VERSION" << std::setw(26) << "CREATED (UTC)"
              << std::setw(10) << "LISTENERS" << std::setw(8) << "ROUTES" << std::setw(14) << "HASH"
              << "SOURCE\n";
    for (const auto& s : history) {
      std::cout << std::setw(8) << s.version << std::setw(26) << s.created_at << std::setw(10)
                << s.listeners << std::setw(8) << s.routes << std::setw(14)
                << s.content_hash.substr(0, 12) << s.source << "\n";
    }
    return kOk;
  }
  if (action == "diff") {
    int64_t from = 0;
    int64_t to = 0;
    if (!versionArg(1, from) || !versionArg(2, to)) {
      std::cerr << "mcproxyctl snapshots diff A B: two version numbers are required\n";
      return kUsage;
    }
    const auto lines = store.diff(from, to);
    for (const auto& line : lines) std::cout << line << "\n";
    if (lines.empty()) std::cout << "no differences\n";
    return kOk;
  }
  if (action == "rollback") {
    int64_t version = 0;
    if (!versionArg(1, version)) {
      std::cerr << "mcproxyctl snapshots rollback N: a version number is required\n";
      return kUsage;
    }
    // The old version must still compile here (a backend host may no longer resolve).
    auto old = store.load(version);
    try {
      mcproxy::stats::Store stats;
      mcproxy::snapshot::compile(old.config, stats, 1);
    } catch (const mcproxy::config::ConfigError& e) {
      std::cerr << "version " << version << " no longer compiles: " << e.what() << "\n";
      return kInvalid;
    }
    const auto written = store.rollback(version);
    std::cout << db->second << ": version " << written.version << " restores version " << version
              << "\n";
    return kOk;
  }
  if (action == "prune") {
    const bool by_count = args.flags.count("--keep") > 0;
    const bool by_age = args.flags.count("--older-than") > 0;
    std::optional<int64_t> keep;
    std::optional<int64_t> older_than;
    try {
      if (by_count) keep = std::stoll(flag(args, "--keep"));
      if (by_age) {
        const std::string text = flag(args, "--older-than");
        size_t used = 0;
        const int64_t amount = std::stoll(text, &used);
        const std::string unit = text.substr(used);
        const int64_t scale = unit == "s"   ? 1
                              : unit == "m" ? 60
                              : unit == "h" ? 3600
                              : unit == "d" ? 86400
                                            : 0;
        if (scale == 0 || amount < 0) throw std::invalid_argument(text);
        older_than = amount * scale;
      }
    } catch (const std::exception&) {
      keep.reset();
      older_than.reset();
    }
    if (by_count == by_age || (by_count && (!keep || *keep < 1)) || (by_age && !older_than)) {
      std::cerr << "mcproxyctl snapshots prune --db DB (--keep N | --older-than D) [--dry-run]:"
                   " N at least 1, D like 90m, 12h or 30d\n";
      return kUsage;
    }
    const bool dry_run = args.flags.count("--dry-run") > 0;
    const auto result = store.prune(keep, older_than, dry_run);
    for (const auto& [version, why] : result.kept) {
      std::cout << "kept version " << version << ": " << why << "\n";
    }
    std::cout << db->second << ": " << (dry_run ? "would delete " : "deleted ")
              << result.deleted.size() << " version(s)";
    if (!result.deleted.empty()) {
      std::cout << " (" << result.deleted.front() << ".." << result.deleted.back() << ")";
    }
    std::cout << "\n";
    return kOk;
  }
  if (action == "verify") {
    int bad = 0;
    const std::string integrity = [&] {
      auto statement = store.database().prepare("PRAGMA integrity_check");
      return statement.step() ? statement.text(0) : std::string("no answer");
    }();
    if (integrity != "ok") {
      std::cerr << "integrity_check: " << integrity << "\n";
      ++bad;
    }
    for (const auto& s : store.history()) {
      std::string error;
      if (!store.verify(s.version, error)) {
        std::cerr << error << "\n";
        ++bad;
      }
    }
    std::cout << (bad == 0 ? "ok" : "MISMATCH") << ": " << store.history().size()
              << " version(s) checked\n";
    return bad == 0 ? kOk : kInvalid;
  }
  std::cerr << "mcproxyctl snapshots: unknown action \"" << action << "\"\n";
  return kUsage;
}

std::string socketPath(const Args& args) {
  if (auto it = args.flags.find("--socket"); it != args.flags.end()) return it->second;
  if (const char* env = std::getenv("MCPROXY_ADMIN_SOCKET")) return env;
  return "/run/mc-proxy/admin.sock";
}

std::string flag(const Args& args, const std::string& name) {
  auto it = args.flags.find(name);
  return it == args.flags.end() ? "" : it->second;
}

std::string toJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

// Calls the running proxy; prints the error and returns the exit code when the call failed.
int call(const Args& args, const std::string& method, const google::protobuf::Message& request,
         google::protobuf::Message& response) {
  const auto result = mcproxy::server::callAdmin(socketPath(args), method, request, response);
  if (result.grpc_status == 0) return kOk;
  std::cerr << "mcproxyctl: " << (result.message.empty() ? method + " failed" : result.message)
            << "\n";
  // INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, RESOURCE_EXHAUSTED, FAILED_PRECONDITION,
  // ABORTED (other writers kept committing first): the request was refused and nothing changed.
  const int status = result.grpc_status;
  return (status == 3 || status == 5 || status == 6 || status == 8 || status == 9 || status == 10)
             ? kInvalid
             : kFailed;
}

int printChange(const mcproxy::admin::v1::ChangeResponse& response, const Args& args) {
  if (args.flags.count("--json")) {
    std::cout << toJson(response);
  } else {
    std::cout << (response.changed() ? "ok: running config version " : "unchanged: version ")
              << response.snapshot_version() << "\n";
  }
  return kOk;
}

int routesCommand(const Args& args) {
  const std::string action = args.positional.empty() ? "" : args.positional[0];
  namespace v1 = mcproxy::admin::v1;
  if (action == "list") {
    v1::ListRoutesRequest request;
    request.set_listener(flag(args, "--listener"));
    v1::ListRoutesResponse response;
    if (int rc = call(args, "ListRoutes", request, response); rc != kOk) return rc;
    if (args.flags.count("--json")) {
      std::cout << toJson(response);
      return kOk;
    }
    std::cout << std::left << std::setw(24) << "LISTENER" << std::setw(32) << "HOSTNAME"
              << std::setw(26) << "BACKEND"
              << "MODE\n";
    for (const auto& entry : response.routes()) {
      const auto& route = entry.route();
      std::cout << std::setw(24) << entry.listener() << std::setw(32)
                << (route.hostname().empty() ? "(default)" : route.hostname()) << std::setw(26)
                << (route.cluster().empty() ? route.backend() : "cluster " + route.cluster())
                << (route.mode() == mcproxy::config::v1::Route::L7 ? "l7" : "l4")
                << (route.send_proxy_protocol() ? " proxy-protocol" : "")
                << (route.backend_tls() ? " backend-tls" : "") << "\n";
    }
    return kOk;
  }
  if (action == "add" || action == "remove") {
    const std::string listener = flag(args, "--listener");
    const std::string hostname = flag(args, "--hostname");
    if (listener.empty() || hostname.empty()) {
      std::cerr << "mcproxyctl routes " << action << ": --listener and --hostname are required\n";
      return kUsage;
    }
    v1::ChangeResponse response;
    if (action == "remove") {
      v1::RemoveRouteRequest request;
      request.set_listener(listener);
      request.set_hostname(hostname);
      if (int rc = call(args, "RemoveRoute", request, response); rc != kOk) return rc;
      return printChange(response, args);
    }
    const std::string mode = flag(args, "--mode").empty() ? "l4" : flag(args, "--mode");
    if (mode != "l4" && mode != "l7") {
      std::cerr << "mcproxyctl routes add: --mode is l4 or l7\n";
      return kUsage;
    }
    v1::AddRouteRequest request;
    request.set_listener(listener);
    auto* route = request.mutable_route();
    route->set_hostname(hostname);
    route->set_backend(flag(args, "--backend"));
    route->set_cluster(flag(args, "--cluster"));
    route->set_mode(mode == "l7" ? mcproxy::config::v1::Route::L7 : mcproxy::config::v1::Route::L4);
    route->set_tls_cert(flag(args, "--tls-cert"));
    route->set_tls_key(flag(args, "--tls-key"));
    route->set_backend_tls(args.flags.count("--backend-tls") > 0);
    route->set_send_proxy_protocol(args.flags.count("--send-proxy-protocol") > 0);
    if (int rc = call(args, "AddRoute", request, response); rc != kOk) return rc;
    return printChange(response, args);
  }
  std::cerr << "mcproxyctl routes: list, add or remove\n";
  return kUsage;
}

int clustersCommand(const Args& args) {
  const std::string action = args.positional.empty() ? "" : args.positional[0];
  namespace v1 = mcproxy::admin::v1;
  if (action == "list") {
    v1::ListClustersRequest request;
    request.set_cluster(flag(args, "--cluster"));
    v1::ListClustersResponse response;
    if (int rc = call(args, "ListClusters", request, response); rc != kOk) return rc;
    if (args.flags.count("--json")) {
      std::cout << toJson(response);
      return kOk;
    }
    for (const auto& cluster : response.clusters()) {
      std::cout << "cluster " << cluster.name() << " (" << cluster.lb_policy() << ", "
                << (cluster.health_check().empty() ? "no health check"
                                                   : cluster.health_check() + " health check")
                << "; retries " << cluster.retries() << ", budget exhausted "
                << cluster.retry_budget_exhausted() << ", panic " << cluster.panic() << ")\n";
      std::cout << "  " << std::left << std::setw(28) << "ENDPOINT" << std::setw(10) << "HEALTH"
                << std::setw(8) << "WEIGHT" << std::setw(8) << "ACTIVE" << std::setw(12)
                << "CONNECTIONS" << std::setw(10) << "REQUESTS" << std::setw(10) << "FAILURES"
                << "EJECTIONS\n";
      for (const auto& endpoint : cluster.endpoints()) {
        const std::string health = endpoint.ejected()   ? "ejected"
                                   : endpoint.healthy() ? "healthy"
                                                        : "unhealthy";
        std::cout << "  " << std::setw(28) << endpoint.address() << std::setw(10) << health
                  << std::setw(8)
                  << (endpoint.weight() == 0 ? std::string("drained")
                                             : std::to_string(endpoint.weight()))
                  << std::setw(8) << endpoint.active() << std::setw(12) << endpoint.connections()
                  << std::setw(10) << endpoint.requests() << std::setw(10) << endpoint.failures()
                  << endpoint.ejections();
        if (!endpoint.healthy() && !endpoint.last_check_failure().empty()) {
          std::cout << "  (" << endpoint.last_check_failure() << ")";
        }
        std::cout << "\n";
      }
    }
    return kOk;
  }
  if (action == "drain" || action == "set-weight") {
    v1::SetEndpointWeightRequest request;
    request.set_cluster(flag(args, "--cluster"));
    request.set_endpoint(flag(args, "--endpoint"));
    if (request.cluster().empty() || request.endpoint().empty()) {
      std::cerr << "mcproxyctl clusters " << action << ": --cluster and --endpoint are required\n";
      return kUsage;
    }
    if (action == "set-weight") {
      const std::string weight = flag(args, "--weight");
      uint32_t value = 0;
      if (weight.empty() || !absl::SimpleAtoi(weight, &value) || value > 10000) {
        std::cerr << "mcproxyctl clusters set-weight: --weight is a number from 0 to 10000\n";
        return kUsage;
      }
      request.set_weight(value);
    }
    v1::ChangeResponse response;
    if (int rc = call(args, "SetEndpointWeight", request, response); rc != kOk) return rc;
    return printChange(response, args);
  }
  std::cerr << "mcproxyctl clusters: list, drain or set-weight\n";
  return kUsage;
}

int firewallCommand(const Args& args) {
  const std::string action = args.positional.empty() ? "" : args.positional[0];
  namespace v1 = mcproxy::admin::v1;
  if (action == "list") {
    v1::ListFirewallRulesResponse response;
    if (int rc = call(args, "ListFirewallRules", v1::ListFirewallRulesRequest(), response);
        rc != kOk) {
      return rc;
    }
    if (args.flags.count("--json")) {
      std::cout << toJson(response);
      return kOk;
    }
    std::cout << std::left << std::setw(24) << "LISTENER" << std::setw(9) << "KIND"
              << "VALUE\n";
    for (const auto& rule : response.rules()) {
      const bool ip = rule.has_ip();
      const bool cidr = rule.has_cidr();
      std::cout << std::setw(24) << (rule.listener().empty() ? "(all)" : rule.listener())
                << std::setw(9)
                << (ip     ? "ip"
                    : cidr ? "cidr"
                           : "country")
                << (ip     ? rule.ip()
                    : cidr ? rule.cidr()
                           : rule.country())
                << "\n";
    }
    return kOk;
  }
  if (action == "add" || action == "remove") {
    v1::FirewallRuleRequest request;
    auto* rule = request.mutable_rule();
    rule->set_listener(flag(args, "--listener"));
    const int given = static_cast<int>(args.flags.count("--ip") + args.flags.count("--cidr") +
                                       args.flags.count("--country"));
    if (given != 1) {
      std::cerr << "mcproxyctl firewall " << action << ": exactly one of --ip, --cidr, --country\n";
      return kUsage;
    }
    if (args.flags.count("--ip")) rule->set_ip(flag(args, "--ip"));
    if (args.flags.count("--cidr")) rule->set_cidr(flag(args, "--cidr"));
    if (args.flags.count("--country")) rule->set_country(flag(args, "--country"));
    v1::ChangeResponse response;
    if (int rc = call(args, action == "add" ? "AddFirewallRule" : "RemoveFirewallRule", request,
                      response);
        rc != kOk) {
      return rc;
    }
    return printChange(response, args);
  }
  std::cerr << "mcproxyctl firewall: list, add or remove\n";
  return kUsage;
}

int statusCommand(const Args& args) {
  mcproxy::admin::v1::Status status;
  if (int rc = call(args, "GetStatus", mcproxy::admin::v1::GetStatusRequest(), status); rc != kOk) {
    return rc;
  }
  if (args.flags.count("--json")) {
    std::cout << toJson(status);
    return kOk;
  }
  std::cout << status.version() << ", up " << status.uptime_seconds() << " s, config version "
            << status.snapshot_version();
  if (!status.snapshot_hash().empty()) std::cout << " (" << status.snapshot_hash() << ")";
  std::cout << "\n";
  if (!status.fleet().empty()) {
    const auto& node = status.fleet_node();
    std::cout << "fleet " << status.fleet() << " as node " << node.node_id() << ": " << node.state()
              << " fleet version " << node.applied_version() << ", etcd "
              << (status.etcd_connected() ? "connected" : "UNREACHABLE") << "\n";
    if (!node.error().empty()) {
      std::cout << "refused fleet version " << node.refused_version() << ": " << node.error()
                << "\n";
    }
  }
  std::cout << std::left << std::setw(24) << "LISTENER" << std::setw(26) << "BOUND" << std::setw(10)
            << "ACTIVE"
            << "TOTAL\n";
  for (const auto& listener : status.listeners()) {
    std::cout << std::setw(24) << listener.name() << std::setw(26) << listener.bound_address()
              << std::setw(10) << listener.active_connections() << listener.total_connections()
              << "\n";
  }
  return kOk;
}

// snapshots list/rollback without --db: through the running proxy.
int snapshotsViaSocket(const Args& args) {
  namespace v1 = mcproxy::admin::v1;
  const std::string& action = args.positional[0];
  if (action == "list") {
    v1::ListSnapshotsResponse response;
    if (int rc = call(args, "ListSnapshots", v1::ListSnapshotsRequest(), response); rc != kOk) {
      return rc;
    }
    if (args.flags.count("--json")) {
      std::cout << toJson(response);
      return kOk;
    }
    std::cout << std::left << std::setw(8) << "VERSION" << std::setw(26) << "CREATED (UTC)"
              << std::setw(8) << "ROUTES"
              << "SOURCE\n";
    for (const auto& s : response.snapshots()) {
      std::cout << std::setw(8) << s.version() << std::setw(26) << s.created_at() << std::setw(8)
                << s.routes() << s.source() << "\n";
    }
    return kOk;
  }
  if (action == "rollback" && args.positional.size() == 2) {
    v1::RollbackRequest request;
    request.set_version(std::stoull(args.positional[1]));
    v1::ChangeResponse response;
    if (int rc = call(args, "Rollback", request, response); rc != kOk) return rc;
    return printChange(response, args);
  }
  std::cerr << "mcproxyctl snapshots " << action << ": needs --db DB (or: list, rollback N)\n";
  return kUsage;
}

// Exit codes of `check`, as CI reads them.
constexpr int kCheckFailed = 1;      // a test failed, or coverage is under --fail-under
constexpr int kCheckUnreadable = 3;  // the config, the tests or the database

std::string describeOutcome(const mcproxy::check::Outcome& outcome) {
  std::string text = outcome.allowed ? "ALLOW" : "DENY " + outcome.deny_reason;
  if (outcome.route != nullptr) {
    text += " route " +
            (outcome.route->hostname.empty() ? std::string("(default)") : outcome.route->hostname);
    text += outcome.route->mode == mcproxy::router::RouteMode::kL7 ? " L7" : " L4";
  }
  if (!outcome.backend.empty() && outcome.allowed) text += " backend " + outcome.backend;
  if (outcome.status != 0) text += " status " + std::to_string(outcome.status);
  return text;
}

int checkCommand(const Args& args) {
  const std::string tests_path = flag(args, "--tests");
  const bool from_config = args.flags.count("--config") > 0;
  const bool from_db = args.flags.count("--db") > 0;
  if (tests_path.empty() || from_config == from_db) {
    std::cerr << "mcproxyctl check: (--config FILE | --db DB [--version N]) --tests FILE "
                 "[--fail-under PCT] [--junit FILE] [--details]\n";
    return kUsage;
  }
  double fail_under = 0;
  if (args.flags.count("--fail-under")) {
    try {
      fail_under = std::stod(flag(args, "--fail-under"));
    } catch (const std::exception&) {
      fail_under = -1;
    }
    if (fail_under < 0 || fail_under > 100) {
      std::cerr << "mcproxyctl check: --fail-under takes a percentage from 0 to 100\n";
      return kUsage;
    }
  }
  mcproxy::config::v1::Bootstrap config;
  std::string origin;
  try {
    if (from_config) {
      origin = flag(args, "--config");
      config = mcproxy::snapshot::loadConfigFile(origin);
    } else {
      SnapshotStore store(flag(args, "--db"));
      int64_t version = store.latestVersion();
      if (args.flags.count("--version")) version = std::stoll(flag(args, "--version"));
      if (version <= 0) {
        std::cerr << "mcproxyctl check: " << flag(args, "--db") << " holds no version\n";
        return kCheckUnreadable;
      }
      origin = flag(args, "--db") + " version " + std::to_string(version);
      config = store.load(version).config;
    }
  } catch (const mcproxy::config::ConfigError& e) {
    std::cerr << origin << ": " << e.what() << "\n";
    return kCheckUnreadable;
  } catch (const std::exception& e) {
    std::cerr << "mcproxyctl check: " << e.what() << "\n";
    return kCheckUnreadable;
  }

  mcproxy::check::v1::Tests tests;
  try {
    mcproxy::snapshot::loadMessageFile(tests_path, tests);
  } catch (const mcproxy::config::ConfigError& e) {
    std::cerr << e.what() << "\n";
    return kCheckUnreadable;
  }

  std::unique_ptr<mcproxy::check::RouteChecker> checker;
  try {
    checker = std::make_unique<mcproxy::check::RouteChecker>(config);
  } catch (const mcproxy::config::ConfigError& e) {
    std::cerr << origin << ": " << e.what() << "\n";
    return kCheckUnreadable;
  }
  std::vector<mcproxy::check::TestResult> results;
  size_t failed = 0;
  for (const auto& test : tests.tests()) {
    results.push_back(checker->run(test));
    const auto& result = results.back();
    const std::string name =
        "\"" + (result.name.empty() ? std::string("(unnamed)") : result.name) + "\"";
    if (!result.error.empty()) {
      ++failed;
      std::cout << "ERROR " << name << ": " << result.error << "\n";
      continue;
    }
    if (!result.passed()) {
      ++failed;
      for (const auto& m : result.mismatches) {
        std::cout << "FAIL " << name << ": expected: [" << m.expected << "], actual: [" << m.actual
                  << "], field: " << m.field << "\n";
      }
    } else if (args.flags.count("--details")) {
      std::cout << "ok   " << name << "\n";
    }
    if (args.flags.count("--details") || !result.passed()) {
      std::cout << "     " << describeOutcome(result.outcome) << "\n";
      if (!result.outcome.detail.empty() && !result.outcome.allowed) {
        std::cout << "     " << result.outcome.detail << "\n";
      }
      if (args.flags.count("--details")) {
        for (const auto& header : result.outcome.request_headers) {
          std::cout << "       " << header.name << ": " << header.value << "\n";
        }
      }
    }
  }
  const auto& coverage = checker->coverage();
  std::cout << results.size() << " test(s): " << results.size() - failed << " passed, " << failed
            << " failed\n";
  std::cout << "coverage: " << coverage.exercised.size() << " of " << coverage.all.size()
            << " routes, http_routes and firewall rules exercised ("
            << absl::StrFormat("%.1f", coverage.percent()) << "%)\n";
  for (const auto& item : coverage.all) {
    if (!coverage.exercised.count(item)) std::cout << "  untested: " << item << "\n";
  }
  if (args.flags.count("--junit")) {
    std::ofstream out(flag(args, "--junit"));
    out << mcproxy::check::junitXml(results, coverage);
    if (!out) {
      std::cerr << "mcproxyctl check: cannot write " << flag(args, "--junit") << "\n";
      return kCheckUnreadable;
    }
  }
  if (failed > 0) return kCheckFailed;
  if (coverage.percent() < fail_under) {
    std::cout << "coverage " << absl::StrFormat("%.1f", coverage.percent())
              << "% is under --fail-under " << fail_under << "%\n";
    return kCheckFailed;
  }
  return kOk;
}

int dbCommand(const Args& args) {
  auto db = args.flags.find("--db");
  if (args.positional.empty() || args.positional[0] != "migrate" || db == args.flags.end()) {
    std::cerr << "mcproxyctl db migrate --db DB [--to N]\n";
    return kUsage;
  }
  int64_t target = 0;
  if (auto to = args.flags.find("--to"); to != args.flags.end()) target = std::stoll(to->second);
  mcproxy::snapshot::Database database(db->second);
  const auto applied = mcproxy::snapshot::migrate(database, target);
  std::cout << db->second << ": schema version " << mcproxy::snapshot::schemaVersion(database)
            << " (" << applied.size() << " migration(s) applied)\n";
  return kOk;
}

// --etcd URLS with its TLS files, connected.
absl::StatusOr<std::unique_ptr<mcproxy::fleet::EtcdClient>> connectEtcd(const Args& args) {
  auto urls = args.flags.find("--etcd");
  if (urls == args.flags.end()) return absl::InvalidArgumentError("--etcd URLS is required");
  auto flag = [&](const char* name) {
    auto it = args.flags.find(name);
    return it == args.flags.end() ? std::string() : it->second;
  };
  auto options = mcproxy::fleet::EtcdOptions::parse(urls->second, flag("--etcd-ca"),
                                                    flag("--etcd-cert"), flag("--etcd-key"));
  if (!options.ok()) return options.status();
  return mcproxy::fleet::EtcdClient::connect(*options);
}

int etcdFailure(const std::string& command, const absl::Status& status) {
  std::cerr << "mcproxyctl " << command << ": " << status.message() << "\n";
  if (absl::IsInvalidArgument(status)) return kUsage;
  // Refused (a race lost, --if-current, a version clash): nothing of this publish is current.
  if (absl::IsAborted(status) || absl::IsFailedPrecondition(status)) return kInvalid;
  return kFailed;
}

std::string whoAmI() {
  const passwd* user = getpwuid(getuid());
  return std::string(user ? user->pw_name : std::to_string(getuid())) + "@" +
         mcproxy::network::hostName();
}

int publishCommand(const Args& args) {
  auto db = args.flags.find("--db");
  auto fleet = args.flags.find("--fleet");
  if (db == args.flags.end() || fleet == args.flags.end()) {
    std::cerr << "mcproxyctl publish: --db DB, --etcd URLS and --fleet NAME are required\n";
    return kUsage;
  }
  mcproxy::fleet::PublishOptions options;
  options.fleet = fleet->second;
  options.published_by = whoAmI();
  if (auto it = args.flags.find("--version"); it != args.flags.end()) {
    if (!absl::SimpleAtoi(it->second, &options.version) || options.version < 1) {
      std::cerr << "mcproxyctl publish: --version must be a version number\n";
      return kUsage;
    }
  }
  if (auto it = args.flags.find("--if-current"); it != args.flags.end()) {
    int64_t expected = 0;
    if (!absl::SimpleAtoi(it->second, &expected) || expected < 0) {
      std::cerr << "mcproxyctl publish: --if-current must be a version number (0: none)\n";
      return kUsage;
    }
    options.if_current = expected;
  }
  SnapshotStore store(db->second);
  auto etcd = connectEtcd(args);
  if (!etcd.ok()) return etcdFailure("publish", etcd.status());
  auto published = mcproxy::fleet::publish(**etcd, store, options);
  if (!published.ok()) return etcdFailure("publish", published.status());
  std::cout << "fleet " << options.fleet << ": version " << published->version() << " ("
            << published->content_hash().substr(0, 12) << ", " << published->routes() << " routes, "
            << published->size_bytes() << " bytes in " << published->chunks()
            << " chunk(s)) is current\n";
  return kOk;
}

int fleetCommand(const Args& args) {
  auto fleet = args.flags.find("--fleet");
  const std::string action = args.positional.empty() ? "" : args.positional[0];
  if ((action != "status" && action != "prune") || fleet == args.flags.end()) {
    std::cerr << "mcproxyctl fleet: fleet status --etcd URLS --fleet NAME [--json], or fleet prune"
                 " --etcd URLS --fleet NAME --keep N [--dry-run]\n";
    return kUsage;
  }
  auto etcd = connectEtcd(args);
  if (!etcd.ok()) return etcdFailure("fleet " + action, etcd.status());
  if (action == "prune") {
    int64_t keep = 0;
    auto keep_flag = args.flags.find("--keep");
    if (keep_flag == args.flags.end() || !absl::SimpleAtoi(keep_flag->second, &keep) || keep < 1) {
      std::cerr << "mcproxyctl fleet prune: --keep N (1 or more) is required\n";
      return kUsage;
    }
    const bool dry_run = args.flags.count("--dry-run") > 0;
    auto pruned = mcproxy::fleet::pruneFleet(**etcd, fleet->second, keep, dry_run);
    if (!pruned.ok()) return etcdFailure("fleet prune", pruned.status());
    auto list = [](const std::vector<int64_t>& versions) {
      std::string text;
      for (int64_t v : versions) text += (text.empty() ? "" : ", ") + std::to_string(v);
      return text.empty() ? std::string("none") : text;
    };
    std::cout << "fleet " << fleet->second << ": " << (dry_run ? "would delete" : "deleted")
              << " version(s) " << list(pruned->deleted) << " and " << pruned->chunk_sets_deleted
              << " content(s) no kept version uses; kept " << list(pruned->kept) << "\n";
    return kOk;
  }
  auto view = mcproxy::fleet::readFleet(**etcd, fleet->second);
  if (!view.ok()) return etcdFailure("fleet status", view.status());
  if (args.flags.count("--json")) {
    std::cout << "{\"fleet\": " << mcproxy::json::quoted(fleet->second) << ", \"current\": "
              << (view->current ? mcproxy::fleet::toJson(*view->current) : "null")
              << ", \"nodes\": [";
    for (size_t i = 0; i < view->nodes.size(); ++i) {
      std::cout << (i ? ", " : "") << mcproxy::fleet::toJson(view->nodes[i]);
    }
    std::cout << "]}\n";
    return kOk;
  }
  if (view->current) {
    std::cout << "fleet " << fleet->second << ": current version " << view->current->version()
              << " (" << view->current->content_hash().substr(0, 12) << ", published "
              << view->current->published_at() << " by " << view->current->published_by() << ")\n";
  } else {
    std::cout << "fleet " << fleet->second << ": nothing published\n";
  }
  std::cout << std::left << std::setw(20) << "NODE" << std::setw(10) << "STATE" << std::setw(9)
            << "VERSION" << std::setw(14) << "HASH" << std::setw(7) << "LOCAL"
            << "ERROR\n";
  for (const auto& node : view->nodes) {
    std::string state = node.state();
    if (view->current && node.state() == "applied" &&
        node.applied_hash() != view->current->content_hash()) {
      state = "behind";
    }
    std::cout << std::setw(20) << node.node_id() << std::setw(10) << state << std::setw(9)
              << node.applied_version() << std::setw(14) << node.applied_hash().substr(0, 12)
              << std::setw(7) << node.local_version() << node.error() << "\n";
  }
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  // A peer that closes a TLS connection (etcd refusing a client certificate) must be an error
  // on the write, not a SIGPIPE that kills the command.
  std::signal(SIGPIPE, SIG_IGN);
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "help") {
    std::cout << kUsageText;
    return argc < 2 ? kUsage : kOk;
  }
  // Global options may come before the command: mcproxyctl --socket S routes list.
  std::vector<std::string> words(argv + 1, argv + argc);
  std::vector<std::string> global;
  while (words.size() >= 2 && words[0] == "--socket") {
    global = {words[0], words[1]};
    words.erase(words.begin(), words.begin() + 2);
  }
  if (words.empty()) {
    std::cout << kUsageText;
    return kUsage;
  }
  const std::string command = words[0];
  words.erase(words.begin());
  words.insert(words.end(), global.begin(), global.end());
  if (command == "version" || command == "--version") {
    std::cout << "mcproxyctl 0.1.0\n";
    return kOk;
  }
  Args args;
  std::string error;
  if (!parseArgs(words, args, error)) {
    std::cerr << "mcproxyctl " << command << ": " << error << "\n";
    return kUsage;
  }
  try {
    if (command == "validate") return validateCommand(args);
    if (command == "check") return checkCommand(args);
    if (command == "compile") return compileCommand(args);
    if (command == "snapshots") return snapshotsCommand(args);
    if (command == "db") return dbCommand(args);
    if (command == "routes") return routesCommand(args);
    if (command == "firewall") return firewallCommand(args);
    if (command == "clusters") return clustersCommand(args);
    if (command == "status") return statusCommand(args);
    if (command == "publish") return publishCommand(args);
    if (command == "fleet") return fleetCommand(args);
  } catch (const mcproxy::snapshot::FleetMember& e) {
    std::cerr << "mcproxyctl " << command << ": " << e.what() << "\n";
    return kInvalid;
  } catch (const mcproxy::snapshot::StoreError& e) {
    std::cerr << "mcproxyctl " << command << ": " << e.what() << "\n";
    return kFailed;
  } catch (const std::exception& e) {
    std::cerr << "mcproxyctl " << command << ": " << e.what() << "\n";
    return kFailed;
  }
  std::cerr << "mcproxyctl: unknown command \"" << command << "\"\n" << kUsageText;
  return kUsage;
}

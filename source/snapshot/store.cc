#include "source/snapshot/store.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "source/common/network/host_name.h"
#include "source/common/router/hostname_matcher.h"
#include "source/common/tls/digest.h"
#include "source/snapshot/migrations.h"

namespace mcproxy::snapshot {
namespace {

using mcproxy::config::v1::Bootstrap;
using mcproxy::config::v1::Listener;
using mcproxy::config::v1::Route;

// Calls set(value) unless the column is empty: protobuf allocates a string for any value set,
// even an empty one, and a route has half a dozen empty ones (16 MB at 100,000 routes).
template <class Set>
void setIfAny(const Statement& row, int column, Set set) {
  std::string value = row.text(column);
  if (!value.empty()) set(std::move(value));
}

std::string modeName(Route::Mode mode) { return mode == Route::L7 ? "l7" : "l4"; }

std::string describeRoute(const Route& route) {
  std::string out = (route.hostname().empty() ? std::string("(default)") : route.hostname()) +
                    " -> " +
                    (route.cluster().empty() ? route.backend() : "cluster " + route.cluster()) +
                    " (" + modeName(route.mode()) + ")";
  if (!route.tls_cert().empty()) out += " cert " + route.tls_cert();
  if (route.backend_tls()) out += " backend_tls";
  if (route.backend_protocol() == Route::HTTP1) out += " backend_protocol HTTP1";
  if (route.send_proxy_protocol()) out += " send_proxy_protocol";
  if (route.timeout_ms() != 0) out += " timeout_ms " + std::to_string(route.timeout_ms());
  if (!route.client_ca().empty()) {
    out += " client_ca " + route.client_ca() +
           (route.client_cert() == Route::OPTIONAL ? " (optional)" : "");
  }
  if (!route.ocsp_response().empty()) out += " ocsp_response " + route.ocsp_response();
  if (route.has_allow_upgrades()) {
    out += route.allow_upgrades() ? " allow_upgrades" : " no_upgrades";
  }
  return out;
}

std::string describeHttpRoute(const mcproxy::config::v1::HttpRoute& entry) {
  std::string out = !entry.path_exact().empty()    ? "path " + entry.path_exact()
                    : !entry.path_prefix().empty() ? "prefix " + entry.path_prefix()
                                                   : std::string("any path");
  for (const auto& header : entry.headers()) {
    out += " header " + header.name() + (header.value().empty() ? "" : "=" + header.value());
  }
  out += " -> " + (entry.cluster().empty() ? entry.backend() : "cluster " + entry.cluster());
  if (entry.timeout_ms() != 0) out += " timeout_ms " + std::to_string(entry.timeout_ms());
  return out;
}

// "[mcproxy.filters.http.header_mutation {...}, mcproxy.filters.http.router]"; empty: the
// built-in chain.
std::string describeHttpFilters(const Route& route) {
  if (route.http_filters().empty()) return "(built-in chain)";
  std::string out = "[";
  for (const auto& filter : route.http_filters()) {
    if (out.size() > 1) out += ", ";
    out += filter.name();
    if (filter.has_typed_config()) out += " " + filter.typed_config().ShortDebugString();
  }
  return out + "]";
}

// The http_routes entries and filter chain that differ between two versions of one route
// (`before` null: the route is new).
void diffHttp(const std::string& where, const Route* before, const Route& after,
              std::vector<std::string>& lines) {
  std::vector<std::string> old_entries;
  std::vector<std::string> new_entries;
  if (before != nullptr) {
    for (const auto& entry : before->http_routes()) old_entries.push_back(describeHttpRoute(entry));
  }
  for (const auto& entry : after.http_routes()) new_entries.push_back(describeHttpRoute(entry));
  for (size_t i = 0; i < old_entries.size(); ++i) {
    if (i >= new_entries.size() || new_entries[i] != old_entries[i]) {
      lines.push_back("- http_route " + where + " [" + std::to_string(i) + "] " + old_entries[i]);
    }
  }
  for (size_t i = 0; i < new_entries.size(); ++i) {
    if (i >= old_entries.size() || old_entries[i] != new_entries[i]) {
      lines.push_back("+ http_route " + where + " [" + std::to_string(i) + "] " + new_entries[i]);
    }
  }
  const std::string old_filters = before != nullptr ? describeHttpFilters(*before) : "";
  const std::string new_filters = describeHttpFilters(after);
  if (before != nullptr ? old_filters != new_filters : !after.http_filters().empty()) {
    lines.push_back("~ http_filters " + where + " " +
                    (before != nullptr ? old_filters + " => " : "") + new_filters);
  }
}

constexpr const char* kInsertRouteRow =
    "INSERT INTO routes (snapshot_version, listener_name, position, hostname, backend, mode,"
    " tls_cert, tls_key, backend_tls, send_proxy_protocol, proxy_protocol_version,"
    " backend_tls_ca, backend_protocol, timeout_ms, client_ca, client_cert, ocsp_response,"
    " allow_upgrades, cluster, content_hash)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
    " ?19, ?20)";

void insertRoute(Statement& statement, int64_t version, const std::string& listener,
                 int64_t position, const Route& route, const std::string& content_hash) {
  statement.bind(1, version)
      .bind(2, listener)
      .bind(3, position)
      .bind(4, route.hostname())
      .bind(5, route.backend())
      .bind(6, modeName(route.mode()))
      .bind(7, route.tls_cert())
      .bind(8, route.tls_key())
      .bind(9, static_cast<int64_t>(route.backend_tls()))
      .bind(10, static_cast<int64_t>(route.send_proxy_protocol()))
      .bind(11, static_cast<int64_t>(route.proxy_protocol_version()))
      .bind(12, route.backend_tls_ca())
      .bind(13, route.backend_protocol() == Route::HTTP1 ? "http1" : "h2")
      .bind(14, static_cast<int64_t>(route.timeout_ms()))
      .bind(15, route.client_ca())
      .bind(16, route.client_cert() == Route::REQUIRED   ? "required"
                : route.client_cert() == Route::OPTIONAL ? "optional"
                                                         : "");
  statement.bind(17, route.ocsp_response());
  if (route.has_allow_upgrades()) {
    statement.bind(18, static_cast<int64_t>(route.allow_upgrades()));
  } else {
    statement.bindNull(18);
  }
  statement.bind(19, route.cluster());
  statement.bindBlob(20, content_hash);
  statement.run();
}

// The content hash of a config normalize() already made (contentHash() without normalizing
// twice).
std::string hashOfNormalized(const Bootstrap& normalized) {
  return tls::sha256Hex(deterministicBytes(normalized));
}

// What tells one version of a route from another (routes.content_hash).
std::string routeHash(const Route& route) {
  return tls::sha256Prefix(deterministicBytes(route), 16);
}

// Route rows are written with positions this far apart, so that a route inserted between two
// others later gets a position between theirs without rewriting its neighbours.
constexpr int64_t kPositionGap = int64_t{1} << 20;

// The rows of a version's routes that are valid at it ("r" is the routes table).
constexpr const char* kRouteValidAt =
    "r.snapshot_version <= ?1 AND (r.until_version IS NULL OR r.until_version > ?1)";

using mcproxy::config::v1::Cluster;

std::string lbPolicyName(Cluster::LbPolicy policy) {
  std::string name = Cluster::LbPolicy_Name(policy);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return name;
}

Cluster::LbPolicy lbPolicyFromName(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::toupper(c); });
  Cluster::LbPolicy policy = Cluster::ROUND_ROBIN;
  Cluster::LbPolicy_Parse(name, &policy);
  return policy;
}

const char* checkKindName(const mcproxy::config::v1::HealthCheck& check) {
  switch (check.kind_case()) {
    case mcproxy::config::v1::HealthCheck::kTcp:
      return "tcp";
    case mcproxy::config::v1::HealthCheck::kTls:
      return "tls";
    case mcproxy::config::v1::HealthCheck::kHttp:
      return "http";
    case mcproxy::config::v1::HealthCheck::kGrpc:
      return "grpc";
    case mcproxy::config::v1::HealthCheck::KIND_NOT_SET:
      break;
  }
  return "";
}

// One line for diffs: everything about the cluster, endpoints with their weights.
std::string describeCluster(const Cluster& cluster) {
  Cluster settings = cluster;
  settings.clear_name();
  settings.clear_endpoints();
  std::string out = "[";
  for (const auto& endpoint : cluster.endpoints()) {
    if (out.size() > 1) out += ", ";
    out += endpoint.address();
    if (endpoint.has_weight()) out += " weight " + std::to_string(endpoint.weight());
  }
  out += "]";
  const std::string rest = settings.ShortDebugString();
  return rest.empty() ? out : out + " " + rest;
}

std::string tlsVersionName(mcproxy::config::v1::TlsPolicy::Version version) {
  return version == mcproxy::config::v1::TlsPolicy::TLS_AUTO
             ? std::string()
             : mcproxy::config::v1::TlsPolicy::Version_Name(version);
}

mcproxy::config::v1::TlsPolicy::Version tlsVersionFromName(const std::string& name) {
  mcproxy::config::v1::TlsPolicy::Version version = mcproxy::config::v1::TlsPolicy::TLS_AUTO;
  if (!name.empty()) mcproxy::config::v1::TlsPolicy::Version_Parse(name, &version);
  return version;
}

}  // namespace

SnapshotStore::SnapshotStore(const std::string& path)
    : db_(path), applied_migrations_(migrate(db_)) {}

namespace {

// Rules are a set: the first of duplicate values stays. An all-default firewall or rate limit is
// the same as none.
void normalizeFirewall(mcproxy::config::v1::Firewall& firewall) {
  for (auto* list : {firewall.mutable_blocked_ips(), firewall.mutable_blocked_cidrs(),
                     firewall.mutable_blocked_countries()}) {
    std::vector<std::string> seen;
    google::protobuf::RepeatedPtrField<std::string> unique;
    for (const std::string& value : *list) {
      if (std::find(seen.begin(), seen.end(), value) != seen.end()) continue;
      seen.push_back(value);
      *unique.Add() = value;
    }
    list->Swap(&unique);
  }
  const auto& limit = firewall.rate_limit();
  if (limit.connections() == 0 && limit.per_seconds() == 0 && limit.max_tracked_addresses() == 0) {
    firewall.clear_rate_limit();
  }
}

}  // namespace

void SnapshotStore::normalizeRoute(Route& route) {
  route.set_hostname(router::toLowerAscii(route.hostname()));
  if (route.mode() == Route::MODE_UNSPECIFIED) route.set_mode(Route::L4);
  for (auto& http_route : *route.mutable_http_routes()) {
    for (auto& header : *http_route.mutable_headers()) {
      header.set_name(router::toLowerAscii(header.name()));
    }
  }
}

Bootstrap SnapshotStore::normalize(const Bootstrap& config) {
  Bootstrap out = config;
  out.clear_admin();  // process settings, not routing config: never versioned
  normalizeFirewall(*out.mutable_firewall());
  if (out.firewall().ByteSizeLong() == 0) out.clear_firewall();
  for (Cluster& cluster : *out.mutable_clusters()) {
    // Weight 1 is the default: written or not, the same config.
    for (auto& endpoint : *cluster.mutable_endpoints()) {
      if (endpoint.has_weight() && endpoint.weight() == 1) endpoint.clear_weight();
    }
    if (cluster.outlier_detection().ByteSizeLong() == 0) cluster.clear_outlier_detection();
  }
  for (Listener& listener : *out.mutable_listeners()) {
    if (listener.name().empty()) listener.set_name(listener.address());
    normalizeFirewall(*listener.mutable_firewall());
    if (listener.firewall().ByteSizeLong() == 0) listener.clear_firewall();
    if (listener.tls().ByteSizeLong() == 0) listener.clear_tls();
    for (Route& route : *listener.mutable_routes()) normalizeRoute(route);
    if (listener.has_default_route()) normalizeRoute(*listener.mutable_default_route());
  }
  return out;
}

std::string SnapshotStore::canonicalBytes(const Bootstrap& config) {
  return deterministicBytes(normalize(config));
}

std::string SnapshotStore::contentHash(const Bootstrap& config) {
  return hashOfNormalized(normalize(config));
}

void SnapshotStore::joinFleet(const FleetMembership& membership) {
  db_.prepare(
         "INSERT OR REPLACE INTO fleet_membership (id, fleet, etcd, node_id, since)"
         " VALUES (1, ?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))")
      .bind(1, membership.fleet)
      .bind(2, membership.etcd)
      .bind(3, membership.node_id)
      .run();
}

std::optional<FleetMembership> SnapshotStore::fleetMembership() {
  Statement row = db_.prepare("SELECT fleet, etcd, node_id, since FROM fleet_membership");
  if (!row.step()) return std::nullopt;
  return FleetMembership{row.text(0), row.text(1), row.text(2), row.text(3)};
}

std::optional<FleetMembership> SnapshotStore::leaveFleet() {
  std::optional<FleetMembership> was = fleetMembership();
  if (was) db_.exec("DELETE FROM fleet_membership");
  return was;
}

int64_t SnapshotStore::latestVersion() {
  return db_.queryInt("SELECT coalesce(max(version), 0) FROM snapshots");
}

int64_t SnapshotStore::dataVersion() { return db_.queryInt("PRAGMA data_version"); }

void SnapshotStore::writeRoutes(int64_t version, const Bootstrap& config) {
  // The rows the newest version uses (those no version closed yet), by listener and hostname.
  struct OpenRow {
    int64_t origin;
    int64_t position;
    std::string content_hash;  // '' for rows written before hashes were kept
    bool kept = false;
  };
  absl::flat_hash_map<std::pair<std::string, std::string>, OpenRow> open;
  {
    Statement rows = db_.prepare(
        "SELECT listener_name, hostname, snapshot_version, position, content_hash"
        " FROM routes WHERE until_version IS NULL");
    while (rows.step()) {
      open.emplace(
          std::make_pair(rows.text(0), rows.text(1)),
          OpenRow{rows.integer(2), rows.integer(3), rows.isNull(4) ? std::string() : rows.blob(4)});
    }
  }
  Statement route_row = db_.prepare(kInsertRouteRow);
  for (const Listener& listener : config.listeners()) {
    struct Planned {
      const Route* route;
      std::string content_hash;
      OpenRow* kept = nullptr;  // the unchanged row this version shares
      int64_t position = 0;
    };
    std::vector<Planned> plan;
    plan.reserve(static_cast<size_t>(listener.routes_size()) + 1);
    for (const Route& route : listener.routes()) {
      plan.push_back({&route, routeHash(route)});
    }
    Route default_route;
    if (listener.has_default_route()) {
      default_route = listener.default_route();
      default_route.clear_hostname();
      plan.push_back({&default_route, routeHash(default_route)});
    }
    // Share a row when its route is unchanged and still in order after the rows shared before
    // it; every other route gets a new row.
    int64_t last = -1;
    for (Planned& entry : plan) {
      auto it = open.find(std::make_pair(listener.name(), entry.route->hostname()));
      if (it != open.end() && !it->second.content_hash.empty() &&
          it->second.content_hash == entry.content_hash && it->second.position > last) {
        entry.kept = &it->second;
        entry.position = last = it->second.position;
      }
    }
    // New rows take positions between the shared rows around them; where there is no room
    // left, the next shared row is written again too.
    for (size_t i = 0; i < plan.size();) {
      if (plan[i].kept != nullptr) {
        ++i;
        continue;
      }
      size_t end = i;
      while (end < plan.size() && plan[end].kept == nullptr) ++end;
      const int64_t low = i == 0 ? -1 : plan[i - 1].position;
      const int64_t count = static_cast<int64_t>(end - i);
      if (end == plan.size()) {
        for (size_t k = i; k < end; ++k) {
          plan[k].position = low + kPositionGap * static_cast<int64_t>(k - i + 1);
        }
      } else if (plan[end].position - low - 1 >= count) {
        const int64_t step = (plan[end].position - low) / (count + 1);
        for (size_t k = i; k < end; ++k) {
          plan[k].position = low + step * static_cast<int64_t>(k - i + 1);
        }
      } else {
        plan[end].kept = nullptr;
        continue;
      }
      i = end;
    }
    for (const Planned& entry : plan) {
      if (entry.kept != nullptr) {
        entry.kept->kept = true;
        continue;
      }
      insertRoute(route_row, version, listener.name(), entry.position, *entry.route,
                  entry.content_hash);
      writeHttp(version, listener.name(), *entry.route);
    }
  }
  // What this version changed or removed is no longer valid from it on.
  Statement close = db_.prepare(
      "UPDATE routes SET until_version = ?1"
      " WHERE snapshot_version = ?2 AND listener_name = ?3 AND hostname = ?4");
  for (const auto& [key, row] : open) {
    if (row.kept) continue;
    close.bind(1, version).bind(2, row.origin).bind(3, key.first).bind(4, key.second).run();
    close.reset();
  }
}

int64_t SnapshotStore::newestForWrite(const std::string& source, std::optional<int64_t> built_on) {
  if (source.rfind(kFleetSourcePrefix, 0) != 0) {
    if (auto membership = fleetMembership()) {
      throw FleetMember("this database follows fleet " + membership->fleet + " (etcd " +
                        membership->etcd + ", node " + membership->node_id +
                        "): local changes are refused, nothing was written. Change the fleet "
                        "with mcproxyctl publish from its authoring database, or start this "
                        "node without --fleet");
    }
  }
  const int64_t newest = latestVersion();
  if (built_on && *built_on != newest) {
    throw VersionConflict("the change was made to version " + std::to_string(*built_on) +
                          ", but version " + std::to_string(newest) +
                          " was written meanwhile; nothing was written");
  }
  return newest;
}

void SnapshotStore::insertSnapshotRow(int64_t version, const std::string& source,
                                      const std::string& hash, const Bootstrap& config,
                                      int64_t rollback_of, int64_t route_count) {
  Statement snapshot = db_.prepare(
      "INSERT INTO snapshots (version, created_at, source, content_hash, drain_timeout_ms,"
      " rollback_of, route_count) VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?2, ?3, ?4,"
      " ?5, ?6)");
  snapshot.bind(1, version)
      .bind(2, source)
      .bind(3, hash)
      .bind(4, static_cast<int64_t>(config.drain_timeout_ms()))
      .bind(6, route_count);
  if (rollback_of > 0) {
    snapshot.bind(5, rollback_of);
  } else {
    snapshot.bindNull(5);
  }
  snapshot.run();
}

WriteResult SnapshotStore::write(const Bootstrap& input, const std::string& source,
                                 int64_t rollback_of, std::optional<int64_t> built_on) {
  const Bootstrap config = normalize(input);
  const std::string hash = hashOfNormalized(config);
  Transaction transaction(db_);
  const int64_t newest = newestForWrite(source, built_on);
  if (newest > 0) {
    Statement newest_hash = db_.prepare("SELECT content_hash FROM snapshots WHERE version = ?1");
    newest_hash.bind(1, newest);
    if (newest_hash.step() && newest_hash.text(0) == hash && rollback_of == 0) {
      return {newest, false, hash};
    }
  }
  const int64_t version = newest + 1;
  int64_t route_count = 0;
  for (const Listener& listener : config.listeners()) {
    route_count += listener.routes_size() + (listener.has_default_route() ? 1 : 0);
  }
  insertSnapshotRow(version, source, hash, config, rollback_of, route_count);
  writeVersionRows(version, config);
  writeRoutes(version, config);
  transaction.commit();
  return {version, true, hash};
}

WriteResult SnapshotStore::writeRouteEdit(const PreparedRouteEdit& prepared,
                                          const std::string& source) {
  const RouteEdit& edit = prepared.edit;
  const Bootstrap& skeleton = prepared.skeleton;
  if (edit.listener_index >= static_cast<size_t>(skeleton.listeners_size())) {
    throw StoreError("route edit: no listeners[" + std::to_string(edit.listener_index) + "]");
  }
  const std::string& listener = skeleton.listeners(static_cast<int>(edit.listener_index)).name();
  Transaction transaction(db_);
  const int64_t version = newestForWrite(source, prepared.base_version) + 1;
  insertSnapshotRow(version, source, prepared.content_hash, skeleton, 0, prepared.route_count);
  writeVersionRows(version, skeleton);
  if (edit.kind == RouteEdit::Kind::kAdd) {
    // After the listener's last route, and before its default route where there is room (the
    // order a full write gives them, so that its next write shares both rows).
    Statement last = db_.prepare(
        "SELECT position, hostname FROM routes WHERE listener_name = ?1 AND until_version IS NULL"
        " ORDER BY position DESC LIMIT 2");
    last.bind(1, listener);
    std::vector<std::pair<int64_t, bool>> rows;  // (position, is the default route)
    while (last.step()) rows.emplace_back(last.integer(0), last.text(1).empty());
    int64_t position = kPositionGap - 1;
    if (!rows.empty()) {
      const int64_t low = !rows[0].second ? rows[0].first : rows.size() > 1 ? rows[1].first : -1;
      if (!rows[0].second || rows[0].first - low < 2) {
        position = rows[0].first + kPositionGap;
      } else {
        position = low + (rows[0].first - low) / 2;
      }
    }
    Statement route_row = db_.prepare(kInsertRouteRow);
    insertRoute(route_row, version, listener, position, edit.route, routeHash(edit.route));
    writeHttp(version, listener, edit.route);
  } else {
    Statement close = db_.prepare(
        "UPDATE routes SET until_version = ?1"
        " WHERE listener_name = ?2 AND hostname = ?3 AND until_version IS NULL");
    close.bind(1, version).bind(2, listener).bind(3, edit.hostname).run();
    if (sqlite3_changes(db_.handle()) != 1) {
      throw StoreError("route edit: listener " + listener + " has no stored route \"" +
                       edit.hostname + "\"; nothing was written");
    }
  }
  transaction.commit();
  return {version, true, prepared.content_hash};
}

void SnapshotStore::writeVersionRows(int64_t version, const Bootstrap& config) {
  writeClusters(version, config);
  Statement listener_row = db_.prepare(
      "INSERT INTO listeners (snapshot_version, position, name, address, proxy_protocol, backlog,"
      " filters, tls_min_version, tls_max_version, tls_cipher_suites, tls_groups)"
      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
  for (int i = 0; i < config.listeners_size(); ++i) {
    const Listener& listener = config.listeners(i);
    listener_row.bind(1, version)
        .bind(2, static_cast<int64_t>(i))
        .bind(3, listener.name())
        .bind(4, listener.address())
        .bind(5, static_cast<int64_t>(listener.proxy_protocol()))
        .bind(6, static_cast<int64_t>(listener.backlog()));
    if (listener.filters().empty()) {
      listener_row.bindNull(7);
    } else {
      Listener filters_only;
      *filters_only.mutable_filters() = listener.filters();
      listener_row.bindBlob(7, deterministicBytes(filters_only));
    }
    const auto& tls = listener.tls();
    listener_row.bind(8, tlsVersionName(tls.min_version()))
        .bind(9, tlsVersionName(tls.max_version()))
        .bind(10, absl::StrJoin(tls.cipher_suites(), ":"))
        .bind(11, absl::StrJoin(tls.groups(), ":"));
    listener_row.run();
  }
  writeFirewall(version, "", config.firewall());
  Statement access_log = db_.prepare(
      "INSERT INTO access_logs (snapshot_version, listener_name, path, format, text_format)"
      " VALUES (?1, ?2, ?3, ?4, ?5)");
  auto writeAccessLog = [&](const std::string& listener,
                            const mcproxy::config::v1::AccessLog& log) {
    access_log.bind(1, version)
        .bind(2, listener)
        .bind(3, log.path())
        .bind(4, log.format() == mcproxy::config::v1::AccessLog::TEXT ? "text" : "json")
        .bind(5, log.text_format())
        .run();
  };
  if (config.has_access_log()) writeAccessLog("", config.access_log());
  Statement module_row = db_.prepare(
      "INSERT INTO modules (snapshot_version, position, name, path, sha256)"
      " VALUES (?1, ?2, ?3, ?4, ?5)");
  for (int i = 0; i < config.modules_size(); ++i) {
    const auto& module = config.modules(i);
    module_row.bind(1, version)
        .bind(2, static_cast<int64_t>(i))
        .bind(3, module.name())
        .bind(4, module.path())
        .bind(5, module.sha256())
        .run();
  }
  for (const Listener& listener : config.listeners()) {
    if (listener.has_access_log()) writeAccessLog(listener.name(), listener.access_log());
  }
  Statement trusted = db_.prepare(
      "INSERT INTO trusted_sources (snapshot_version, listener_name, position, cidr)"
      " VALUES (?1, ?2, ?3, ?4)");
  for (const Listener& listener : config.listeners()) {
    writeFirewall(version, listener.name(), listener.firewall());
    for (int i = 0; i < listener.trusted_sources_size(); ++i) {
      trusted.bind(1, version)
          .bind(2, listener.name())
          .bind(3, static_cast<int64_t>(i))
          .bind(4, listener.trusted_sources(i))
          .run();
    }
  }
}

void SnapshotStore::writeClusters(int64_t version, const Bootstrap& config) {
  Statement cluster_row = db_.prepare(
      "INSERT INTO clusters (snapshot_version, position, name, lb_policy, connect_timeout_ms,"
      " backend_tls, backend_tls_ca, backend_protocol, send_proxy_protocol,"
      " proxy_protocol_version, dns_refresh_ms, max_connect_attempts, max_request_attempts,"
      " retry_budget_percent, check_kind, check_interval_ms, check_timeout_ms,"
      " check_unhealthy_threshold, check_healthy_threshold, check_http_path,"
      " check_expected_status, check_grpc_service, outlier_consecutive_failures,"
      " outlier_base_ejection_ms, outlier_max_ejection_percent) VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
      " ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24,"
      " ?25)");
  Statement endpoint_row = db_.prepare(
      "INSERT INTO cluster_endpoints (snapshot_version, cluster_name, position, address, weight)"
      " VALUES (?1, ?2, ?3, ?4, ?5)");
  auto number = [](uint32_t value) { return static_cast<int64_t>(value); };
  for (int i = 0; i < config.clusters_size(); ++i) {
    const Cluster& cluster = config.clusters(i);
    const auto& check = cluster.health_check();
    const auto& outlier = cluster.outlier_detection();
    cluster_row.bind(1, version)
        .bind(2, static_cast<int64_t>(i))
        .bind(3, cluster.name())
        .bind(4, lbPolicyName(cluster.lb_policy()))
        .bind(5, number(cluster.connect_timeout_ms()))
        .bind(6, static_cast<int64_t>(cluster.backend_tls()))
        .bind(7, cluster.backend_tls_ca())
        .bind(8, cluster.backend_protocol() == Route::HTTP1 ? "http1" : "h2")
        .bind(9, static_cast<int64_t>(cluster.send_proxy_protocol()))
        .bind(10, number(cluster.proxy_protocol_version()))
        .bind(11, number(cluster.dns_refresh_ms()))
        .bind(12, number(cluster.max_connect_attempts()))
        .bind(13, number(cluster.max_request_attempts()))
        .bind(14, number(cluster.retry_budget_percent()))
        .bind(15, checkKindName(check))
        .bind(16, number(check.interval_ms()))
        .bind(17, number(check.timeout_ms()))
        .bind(18, number(check.unhealthy_threshold()))
        .bind(19, number(check.healthy_threshold()))
        .bind(20, check.http().path())
        .bind(21, number(check.http().expected_status()))
        .bind(22, check.grpc().service())
        .bind(23, number(outlier.consecutive_failures()))
        .bind(24, number(outlier.base_ejection_ms()))
        .bind(25, number(outlier.max_ejection_percent()))
        .run();
    for (int j = 0; j < cluster.endpoints_size(); ++j) {
      const auto& endpoint = cluster.endpoints(j);
      endpoint_row.bind(1, version)
          .bind(2, cluster.name())
          .bind(3, static_cast<int64_t>(j))
          .bind(4, endpoint.address())
          .bind(5, number(endpoint.has_weight() ? endpoint.weight() : 1))
          .run();
    }
  }
}

void SnapshotStore::loadClusters(int64_t version, Bootstrap& config) {
  std::map<std::string, Cluster*> by_name;
  Statement clusters = db_.prepare(
      "SELECT name, lb_policy, connect_timeout_ms, backend_tls, backend_tls_ca, backend_protocol,"
      " send_proxy_protocol, proxy_protocol_version, dns_refresh_ms, max_connect_attempts,"
      " max_request_attempts, retry_budget_percent, check_kind, check_interval_ms,"
      " check_timeout_ms, check_unhealthy_threshold, check_healthy_threshold, check_http_path,"
      " check_expected_status, check_grpc_service, outlier_consecutive_failures,"
      " outlier_base_ejection_ms, outlier_max_ejection_percent"
      " FROM clusters WHERE snapshot_version = ?1 ORDER BY position");
  clusters.bind(1, version);
  auto number = [&](int column) { return static_cast<uint32_t>(clusters.integer(column)); };
  while (clusters.step()) {
    Cluster* cluster = config.add_clusters();
    cluster->set_name(clusters.text(0));
    cluster->set_lb_policy(lbPolicyFromName(clusters.text(1)));
    cluster->set_connect_timeout_ms(number(2));
    cluster->set_backend_tls(clusters.integer(3) != 0);
    cluster->set_backend_tls_ca(clusters.text(4));
    cluster->set_backend_protocol(clusters.text(5) == "http1" ? Route::HTTP1 : Route::H2);
    cluster->set_send_proxy_protocol(clusters.integer(6) != 0);
    cluster->set_proxy_protocol_version(number(7));
    cluster->set_dns_refresh_ms(number(8));
    cluster->set_max_connect_attempts(number(9));
    cluster->set_max_request_attempts(number(10));
    cluster->set_retry_budget_percent(number(11));
    const std::string kind = clusters.text(12);
    if (!kind.empty()) {
      auto* check = cluster->mutable_health_check();
      check->set_interval_ms(number(13));
      check->set_timeout_ms(number(14));
      check->set_unhealthy_threshold(number(15));
      check->set_healthy_threshold(number(16));
      if (kind == "tcp") check->mutable_tcp();
      if (kind == "tls") check->mutable_tls();
      if (kind == "http") {
        check->mutable_http()->set_path(clusters.text(17));
        check->mutable_http()->set_expected_status(number(18));
      }
      if (kind == "grpc") check->mutable_grpc()->set_service(clusters.text(19));
    }
    if (clusters.integer(20) || clusters.integer(21) || clusters.integer(22)) {
      auto* outlier = cluster->mutable_outlier_detection();
      outlier->set_consecutive_failures(number(20));
      outlier->set_base_ejection_ms(number(21));
      outlier->set_max_ejection_percent(number(22));
    }
    by_name[cluster->name()] = cluster;
  }
  Statement endpoints = db_.prepare(
      "SELECT cluster_name, address, weight FROM cluster_endpoints WHERE snapshot_version = ?1"
      " ORDER BY cluster_name, position");
  endpoints.bind(1, version);
  while (endpoints.step()) {
    auto it = by_name.find(endpoints.text(0));
    if (it == by_name.end()) {
      throw StoreError("version " + std::to_string(version) + ": endpoint of cluster \"" +
                       endpoints.text(0) + "\", which does not exist");
    }
    auto* endpoint = it->second->add_endpoints();
    endpoint->set_address(endpoints.text(1));
    if (endpoints.integer(2) != 1)
      endpoint->set_weight(static_cast<uint32_t>(endpoints.integer(2)));
  }
}

void SnapshotStore::writeFirewall(int64_t version, const std::string& listener,
                                  const mcproxy::config::v1::Firewall& firewall) {
  Statement rule = db_.prepare(
      "INSERT INTO firewall_rules (snapshot_version, listener_name, kind, value, position)"
      " VALUES (?1, ?2, ?3, ?4, ?5)");
  int64_t position = 0;
  for (const auto& [kind, values] :
       {std::pair{"ip", &firewall.blocked_ips()}, std::pair{"cidr", &firewall.blocked_cidrs()},
        std::pair{"country", &firewall.blocked_countries()}}) {
    for (const std::string& value : *values) {
      rule.bind(1, version)
          .bind(2, listener)
          .bind(3, kind)
          .bind(4, value)
          .bind(5, position++)
          .run();
    }
  }
  const auto& limit = firewall.rate_limit();
  if (!firewall.geoip_db().empty() || firewall.has_rate_limit()) {
    db_.prepare(
           "INSERT INTO firewall_settings (snapshot_version, listener_name, geoip_db,"
           " rate_connections, rate_per_seconds, rate_max_tracked) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .bind(1, version)
        .bind(2, listener)
        .bind(3, firewall.geoip_db())
        .bind(4, static_cast<int64_t>(limit.connections()))
        .bind(5, static_cast<int64_t>(limit.per_seconds()))
        .bind(6, static_cast<int64_t>(limit.max_tracked_addresses()))
        .run();
  }
}

void SnapshotStore::writeHttp(int64_t version, const std::string& listener, const Route& route) {
  if (route.http_routes().empty() && route.http_filters().empty()) return;
  Statement entry = db_.prepare(
      "INSERT INTO http_routes (snapshot_version, listener_name, route_hostname, position,"
      " path_prefix, path_exact, backend, timeout_ms, cluster)"
      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  Statement header = db_.prepare(
      "INSERT INTO http_route_headers (snapshot_version, listener_name, route_hostname,"
      " route_position, position, name, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  for (int i = 0; i < route.http_routes_size(); ++i) {
    const auto& http_route = route.http_routes(i);
    entry.bind(1, version)
        .bind(2, listener)
        .bind(3, route.hostname())
        .bind(4, static_cast<int64_t>(i))
        .bind(5, http_route.path_prefix())
        .bind(6, http_route.path_exact())
        .bind(7, http_route.backend())
        .bind(8, static_cast<int64_t>(http_route.timeout_ms()))
        .bind(9, http_route.cluster())
        .run();
    for (int j = 0; j < http_route.headers_size(); ++j) {
      header.bind(1, version)
          .bind(2, listener)
          .bind(3, route.hostname())
          .bind(4, static_cast<int64_t>(i))
          .bind(5, static_cast<int64_t>(j))
          .bind(6, http_route.headers(j).name())
          .bind(7, http_route.headers(j).value())
          .run();
    }
  }
  Statement filter = db_.prepare(
      "INSERT INTO http_filters (snapshot_version, listener_name, route_hostname, position, name,"
      " typed_config) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  for (int i = 0; i < route.http_filters_size(); ++i) {
    const auto& http_filter = route.http_filters(i);
    filter.bind(1, version)
        .bind(2, listener)
        .bind(3, route.hostname())
        .bind(4, static_cast<int64_t>(i))
        .bind(5, http_filter.name());
    if (http_filter.has_typed_config()) {
      filter.bindBlob(6, deterministicBytes(http_filter.typed_config()));
    } else {
      filter.bindNull(6);
    }
    filter.run();
  }
}

void SnapshotStore::loadHttp(int64_t version, const std::map<RouteKey, Route*>& routes) {
  auto routeOf = [&](const std::string& listener, const std::string& hostname) {
    auto it = routes.find({listener, hostname});
    if (it == routes.end()) {
      throw StoreError("version " + std::to_string(version) + ": HTTP settings of route \"" +
                       hostname + "\" on listener \"" + listener + "\", which does not exist");
    }
    return it->second;
  };
  // A route's HTTP rows are written with its route row and valid where it is.
  const std::string of_valid_routes =
      std::string(
          " h JOIN routes r ON r.snapshot_version = h.snapshot_version AND"
          " r.listener_name = h.listener_name AND r.hostname = h.route_hostname WHERE ") +
      kRouteValidAt;
  Statement entries = db_.prepare(
      "SELECT h.listener_name, h.route_hostname, h.path_prefix, h.path_exact, h.backend,"
      " h.timeout_ms, h.cluster FROM http_routes" +
      of_valid_routes + " ORDER BY h.listener_name, h.route_hostname, h.position");
  entries.bind(1, version);
  while (entries.step()) {
    auto* entry = routeOf(entries.text(0), entries.text(1))->add_http_routes();
    setIfAny(entries, 2, [&](std::string v) { entry->set_path_prefix(std::move(v)); });
    setIfAny(entries, 3, [&](std::string v) { entry->set_path_exact(std::move(v)); });
    setIfAny(entries, 4, [&](std::string v) { entry->set_backend(std::move(v)); });
    entry->set_timeout_ms(static_cast<uint32_t>(entries.integer(5)));
    setIfAny(entries, 6, [&](std::string v) { entry->set_cluster(std::move(v)); });
  }
  Statement headers = db_.prepare(
      "SELECT h.listener_name, h.route_hostname, h.route_position, h.name, h.value FROM"
      " http_route_headers" +
      of_valid_routes +
      " ORDER BY h.listener_name, h.route_hostname, h.route_position, h.position");
  headers.bind(1, version);
  while (headers.step()) {
    Route* route = routeOf(headers.text(0), headers.text(1));
    const int64_t position = headers.integer(2);
    if (position >= route->http_routes_size()) {
      throw StoreError("version " + std::to_string(version) + ": a header match of a missing " +
                       "http_routes entry");
    }
    auto* header = route->mutable_http_routes(static_cast<int>(position))->add_headers();
    header->set_name(headers.text(3));
    header->set_value(headers.text(4));
  }
  Statement filters = db_.prepare(
      "SELECT h.listener_name, h.route_hostname, h.name, h.typed_config FROM http_filters" +
      of_valid_routes + " ORDER BY h.listener_name, h.route_hostname, h.position");
  filters.bind(1, version);
  while (filters.step()) {
    auto* filter = routeOf(filters.text(0), filters.text(1))->add_http_filters();
    filter->set_name(filters.text(2));
    if (!filters.isNull(3) && !filter->mutable_typed_config()->ParseFromString(filters.blob(3))) {
      throw StoreError("version " + std::to_string(version) + ": HTTP filter " + filter->name() +
                       ": typed_config does not parse");
    }
  }
}

void SnapshotStore::loadFirewalls(int64_t version, Bootstrap& config,
                                  const std::map<std::string, Listener*>& listeners) {
  auto firewallOf = [&](const std::string& listener) -> mcproxy::config::v1::Firewall* {
    if (listener.empty()) return config.mutable_firewall();
    auto it = listeners.find(listener);
    if (it == listeners.end()) {
      throw StoreError("version " + std::to_string(version) + ": firewall of listener \"" +
                       listener + "\", which does not exist");
    }
    return it->second->mutable_firewall();
  };
  Statement rules = db_.prepare(
      "SELECT listener_name, kind, value FROM firewall_rules WHERE snapshot_version = ?1"
      " ORDER BY listener_name, position");
  rules.bind(1, version);
  while (rules.step()) {
    auto* firewall = firewallOf(rules.text(0));
    const std::string kind = rules.text(1);
    auto* list = kind == "ip"     ? firewall->mutable_blocked_ips()
                 : kind == "cidr" ? firewall->mutable_blocked_cidrs()
                                  : firewall->mutable_blocked_countries();
    *list->Add() = rules.text(2);
  }
  Statement settings = db_.prepare(
      "SELECT listener_name, geoip_db, rate_connections, rate_per_seconds, rate_max_tracked"
      " FROM firewall_settings WHERE snapshot_version = ?1");
  settings.bind(1, version);
  while (settings.step()) {
    auto* firewall = firewallOf(settings.text(0));
    firewall->set_geoip_db(settings.text(1));
    if (settings.integer(2) || settings.integer(3) || settings.integer(4)) {
      auto* limit = firewall->mutable_rate_limit();
      limit->set_connections(static_cast<uint32_t>(settings.integer(2)));
      limit->set_per_seconds(static_cast<uint32_t>(settings.integer(3)));
      limit->set_max_tracked_addresses(static_cast<uint32_t>(settings.integer(4)));
    }
  }
  Statement trusted = db_.prepare(
      "SELECT listener_name, cidr FROM trusted_sources WHERE snapshot_version = ?1"
      " ORDER BY listener_name, position");
  trusted.bind(1, version);
  while (trusted.step()) {
    auto it = listeners.find(trusted.text(0));
    if (it == listeners.end()) {
      throw StoreError("version " + std::to_string(version) + ": trusted source of listener \"" +
                       trusted.text(0) + "\", which does not exist");
    }
    *it->second->add_trusted_sources() = trusted.text(1);
  }
}

StoredSnapshot SnapshotStore::load(int64_t version) {
  StoredSnapshot out;
  out.info = info(version);
  Bootstrap& config = out.config;
  Statement settings = db_.prepare("SELECT drain_timeout_ms FROM snapshots WHERE version = ?1");
  settings.bind(1, version);
  if (settings.step()) config.set_drain_timeout_ms(static_cast<uint32_t>(settings.integer(0)));

  loadClusters(version, config);
  std::map<std::string, Listener*> by_name;
  Statement listeners = db_.prepare(
      "SELECT name, address, proxy_protocol, backlog, filters, tls_min_version, tls_max_version,"
      " tls_cipher_suites, tls_groups FROM listeners WHERE snapshot_version = ?1 ORDER BY "
      "position");
  listeners.bind(1, version);
  while (listeners.step()) {
    Listener* listener = config.add_listeners();
    listener->set_name(listeners.text(0));
    listener->set_address(listeners.text(1));
    listener->set_proxy_protocol(listeners.integer(2) != 0);
    listener->set_backlog(static_cast<uint32_t>(listeners.integer(3)));
    if (!listeners.isNull(4)) {
      Listener filters_only;
      if (!filters_only.ParseFromString(listeners.blob(4))) {
        throw StoreError("version " + std::to_string(version) + ", listener " + listener->name() +
                         ": filters column does not parse");
      }
      *listener->mutable_filters() = filters_only.filters();
    }
    auto* tls = listener->mutable_tls();
    tls->set_min_version(tlsVersionFromName(listeners.text(5)));
    tls->set_max_version(tlsVersionFromName(listeners.text(6)));
    for (absl::string_view suite : absl::StrSplit(listeners.text(7), ':', absl::SkipEmpty())) {
      tls->add_cipher_suites(std::string(suite));
    }
    for (absl::string_view group : absl::StrSplit(listeners.text(8), ':', absl::SkipEmpty())) {
      tls->add_groups(std::string(group));
    }
    if (tls->ByteSizeLong() == 0) listener->clear_tls();
    by_name[listener->name()] = listener;
  }
  // The newest version's rows are the open ones (an index in order); an older version's are
  // those valid at it.
  const std::string columns =
      "SELECT listener_name, hostname, backend, mode, tls_cert, tls_key, backend_tls,"
      " send_proxy_protocol, proxy_protocol_version, backend_tls_ca, backend_protocol, timeout_ms,"
      " client_ca, client_cert, ocsp_response, allow_upgrades, cluster FROM routes r";
  Statement routes = db_.prepare(
      version == latestVersion()
          ? columns + " WHERE until_version IS NULL AND ?1 > 0 ORDER BY listener_name, position"
          : columns + " WHERE " + kRouteValidAt + " ORDER BY listener_name, position");
  std::map<RouteKey, Route*> routes_by_key;
  routes.bind(1, version);
  while (routes.step()) {
    auto owner = by_name.find(routes.text(0));
    if (owner == by_name.end()) {
      throw StoreError("version " + std::to_string(version) + ": route \"" + routes.text(1) +
                       "\" belongs to listener \"" + routes.text(0) + "\", which does not exist");
    }
    Listener* listener = owner->second;
    const std::string hostname = routes.text(1);
    Route* route = hostname.empty() ? listener->mutable_default_route() : listener->add_routes();
    if (!hostname.empty()) route->set_hostname(hostname);
    setIfAny(routes, 2, [&](std::string v) { route->set_backend(std::move(v)); });
    route->set_mode(routes.text(3) == "l7" ? Route::L7 : Route::L4);
    setIfAny(routes, 4, [&](std::string v) { route->set_tls_cert(std::move(v)); });
    setIfAny(routes, 5, [&](std::string v) { route->set_tls_key(std::move(v)); });
    route->set_backend_tls(routes.integer(6) != 0);
    route->set_send_proxy_protocol(routes.integer(7) != 0);
    route->set_proxy_protocol_version(static_cast<uint32_t>(routes.integer(8)));
    setIfAny(routes, 9, [&](std::string v) { route->set_backend_tls_ca(std::move(v)); });
    route->set_backend_protocol(routes.text(10) == "http1" ? Route::HTTP1 : Route::H2);
    route->set_timeout_ms(static_cast<uint32_t>(routes.integer(11)));
    setIfAny(routes, 12, [&](std::string v) { route->set_client_ca(std::move(v)); });
    route->set_client_cert(routes.text(13) == "required"   ? Route::REQUIRED
                           : routes.text(13) == "optional" ? Route::OPTIONAL
                                                           : Route::CLIENT_CERT_UNSPECIFIED);
    setIfAny(routes, 14, [&](std::string v) { route->set_ocsp_response(std::move(v)); });
    if (!routes.isNull(15)) route->set_allow_upgrades(routes.integer(15) != 0);
    setIfAny(routes, 16, [&](std::string v) { route->set_cluster(std::move(v)); });
    // Only L7 routes have HTTP settings (a trigger holds that), so 100,000 L4 routes need no
    // entry here.
    if (route->mode() == Route::L7) routes_by_key[{listener->name(), hostname}] = route;
  }
  loadHttp(version, routes_by_key);
  loadFirewalls(version, config, by_name);
  Statement modules = db_.prepare(
      "SELECT name, path, sha256 FROM modules WHERE snapshot_version = ?1 ORDER BY position");
  modules.bind(1, version);
  while (modules.step()) {
    auto* module = config.add_modules();
    module->set_name(modules.text(0));
    module->set_path(modules.text(1));
    module->set_sha256(modules.text(2));
  }
  Statement access_logs = db_.prepare(
      "SELECT listener_name, path, format, text_format FROM access_logs"
      " WHERE snapshot_version = ?1");
  access_logs.bind(1, version);
  while (access_logs.step()) {
    mcproxy::config::v1::AccessLog* log = nullptr;
    if (access_logs.text(0).empty()) {
      log = config.mutable_access_log();
    } else {
      auto it = by_name.find(access_logs.text(0));
      if (it == by_name.end()) {
        throw StoreError("version " + std::to_string(version) + ": access log of listener \"" +
                         access_logs.text(0) + "\", which does not exist");
      }
      log = it->second->mutable_access_log();
    }
    log->set_path(access_logs.text(1));
    log->set_format(access_logs.text(2) == "text" ? mcproxy::config::v1::AccessLog::TEXT
                                                  : mcproxy::config::v1::AccessLog::JSON);
    log->set_text_format(access_logs.text(3));
  }
  return out;
}

std::optional<StoredSnapshot> SnapshotStore::loadLatest() {
  // One read transaction, so a writer committing meanwhile cannot mix two versions.
  db_.exec("BEGIN");
  try {
    const int64_t version = latestVersion();
    std::optional<StoredSnapshot> out;
    if (version > 0) out = load(version);
    db_.exec("COMMIT");
    return out;
  } catch (...) {
    db_.exec("ROLLBACK");
    throw;
  }
}

SnapshotInfo SnapshotStore::info(int64_t version) {
  Statement statement = db_.prepare(
      "SELECT version, created_at, source, content_hash, coalesce(rollback_of, 0),"
      " (SELECT count(*) FROM listeners WHERE snapshot_version = version),"
      " coalesce(route_count, (SELECT count(*) FROM routes WHERE snapshot_version = version))"
      " FROM snapshots WHERE version = ?1");
  statement.bind(1, version);
  if (!statement.step()) {
    throw StoreError("snapshot version " + std::to_string(version) + " does not exist");
  }
  return {statement.integer(0), statement.text(1),    statement.text(2),   statement.text(3),
          statement.integer(4), statement.integer(5), statement.integer(6)};
}

std::vector<SnapshotInfo> SnapshotStore::history(size_t limit) {
  std::vector<SnapshotInfo> out;
  Statement versions = db_.prepare("SELECT version FROM snapshots ORDER BY version DESC");
  while (versions.step() && (limit == 0 || out.size() < limit)) {
    out.push_back(info(versions.integer(0)));
  }
  return out;
}

WriteResult SnapshotStore::rollback(int64_t version) {
  StoredSnapshot old = load(version);
  return write(old.config, "rollback to version " + std::to_string(version), version);
}

bool SnapshotStore::verify(int64_t version, std::string& error) {
  StoredSnapshot stored;
  try {
    stored = load(version);
  } catch (const StoreError& e) {
    error = e.what();
    return false;
  }
  const std::string actual = contentHash(stored.config);
  if (actual != stored.info.content_hash) {
    error = "version " + std::to_string(version) + ": rows hash to " + actual +
            ", recorded hash is " + stored.info.content_hash;
    return false;
  }
  return true;
}

std::vector<std::string> SnapshotStore::diff(int64_t from, int64_t to) {
  const Bootstrap a = load(from).config;
  const Bootstrap b = load(to).config;
  std::vector<std::string> lines;
  if (a.drain_timeout_ms() != b.drain_timeout_ms()) {
    lines.push_back("~ drain_timeout_ms " + std::to_string(a.drain_timeout_ms()) + " -> " +
                    std::to_string(b.drain_timeout_ms()));
  }
  auto index = [](const Bootstrap& config) {
    std::map<std::string, const Listener*> out;
    for (const Listener& listener : config.listeners()) out[listener.name()] = &listener;
    return out;
  };
  auto routesOf = [](const Listener& listener) {
    std::map<std::string, const Route*> out;
    for (const Route& route : listener.routes()) out[route.hostname()] = &route;
    if (listener.has_default_route()) out[""] = &listener.default_route();
    return out;
  };
  // Firewall rules as "kind value" sets, per scope ("" is the top level).
  auto rulesOf = [](const mcproxy::config::v1::Firewall& firewall) {
    std::vector<std::string> rules;
    for (const auto& ip : firewall.blocked_ips()) rules.push_back("ip " + ip);
    for (const auto& cidr : firewall.blocked_cidrs()) rules.push_back("cidr " + cidr);
    for (const auto& country : firewall.blocked_countries()) rules.push_back("country " + country);
    return rules;
  };
  auto diffFirewall = [&](const std::string& scope, const mcproxy::config::v1::Firewall& before,
                          const mcproxy::config::v1::Firewall& after) {
    const auto old_rules = rulesOf(before);
    const auto new_rules = rulesOf(after);
    for (const auto& rule : old_rules) {
      if (std::find(new_rules.begin(), new_rules.end(), rule) == new_rules.end()) {
        lines.push_back("- firewall " + scope + " " + rule);
      }
    }
    for (const auto& rule : new_rules) {
      if (std::find(old_rules.begin(), old_rules.end(), rule) == old_rules.end()) {
        lines.push_back("+ firewall " + scope + " " + rule);
      }
    }
    if (before.geoip_db() != after.geoip_db() ||
        deterministicBytes(before.rate_limit()) != deterministicBytes(after.rate_limit())) {
      lines.push_back("~ firewall " + scope +
                      " settings (geoip_db, rate_limit) "
                      "{" +
                      before.ShortDebugString() + "} => {" + after.ShortDebugString() + "}");
    }
  };
  diffFirewall("(top level)", a.firewall(), b.firewall());
  // An access_log setting, present or not ("(none)"), per scope.
  using mcproxy::config::v1::AccessLog;
  auto diffAccessLog = [&](const std::string& scope, const AccessLog* before,
                           const AccessLog* after) {
    const std::string old_text = before != nullptr ? before->ShortDebugString() : "(none)";
    const std::string new_text = after != nullptr ? after->ShortDebugString() : "(none)";
    if (old_text != new_text) {
      lines.push_back("~ access_log " + scope + " {" + old_text + "} => {" + new_text + "}");
    }
  };
  auto accessLogOf = [](const auto& holder) -> const AccessLog* {
    return holder.has_access_log() ? &holder.access_log() : nullptr;
  };
  diffAccessLog("(top level)", accessLogOf(a), accessLogOf(b));
  auto modulesOf = [](const Bootstrap& config) {
    std::map<std::string, std::string> out;  // name -> "path [sha256]"
    for (const auto& module : config.modules()) {
      out[module.name()] =
          module.path() + (module.sha256().empty() ? "" : " sha256 " + module.sha256());
    }
    return out;
  };
  // Named things described in one line each: removed, changed, added.
  auto diffNamed = [&](const std::string& kind, const std::map<std::string, std::string>& before,
                       const std::map<std::string, std::string>& after) {
    for (const auto& [name, what] : before) {
      auto now = after.find(name);
      if (now == after.end()) {
        lines.push_back("- " + kind + " " + name + " " + what);
      } else if (now->second != what) {
        lines.push_back("~ " + kind + " " + name + " " + what + " -> " + now->second);
      }
    }
    for (const auto& [name, what] : after) {
      if (!before.count(name)) lines.push_back("+ " + kind + " " + name + " " + what);
    }
  };
  diffNamed("module", modulesOf(a), modulesOf(b));
  auto clustersOf = [](const Bootstrap& config) {
    std::map<std::string, std::string> out;
    for (const auto& cluster : config.clusters()) out[cluster.name()] = describeCluster(cluster);
    return out;
  };
  diffNamed("cluster", clustersOf(a), clustersOf(b));
  const auto listeners_a = index(a);
  const auto listeners_b = index(b);
  for (const auto& [name, listener] : listeners_a) {
    if (!listeners_b.count(name)) lines.push_back("- listener " + name + " " + listener->address());
  }
  for (const auto& [name, listener] : listeners_b) {
    auto old = listeners_a.find(name);
    if (old == listeners_a.end()) {
      lines.push_back("+ listener " + name + " " + listener->address());
      diffFirewall(name, mcproxy::config::v1::Firewall(), listener->firewall());
      diffAccessLog(name, nullptr, accessLogOf(*listener));
    } else {
      if (old->second->address() != listener->address()) {
        lines.push_back("~ listener " + name + " address " + old->second->address() + " -> " +
                        listener->address());
      }
      if (deterministicBytes(*old->second) == deterministicBytes(*listener)) continue;
      diffFirewall(name, old->second->firewall(), listener->firewall());
      const std::vector<std::string> trusted_a(old->second->trusted_sources().begin(),
                                               old->second->trusted_sources().end());
      const std::vector<std::string> trusted_b(listener->trusted_sources().begin(),
                                               listener->trusted_sources().end());
      if (trusted_a != trusted_b)
        lines.push_back("~ listener " + name + " trusted_sources changed");
      if (deterministicBytes(old->second->tls()) != deterministicBytes(listener->tls())) {
        lines.push_back("~ listener " + name + " tls " + old->second->tls().ShortDebugString() +
                        " -> " + listener->tls().ShortDebugString());
      }
      diffAccessLog(name, accessLogOf(*old->second), accessLogOf(*listener));
    }
    const auto routes_a =
        old == listeners_a.end() ? std::map<std::string, const Route*>() : routesOf(*old->second);
    const auto routes_b = routesOf(*listener);
    for (const auto& [hostname, route] : routes_a) {
      if (!routes_b.count(hostname))
        lines.push_back("- route " + name + " " + describeRoute(*route));
    }
    for (const auto& [hostname, route] : routes_b) {
      auto previous = routes_a.find(hostname);
      const std::string where = name + " " + (hostname.empty() ? "(default)" : hostname);
      if (previous == routes_a.end()) {
        lines.push_back("+ route " + name + " " + describeRoute(*route));
        diffHttp(where, nullptr, *route, lines);
      } else if (deterministicBytes(*previous->second) != deterministicBytes(*route)) {
        const std::string old_text = describeRoute(*previous->second);
        const std::string new_text = describeRoute(*route);
        std::vector<std::string> http_lines;
        diffHttp(where, previous->second, *route, http_lines);
        // A change the HTTP lines do not show (a key file, say) still gets its line.
        if (old_text != new_text || http_lines.empty()) {
          lines.push_back("~ route " + name + " " + old_text + "  =>  " + new_text);
        }
        lines.insert(lines.end(), http_lines.begin(), http_lines.end());
      }
    }
  }
  return lines;
}

}  // namespace mcproxy::snapshot

namespace mcproxy::snapshot {
namespace {

using network::hostName;

std::string instanceName() { return hostName() + ":" + std::to_string(getpid()); }

// Tables holding a version's rows, children before their parents (foreign keys).
constexpr const char* kVersionTables[] = {
    "http_route_headers", "http_routes", "http_filters", "trusted_sources", "firewall_rules",
    "firewall_settings",  "access_logs", "modules",      "routes",          "listeners",
    "cluster_endpoints",  "clusters"};

}  // namespace

void SnapshotStore::recordRunning(int64_t version) {
  db_.prepare(
         "INSERT OR REPLACE INTO proxy_instances (instance, host, pid, version, updated_at)"
         " VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))")
      .bind(1, instanceName())
      .bind(2, hostName())
      .bind(3, static_cast<int64_t>(getpid()))
      .bind(4, version)
      .run();
}

void SnapshotStore::forgetRunning() {
  db_.prepare("DELETE FROM proxy_instances WHERE instance = ?1").bind(1, instanceName()).run();
}

PruneResult SnapshotStore::prune(std::optional<int64_t> keep,
                                 std::optional<int64_t> older_than_seconds, bool dry_run) {
  PruneResult result;
  Transaction transaction(db_);
  const int64_t newest = latestVersion();
  if (newest == 0) return result;
  std::vector<int64_t> candidates;
  {
    Statement old =
        db_.prepare(keep ? "SELECT version FROM snapshots WHERE version <= ?1 ORDER BY version"
                         : "SELECT version FROM snapshots WHERE julianday(created_at) <"
                           " julianday('now') - ?1 / 86400.0 ORDER BY version");
    if (keep) {
      old.bind(1, newest - *keep);
    } else {
      old.bind(1, *older_than_seconds);
    }
    while (old.step()) candidates.push_back(old.integer(0));
  }
  std::map<int64_t, std::string> keeping;
  keeping[newest] = "the newest";
  // Versions running proxies recorded; a record of a process gone from this host is dropped.
  {
    const std::string here = hostName();
    std::vector<std::string> stale;
    Statement running =
        db_.prepare("SELECT instance, host, pid, version FROM proxy_instances ORDER BY instance");
    while (running.step()) {
      const pid_t pid = static_cast<pid_t>(running.integer(2));
      if (running.text(1) == here && kill(pid, 0) != 0 && errno == ESRCH) {
        stale.push_back(running.text(0));
        continue;
      }
      keeping.emplace(running.integer(3),
                      "running in pid " + std::to_string(pid) + " on " + running.text(1));
    }
    for (const std::string& instance : stale) {
      db_.prepare("DELETE FROM proxy_instances WHERE instance = ?1").bind(1, instance).run();
    }
  }
  // A kept version that restored an older one references it (snapshots.rollback_of).
  for (bool grew = true; grew;) {
    grew = false;
    Statement restored =
        db_.prepare("SELECT version, rollback_of FROM snapshots WHERE rollback_of IS NOT NULL");
    while (restored.step()) {
      const int64_t version = restored.integer(0);
      const int64_t target = restored.integer(1);
      const bool version_kept = keeping.count(version) ||
                                !std::binary_search(candidates.begin(), candidates.end(), version);
      if (version_kept && !keeping.count(target)) {
        keeping[target] = "restored by version " + std::to_string(version);
        grew = true;
      }
    }
  }
  for (int64_t version : candidates) {
    if (auto why = keeping.find(version); why != keeping.end()) {
      result.kept[version] = why->second;
    } else {
      result.deleted.push_back(version);
    }
  }
  if (dry_run || result.deleted.empty()) return result;
  Statement mark = db_.prepare("INSERT INTO pruning (version) VALUES (?1)");
  for (int64_t version : result.deleted) {
    mark.bind(1, version).run();
    mark.reset();
  }
  // Route rows (and their HTTP rows) a kept version still uses stay, whichever version wrote
  // them.
  db_.exec(
      "CREATE TEMP TABLE pruned_routes AS SELECT snapshot_version, listener_name, hostname"
      " FROM routes r WHERE r.snapshot_version IN (SELECT version FROM pruning) AND NOT EXISTS"
      " (SELECT 1 FROM snapshots s WHERE s.version >= r.snapshot_version AND (r.until_version IS"
      " NULL OR s.version < r.until_version) AND s.version NOT IN (SELECT version FROM pruning))");
  for (const char* table : kVersionTables) {
    const std::string name = table;
    if (name == "routes" || name == "http_routes" || name == "http_route_headers" ||
        name == "http_filters") {
      const std::string hostname = name == "routes" ? "hostname" : "route_hostname";
      db_.exec("DELETE FROM " + name + " WHERE (snapshot_version, listener_name, " + hostname +
               ") IN (SELECT snapshot_version, listener_name, hostname FROM pruned_routes)");
    } else {
      db_.exec("DELETE FROM " + name + " WHERE snapshot_version IN (SELECT version FROM pruning)");
    }
  }
  db_.exec("DROP TABLE temp.pruned_routes");
  db_.exec("DELETE FROM snapshots WHERE version IN (SELECT version FROM pruning)");
  db_.exec("DELETE FROM pruning");
  transaction.commit();
  return result;
}

}  // namespace mcproxy::snapshot

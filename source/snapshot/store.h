#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "api/mcproxy/config/v1/bootstrap.pb.h"
#include "source/snapshot/route_edit.h"
#include "source/snapshot/sqlite.h"

namespace mcproxy::snapshot {

struct SnapshotInfo {
  int64_t version = 0;
  std::string created_at;  // ISO 8601, UTC
  std::string source;      // "file:/etc/mc-proxy.textproto", "rollback to 3", "api", ...
  std::string content_hash;
  int64_t rollback_of = 0;  // the version a rollback restored; 0 otherwise
  int64_t listeners = 0;
  int64_t routes = 0;
};

struct StoredSnapshot {
  SnapshotInfo info;
  mcproxy::config::v1::Bootstrap config;
};

// A compare-and-set write found another version newest than the one the change was built on.
class VersionConflict : public StoreError {
 public:
  using StoreError::StoreError;
};

// A local change to a database that follows a fleet (mc-proxy --fleet): versions come from the
// fleet's publisher only.
class FleetMember : public StoreError {
 public:
  using StoreError::StoreError;
};

struct FleetMembership {
  std::string fleet;
  std::string etcd;
  std::string node_id;
  std::string since;
};

struct PruneResult {
  std::vector<int64_t> deleted;
  // Old enough to go, but kept: version -> why ("the newest", "running in pid 12 on host h",
  // "restored by version 9").
  std::map<int64_t, std::string> kept;
};

struct WriteResult {
  int64_t version = 0;
  bool created = false;  // false: the config equals the newest version, which stays newest
  std::string content_hash;
};

// The SQLite snapshot store: the source of truth for configuration. Every applied config is
// an immutable version; writing one is a single transaction, so a crash at any moment leaves
// the previous version or the new one, never a mix. Used by the main thread and the CLI only,
// never on the data path.
class SnapshotStore {
 public:
  // Opens or creates the database and upgrades its schema to the latest.
  explicit SnapshotStore(const std::string& path);

  // Migrations this open applied (empty when the schema was already the latest).
  const std::vector<int64_t>& appliedMigrations() const { return applied_migrations_; }

  // 0 when the store holds no version yet.
  int64_t latestVersion();
  // Throws StoreError if `version` does not exist.
  StoredSnapshot load(int64_t version);
  std::optional<StoredSnapshot> loadLatest();
  // Stores `config` as a new version, unless it equals the newest (same content hash).
  // The caller has already validated it (snapshot::compile). With `built_on` (a change made to
  // that version; 0: to an empty store), a compare-and-set in the same IMMEDIATE transaction:
  // throws VersionConflict, writing nothing, when another version is newest by then.
  WriteResult write(const mcproxy::config::v1::Bootstrap& config, const std::string& source,
                    int64_t rollback_of = 0, std::optional<int64_t> built_on = std::nullopt);
  // Stores a prepared route edit as the next version: compare-and-set on its base version as
  // write() with `built_on` (VersionConflict, nothing written), the version's own rows from the
  // skeleton and one route row added or closed; no other route is read or written.
  WriteResult writeRouteEdit(const PreparedRouteEdit& prepared, const std::string& source);
  // Makes the content of `version` the newest version again.
  WriteResult rollback(int64_t version);
  // One version's row (no config); throws StoreError if it does not exist.
  SnapshotInfo info(int64_t version);
  // Newest first; `limit` 0 means all.
  std::vector<SnapshotInfo> history(size_t limit = 0);
  // Human-readable differences from `from` to `to`, one line each ("+ route ...").
  std::vector<std::string> diff(int64_t from, int64_t to);
  // Deletes old versions in one transaction: all but the newest `keep` (keep > 0), or those
  // created more than `older_than_seconds` ago. Never the newest, one a running proxy records
  // (recordRunning), or one a kept rollback restored. `dry_run`: reports, deletes nothing.
  PruneResult prune(std::optional<int64_t> keep, std::optional<int64_t> older_than_seconds,
                    bool dry_run = false);
  // A proxy on this database says which version it runs now (and forgets it at exit).
  void recordRunning(int64_t version);
  void forgetRunning();
  // Recomputes the content hash of `version` from its rows; false with `error` on mismatch.
  bool verify(int64_t version, std::string& error);
  // What the source of a version a fleet node takes from its fleet starts with.
  static constexpr const char* kFleetSourcePrefix = "fleet:";
  // A proxy started with --fleet marks its database as following the fleet: from then on only
  // versions whose source starts with kFleetSourcePrefix are written (FleetMember otherwise), until
  // a proxy starts on it without --fleet (leaveFleet).
  void joinFleet(const FleetMembership& membership);
  // The fleet it left, if it followed one.
  std::optional<FleetMembership> leaveFleet();
  std::optional<FleetMembership> fleetMembership();
  // Changes whenever another connection commits to the database (PRAGMA data_version).
  int64_t dataVersion();

  // Lower-cased hostnames, explicit modes and listener names: the form rows round-trip to.
  static mcproxy::config::v1::Bootstrap normalize(const mcproxy::config::v1::Bootstrap& config);
  static void normalizeRoute(mcproxy::config::v1::Route& route);
  // The deterministic serialization of the normalized config: what the content hash hashes,
  // and what a fleet publishes.
  static std::string canonicalBytes(const mcproxy::config::v1::Bootstrap& config);
  // SHA-256 (hex) of canonicalBytes(config).
  static std::string contentHash(const mcproxy::config::v1::Bootstrap& config);

  Database& database() { return db_; }

 private:
  // The newest version, once checked that a write may follow it: FleetMember for a local
  // change to a fleet node's database, VersionConflict when it is not `built_on`.
  int64_t newestForWrite(const std::string& source, std::optional<int64_t> built_on);
  void insertSnapshotRow(int64_t version, const std::string& source, const std::string& hash,
                         const mcproxy::config::v1::Bootstrap& config, int64_t rollback_of,
                         int64_t route_count);
  // Every row of a version but its routes: clusters, listeners, firewalls, access logs,
  // modules, trusted sources.
  void writeVersionRows(int64_t version, const mcproxy::config::v1::Bootstrap& config);
  // The config's clusters and their endpoints (before the routes that name them).
  void writeClusters(int64_t version, const mcproxy::config::v1::Bootstrap& config);
  // The version's routes: rows for the routes that are new or changed since the newest version
  // (with their HTTP rows); the newest version's rows of routes this one changes or drops are
  // closed; unchanged routes share their rows.
  void writeRoutes(int64_t version, const mcproxy::config::v1::Bootstrap& config);
  void loadClusters(int64_t version, mcproxy::config::v1::Bootstrap& config);
  void writeFirewall(int64_t version, const std::string& listener,
                     const mcproxy::config::v1::Firewall& firewall);
  // (listener name, route hostname; '' for a default route)
  using RouteKey = std::pair<std::string, std::string>;
  void writeHttp(int64_t version, const std::string& listener,
                 const mcproxy::config::v1::Route& route);
  void loadHttp(int64_t version, const std::map<RouteKey, mcproxy::config::v1::Route*>& routes);
  void loadFirewalls(int64_t version, mcproxy::config::v1::Bootstrap& config,
                     const std::map<std::string, mcproxy::config::v1::Listener*>& listeners);

  Database db_;
  std::vector<int64_t> applied_migrations_;
};

}  // namespace mcproxy::snapshot

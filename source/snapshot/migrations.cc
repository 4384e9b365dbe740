#include "source/snapshot/migrations.h"

namespace mcproxy::snapshot {
namespace {

// Migration 1: the snapshot store. Each applied configuration is one immutable version; its
// listeners and routes are rows of that version. The constraints here are the ones the code
// relies on, so a row that breaks them cannot be written even by hand.
constexpr const char* kMigration1 = R"sql(
CREATE TABLE snapshots (
  version          INTEGER PRIMARY KEY CHECK (version > 0),
  created_at       TEXT    NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*Z'),
  source           TEXT    NOT NULL CHECK (source <> ''),
  content_hash     TEXT    NOT NULL CHECK (length(content_hash) = 64),
  drain_timeout_ms INTEGER NOT NULL DEFAULT 0 CHECK (drain_timeout_ms >= 0)
) STRICT;

CREATE TABLE listeners (
  snapshot_version INTEGER NOT NULL REFERENCES snapshots(version),
  position         INTEGER NOT NULL CHECK (position >= 0),
  name             TEXT    NOT NULL CHECK (name <> ''),
  -- "IPv4:port" or "[IPv6]:port" with a numeric port of at most 65535
  address          TEXT    NOT NULL CHECK (
                     (address GLOB '[0-9]*.[0-9]*.[0-9]*.[0-9]*:[0-9]*' OR address GLOB '[[]*[]]:[0-9]*')
                     AND rtrim(address, '0123456789') GLOB '*:'
                     AND length(rtrim(address, '0123456789')) < length(address)
                     AND length(address) - length(rtrim(address, '0123456789')) <= 5
                     AND CAST(substr(address, length(rtrim(address, '0123456789')) + 1) AS INTEGER) <= 65535),
  proxy_protocol   INTEGER NOT NULL DEFAULT 0 CHECK (proxy_protocol IN (0, 1)),
  backlog          INTEGER NOT NULL DEFAULT 0 CHECK (backlog >= 0),
  -- serialized mcproxy.config.v1.Listener holding only `filters`; NULL: the built-in chain
  filters          BLOB,
  PRIMARY KEY (snapshot_version, name),
  UNIQUE (snapshot_version, address),
  UNIQUE (snapshot_version, position)
) STRICT;

CREATE TABLE routes (
  snapshot_version       INTEGER NOT NULL,
  listener_name          TEXT    NOT NULL,
  position               INTEGER NOT NULL CHECK (position >= 0),
  -- lower case, so the primary key makes hostnames unique per listener whatever their case;
  -- '' is the listener's default route
  hostname               TEXT    NOT NULL CHECK (hostname = lower(hostname) AND hostname NOT GLOB '*[^a-z0-9._*-]*'),
  backend                TEXT    NOT NULL CHECK (backend GLOB '?*:[0-9]*'),
  mode                   TEXT    NOT NULL CHECK (mode IN ('l4', 'l7')),
  tls_cert               TEXT    NOT NULL DEFAULT '',
  tls_key                TEXT    NOT NULL DEFAULT '',
  backend_tls            INTEGER NOT NULL DEFAULT 0 CHECK (backend_tls IN (0, 1)),
  send_proxy_protocol    INTEGER NOT NULL DEFAULT 0 CHECK (send_proxy_protocol IN (0, 1)),
  proxy_protocol_version INTEGER NOT NULL DEFAULT 0 CHECK (proxy_protocol_version IN (0, 1, 2)),
  PRIMARY KEY (snapshot_version, listener_name, hostname),
  FOREIGN KEY (snapshot_version, listener_name) REFERENCES listeners(snapshot_version, name)
) STRICT;

-- Versions are immutable: rows are only ever added, and only to the newest version.
CREATE TRIGGER snapshots_no_update BEFORE UPDATE ON snapshots
  BEGIN SELECT RAISE(ABORT, 'snapshot versions are immutable'); END;
CREATE TRIGGER snapshots_no_delete BEFORE DELETE ON snapshots
  BEGIN SELECT RAISE(ABORT, 'snapshot versions are immutable'); END;
CREATE TRIGGER listeners_no_update BEFORE UPDATE ON listeners
  BEGIN SELECT RAISE(ABORT, 'snapshot versions are immutable'); END;
CREATE TRIGGER listeners_no_delete BEFORE DELETE ON listeners
  BEGIN SELECT RAISE(ABORT, 'snapshot versions are immutable'); END;
CREATE TRIGGER routes_no_update BEFORE UPDATE ON routes
  BEGIN SELECT RAISE(ABORT, 'snapshot versions are immutable'); END;
CREATE TRIGGER routes_no_delete BEFORE DELETE ON routes
  BEGIN SELECT RAISE(ABORT, 'snapshot versions are immutable'); END;
CREATE TRIGGER listeners_newest_only BEFORE INSERT ON listeners
  WHEN NEW.snapshot_version IS NOT (SELECT max(version) FROM snapshots)
  BEGIN SELECT RAISE(ABORT, 'rows can only be added to the newest snapshot version'); END;
CREATE TRIGGER routes_newest_only BEFORE INSERT ON routes
  WHEN NEW.snapshot_version IS NOT (SELECT max(version) FROM snapshots)
  BEGIN SELECT RAISE(ABORT, 'rows can only be added to the newest snapshot version'); END;
-- Foreign keys are enforced per connection (PRAGMA foreign_keys), and the sqlite3 shell leaves
-- them off; this trigger holds whoever writes.
CREATE TRIGGER routes_need_listener BEFORE INSERT ON routes
  WHEN NOT EXISTS (SELECT 1 FROM listeners
                   WHERE snapshot_version = NEW.snapshot_version AND name = NEW.listener_name)
  BEGIN SELECT RAISE(ABORT, 'a route must belong to a listener of its snapshot version'); END;
)sql";

// Migration 2: record which version a rollback restored, and look routes up by hostname
// across listeners and versions (the admin API's "where is a.test routed").
constexpr const char* kMigration2 = R"sql(
ALTER TABLE snapshots ADD COLUMN rollback_of INTEGER REFERENCES snapshots(version);
CREATE INDEX routes_by_hostname ON routes(hostname, snapshot_version);
)sql";

// Migration 3: the firewall (top-level, listener_name '', and per listener) and each PROXY
// listener's trusted sources.
constexpr const char* kMigration3 = R"sql(
CREATE TABLE firewall_rules (
  snapshot_version INTEGER NOT NULL REFERENCES snapshots(version),
  listener_name    TEXT    NOT NULL,  -- '' is the top-level firewall
  kind             TEXT    NOT NULL CHECK (kind IN ('ip', 'cidr', 'country')),
  value            TEXT    NOT NULL CHECK (
                     value <> ''
                     AND (kind <> 'country' OR value GLOB '[A-Z][A-Z]')
                     AND (kind = 'country' OR value NOT GLOB '*[^0-9a-fA-F:./]*')
                     AND (kind <> 'ip' OR value NOT GLOB '*/*')
                     AND (kind <> 'cidr' OR value GLOB '?*/[0-9]*')),
  position         INTEGER NOT NULL CHECK (position >= 0),
  PRIMARY KEY (snapshot_version, listener_name, kind, value)
) STRICT;

CREATE TABLE firewall_settings (
  snapshot_version INTEGER NOT NULL REFERENCES snapshots(version),
  listener_name    TEXT    NOT NULL,  -- '' is the top-level firewall
  geoip_db         TEXT    NOT NULL DEFAULT '',
  rate_connections INTEGER NOT NULL DEFAULT 0 CHECK (rate_connections >= 0),
  rate_per_seconds INTEGER NOT NULL DEFAULT 0 CHECK (rate_per_seconds BETWEEN 0 AND 86400),
  rate_max_tracked INTEGER NOT NULL DEFAULT 0 CHECK (rate_max_tracked BETWEEN 0 AND 16777216),
  PRIMARY KEY (snapshot_version, listener_name)
) STRICT;

CREATE TABLE trusted_sources (
  snapshot_version INTEGER NOT NULL,
  listener_name    TEXT    NOT NULL,
  position         INTEGER NOT NULL CHECK (position >= 0),
  cidr             TEXT    NOT NULL CHECK (cidr <> '' AND cidr NOT GLOB '*[^0-9a-fA-F:./]*'),
  PRIMARY KEY (snapshot_version, listener_name, position),
  FOREIGN KEY (snapshot_version, listener_name) REFERENCES listeners(snapshot_version, name)
) STRICT;
)sql";

// A trigger refusing every UPDATE (or DELETE) of `table`'s rows: versions are immutable.
std::string immutableTrigger(const std::string& table, const std::string& op) {
  return "CREATE TRIGGER " + table + "_no_" + (op == "UPDATE" ? "update" : "delete") + " BEFORE " +
         op + " ON " + table +
         " BEGIN SELECT RAISE(ABORT, 'snapshot versions are immutable'); END;\n";
}

// A trigger admitting rows only to the newest version.
std::string newestOnlyTrigger(const std::string& table) {
  return "CREATE TRIGGER " + table + "_newest_only BEFORE INSERT ON " + table +
         " WHEN NEW.snapshot_version IS NOT (SELECT max(version) FROM snapshots)"
         " BEGIN SELECT RAISE(ABORT, 'rows can only be added to the newest snapshot version');"
         " END;\n";
}

// Versions are immutable, and rows are only added to the newest version: the triggers of
// migration 1, for a table added later.
std::string immutableGuards(const std::string& table) {
  return immutableTrigger(table, "UPDATE") + immutableTrigger(table, "DELETE") +
         newestOnlyTrigger(table);
}

// The same guards as migration 1 for the tables of migration 3, generated per table.
std::string guards(const std::string& table, bool listener_may_be_global) {
  std::string sql = immutableGuards(table);
  sql += "CREATE TRIGGER " + table + "_need_listener BEFORE INSERT ON " + table + " WHEN " +
         (listener_may_be_global ? "NEW.listener_name <> '' AND " : "") +
         "NOT EXISTS (SELECT 1 FROM listeners WHERE snapshot_version = NEW.snapshot_version"
         " AND name = NEW.listener_name)"
         " BEGIN SELECT RAISE(ABORT, 'the listener does not exist in this snapshot version');"
         " END;\n";
  return sql;
}

// Migration 4: the CA bundle an L7 route verifies its TLS backend with.
constexpr const char* kMigration4 = R"sql(
ALTER TABLE routes ADD COLUMN backend_tls_ca TEXT NOT NULL DEFAULT '';
)sql";

// Migration 5: the protocol an L7 route speaks to its backend.
constexpr const char* kMigration5 = R"sql(
ALTER TABLE routes ADD COLUMN backend_protocol TEXT NOT NULL DEFAULT 'h2'
  CHECK (backend_protocol IN ('h2', 'http1'));
)sql";

// Migration 6: what an L7 route does with HTTP requests: its response timeout, its http_routes
// (with their header matches) and its HTTP filter chain.
constexpr const char* kMigration6 = R"sql(
ALTER TABLE routes ADD COLUMN timeout_ms INTEGER NOT NULL DEFAULT 0 CHECK (timeout_ms >= 0);

CREATE TABLE http_routes (
  snapshot_version INTEGER NOT NULL,
  listener_name    TEXT    NOT NULL,
  route_hostname   TEXT    NOT NULL,  -- '' is the listener's default route
  position         INTEGER NOT NULL CHECK (position >= 0),
  path_prefix      TEXT    NOT NULL DEFAULT '' CHECK (path_prefix = '' OR path_prefix GLOB '/*'),
  path_exact       TEXT    NOT NULL DEFAULT '' CHECK (path_exact = '' OR path_exact GLOB '/*'),
  backend          TEXT    NOT NULL CHECK (backend GLOB '?*:[0-9]*'),
  timeout_ms       INTEGER NOT NULL DEFAULT 0 CHECK (timeout_ms >= 0),
  CHECK (path_prefix = '' OR path_exact = ''),
  PRIMARY KEY (snapshot_version, listener_name, route_hostname, position),
  FOREIGN KEY (snapshot_version, listener_name, route_hostname)
    REFERENCES routes(snapshot_version, listener_name, hostname)
) STRICT;

CREATE TABLE http_route_headers (
  snapshot_version INTEGER NOT NULL,
  listener_name    TEXT    NOT NULL,
  route_hostname   TEXT    NOT NULL,
  route_position   INTEGER NOT NULL,
  position         INTEGER NOT NULL CHECK (position >= 0),
  name             TEXT    NOT NULL CHECK (name <> '' AND name = lower(name)),
  value            TEXT    NOT NULL DEFAULT '',  -- '' matches any value
  PRIMARY KEY (snapshot_version, listener_name, route_hostname, route_position, position),
  FOREIGN KEY (snapshot_version, listener_name, route_hostname, route_position)
    REFERENCES http_routes(snapshot_version, listener_name, route_hostname, position)
) STRICT;

CREATE TABLE http_filters (
  snapshot_version INTEGER NOT NULL,
  listener_name    TEXT    NOT NULL,
  route_hostname   TEXT    NOT NULL,
  position         INTEGER NOT NULL CHECK (position >= 0),
  name             TEXT    NOT NULL CHECK (name GLOB '?*.?*'),
  -- serialized google.protobuf.Any; NULL: the filter's defaults
  typed_config     BLOB,
  PRIMARY KEY (snapshot_version, listener_name, route_hostname, position),
  FOREIGN KEY (snapshot_version, listener_name, route_hostname)
    REFERENCES routes(snapshot_version, listener_name, hostname)
) STRICT;

-- HTTP settings belong to an L7 route of the same version, whoever writes.
CREATE TRIGGER http_routes_need_l7_route BEFORE INSERT ON http_routes
  WHEN NOT EXISTS (SELECT 1 FROM routes WHERE snapshot_version = NEW.snapshot_version
                   AND listener_name = NEW.listener_name AND hostname = NEW.route_hostname
                   AND mode = 'l7')
  BEGIN SELECT RAISE(ABORT, 'http_routes belong to an L7 route of their snapshot version'); END;
CREATE TRIGGER http_filters_need_l7_route BEFORE INSERT ON http_filters
  WHEN NOT EXISTS (SELECT 1 FROM routes WHERE snapshot_version = NEW.snapshot_version
                   AND listener_name = NEW.listener_name AND hostname = NEW.route_hostname
                   AND mode = 'l7')
  BEGIN SELECT RAISE(ABORT, 'http_filters belong to an L7 route of their snapshot version'); END;
CREATE TRIGGER http_route_headers_need_http_route BEFORE INSERT ON http_route_headers
  WHEN NOT EXISTS (SELECT 1 FROM http_routes WHERE snapshot_version = NEW.snapshot_version
                   AND listener_name = NEW.listener_name AND route_hostname = NEW.route_hostname
                   AND position = NEW.route_position)
  BEGIN SELECT RAISE(ABORT, 'a header match belongs to an http_routes entry'); END;
)sql";

// Migration 7: access logs, top level (listener_name '') and per listener. A row is the
// access_log setting present; an empty path in a listener's row turns the top-level one off.
constexpr const char* kMigration7 = R"sql(
CREATE TABLE access_logs (
  snapshot_version INTEGER NOT NULL REFERENCES snapshots(version),
  listener_name    TEXT    NOT NULL,  -- '' is the top-level access_log
  path             TEXT    NOT NULL,
  format           TEXT    NOT NULL CHECK (format IN ('json', 'text')),
  text_format      TEXT    NOT NULL DEFAULT '',
  CHECK ((format = 'text') = (text_format <> '') OR path = ''),
  PRIMARY KEY (snapshot_version, listener_name)
) STRICT;
)sql";

// Migration 8: plugin modules, in config order.
constexpr const char* kMigration8 = R"sql(
CREATE TABLE modules (
  snapshot_version INTEGER NOT NULL REFERENCES snapshots(version),
  position         INTEGER NOT NULL CHECK (position >= 0),
  name             TEXT    NOT NULL CHECK (name <> '' AND name NOT GLOB '*[^a-z0-9_]*'),
  path             TEXT    NOT NULL CHECK (path <> ''),
  sha256           TEXT    NOT NULL DEFAULT ''
                   CHECK (sha256 = '' OR (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-fA-F]*')),
  PRIMARY KEY (snapshot_version, name),
  UNIQUE (snapshot_version, position)
) STRICT;
)sql";

// Rows of `table` are deleted only with their whole version, by a prune (migration 9).
std::string pruneOnlyDelete(const std::string& table) {
  const char* column = table == "snapshots" ? "version" : "snapshot_version";
  return "CREATE TRIGGER " + table + "_no_delete BEFORE DELETE ON " + table +
         " WHEN NOT EXISTS (SELECT 1 FROM pruning WHERE version = OLD." + column +
         ") BEGIN SELECT RAISE(ABORT, 'snapshot versions are immutable (only a prune deletes"
         " a whole version)'); END;\n";
}

// The guards of a table added after migration 9: rows are never updated, deleted only by a
// prune, and only added to the newest version.
std::string versionedGuards(const std::string& table) {
  return immutableTrigger(table, "UPDATE") + pruneOnlyDelete(table) + newestOnlyTrigger(table);
}

// Migration 9: retention. Versions stay immutable, but whole old versions may go: a version's
// rows can be deleted only while it is listed in `pruning`, which SnapshotStore::prune() fills
// and empties inside its one transaction. Running proxies record the version they run, so a
// prune keeps it.
std::string migration9() {
  std::string sql = R"sql(
CREATE TABLE pruning (version INTEGER PRIMARY KEY) STRICT;
CREATE TABLE proxy_instances (
  instance   TEXT    PRIMARY KEY CHECK (instance <> ''),
  host       TEXT    NOT NULL,
  pid        INTEGER NOT NULL CHECK (pid > 0),
  version    INTEGER NOT NULL CHECK (version > 0),
  updated_at TEXT    NOT NULL
) STRICT;
)sql";
  for (const char* table : {"snapshots", "listeners", "routes", "firewall_rules",
                            "firewall_settings", "trusted_sources", "http_routes",
                            "http_route_headers", "http_filters", "access_logs", "modules"}) {
    sql += "DROP TRIGGER " + std::string(table) + "_no_delete;\n";
    sql += pruneOnlyDelete(table);
  }
  return sql;
}

// Migration 10: a listener's TLS policy; a route's mutual TLS, OCSP staple and upgrade switch.
constexpr const char* kMigration10 = R"sql(
ALTER TABLE listeners ADD COLUMN tls_min_version TEXT NOT NULL DEFAULT ''
  CHECK (tls_min_version IN ('', 'TLSv1_0', 'TLSv1_1', 'TLSv1_2', 'TLSv1_3'));
ALTER TABLE listeners ADD COLUMN tls_max_version TEXT NOT NULL DEFAULT ''
  CHECK (tls_max_version IN ('', 'TLSv1_0', 'TLSv1_1', 'TLSv1_2', 'TLSv1_3'));
-- Colon-separated, in order of preference ('' is the built-in list).
ALTER TABLE listeners ADD COLUMN tls_cipher_suites TEXT NOT NULL DEFAULT ''
  CHECK (tls_cipher_suites NOT GLOB '*[ ,]*');
ALTER TABLE listeners ADD COLUMN tls_groups TEXT NOT NULL DEFAULT ''
  CHECK (tls_groups NOT GLOB '*[ ,]*');
ALTER TABLE routes ADD COLUMN client_ca TEXT NOT NULL DEFAULT '';
ALTER TABLE routes ADD COLUMN client_cert TEXT NOT NULL DEFAULT ''
  CHECK (client_cert IN ('', 'required', 'optional'));
ALTER TABLE routes ADD COLUMN ocsp_response TEXT NOT NULL DEFAULT '';
-- NULL: unset (upgrades allowed).
ALTER TABLE routes ADD COLUMN allow_upgrades INTEGER CHECK (allow_upgrades IN (0, 1));
)sql";

// Migration 11: clusters. A route or http_routes entry names either a backend or a cluster, so
// their `backend` CHECK must admit ''; SQLite cannot alter a CHECK, so both tables are rebuilt
// (their rows, indexes and triggers kept) before the new columns are added.
constexpr const char* kMigration11 = R"sql(
CREATE TABLE clusters (
  snapshot_version       INTEGER NOT NULL REFERENCES snapshots(version),
  position               INTEGER NOT NULL CHECK (position >= 0),
  name                   TEXT    NOT NULL CHECK (name <> '' AND name NOT GLOB '*[^A-Za-z0-9_.-]*'),
  lb_policy              TEXT    NOT NULL CHECK (lb_policy IN ('round_robin', 'least_request', 'ring_hash', 'random')),
  connect_timeout_ms     INTEGER NOT NULL DEFAULT 0 CHECK (connect_timeout_ms >= 0),
  backend_tls            INTEGER NOT NULL DEFAULT 0 CHECK (backend_tls IN (0, 1)),
  backend_tls_ca         TEXT    NOT NULL DEFAULT '',
  backend_protocol       TEXT    NOT NULL DEFAULT 'h2' CHECK (backend_protocol IN ('h2', 'http1')),
  send_proxy_protocol    INTEGER NOT NULL DEFAULT 0 CHECK (send_proxy_protocol IN (0, 1)),
  proxy_protocol_version INTEGER NOT NULL DEFAULT 0 CHECK (proxy_protocol_version IN (0, 1, 2)),
  dns_refresh_ms         INTEGER NOT NULL DEFAULT 0 CHECK (dns_refresh_ms >= 0),
  max_connect_attempts   INTEGER NOT NULL DEFAULT 0 CHECK (max_connect_attempts >= 0),
  max_request_attempts   INTEGER NOT NULL DEFAULT 0 CHECK (max_request_attempts >= 0),
  retry_budget_percent   INTEGER NOT NULL DEFAULT 0 CHECK (retry_budget_percent BETWEEN 0 AND 100),
  -- '' : no active health check
  check_kind             TEXT    NOT NULL DEFAULT '' CHECK (check_kind IN ('', 'tcp', 'tls', 'http', 'grpc')),
  check_interval_ms      INTEGER NOT NULL DEFAULT 0 CHECK (check_interval_ms >= 0),
  check_timeout_ms       INTEGER NOT NULL DEFAULT 0 CHECK (check_timeout_ms >= 0),
  check_unhealthy_threshold INTEGER NOT NULL DEFAULT 0 CHECK (check_unhealthy_threshold >= 0),
  check_healthy_threshold   INTEGER NOT NULL DEFAULT 0 CHECK (check_healthy_threshold >= 0),
  check_http_path        TEXT    NOT NULL DEFAULT '' CHECK (check_http_path = '' OR check_http_path GLOB '/*'),
  check_expected_status  INTEGER NOT NULL DEFAULT 0 CHECK (check_expected_status = 0 OR check_expected_status BETWEEN 100 AND 599),
  check_grpc_service     TEXT    NOT NULL DEFAULT '',
  outlier_consecutive_failures INTEGER NOT NULL DEFAULT 0 CHECK (outlier_consecutive_failures >= 0),
  outlier_base_ejection_ms     INTEGER NOT NULL DEFAULT 0 CHECK (outlier_base_ejection_ms >= 0),
  outlier_max_ejection_percent INTEGER NOT NULL DEFAULT 0 CHECK (outlier_max_ejection_percent BETWEEN 0 AND 100),
  -- HTTP settings belong to an HTTP check, the gRPC service to a gRPC one
  CHECK (check_kind = 'http' OR (check_http_path = '' AND check_expected_status = 0)),
  CHECK (check_kind = 'grpc' OR check_grpc_service = ''),
  PRIMARY KEY (snapshot_version, name),
  UNIQUE (snapshot_version, position)
) STRICT;

CREATE TABLE cluster_endpoints (
  snapshot_version INTEGER NOT NULL,
  cluster_name     TEXT    NOT NULL,
  position         INTEGER NOT NULL CHECK (position >= 0),
  address          TEXT    NOT NULL CHECK (address GLOB '?*:[0-9]*'),
  -- 0 is a drained endpoint (no new traffic); configs say so explicitly
  weight           INTEGER NOT NULL DEFAULT 1 CHECK (weight BETWEEN 0 AND 10000),
  PRIMARY KEY (snapshot_version, cluster_name, position),
  UNIQUE (snapshot_version, cluster_name, address),
  FOREIGN KEY (snapshot_version, cluster_name) REFERENCES clusters(snapshot_version, name)
) STRICT;

CREATE TRIGGER cluster_endpoints_need_cluster BEFORE INSERT ON cluster_endpoints
  WHEN NOT EXISTS (SELECT 1 FROM clusters WHERE snapshot_version = NEW.snapshot_version
                   AND name = NEW.cluster_name)
  BEGIN SELECT RAISE(ABORT, 'an endpoint belongs to a cluster of its snapshot version'); END;
)sql";

// After the rebuild: a route or entry names exactly one of backend and cluster, and the cluster
// exists in its version.
constexpr const char* kMigration11Columns = R"sql(
ALTER TABLE routes ADD COLUMN cluster TEXT NOT NULL DEFAULT ''
  CHECK (cluster NOT GLOB '*[^A-Za-z0-9_.-]*' AND (cluster = '') <> (backend = ''));
ALTER TABLE http_routes ADD COLUMN cluster TEXT NOT NULL DEFAULT ''
  CHECK (cluster NOT GLOB '*[^A-Za-z0-9_.-]*' AND (cluster = '') <> (backend = ''));
CREATE TRIGGER routes_need_cluster BEFORE INSERT ON routes
  WHEN NEW.cluster <> '' AND NOT EXISTS (SELECT 1 FROM clusters
       WHERE snapshot_version = NEW.snapshot_version AND name = NEW.cluster)
  BEGIN SELECT RAISE(ABORT, 'the cluster does not exist in this snapshot version'); END;
CREATE TRIGGER http_routes_need_cluster BEFORE INSERT ON http_routes
  WHEN NEW.cluster <> '' AND NOT EXISTS (SELECT 1 FROM clusters
       WHERE snapshot_version = NEW.snapshot_version AND name = NEW.cluster)
  BEGIN SELECT RAISE(ABORT, 'the cluster does not exist in this snapshot version'); END;
)sql";

// Rebuilds `table` with `from` replaced by `to` in its CREATE statement: a new table, the rows
// copied, the old one dropped, the new one renamed, its indexes and triggers made again.
void rebuildTable(Database& db, const std::string& table, const std::string& from,
                  const std::string& to) {
  // Statements are finished before the DROP (SQLite refuses to drop a table being read).
  std::string sql;
  {
    Statement create =
        db.prepare("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1");
    create.bind(1, table);
    if (!create.step()) throw StoreError("migration: table " + table + " does not exist");
    sql = create.text(0);
  }
  const size_t at = sql.find(from);
  if (at == std::string::npos) {
    throw StoreError("migration: table " + table + " does not have " + from);
  }
  sql.replace(at, from.size(), to);
  // A table renamed by an earlier rebuild has its name quoted in the schema.
  std::string head = "CREATE TABLE " + table;
  if (sql.rfind(head, 0) != 0) head = "CREATE TABLE \"" + table + "\"";
  if (sql.rfind(head, 0) != 0) throw StoreError("migration: unexpected schema of " + table);
  sql.replace(0, head.size(), "CREATE TABLE " + table + "_rebuilt");
  std::vector<std::string> dependents;
  {
    Statement others = db.prepare(
        "SELECT sql FROM sqlite_schema WHERE tbl_name = ?1 AND type IN ('index', 'trigger')"
        " AND sql IS NOT NULL ORDER BY rowid");
    others.bind(1, table);
    while (others.step()) dependents.push_back(others.text(0));
  }
  db.exec(sql);
  db.exec("INSERT INTO " + table + "_rebuilt SELECT * FROM " + table);
  db.exec("DROP TABLE " + table);
  // Triggers of other tables name this one; with the modern rename they would be checked
  // (and fail) while it is missing.
  db.exec("PRAGMA legacy_alter_table = ON");
  db.exec("ALTER TABLE " + table + "_rebuilt RENAME TO " + table);
  db.exec("PRAGMA legacy_alter_table = OFF");
  for (const std::string& dependent : dependents) db.exec(dependent);
}

void migration11(Database& db) {
  const std::string check = "CHECK (backend GLOB '?*:[0-9]*')";
  const std::string relaxed = "CHECK (backend = '' OR backend GLOB '?*:[0-9]*')";
  rebuildTable(db, "routes", check, relaxed);
  rebuildTable(db, "http_routes", check, relaxed);
  db.exec(kMigration11Columns);
}

// Migration 12: a database that follows a fleet (mc-proxy --fleet) takes versions from the
// fleet only. The one row says which fleet; a version whose source is not "fleet:..." is
// refused while it is there (SnapshotStore::write says so first, with the fleet's name).
constexpr const char* kMigration12 = R"sql(
CREATE TABLE fleet_membership (
  id      INTEGER PRIMARY KEY CHECK (id = 1),
  fleet   TEXT    NOT NULL CHECK (fleet <> ''),
  etcd    TEXT    NOT NULL,
  node_id TEXT    NOT NULL CHECK (node_id <> ''),
  since   TEXT    NOT NULL
) STRICT;
CREATE TRIGGER snapshots_fleet_only BEFORE INSERT ON snapshots
  WHEN EXISTS (SELECT 1 FROM fleet_membership) AND NEW.source NOT LIKE 'fleet:%'
BEGIN
  SELECT RAISE(ABORT, 'this database follows a fleet: versions come from the fleet only');
END;
)sql";

// Migration 13: versions share the route rows they do not change. A route row is written once,
// by the version that added or changed it (snapshot_version), and stays valid in every later
// version until one removes or changes it: that version closes it (until_version), the only
// update a row ever gets. A version's routes are the rows valid at it; a one-route change writes
// one row instead of every route. content_hash (of the route's canonical bytes with its HTTP
// settings) tells an unchanged route from a changed one. Rows of a route now outlive their
// version's listener rows (a prune may delete those), so the route's foreign key to its listener
// becomes an insert-time trigger, which it already was for the sqlite3 shell.
constexpr const char* kMigration13 = R"sql(
ALTER TABLE routes ADD COLUMN until_version INTEGER
  CHECK (until_version IS NULL OR until_version > snapshot_version);
-- The first 16 bytes of the SHA-256: it only tells versions of one route apart.
ALTER TABLE routes ADD COLUMN content_hash BLOB
  CHECK (content_hash IS NULL OR (typeof(content_hash) = 'blob' AND length(content_hash) = 16));
-- The routes valid at the version (those rows are no longer all its own); NULL for versions
-- written before this migration, whose rows are all their own.
ALTER TABLE snapshots ADD COLUMN route_count INTEGER CHECK (route_count IS NULL OR route_count >= 0);
DROP TRIGGER routes_no_update;
DROP TRIGGER routes_no_delete;
-- Every version written so far holds all its routes: its rows are valid at it alone.
UPDATE routes SET until_version = snapshot_version + 1
  WHERE snapshot_version < (SELECT max(version) FROM snapshots);
CREATE TRIGGER routes_no_update BEFORE UPDATE OF snapshot_version, listener_name, position,
  hostname, backend, mode, tls_cert, tls_key, backend_tls, send_proxy_protocol,
  proxy_protocol_version, backend_tls_ca, backend_protocol, timeout_ms, client_ca, client_cert,
  ocsp_response, allow_upgrades, cluster, content_hash ON routes
  BEGIN SELECT RAISE(ABORT, 'snapshot versions are immutable'); END;
CREATE TRIGGER routes_closed_once BEFORE UPDATE OF until_version ON routes
  WHEN OLD.until_version IS NOT NULL OR NEW.until_version IS NOT (SELECT max(version) FROM snapshots)
  BEGIN SELECT RAISE(ABORT, 'a route row is closed once, by the newest snapshot version'); END;
CREATE TRIGGER routes_no_delete BEFORE DELETE ON routes
  WHEN NOT EXISTS (SELECT 1 FROM pruning WHERE version = OLD.snapshot_version)
    OR EXISTS (SELECT 1 FROM snapshots WHERE version >= OLD.snapshot_version
               AND (OLD.until_version IS NULL OR version < OLD.until_version)
               AND version NOT IN (SELECT version FROM pruning))
  BEGIN SELECT RAISE(ABORT, 'snapshot versions are immutable (a prune deletes only rows no kept version uses)'); END;
-- The newest version's routes, in order (a start, a reload, the next write).
CREATE INDEX routes_open ON routes(listener_name, position) WHERE until_version IS NULL;
)sql";

// A route's HTTP rows live and go with its route row: a prune may not take them from a row a
// kept version still uses.
std::string routeChildDeleteGuard(const std::string& table) {
  return "DROP TRIGGER " + table + "_no_delete;\nCREATE TRIGGER " + table +
         "_no_delete BEFORE DELETE ON " + table +
         " WHEN NOT EXISTS (SELECT 1 FROM pruning WHERE version = OLD.snapshot_version)"
         " OR EXISTS (SELECT 1 FROM routes r, snapshots s WHERE r.snapshot_version ="
         " OLD.snapshot_version AND r.listener_name = OLD.listener_name AND r.hostname ="
         " OLD.route_hostname AND s.version >= r.snapshot_version AND (r.until_version IS NULL"
         " OR s.version < r.until_version) AND s.version NOT IN (SELECT version FROM pruning))"
         " BEGIN SELECT RAISE(ABORT, 'snapshot versions are immutable (a prune deletes only rows"
         " no kept version uses)'); END;\n";
}

void migration13(Database& db) {
  rebuildTable(db, "routes",
               ",\n  FOREIGN KEY (snapshot_version, listener_name) REFERENCES "
               "listeners(snapshot_version, name)",
               "");
  db.exec(kMigration13);
  for (const char* table : {"http_routes", "http_route_headers", "http_filters"}) {
    db.exec(routeChildDeleteGuard(table));
  }
}

}  // namespace

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> all = {
      {1, "snapshot store: snapshots, listeners, routes", kMigration1},
      {2, "snapshots.rollback_of, routes_by_hostname index", kMigration2},
      {3, "firewall_rules, firewall_settings, trusted_sources",
       kMigration3 + guards("firewall_rules", true) + guards("firewall_settings", true) +
           guards("trusted_sources", false)},
      {4, "routes.backend_tls_ca", kMigration4},
      {5, "routes.backend_protocol", kMigration5},
      {6, "routes.timeout_ms, http_routes, http_route_headers, http_filters",
       kMigration6 + immutableGuards("http_routes") + immutableGuards("http_route_headers") +
           immutableGuards("http_filters")},
      {7, "access_logs", kMigration7 + guards("access_logs", true)},
      {8, "modules", kMigration8 + immutableGuards("modules")},
      {9, "pruning, proxy_instances: retention of old versions", migration9()},
      {10, "listeners.tls_*, routes.client_ca, client_cert, ocsp_response, allow_upgrades",
       kMigration10},
      {11, "clusters, cluster_endpoints, routes.cluster, http_routes.cluster",
       kMigration11 + versionedGuards("clusters") + versionedGuards("cluster_endpoints"),
       migration11},
      {12, "fleet_membership: a database that follows a fleet", kMigration12},
      {13, "routes.until_version, content_hash: versions share unchanged route rows", "",
       migration13},
  };
  return all;
}

int64_t latestSchemaVersion() { return migrations().back().version; }

int64_t schemaVersion(Database& db) {
  db.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations ("
      " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT");
  return db.queryInt("SELECT coalesce(max(version), 0) FROM schema_migrations");
}

std::vector<int64_t> migrate(Database& db, int64_t target) {
  if (target == 0) target = latestSchemaVersion();
  if (target > latestSchemaVersion()) {
    throw StoreError("schema version " + std::to_string(target) + " does not exist (latest is " +
                     std::to_string(latestSchemaVersion()) + ")");
  }
  std::vector<int64_t> applied;
  for (const Migration& migration : migrations()) {
    if (migration.version > target) break;
    // Foreign keys can only be switched outside a transaction; a rebuilt parent table would
    // otherwise fail them while it is dropped.
    struct ForeignKeysOff {
      Database& db;
      bool on;
      ~ForeignKeysOff() {
        if (on) db.exec("PRAGMA foreign_keys = ON");
      }
    } foreign_keys{db, migration.code != nullptr};
    if (foreign_keys.on) db.exec("PRAGMA foreign_keys = OFF");
    Transaction transaction(db);
    // Re-read inside the transaction: another process may have migrated meanwhile.
    const int64_t current = schemaVersion(db);
    if (current > latestSchemaVersion()) {
      throw StoreError(db.path() + " has schema version " + std::to_string(current) +
                       ", newer than this binary knows (" + std::to_string(latestSchemaVersion()) +
                       "); use a newer mc-proxy");
    }
    if (migration.version <= current) continue;
    db.exec(migration.sql);
    if (migration.code != nullptr) {
      migration.code(db);
      if (db.queryInt("SELECT count(*) FROM pragma_foreign_key_check") != 0) {
        throw StoreError("migration " + std::to_string(migration.version) +
                         " would break foreign keys; nothing was changed");
      }
    }
    db.prepare(
          "INSERT INTO schema_migrations (version, description, applied_at)"
          " VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))")
        .bind(1, migration.version)
        .bind(2, migration.description)
        .run();
    transaction.commit();
    applied.push_back(migration.version);
  }
  return applied;
}

}  // namespace mcproxy::snapshot

#include "source/snapshot/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "source/snapshot/config_loader.h"
#include "source/snapshot/migrations.h"

namespace mcproxy::snapshot {
namespace {

using mcproxy::config::v1::Bootstrap;

std::string tempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path =
      std::string(dir ? dir : "/tmp") + "/" + name + "-" + std::to_string(::getpid()) + ".db";
  ::unlink(path.c_str());
  ::unlink((path + "-wal").c_str());
  ::unlink((path + "-shm").c_str());
  return path;
}

Bootstrap config(const std::string& text) { return parseTextConfig(text, "test"); }

const char* kConfigA = R"(
  drain_timeout_ms: 5000
  listeners { name: "edge" address: "127.0.0.1:8443"
    routes { hostname: "A.Test" backend: "127.0.0.1:9001" }
    routes { hostname: "*.b.test" backend: "127.0.0.1:9002" mode: L4 }
    default_route { backend: "127.0.0.1:9000" }
    filters { name: "mcproxy.filters.network.tls_inspector" }
  }
  listeners { address: "[::1]:8443" routes { hostname: "v6.test" backend: "[::1]:9001" } })";

// A raw connection like the sqlite3 shell's: foreign keys off, no help from our code.
class RawConnection {
 public:
  explicit RawConnection(const std::string& path) { sqlite3_open(path.c_str(), &db_); }
  ~RawConnection() { sqlite3_close(db_); }
  // Returns "" on success, else SQLite's message.
  std::string exec(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) == SQLITE_OK) return "";
    std::string text = message ? message : "error";
    sqlite3_free(message);
    return text;
  }

 private:
  sqlite3* db_ = nullptr;
};

// Writes `text` as the next version and checks it reads back with the same content hash and
// verifies; returns what was read.
Bootstrap writeAndReload(SnapshotStore& store, const std::string& text) {
  const auto written = store.write(config(text), "test");
  const Bootstrap loaded = store.load(written.version).config;
  EXPECT_EQ(SnapshotStore::contentHash(loaded), SnapshotStore::contentHash(config(text)));
  std::string error;
  EXPECT_TRUE(store.verify(written.version, error)) << error;
  return loaded;
}

// Writes `text` with each (from, to) replaced, as the next version; returns the diff from the
// version before.
std::vector<std::string> diffAfterEdits(
    SnapshotStore& store, std::string text,
    const std::vector<std::pair<std::string, std::string>>& edits) {
  for (const auto& [from, to] : edits) text.replace(text.find(from), from.size(), to);
  const int64_t before = store.latestVersion();
  store.write(config(text), "edit");
  return store.diff(before, store.latestVersion());
}

// Version 1 with listener "old", written by hand into a database of an older schema.
void seedVersionOne(Database& db) {
  db.exec(
      "INSERT INTO snapshots (version, created_at, source, content_hash) VALUES"
      " (1, '2026-01-01T00:00:00Z', 'hand', '" +
      std::string(64, '0') + "')");
  db.exec(
      "INSERT INTO listeners (snapshot_version, position, name, address) VALUES"
      " (1, 0, 'old', '127.0.0.1:8443')");
}

TEST(SnapshotStoreTest, RoundTripIsNormalizedAndHashStable) {
  SnapshotStore store(tempPath("roundtrip"));
  EXPECT_EQ(store.latestVersion(), 0);
  EXPECT_FALSE(store.loadLatest());
  const auto written = store.write(config(kConfigA), "file:a");
  EXPECT_EQ(written.version, 1);
  EXPECT_TRUE(written.created);

  const StoredSnapshot loaded = store.load(1);
  EXPECT_EQ(loaded.info.source, "file:a");
  EXPECT_EQ(loaded.info.listeners, 2);
  EXPECT_EQ(loaded.info.routes, 4);  // the default route is a row too
  EXPECT_EQ(loaded.config.drain_timeout_ms(), 5000u);
  ASSERT_EQ(loaded.config.listeners_size(), 2);
  const auto& edge = loaded.config.listeners(0);
  EXPECT_EQ(edge.routes(0).hostname(), "a.test");
  EXPECT_EQ(edge.routes(1).hostname(), "*.b.test");
  EXPECT_EQ(edge.default_route().backend(), "127.0.0.1:9000");
  EXPECT_EQ(edge.filters_size(), 1);
  EXPECT_EQ(loaded.config.listeners(1).name(), "[::1]:8443");  // defaulted to the address
  EXPECT_EQ(loaded.info.content_hash, SnapshotStore::contentHash(config(kConfigA)));
  std::string error;
  EXPECT_TRUE(store.verify(1, error)) << error;
}

TEST(SnapshotStoreTest, UnchangedConfigWritesNothing) {
  SnapshotStore store(tempPath("unchanged"));
  store.write(config(kConfigA), "first");
  const auto again = store.write(config(kConfigA), "second");
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.version, 1);
  EXPECT_EQ(store.history().size(), 1u);
}

TEST(SnapshotStoreTest, AChangeBuiltOnAnOlderVersionIsRefusedAndWritesNothing) {
  SnapshotStore store(tempPath("compare-and-set"));
  const Bootstrap one = config(R"(listeners { address: "127.0.0.1:8443"
      routes { hostname: "a.test" backend: "127.0.0.1:9001" } })");
  const Bootstrap two = config(R"(listeners { address: "127.0.0.1:8443"
      routes { hostname: "b.test" backend: "127.0.0.1:9002" } })");
  EXPECT_EQ(store.write(one, "first", 0, /*built_on=*/0).version, 1);
  EXPECT_EQ(store.write(two, "second", 0, /*built_on=*/1).version, 2);
  // Built on version 1, which is no longer the newest: refused, nothing written.
  EXPECT_THROW(store.write(one, "stale", 0, /*built_on=*/1), VersionConflict);
  EXPECT_EQ(store.latestVersion(), 2);
  EXPECT_EQ(store.history().size(), 2u);
  // Without built_on (a whole config from a file): written on whatever is newest.
  EXPECT_EQ(store.write(one, "file", 0).version, 3);
}

TEST(SnapshotStoreTest, HistoryDiffAndRollback) {
  SnapshotStore store(tempPath("history"));
  store.write(config(kConfigA), "a");
  std::string changed = kConfigA;
  changed.replace(changed.find("9001"), 4, "9011");
  changed.replace(
      changed.find(R"(routes { hostname: "*.b.test" backend: "127.0.0.1:9002" mode: L4 })"), 66,
      R"(routes { hostname: "c.test" backend: "127.0.0.1:9003" })");
  store.write(config(changed), "b");
  const auto diff = store.diff(1, 2);
  ASSERT_EQ(diff.size(), 3u);
  EXPECT_EQ(diff[0], "- route edge *.b.test -> 127.0.0.1:9002 (l4)");
  EXPECT_EQ(diff[1],
            "~ route edge a.test -> 127.0.0.1:9001 (l4)  =>  a.test -> 127.0.0.1:9011 (l4)");
  EXPECT_EQ(diff[2], "+ route edge c.test -> 127.0.0.1:9003 (l4)");
  EXPECT_TRUE(store.diff(2, 2).empty());

  const auto rolled = store.rollback(1);
  EXPECT_EQ(rolled.version, 3);
  const auto history = store.history();
  ASSERT_EQ(history.size(), 3u);
  EXPECT_EQ(history[0].version, 3);
  EXPECT_EQ(history[0].rollback_of, 1);
  EXPECT_EQ(history[0].content_hash, history[2].content_hash);
  EXPECT_TRUE(store.diff(1, 3).empty());
  EXPECT_THROW(store.load(42), StoreError);
}

TEST(SnapshotStoreTest, SchemaRefusesBadRowsEvenFromARawConnection) {
  const std::string path = tempPath("schema");
  {
    SnapshotStore store(path);
    store.write(config(kConfigA), "a");
    store.write(config(R"(listeners { name: "edge" address: "127.0.0.1:1" })"), "b");
  }
  RawConnection raw(path);
  auto route = [](const std::string& values) {
    return "INSERT INTO routes (snapshot_version, listener_name, position, hostname, backend,"
           " mode) VALUES (" +
           values + ")";
  };
  // The row that is fine, to show the others fail for their own reason.
  EXPECT_EQ(raw.exec(route("2, 'edge', 0, 'ok.test', '127.0.0.1:1', 'l4'")), "");
  EXPECT_NE(raw.exec(route("2, 'edge', 1, 'm.test', '127.0.0.1:1', 'l5'")).find("CHECK"),
            std::string::npos);
  EXPECT_NE(raw.exec(route("2, 'edge', 2, 'ok.test', '127.0.0.1:2', 'l4'")).find("UNIQUE"),
            std::string::npos);
  EXPECT_NE(raw.exec(route("2, 'edge', 3, 'Upper.test', '127.0.0.1:1', 'l4'")).find("CHECK"),
            std::string::npos);
  EXPECT_NE(raw.exec(route("2, 'edge', 4, 'x.test', '', 'l4'")).find("CHECK"), std::string::npos);
  EXPECT_NE(raw.exec(route("2, 'ghost', 5, 'x.test', '127.0.0.1:1', 'l4'")).find("listener"),
            std::string::npos);
  EXPECT_NE(raw.exec(route("1, 'edge', 6, 'old.test', '127.0.0.1:1', 'l4'")).find("newest"),
            std::string::npos);
  EXPECT_NE(raw.exec("UPDATE routes SET backend = '10.0.0.1:1'").find("immutable"),
            std::string::npos);
  EXPECT_NE(raw.exec("DELETE FROM routes").find("immutable"), std::string::npos);
  EXPECT_NE(raw.exec("DELETE FROM snapshots WHERE version = 1").find("immutable"),
            std::string::npos);
  EXPECT_NE(raw.exec("UPDATE snapshots SET source = 'x'").find("immutable"), std::string::npos);
  auto listener = [](const std::string& address) {
    return "INSERT INTO listeners (snapshot_version, position, name, address) VALUES (2, 9, 'l" +
           std::to_string(address.size()) + "', '" + address + "')";
  };
  for (const char* bad : {"localhost:80", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999",
                          "127.0.0.1:123456", "127.0.0.1:8x", "::1:80", ""}) {
    EXPECT_NE(raw.exec(listener(bad)), "") << bad;
  }
  EXPECT_EQ(raw.exec(listener("[::1]:80")), "");
  EXPECT_NE(raw.exec("INSERT INTO listeners (snapshot_version, position, name, address)"
                     " VALUES (2, 10, 'n', NULL)"),
            "");
  EXPECT_NE(raw.exec("INSERT INTO snapshots (version, created_at, source, content_hash)"
                     " VALUES (3, 'yesterday', 's', '" +
                     std::string(64, 'a') + "')"),
            "");
}

TEST(SnapshotStoreTest, FailedWriteLeavesTheDatabaseAsItWas) {
  const std::string path = tempPath("atomic");
  SnapshotStore store(path);
  store.write(config(kConfigA), "a");
  // Second listener breaks a schema rule after the first listener's rows went in.
  Bootstrap broken = config(R"(
    listeners { name: "one" address: "127.0.0.1:1" routes { hostname: "a.test" backend: "127.0.0.1:2" } }
    listeners { name: "two" address: "not-an-address" })");
  EXPECT_THROW(store.write(broken, "broken"), StoreError);
  EXPECT_EQ(store.latestVersion(), 1);
  RawConnection raw(path);
  EXPECT_EQ(store.database().queryInt("SELECT count(*) FROM listeners WHERE name = 'one'"), 0);
  EXPECT_EQ(store.database().queryInt("SELECT count(*) FROM routes"), 4);
}

TEST(SnapshotStoreTest, OldSchemaUpgradesAndKeepsItsData) {
  const std::string path = tempPath("upgrade");
  {
    Database db(path);
    EXPECT_EQ(migrate(db, 1), std::vector<int64_t>{1});
    EXPECT_EQ(schemaVersion(db), 1);
    seedVersionOne(db);
    db.exec(
        "INSERT INTO routes (snapshot_version, listener_name, position, hostname, backend,"
        " mode) VALUES (1, 'old', 0, 'a.test', '127.0.0.1:9001', 'l4')");
  }
  SnapshotStore store(path);  // upgrades
  EXPECT_EQ(schemaVersion(store.database()), latestSchemaVersion());
  EXPECT_EQ(store.database().queryInt("SELECT count(*) FROM schema_migrations"),
            latestSchemaVersion());
  const auto loaded = store.load(1);
  EXPECT_EQ(loaded.config.listeners(0).routes(0).backend(), "127.0.0.1:9001");
  EXPECT_EQ(loaded.info.rollback_of, 0);  // the column migration 2 added
  EXPECT_EQ(store.rollback(1).version, 2);
}

TEST(SnapshotStoreTest, FirewallAndTrustedSourcesRoundTrip) {
  const std::string path = tempPath("firewall");
  SnapshotStore store(path);
  const char* text = R"(
    firewall { blocked_ips: "192.0.2.1" blocked_ips: "192.0.2.1" blocked_cidrs: "10.0.0.0/8"
               blocked_countries: "NL" geoip_db: "/tmp/x.mmdb"
               rate_limit { connections: 5 per_seconds: 2 } }
    listeners { name: "edge" address: "127.0.0.1:1" proxy_protocol: true
      trusted_sources: "127.0.0.0/8" trusted_sources: "::1/128"
      firewall { blocked_cidrs: "2001:db8::/32" } })";
  store.write(config(text), "a");
  const auto loaded = store.load(1);
  EXPECT_EQ(loaded.config.firewall().blocked_ips_size(), 1);  // duplicates collapse
  EXPECT_EQ(loaded.config.firewall().blocked_countries(0), "NL");
  EXPECT_EQ(loaded.config.firewall().rate_limit().per_seconds(), 2u);
  EXPECT_EQ(loaded.config.listeners(0).trusted_sources_size(), 2);
  EXPECT_EQ(loaded.config.listeners(0).firewall().blocked_cidrs(0), "2001:db8::/32");
  std::string error;
  EXPECT_TRUE(store.verify(1, error)) << error;
  EXPECT_FALSE(store.write(config(text), "again").created);

  std::string changed = text;
  changed.replace(changed.find("\"192.0.2.1\" blocked_ips"), 11, "\"192.0.2.9\"");
  store.write(config(changed), "b");
  const auto lines = store.diff(1, 2);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "+ firewall (top level) ip 192.0.2.9");

  RawConnection raw(path);
  auto rule = [](const std::string& kind, const std::string& value) {
    return "INSERT INTO firewall_rules VALUES (2, '', '" + kind + "', '" + value + "', 99)";
  };
  EXPECT_EQ(raw.exec(rule("ip", "198.51.100.1")), "");
  EXPECT_NE(raw.exec(rule("country", "nl")), "");
  EXPECT_NE(raw.exec(rule("ip", "10.0.0.0/8")), "");
  EXPECT_NE(raw.exec(rule("cidr", "10.0.0.1")), "");
  EXPECT_NE(raw.exec(rule("port", "80")), "");
  EXPECT_NE(raw.exec(rule("ip", "1.2.3.4; DROP")), "");
  EXPECT_NE(raw.exec("INSERT INTO firewall_rules VALUES (2, 'ghost', 'ip', '1.1.1.1', 1)"), "");
  EXPECT_NE(raw.exec("INSERT INTO trusted_sources VALUES (2, 'ghost', 5, '10.0.0.0/8')"), "");
  EXPECT_NE(raw.exec("DELETE FROM firewall_rules"), "");
  EXPECT_NE(raw.exec("INSERT INTO firewall_rules VALUES (1, '', 'ip', '1.1.1.1', 1)"), "");
}

TEST(SnapshotStoreTest, HttpRoutesFiltersAndTimeoutsRoundTripAndDiff) {
  const std::string path = tempPath("http");
  SnapshotStore store(path);
  const std::string text = R"(
    listeners { name: "web" address: "127.0.0.1:1"
      routes { hostname: "w.test" mode: L7 backend: "127.0.0.1:9000" tls_cert: "c" tls_key: "k"
        timeout_ms: 2500
        http_routes { path_prefix: "/api/" backend: "127.0.0.1:9001" timeout_ms: 100
                      headers { name: "X-Tenant" value: "a" } headers { name: "x-probe" } }
        http_routes { path_exact: "/health" backend: "127.0.0.1:9002" }
        http_filters { name: "mcproxy.filters.http.header_mutation"
          typed_config { [type.googleapis.com/mcproxy.extensions.filters.http.header_mutation.v1.HeaderMutation] {
            request { set { name: "x-a" value: "1" } } } } }
        http_filters { name: "mcproxy.filters.http.router" } }
      default_route { mode: L7 backend: "127.0.0.1:9009" tls_cert: "c" tls_key: "k"
        http_routes { path_prefix: "/" backend: "127.0.0.1:9010" } } })";
  store.write(config(text), "a");
  const auto loaded = store.load(1);
  const auto& route = loaded.config.listeners(0).routes(0);
  EXPECT_EQ(route.timeout_ms(), 2500u);
  ASSERT_EQ(route.http_routes_size(), 2);
  EXPECT_EQ(route.http_routes(0).headers(0).name(), "x-tenant");  // normalized
  EXPECT_EQ(route.http_routes(0).headers(1).value(), "");
  EXPECT_EQ(route.http_routes(0).timeout_ms(), 100u);
  EXPECT_EQ(route.http_routes(1).path_exact(), "/health");
  ASSERT_EQ(route.http_filters_size(), 2);
  EXPECT_TRUE(route.http_filters(0).has_typed_config());
  EXPECT_FALSE(route.http_filters(1).has_typed_config());
  EXPECT_EQ(loaded.config.listeners(0).default_route().http_routes(0).backend(), "127.0.0.1:9010");
  std::string error;
  EXPECT_TRUE(store.verify(1, error)) << error;
  EXPECT_FALSE(store.write(config(text), "again").created);

  std::string changed = text;
  changed.replace(changed.find("/health"), 7, "/ready");
  changed.replace(changed.find(R"(value: "1")"), 10, R"(value: "2")");
  store.write(config(changed), "b");
  const auto lines = store.diff(1, 2);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "- http_route web w.test [1] path /health -> 127.0.0.1:9002");
  EXPECT_EQ(lines[1], "+ http_route web w.test [1] path /ready -> 127.0.0.1:9002");
  EXPECT_EQ(lines[2].rfind("~ http_filters web w.test [mcproxy.filters.http.header_mutation ", 0),
            0u)
      << lines[2];
  EXPECT_TRUE(store.verify(2, error)) << error;

  RawConnection raw(path);
  auto entry = [](const std::string& values) {
    return "INSERT INTO http_routes (snapshot_version, listener_name, route_hostname, position,"
           " path_prefix, path_exact, backend) VALUES (" +
           values + ")";
  };
  EXPECT_EQ(raw.exec(entry("2, 'web', 'w.test', 9, '/x', '', '127.0.0.1:1'")), "");
  EXPECT_NE(raw.exec(entry("2, 'web', 'w.test', 10, 'x', '', '127.0.0.1:1'")).find("CHECK"),
            std::string::npos);
  EXPECT_NE(raw.exec(entry("2, 'web', 'w.test', 11, '/a', '/b', '127.0.0.1:1'")).find("CHECK"),
            std::string::npos);
  EXPECT_NE(raw.exec(entry("2, 'web', 'ghost.test', 12, '/a', '', '127.0.0.1:1'")).find("L7"),
            std::string::npos);
  EXPECT_NE(raw.exec("INSERT INTO http_route_headers VALUES (2, 'web', 'w.test', 9, 0, 'X-Up', '')")
                .find("CHECK"),
            std::string::npos);
  EXPECT_NE(raw.exec("INSERT INTO http_route_headers VALUES (2, 'web', 'w.test', 77, 0, 'x', '')")
                .find("http_routes entry"),
            std::string::npos);
  EXPECT_NE(raw.exec("INSERT INTO http_filters VALUES (2, 'web', 'w.test', 9, 'noname', NULL)")
                .find("CHECK"),
            std::string::npos);
  EXPECT_NE(raw.exec("UPDATE http_routes SET backend = '10.0.0.1:1'").find("immutable"),
            std::string::npos);
  EXPECT_NE(raw.exec("DELETE FROM http_filters").find("immutable"), std::string::npos);
  EXPECT_NE(raw.exec(entry("1, 'web', 'w.test', 9, '/x', '', '127.0.0.1:1'")).find("newest"),
            std::string::npos);
}

TEST(SnapshotStoreTest, AccessLogsRoundTripAndDiff) {
  const std::string path = tempPath("access_logs");
  SnapshotStore store(path);
  const std::string text = R"(
    access_log { path: "/var/log/mc-proxy/access.log" }
    listeners { name: "edge" address: "127.0.0.1:1"
      access_log { path: "-" format: TEXT text_format: "%CLIENT_IP% %SNI%" } }
    listeners { name: "quiet" address: "127.0.0.1:2" access_log { } }
    listeners { name: "inherits" address: "127.0.0.1:3" })";
  const auto loaded = writeAndReload(store, text);
  ASSERT_TRUE(loaded.has_access_log());
  EXPECT_EQ(loaded.access_log().path(), "/var/log/mc-proxy/access.log");
  EXPECT_EQ(loaded.access_log().format(), mcproxy::config::v1::AccessLog::JSON);
  EXPECT_EQ(loaded.listeners(0).access_log().text_format(), "%CLIENT_IP% %SNI%");
  EXPECT_EQ(loaded.listeners(0).access_log().format(), mcproxy::config::v1::AccessLog::TEXT);
  EXPECT_TRUE(loaded.listeners(1).has_access_log());  // present and empty: turned off
  EXPECT_EQ(loaded.listeners(1).access_log().path(), "");
  EXPECT_FALSE(loaded.listeners(2).has_access_log());

  const auto lines = diffAfterEdits(
      store, text, {{"access_log { } ", ""}, {"/var/log/mc-proxy/access.log", "/tmp/a.log"}});
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "~ access_log (top level) {path: \"/var/log/mc-proxy/access.log\"} => "
            "{path: \"/tmp/a.log\"}");
  EXPECT_EQ(lines[1], "~ access_log quiet {} => {(none)}");

  RawConnection raw(path);
  auto row = [](const std::string& values) {
    return "INSERT INTO access_logs VALUES (" + values + ")";
  };
  EXPECT_NE(raw.exec(row("2, 'edge', '/x', 'xml', ''")).find("CHECK"), std::string::npos);
  EXPECT_NE(raw.exec(row("2, 'edge', '/x', 'text', ''")).find("CHECK"), std::string::npos);
  EXPECT_NE(raw.exec(row("2, 'ghost', '/x', 'json', ''")).find("listener"), std::string::npos);
  EXPECT_NE(raw.exec("UPDATE access_logs SET path = '/y'").find("immutable"), std::string::npos);
}

TEST(SnapshotStoreTest, TlsPolicyMutualTlsOcspAndUpgradesRoundTripAndDiff) {
  const std::string path = tempPath("tls_policy");
  SnapshotStore store(path);
  const std::string text = R"(
    listeners { name: "edge" address: "127.0.0.1:1"
      tls { min_version: TLSv1_3 cipher_suites: "TLS_AES_256_GCM_SHA384"
            cipher_suites: "TLS_CHACHA20_POLY1305_SHA256" groups: "X25519" groups: "P-384" }
      routes { hostname: "m.test" backend: "127.0.0.1:9" mode: L7 tls_cert: "c" tls_key: "k"
               client_ca: "/etc/ca.pem" client_cert: OPTIONAL ocsp_response: "/etc/m.ocsp"
               allow_upgrades: false }
      routes { hostname: "n.test" backend: "127.0.0.1:9" mode: L7 tls_cert: "c" tls_key: "k"
               allow_upgrades: true }
      routes { hostname: "o.test" backend: "127.0.0.1:9" mode: L7 tls_cert: "c" tls_key: "k" } }
    listeners { name: "plain" address: "127.0.0.1:2" })";
  const auto loaded = writeAndReload(store, text);
  const auto& tls = loaded.listeners(0).tls();
  EXPECT_EQ(tls.min_version(), mcproxy::config::v1::TlsPolicy::TLSv1_3);
  EXPECT_EQ(tls.max_version(), mcproxy::config::v1::TlsPolicy::TLS_AUTO);
  ASSERT_EQ(tls.cipher_suites_size(), 2);
  EXPECT_EQ(tls.cipher_suites(1), "TLS_CHACHA20_POLY1305_SHA256");
  ASSERT_EQ(tls.groups_size(), 2);
  EXPECT_EQ(tls.groups(1), "P-384");
  EXPECT_FALSE(loaded.listeners(1).has_tls());
  const auto& m = loaded.listeners(0).routes(0);
  EXPECT_EQ(m.client_ca(), "/etc/ca.pem");
  EXPECT_EQ(m.client_cert(), mcproxy::config::v1::Route::OPTIONAL);
  EXPECT_EQ(m.ocsp_response(), "/etc/m.ocsp");
  ASSERT_TRUE(m.has_allow_upgrades());
  EXPECT_FALSE(m.allow_upgrades());
  ASSERT_TRUE(loaded.listeners(0).routes(1).has_allow_upgrades());
  EXPECT_TRUE(loaded.listeners(0).routes(1).allow_upgrades());
  EXPECT_FALSE(loaded.listeners(0).routes(2).has_allow_upgrades());  // unset stays unset

  const auto lines = diffAfterEdits(store, text,
                                    {{"min_version: TLSv1_3", "min_version: TLSv1_2"},
                                     {"client_cert: OPTIONAL", "client_cert: REQUIRED"}});
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("~ listener edge tls min_version: TLSv1_3"), std::string::npos)
      << lines[0];
  EXPECT_NE(lines[1].find("client_ca /etc/ca.pem ocsp_response"), std::string::npos) << lines[1];

  RawConnection raw(path);
  EXPECT_NE(raw.exec("INSERT INTO routes (snapshot_version, listener_name, position, hostname,"
                     " backend, mode, client_cert) VALUES (2, 'edge', 9, 'x.test', '127.0.0.1:1',"
                     " 'l7', 'sometimes')")
                .find("CHECK"),
            std::string::npos);
  EXPECT_NE(raw.exec("INSERT INTO listeners (snapshot_version, position, name, address,"
                     " tls_min_version) VALUES (2, 9, 'v', '127.0.0.1:9', 'SSLv3')")
                .find("CHECK"),
            std::string::npos);
}

TEST(SnapshotStoreTest, ClustersRoundTripDiffAndChecks) {
  const std::string path = tempPath("clusters");
  SnapshotStore store(path);
  const std::string text = R"(
    clusters { name: "api"
      endpoints { address: "127.0.0.1:9001" }
      endpoints { address: "api-2.internal:9001" weight: 3 }
      endpoints { address: "127.0.0.1:9003" weight: 0 }
      lb_policy: RING_HASH connect_timeout_ms: 700 backend_tls: true backend_tls_ca: "/ca.pem"
      backend_protocol: HTTP1 send_proxy_protocol: true proxy_protocol_version: 1
      dns_refresh_ms: 5000 max_connect_attempts: 4 max_request_attempts: 3
      retry_budget_percent: 30
      health_check { interval_ms: 2000 timeout_ms: 1000 unhealthy_threshold: 2
                     healthy_threshold: 3 http { path: "/healthz" expected_status: 204 } }
      outlier_detection { consecutive_failures: 5 base_ejection_ms: 30000
                          max_ejection_percent: 40 } }
    clusters { name: "grpc" endpoints { address: "127.0.0.1:9100" weight: 1 }
               health_check { grpc { service: "echo" } } }
    clusters { name: "plain" endpoints { address: "127.0.0.1:9200" } health_check { tls {} } }
    listeners { name: "edge" address: "127.0.0.1:1"
      routes { hostname: "a.test" cluster: "plain" }
      routes { hostname: "w.test" cluster: "api" mode: L7 tls_cert: "c" tls_key: "k"
               http_routes { path_prefix: "/rpc/" cluster: "grpc" }
               http_routes { path_prefix: "/old/" backend: "127.0.0.1:9300" } } })";
  const auto loaded = writeAndReload(store, text);
  ASSERT_EQ(loaded.clusters_size(), 3);
  const auto& api = loaded.clusters(0);
  EXPECT_EQ(api.lb_policy(), mcproxy::config::v1::Cluster::RING_HASH);
  EXPECT_EQ(api.health_check().http().expected_status(), 204u);
  EXPECT_EQ(api.outlier_detection().max_ejection_percent(), 40u);
  EXPECT_EQ(api.endpoints(1).weight(), 3u);
  EXPECT_FALSE(api.endpoints(0).has_weight());  // weight 1 is the default, written or not
  ASSERT_TRUE(api.endpoints(2).has_weight());   // drained stays drained
  EXPECT_EQ(api.endpoints(2).weight(), 0u);
  EXPECT_EQ(loaded.clusters(1).health_check().grpc().service(), "echo");
  EXPECT_FALSE(loaded.clusters(1).endpoints(0).has_weight());
  EXPECT_TRUE(loaded.clusters(2).health_check().has_tls());
  EXPECT_EQ(loaded.listeners(0).routes(0).cluster(), "plain");
  EXPECT_TRUE(loaded.listeners(0).routes(0).backend().empty());
  EXPECT_EQ(loaded.listeners(0).routes(1).http_routes(0).cluster(), "grpc");
  EXPECT_EQ(loaded.listeners(0).routes(1).http_routes(1).backend(), "127.0.0.1:9300");

  const auto lines = diffAfterEdits(
      store, text,
      {{"address: \"127.0.0.1:9003\" weight: 0", "address: \"127.0.0.1:9003\" weight: 2"},
       {"cluster: \"plain\"", "cluster: \"grpc\""}});
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("~ cluster api [127.0.0.1:9001, api-2.internal:9001 weight 3, "
                          "127.0.0.1:9003 weight 0]"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find("-> [127.0.0.1:9001, api-2.internal:9001 weight 3, 127.0.0.1:9003 "
                          "weight 2]"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[1].find("a.test -> cluster grpc"), std::string::npos) << lines[1];

  RawConnection raw(path);
  const std::string version = std::to_string(store.latestVersion());
  for (const std::string& bad : {
           // a weight out of range, a policy nobody knows, an HTTP path on a TCP check
           "INSERT INTO cluster_endpoints (snapshot_version, cluster_name, position, address,"
           " weight) VALUES (" +
               version + ", 'api', 9, '127.0.0.1:9', -1)",
           "INSERT INTO clusters (snapshot_version, position, name, lb_policy) VALUES (" + version +
               ", 9, 'x', 'fastest')",
           "INSERT INTO clusters (snapshot_version, position, name, lb_policy, check_kind,"
           " check_http_path) VALUES (" +
               version + ", 9, 'x', 'random', 'tcp', '/h')",
           // a route with both a backend and a cluster, or neither
           "INSERT INTO routes (snapshot_version, listener_name, position, hostname, backend,"
           " mode, cluster) VALUES (" +
               version +
               ", 'edge', 9, 'x.test', '127.0.0.1:1', 'l4',"
               " 'api')",
           "INSERT INTO routes (snapshot_version, listener_name, position, hostname, backend,"
           " mode) VALUES (" +
               version + ", 'edge', 9, 'x.test', '', 'l4')",
       }) {
    EXPECT_NE(raw.exec(bad).find("CHECK"), std::string::npos) << bad;
  }
  EXPECT_NE(raw.exec("INSERT INTO routes (snapshot_version, listener_name, position, hostname,"
                     " backend, mode, cluster) VALUES (" +
                     version + ", 'edge', 9, 'x.test', '', 'l4', 'missing')")
                .find("the cluster does not exist"),
            std::string::npos);
  EXPECT_NE(raw.exec("INSERT INTO cluster_endpoints (snapshot_version, cluster_name, position,"
                     " address) VALUES (" +
                     version + ", 'missing', 0, '127.0.0.1:9')")
                .find("belongs to a cluster"),
            std::string::npos);
  EXPECT_NE(raw.exec("UPDATE cluster_endpoints SET weight = 5").find("immutable"),
            std::string::npos);
  EXPECT_NE(raw.exec("DELETE FROM clusters").find("immutable"), std::string::npos);
}

TEST(SnapshotStoreTest, MigrationElevenRebuildsRoutesKeepingRowsIndexesAndTriggers) {
  const std::string path = tempPath("rebuild");
  {
    Database db(path);
    migrate(db, 10);
    seedVersionOne(db);
    db.exec(
        "INSERT INTO routes (snapshot_version, listener_name, position, hostname, backend,"
        " mode, tls_cert, tls_key, allow_upgrades) VALUES (1, 'old', 0, 'a.test',"
        " '127.0.0.1:9001', 'l7', 'c', 'k', 0)");
    db.exec(
        "INSERT INTO http_routes (snapshot_version, listener_name, route_hostname, position,"
        " path_prefix, backend) VALUES (1, 'old', 'a.test', 0, '/api/', '127.0.0.1:9002')");
    db.exec(
        "INSERT INTO http_route_headers (snapshot_version, listener_name, route_hostname,"
        " route_position, position, name, value) VALUES (1, 'old', 'a.test', 0, 0, 'x-v',"
        " '2')");
  }
  SnapshotStore store(path);
  EXPECT_EQ(schemaVersion(store.database()), latestSchemaVersion());
  EXPECT_EQ(store.database().queryInt("PRAGMA foreign_keys"), 1);  // back on
  const auto loaded = store.load(1).config;
  const auto& route = loaded.listeners(0).routes(0);
  EXPECT_EQ(route.backend(), "127.0.0.1:9001");
  EXPECT_FALSE(route.allow_upgrades());
  ASSERT_EQ(route.http_routes_size(), 1);
  EXPECT_EQ(route.http_routes(0).backend(), "127.0.0.1:9002");
  EXPECT_EQ(route.http_routes(0).headers(0).value(), "2");
  EXPECT_EQ(store.database().queryInt(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'routes_by_hostname'"),
            1);
  RawConnection raw(path);
  EXPECT_NE(raw.exec("UPDATE routes SET backend = '127.0.0.1:1'").find("immutable"),
            std::string::npos);
  EXPECT_NE(raw.exec("DELETE FROM http_routes").find("immutable"), std::string::npos);
  EXPECT_NE(raw.exec("INSERT INTO routes (snapshot_version, listener_name, position, hostname,"
                     " backend, mode) VALUES (1, 'nobody', 1, 'b.test', '127.0.0.1:1', 'l4')")
                .find("must belong to a listener"),
            std::string::npos);
  EXPECT_NE(raw.exec("INSERT INTO http_routes (snapshot_version, listener_name, route_hostname,"
                     " position, backend) VALUES (1, 'old', 'nope', 1, '127.0.0.1:1')")
                .find("belong to an L7 route"),
            std::string::npos);
}

TEST(SnapshotStoreTest, ModulesRoundTripInOrderAndDiff) {
  const std::string path = tempPath("modules");
  SnapshotStore store(path);
  const std::string text = R"(
    modules { name: "sni_guard" path: "/usr/lib/mc-proxy/modules/libsni_guard.so" }
    modules { name: "api_key" path: "/usr/lib/mc-proxy/modules/libapi_key.so"
              sha256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
    listeners { name: "edge" address: "127.0.0.1:1" })";
  store.write(config(text), "a");
  const auto loaded = store.load(1).config;
  ASSERT_EQ(loaded.modules_size(), 2);
  EXPECT_EQ(loaded.modules(0).name(), "sni_guard");  // config order kept
  EXPECT_EQ(loaded.modules(1).sha256().size(), 64u);
  std::string error;
  EXPECT_TRUE(store.verify(1, error)) << error;

  std::string changed = text;
  changed.replace(changed.find("libsni_guard.so"), 15, "libsni_guard2.so");
  changed.replace(changed.find("modules { name: \"api_key\""), 0,
                  "modules { name: \"extra\" path: \"/x.so\" } ");
  store.write(config(changed), "b");
  const auto lines = store.diff(1, 2);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "~ module sni_guard /usr/lib/mc-proxy/modules/libsni_guard.so -> "
            "/usr/lib/mc-proxy/modules/libsni_guard2.so");
  EXPECT_EQ(lines[1], "+ module extra /x.so");

  RawConnection raw(path);
  auto row = [](const std::string& values) {
    return "INSERT INTO modules VALUES (" + values + ")";
  };
  EXPECT_NE(raw.exec(row("2, 9, 'Bad-Name', '/y.so', ''")).find("CHECK"), std::string::npos);
  EXPECT_NE(raw.exec(row("2, 10, 'ok', '', ''")).find("CHECK"), std::string::npos);
  EXPECT_NE(raw.exec(row("2, 11, 'ok2', '/y.so', 'abc'")).find("CHECK"), std::string::npos);
  EXPECT_NE(raw.exec(row("1, 12, 'old', '/y.so', ''")).find("newest"), std::string::npos);
  EXPECT_NE(raw.exec("DELETE FROM modules").find("immutable"), std::string::npos);
}

TEST(SnapshotStoreTest, NewerSchemaIsRefused) {
  const std::string path = tempPath("newer");
  { SnapshotStore store(path); }
  {
    Database db(path);
    db.exec("INSERT INTO schema_migrations VALUES (99, 'from the future', '2030-01-01T00:00:00Z')");
  }
  try {
    SnapshotStore store(path);
    FAIL() << "opened a database from a newer version";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("newer than this binary knows"), std::string::npos);
  }
}

}  // namespace
}  // namespace mcproxy::snapshot

namespace mcproxy::snapshot {
namespace {

TEST(FleetMembershipTest, AFleetDatabaseTakesFleetVersionsOnlyUntilItLeaves) {
  const std::string path = tempPath("fleet");
  SnapshotStore store(path);
  store.write(config(kConfigA), "file:a");
  EXPECT_FALSE(store.fleetMembership());
  store.joinFleet({"edge", "http://127.0.0.1:2379", "n1", ""});
  const auto membership = store.fleetMembership();
  ASSERT_TRUE(membership);
  EXPECT_EQ(membership->fleet, "edge");
  EXPECT_EQ(membership->node_id, "n1");
  EXPECT_FALSE(membership->since.empty());

  Bootstrap changed = config(kConfigA);
  changed.set_drain_timeout_ms(7000);
  try {
    store.write(changed, "api: add route");
    FAIL() << "a local change was written to a fleet database";
  } catch (const FleetMember& e) {
    EXPECT_NE(
        std::string(e.what()).find("follows fleet edge (etcd http://127.0.0.1:2379, node n1)"),
        std::string::npos)
        << e.what();
  }
  EXPECT_THROW(store.rollback(1), FleetMember);
  EXPECT_EQ(store.latestVersion(), 1);
  // Below the store, the trigger refuses it too.
  RawConnection raw(path);
  EXPECT_NE(raw.exec("INSERT INTO snapshots (version, created_at, source, content_hash,"
                     " drain_timeout_ms) VALUES (2, 'now', 'file:x', 'h', 1000)")
                .find("versions come from the fleet only"),
            std::string::npos);
  // What the fleet sends is written.
  EXPECT_EQ(store.write(changed, "fleet:edge version 4 (file:a)").version, 2);

  const auto left = store.leaveFleet();
  ASSERT_TRUE(left);
  EXPECT_EQ(left->fleet, "edge");
  EXPECT_FALSE(store.leaveFleet());
  changed.set_drain_timeout_ms(8000);
  EXPECT_EQ(store.write(changed, "file:b").version, 3);
}

TEST(FleetMembershipTest, CanonicalBytesAreWhatTheContentHashHashes) {
  const Bootstrap a = config(kConfigA);
  Bootstrap parsed;
  ASSERT_TRUE(parsed.ParseFromString(SnapshotStore::canonicalBytes(a)));
  EXPECT_EQ(SnapshotStore::contentHash(parsed), SnapshotStore::contentHash(a));
  EXPECT_EQ(SnapshotStore::canonicalBytes(parsed), SnapshotStore::canonicalBytes(a));
}

}  // namespace
}  // namespace mcproxy::snapshot

namespace mcproxy::snapshot {
namespace {

// Versions that share the route rows they do not change (migration 13).
class SharedRoutesTest : public ::testing::Test {
 protected:
  SharedRoutesTest() : path_(tempPath("shared")), store_(path_) {}

  static std::string listener(const std::string& routes) {
    return "listeners { name: \"edge\" address: \"127.0.0.1:8443\"\n" + routes +
           "\n  default_route { backend: \"127.0.0.1:9000\" } }";
  }
  static std::string route(const std::string& host, const std::string& backend = "127.0.0.1:9001") {
    return "routes { hostname: \"" + host + "\" backend: \"" + backend + "\" }\n";
  }
  int64_t write(const std::string& routes) {
    return store_.write(config(listener(routes)), "test").version;
  }
  std::vector<std::string> hosts(int64_t version) {
    std::vector<std::string> out;
    const Bootstrap loaded = store_.load(version).config;
    for (const auto& r : loaded.listeners(0).routes()) {
      out.push_back(r.hostname() + "=" + r.backend());
    }
    return out;
  }
  int64_t rows() { return store_.database().queryInt("SELECT count(*) FROM routes"); }
  void verifyAll() {
    for (const auto& info : store_.history()) {
      std::string error;
      EXPECT_TRUE(store_.verify(info.version, error)) << error;
    }
  }

  std::string path_;
  SnapshotStore store_;
};

TEST_F(SharedRoutesTest, AChangeWritesOnlyTheRoutesItChanges) {
  write(route("a.test") + route("b.test") + route("c.test"));
  EXPECT_EQ(rows(), 4);  // three and the default route
  write(route("a.test") + route("b.test") + route("c.test") + route("d.test"));
  EXPECT_EQ(rows(), 5);
  write(route("a.test") + route("b.test", "127.0.0.1:7777") + route("c.test") + route("d.test"));
  EXPECT_EQ(rows(), 6);
  write(route("a.test") + route("b.test", "127.0.0.1:7777") + route("d.test"));  // c removed
  EXPECT_EQ(rows(), 6);
  EXPECT_EQ(hosts(1), (std::vector<std::string>{"a.test=127.0.0.1:9001", "b.test=127.0.0.1:9001",
                                                "c.test=127.0.0.1:9001"}));
  EXPECT_EQ(hosts(2).size(), 4u);
  EXPECT_EQ(hosts(3)[1], "b.test=127.0.0.1:7777");
  EXPECT_EQ(hosts(4), (std::vector<std::string>{"a.test=127.0.0.1:9001", "b.test=127.0.0.1:7777",
                                                "d.test=127.0.0.1:9001"}));
  EXPECT_EQ(store_.load(4).config.listeners(0).default_route().backend(), "127.0.0.1:9000");
  EXPECT_EQ(store_.history()[0].routes, 4);  // three and the default route, shared or not
  EXPECT_EQ(store_.history()[3].routes, 4);
  verifyAll();
}

TEST_F(SharedRoutesTest, InsertionsAndMovesKeepTheOrderWithoutRewritingNeighbours) {
  write(route("a.test") + route("c.test") + route("e.test"));
  write(route("a.test") + route("b.test") + route("c.test") + route("d.test") + route("e.test"));
  EXPECT_EQ(rows(), 6);  // b and d written between their neighbours' positions
  EXPECT_EQ(hosts(2), (std::vector<std::string>{"a.test=127.0.0.1:9001", "b.test=127.0.0.1:9001",
                                                "c.test=127.0.0.1:9001", "d.test=127.0.0.1:9001",
                                                "e.test=127.0.0.1:9001"}));
  // Moving e to the front: it is written again; the others stay shared.
  write(route("e.test") + route("a.test") + route("b.test") + route("c.test") + route("d.test"));
  EXPECT_EQ(hosts(3).front(), "e.test=127.0.0.1:9001");
  EXPECT_EQ(hosts(3).back(), "d.test=127.0.0.1:9001");
  // Many insertions at one place run out of room between two positions: the next row is
  // written again and the order still holds.
  std::string many = route("e.test") + route("a.test");
  for (int i = 0; i < 40; ++i) many += route("m" + std::to_string(100 + i) + ".test");
  many += route("b.test") + route("c.test") + route("d.test");
  const int64_t version = write(many);
  const auto got = hosts(version);
  ASSERT_EQ(got.size(), 45u);
  EXPECT_EQ(got[2], "m100.test=127.0.0.1:9001");
  EXPECT_EQ(got[41], "m139.test=127.0.0.1:9001");
  EXPECT_EQ(got[42], "b.test=127.0.0.1:9001");
  verifyAll();
}

TEST_F(SharedRoutesTest, HttpSettingsGoWithTheirRouteRow) {
  auto l7 = [](const std::string& prefix) {
    return "routes { hostname: \"w.test\" backend: \"127.0.0.1:9001\" mode: L7 tls_cert: \"c\""
           " tls_key: \"k\" http_routes { path_prefix: \"" +
           prefix +
           "\" backend: \"127.0.0.1:9002\" headers { name: \"x-v\" value: \"2\" } }"
           " http_filters { name: \"mcproxy.filters.http.router\" } }\n";
  };
  write(route("a.test") + l7("/api/"));
  write(route("a.test") + l7("/api/") + route("z.test"));
  write(route("a.test") + l7("/v2/") + route("z.test"));
  EXPECT_EQ(store_.database().queryInt("SELECT count(*) FROM http_routes"), 2);
  EXPECT_EQ(store_.load(2).config.listeners(0).routes(1).http_routes(0).path_prefix(), "/api/");
  const Bootstrap loaded = store_.load(3).config;
  const auto& v3 = loaded.listeners(0).routes(1);
  EXPECT_EQ(v3.http_routes(0).path_prefix(), "/v2/");
  EXPECT_EQ(v3.http_routes(0).headers(0).value(), "2");
  EXPECT_EQ(v3.http_filters(0).name(), "mcproxy.filters.http.router");
  verifyAll();
}

TEST_F(SharedRoutesTest, RollbackWritesTheOldContentAgain) {
  write(route("a.test") + route("b.test"));
  write(route("a.test"));
  store_.rollback(1);
  EXPECT_EQ(hosts(3), hosts(1));
  EXPECT_EQ(store_.load(3).info.rollback_of, 1);
  verifyAll();
}

TEST_F(SharedRoutesTest, PruneKeepsRowsOfPrunedVersionsThatKeptVersionsUse) {
  write(route("a.test") + route("b.test"));
  write(route("a.test") + route("b.test") + route("c.test"));  // c's row: version 2's
  write(route("a.test") + route("c.test"));                    // shares a (1) and c (2)
  const auto pruned = store_.prune(int64_t{1}, std::nullopt);
  EXPECT_EQ(pruned.deleted, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(hosts(3), (std::vector<std::string>{"a.test=127.0.0.1:9001", "c.test=127.0.0.1:9001"}));
  verifyAll();
  // b's row was used by versions 1 and 2 only; a's and c's outlive the versions that wrote them.
  EXPECT_EQ(store_.database().queryInt("SELECT count(*) FROM routes WHERE hostname = 'b.test'"), 0);
  EXPECT_EQ(store_.database().queryInt("SELECT min(snapshot_version) FROM routes"), 1);
  EXPECT_EQ(store_.database().queryInt("SELECT count(*) FROM listeners"), 1);
  RawConnection raw(path_);
  EXPECT_NE(raw.exec("UPDATE routes SET backend = '127.0.0.1:1'").find("immutable"),
            std::string::npos);
  EXPECT_NE(raw.exec("UPDATE routes SET until_version = 2 WHERE until_version IS NULL")
                .find("closed once, by the newest"),
            std::string::npos);
  // Even listed for pruning, a row a kept version uses cannot be deleted.
  EXPECT_EQ(raw.exec("INSERT INTO pruning (version) VALUES (1)"), "");
  EXPECT_NE(raw.exec("DELETE FROM routes WHERE snapshot_version = 1").find("no kept version uses"),
            std::string::npos);
}

// A route edit (admin API add/remove) stored as one route row over the newest version: the
// version it makes loads, verifies and hashes as the same config written whole would.
class RouteEditStoreTest : public SharedRoutesTest {
 protected:
  PreparedRouteEdit prepare(RouteEdit edit) {
    const int64_t newest = store_.latestVersion();
    auto prepared = prepareRouteEdit(SnapshotStore::canonicalBytes(store_.load(newest).config),
                                     newest, std::move(edit));
    EXPECT_TRUE(prepared.ok()) << prepared.status();
    return *prepared;
  }
  static RouteEdit add(const std::string& host, const std::string& backend = "127.0.0.1:9003") {
    RouteEdit edit{.kind = RouteEdit::Kind::kAdd};
    edit.route.set_hostname(host);
    edit.route.set_backend(backend);
    SnapshotStore::normalizeRoute(edit.route);
    return edit;
  }
  static RouteEdit remove(const std::string& host) {
    return RouteEdit{.kind = RouteEdit::Kind::kRemove, .hostname = host};
  }
};

TEST_F(RouteEditStoreTest, AnEditWritesOneRouteRowAndVerifies) {
  write(route("a.test") + route("b.test") + route("c.test"));
  const int64_t before = rows();
  const WriteResult added = store_.writeRouteEdit(prepare(add("d.test")), "api: add d");
  EXPECT_EQ(added.version, 2);
  EXPECT_EQ(rows(), before + 1);
  EXPECT_EQ(hosts(2), (std::vector<std::string>{"a.test=127.0.0.1:9001", "b.test=127.0.0.1:9001",
                                                "c.test=127.0.0.1:9001", "d.test=127.0.0.1:9003"}));
  // The new route sits before the default route, as a whole write would put it.
  const Bootstrap loaded = store_.load(2).config;
  EXPECT_EQ(loaded.listeners(0).default_route().backend(), "127.0.0.1:9000");
  EXPECT_EQ(added.content_hash, SnapshotStore::contentHash(loaded));
  EXPECT_EQ(store_.info(2).routes, 5);
  const WriteResult removed = store_.writeRouteEdit(prepare(remove("b.test")), "api: remove b");
  EXPECT_EQ(removed.version, 3);
  EXPECT_EQ(rows(), before + 1);  // b's row is closed, not copied or deleted
  EXPECT_EQ(hosts(3), (std::vector<std::string>{"a.test=127.0.0.1:9001", "c.test=127.0.0.1:9001",
                                                "d.test=127.0.0.1:9003"}));
  EXPECT_EQ(hosts(2).size(), 4u);  // the version before still has it
  EXPECT_EQ(store_.info(3).routes, 4);
  verifyAll();
  // A whole write of the same config is no new version; one more route shares every row.
  EXPECT_FALSE(store_.write(store_.load(3).config, "test").created);
  write(route("a.test") + route("c.test") + route("d.test", "127.0.0.1:9003") + route("e.test"));
  EXPECT_EQ(rows(), before + 2);
  verifyAll();
}

TEST_F(RouteEditStoreTest, EditsFitBetweenTheLastRouteAndTheDefaultRouteUntilThereIsNoRoom) {
  write(route("a.test"));
  // The gap between a route and the default route halves with each add; once it is gone, a
  // route goes after the default route's row (the order of routes is still kept).
  for (int i = 0; i < 24; ++i) {
    store_.writeRouteEdit(prepare(add("n" + std::to_string(i) + ".test")), "api");
  }
  const auto loaded = hosts(store_.latestVersion());
  ASSERT_EQ(loaded.size(), 25u);
  for (int i = 0; i < 24; ++i)
    EXPECT_EQ(loaded[i + 1], "n" + std::to_string(i) + ".test=127.0.0.1:9003");
  EXPECT_EQ(store_.database().queryInt(
                "SELECT count(DISTINCT position) FROM routes WHERE until_version IS NULL"),
            26);
  verifyAll();
}

TEST_F(RouteEditStoreTest, AnEditToAVersionNoLongerNewestWritesNothing) {
  write(route("a.test"));
  const PreparedRouteEdit stale = prepare(add("b.test"));
  write(route("a.test") + route("z.test"));  // another writer came first
  const int64_t before = rows();
  EXPECT_THROW(store_.writeRouteEdit(stale, "api"), VersionConflict);
  EXPECT_EQ(store_.latestVersion(), 2);
  EXPECT_EQ(rows(), before);
  // A fleet node's database takes no local edit either.
  store_.joinFleet({"edge", "http://127.0.0.1:2379", "n1", ""});
  EXPECT_THROW(store_.writeRouteEdit(prepare(add("c.test")), "api"), FleetMember);
  EXPECT_EQ(store_.latestVersion(), 2);
  verifyAll();
}

TEST(MigrationTest, VersionsWrittenBeforeSharingLoadAsTheyWere) {
  const std::string path = tempPath("before-sharing");
  std::string hash_one;
  {
    Database db(path);
    migrate(db, 12);
  }
  {
    // Two full versions as a v12 database holds them (every version its own rows).
    RawConnection raw(path);
    for (int version = 1; version <= 2; ++version) {
      const std::string v = std::to_string(version);
      ASSERT_EQ(
          raw.exec("INSERT INTO snapshots (version, created_at, source, content_hash,"
                   " drain_timeout_ms) VALUES (" +
                   v + ", '2026-01-01T00:00:00Z', 'old', '" + std::string(64, '0') + "', 1000)"),
          "");
      ASSERT_EQ(raw.exec("INSERT INTO listeners (snapshot_version, position, name, address,"
                         " proxy_protocol, backlog) VALUES (" +
                         v + ", 0, 'edge', '127.0.0.1:8443', 0, 0)"),
                "");
      for (int r = 0; r < version + 1; ++r) {
        ASSERT_EQ(
            raw.exec("INSERT INTO routes (snapshot_version, listener_name, position, hostname,"
                     " backend, mode) VALUES (" +
                     v + ", 'edge', " + std::to_string(r) + ", 'h" + std::to_string(r) +
                     ".test', '127.0.0.1:9001', 'l4')"),
            "");
      }
    }
  }
  SnapshotStore store(path);
  EXPECT_EQ(store.load(1).config.listeners(0).routes_size(), 2);
  EXPECT_EQ(store.load(2).config.listeners(0).routes_size(), 3);
  EXPECT_EQ(store.history()[1].routes, 2);
  // The next version shares nothing yet (the old rows have no route hashes), then shares.
  Bootstrap next = store.load(2).config;
  next.mutable_listeners(0)->add_routes()->CopyFrom(next.listeners(0).routes(0));
  next.mutable_listeners(0)->mutable_routes(3)->set_hostname("h9.test");
  store.write(next, "test");
  EXPECT_EQ(store.load(2).config.listeners(0).routes_size(), 3);
  EXPECT_EQ(store.load(3).config.listeners(0).routes_size(), 4);
  next.mutable_listeners(0)->mutable_routes(3)->set_backend("127.0.0.1:9");
  const int64_t before = store.database().queryInt("SELECT count(*) FROM routes");
  store.write(next, "test");
  EXPECT_EQ(store.database().queryInt("SELECT count(*) FROM routes"), before + 1);
  std::string error;
  EXPECT_TRUE(store.verify(3, error)) << error;
  EXPECT_TRUE(store.verify(4, error)) << error;
}

}  // namespace
}  // namespace mcproxy::snapshot

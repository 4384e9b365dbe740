#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "api/mcproxy/config/v1/bootstrap.pb.h"
#include "source/common/config/shared_objects.h"
#include "source/common/module/module.h"
#include "source/common/network/address.h"
#include "source/common/network/close_reason.h"
#include "source/common/network/filter_factory.h"
#include "source/common/router/hostname_matcher.h"
#include "source/common/router/route.h"
#include "source/common/stats/stats.h"
#include "source/common/upstream/cluster.h"
#include "source/snapshot/route_edit.h"

namespace mcproxy::access_log {
class AccessLog;
}

namespace mcproxy::snapshot {

struct ListenerStats {
  stats::Counter& connections;          // accepted
  stats::Gauge& active;                 // open now
  stats::Counter& accept_overflow;      // accept() failed for lack of file descriptors
  std::vector<stats::Counter*> closes;  // indexed by network::CloseReason

  void countClose(network::CloseReason reason) const { closes[static_cast<size_t>(reason)]->inc(); }
};

// One listener of a snapshot, compiled: its route table and its filter chain.
struct CompiledListener : public router::RouteTable {
  CompiledListener(std::string name, std::string address_text, network::Address address,
                   bool proxy_protocol, uint32_t backlog, ListenerStats stats)
      : name(std::move(name)),
        address_text(std::move(address_text)),
        address(address),
        proxy_protocol(proxy_protocol),
        backlog(backlog),
        stats(std::move(stats)) {}

  std::string name;
  std::string address_text;  // as configured; identifies the listening socket
  network::Address address;
  bool proxy_protocol = false;
  uint32_t backlog = 1024;
  // Owns every route below; a route edit's snapshot shares the routes it keeps (patchRoutes).
  std::vector<std::shared_ptr<const router::Route>> routes;
  router::HostnameMatcher<const router::Route*> route_table;
  const router::Route* default_route = nullptr;
  std::vector<network::FilterFactoryCb> filter_factories;
  // The registered name of each, and how many run before the first terminal one (route tests
  // evaluate those).
  std::vector<std::string> filter_names;
  size_t filters_before_terminal = 0;
  ListenerStats stats;
  // Null: no access log for this listener's connections and requests.
  std::shared_ptr<const access_log::AccessLog> access_log;

  const router::Route* findRoute(std::string_view server_name) const override;
};

// A file a snapshot was compiled from (a GeoIP database, later certificates), as it was then.
struct WatchedFile {
  std::string path;
  int64_t mtime_ns;
  int64_t size;
  uint64_t inode;

  static WatchedFile stat(const std::string& path);
  // True when the file on disk is no longer the one that was read.
  bool changed() const;
};

// An immutable, compiled configuration. Workers hold it through shared_ptr: a connection keeps
// the snapshot it started on until it ends.
struct Snapshot {
  Snapshot();
  ~Snapshot();
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  // Snapshots alive in this process: the current one plus those open connections still use.
  // A number that keeps growing across reloads is a leak.
  static int64_t alive();

  uint64_t version = 0;
  // The config it was compiled from, serialized: the parsed messages of 100,000 routes take
  // 24 MB, their bytes 4 MB. Parsed again when asked (admin listings, /config_dump, a
  // recompile), which is rare and never on the data path.
  std::string config_bytes;
  mcproxy::config::v1::Bootstrap config() const;
  // SHA-256 (hex) of config_bytes when they are known to be a stored version's canonical bytes
  // (a patched snapshot's, or set by whoever stored them); "" when not known.
  std::string config_hash;
  // Shared with the snapshot a route edit patches from this one, but for the edited listener.
  std::vector<std::shared_ptr<const CompiledListener>> listeners;
  std::unordered_map<std::string, const CompiledListener*> listeners_by_address;
  std::chrono::milliseconds drain_timeout{15000};
  std::vector<WatchedFile> watched_files;
  // The plugin modules this config loaded (kept loaded while the snapshot lives), by name.
  module::ModuleSet modules;
  std::vector<std::shared_ptr<const void>> loaded_modules;
  // The top-level clusters, in config order; routes point into them.
  std::vector<std::shared_ptr<const upstream::Cluster>> clusters;

  const CompiledListener* findListener(const std::string& address_text) const;
};

struct CompileResult {
  // Not const yet: the caller may still set its version before publishing it.
  std::shared_ptr<Snapshot> snapshot;
  std::vector<std::string> warnings;  // to be logged or printed; never silent
};

// Validates and compiles `config`. Throws config::ConfigError naming the field path. Objects
// a filter hands on to later snapshots (a rate limiter) come from `shared`, which the caller
// owns (the server for the process's life).
CompileResult compile(mcproxy::config::v1::Bootstrap config, stats::Store& stats, uint64_t version,
                      config::SharedObjects& shared);
// The same, with nothing shared with other compiles (the CLI, tests).
CompileResult compile(mcproxy::config::v1::Bootstrap config, stats::Store& stats, uint64_t version);

// Compiles a route edit of `base`'s config (prepareRouteEdit) by patching `base`, copy-on-write:
// the edited listener gets a copy of its route table with the one route added (compiled here)
// or removed, and its filter chain built again; its other routes, the other listeners, the
// clusters and the modules are shared with `base`. Throws config::ConfigError as compile()
// does, naming the route by its index in the edited config.
CompileResult patchRoutes(const Snapshot& base, const PreparedRouteEdit& prepared,
                          stats::Store& stats, config::SharedObjects& shared);

// The filter names of the built-in chain used when a listener lists no filters.
std::vector<std::string> defaultFilterChain(bool proxy_protocol, bool firewall);

}  // namespace mcproxy::snapshot

#include "source/server/server.h"

#include <event2/event.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <exception>
#include <thread>

#include "source/common/config/config_error.h"
#include "source/common/logging/logger.h"
#include "source/server/listen_socket.h"
#include "source/snapshot/config_loader.h"
#include "source/snapshot/migrations.h"

namespace mcproxy::server {
namespace {

constexpr std::chrono::milliseconds kDrainPollInterval{50};

// Many connections need many descriptors (two per proxied connection, four more with splice).
void raiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

size_t routeCount(const snapshot::Snapshot& snapshot) {
  size_t routes = 0;
  for (const auto& listener : snapshot.listeners) routes += listener->routes.size();
  return routes;
}

double millisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

Server::Server(Options options) : options_(std::move(options)) {
  if (options_.workers == 0) {
    options_.workers = std::max<size_t>(1, std::thread::hardware_concurrency());
  }
}

Server::~Server() = default;

std::string Server::configOrigin() const {
  return options_.config_path.empty() ? "<embedded default>" : options_.config_path;
}

snapshot::CompileResult Server::compileConfig(mcproxy::config::v1::Bootstrap config,
                                              uint64_t version) {
  return snapshot::compile(std::move(config), stats_, version, shared_objects_);
}

std::optional<snapshot::StoredSnapshot> Server::loadLatestApart() {
  // Read on a thread of its own, so that glibc gives the parsed config (24 MB at 100,000
  // routes) that thread's arena: the compile frees it all at once, and the arena's pages go
  // back whole instead of staying as holes between the compiled routes.
  std::optional<snapshot::StoredSnapshot> stored;
  std::exception_ptr failure;
  std::thread reader([&] {
    try {
      stored = store_->loadLatest();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  reader.join();
  if (failure) std::rethrow_exception(failure);
  return stored;
}

mcproxy::config::v1::Bootstrap Server::loadConfigFile() const {
  if (options_.config_path.empty()) {
    return snapshot::parseTextConfig(snapshot::embeddedDefaultConfigText(), "<embedded default>");
  }
  return snapshot::loadConfigFile(options_.config_path);
}

std::optional<snapshot::CompileResult> Server::loadInitialSnapshot() {
  try {
    if (!store_) return compileConfig(loadConfigFile(), 1);

    const auto started = std::chrono::steady_clock::now();
    std::optional<snapshot::StoredSnapshot> stored = loadLatestApart();
    if (!stored) {
      // An empty database is seeded from the config; after that the database is the truth.
      const mcproxy::config::v1::Bootstrap seed = loadConfigFile();
      compileConfig(seed, 1);  // validates: a broken config throws before anything is written
      const auto written = store_->write(seed, "seed:" + configOrigin());
      stored = store_->load(written.version);
      LOG_INFO << "database " << options_.db_path << " was empty: seeded version "
               << written.version << " from " << configOrigin();
    } else if (!options_.config_path.empty()) {
      LOG_WARN << "database " << options_.db_path << " already holds version "
               << stored->info.version << "; --config " << options_.config_path
               << " is NOT applied. To apply it: mcproxyctl compile --config "
               << options_.config_path << " --db " << options_.db_path;
    }
    const double load_ms = millisecondsSince(started);
    const auto compile_started = std::chrono::steady_clock::now();
    auto compiled = compileConfig(std::move(stored->config), stored->info.version);
    LOG_INFO << "config version " << stored->info.version << " (" << stored->info.source << ", "
             << routeCount(*compiled.snapshot) << " routes) read from the database in " << load_ms
             << " ms, compiled in " << millisecondsSince(compile_started) << " ms";
    return compiled;
  } catch (const config::ConfigError& e) {
    LOG_ERROR << "config error: " << (store_ ? options_.db_path : configOrigin()) << ": "
              << e.what();
  } catch (const snapshot::StoreError& e) {
    LOG_ERROR << "database error: " << e.what();
  }
  return std::nullopt;
}

int Server::run() {
  raiseFileLimit();
  // Before anything is announced: a SIGTERM that arrives right after "started" must drain,
  // not kill the process with the default action. libevent delivers signals in run() below.
  installSignalHandlers();
  if (!options_.db_path.empty()) {
    try {
      store_ = std::make_unique<snapshot::SnapshotStore>(options_.db_path);
      for (int64_t migration : store_->appliedMigrations()) {
        LOG_INFO << "database " << options_.db_path << ": applied schema migration " << migration;
      }
      LOG_INFO << "database " << options_.db_path << ": schema version "
               << snapshot::schemaVersion(store_->database()) << ", newest config version "
               << store_->latestVersion();
    } catch (const snapshot::StoreError& e) {
      LOG_ERROR << "database error: " << e.what();
      return 1;
    }
  }
  std::optional<snapshot::CompileResult> compiled = loadInitialSnapshot();
  if (!compiled) return 1;
  // The admin section is a process setting: from the config file even when the database holds
  // the routes.
  mcproxy::config::v1::Admin admin;
  try {
    admin = options_.config_path.empty() && store_ ? mcproxy::config::v1::Admin()
                                                   : loadConfigFile().admin();
  } catch (const config::ConfigError&) {
    // Reported by loadInitialSnapshot when it mattered; a DB-run proxy may have no file.
  }
  if (!options_.admin_socket.empty()) admin.set_socket(options_.admin_socket);
  for (const auto& warning : compiled->warnings) LOG_WARN << "config: " << warning;
  if (options_.config_path.empty() && !store_) {
    LOG_INFO << "no --config given: running the embedded default config (route localhost -> "
                "127.0.0.1:9443). To add routes, write a config (mc-proxy --print-default-config "
                "prints this one as a start; docs/configuration.md has every field) and run "
                "mc-proxy --config FILE";
  }

  for (size_t i = 0; i < options_.workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, access_log_writer_.addQueue()));
  }
  access_log_writer_.start();
  // Moved, not copied: after a reload nothing but open connections may keep this one alive.
  if (!applySnapshot(std::move(compiled->snapshot))) return 1;
  compiled.reset();
  for (auto& worker : workers_) worker->start();
  if (store_) store_data_version_ = store_->dataVersion();
  watch_timer_ = std::make_unique<event::Timer>(dispatcher_, [this] { onWatchTick(); });
  watch_timer_->arm(options_.db_poll_interval);
  if (!startAdmin(admin)) return 1;
  ready_ = true;
  LOG_INFO << "started " << workers_.size() << " worker(s), config version " << snapshot_->version;

  dispatcher_.run();
  if (store_) {
    try {
      store_->forgetRunning();
    } catch (const snapshot::StoreError& e) {
      LOG_WARN << "database: " << e.what();
    }
  }
  admin_.reset();
  for (auto& worker : workers_) worker->join();
  signal_events_.clear();
  LOG_INFO << "exited cleanly";
  dumpStats();
  return 0;
}

bool Server::startAdmin(const mcproxy::config::v1::Admin& admin) {
  if (admin.socket().empty() && admin.http_address().empty()) return true;
  std::vector<uid_t> allowed(admin.allowed_uids().begin(), admin.allowed_uids().end());
  admin_ = std::make_unique<AdminServer>(dispatcher_, *this, admin.socket(), std::move(allowed),
                                         admin.http_address());
  std::string error;
  if (!admin_->start(error)) {
    LOG_ERROR << error;
    admin_.reset();
    return false;
  }
  return true;
}

ChangeResult Server::applyConfig(const mcproxy::config::v1::Bootstrap& config,
                                 const std::string& source, std::optional<int64_t> built_on) {
  // Validate first: an invalid change throws here and touches neither the database nor the
  // running routes.
  snapshot::CompileResult compiled = compileConfig(config, 0);
  const snapshot::WriteResult written = store_->write(config, source, 0, built_on);
  if (!written.created && static_cast<uint64_t>(written.version) == snapshot_->version) {
    return {snapshot_->version, false};
  }
  for (const auto& warning : compiled.warnings) LOG_WARN << "config: " << warning;
  compiled.snapshot->version = static_cast<uint64_t>(written.version);
  store_data_version_ = store_->dataVersion();  // our own commit: no reload needed for it
  if (!applySnapshot(compiled.snapshot)) {
    throw config::ConfigError("listeners", "a listener of version " +
                                               std::to_string(written.version) +
                                               " cannot be bound; still running the previous one");
  }
  LOG_INFO << "admin: config version " << written.version << " (" << source << ") is running";
  return {static_cast<uint64_t>(written.version), written.created};
}

ChangeResult Server::reloadCertificates() {
  // Compiling again reads every certificate and key; a broken pair throws and nothing changes.
  snapshot::CompileResult compiled = compileConfig(snapshot_->config(), snapshot_->version);
  applySnapshot(compiled.snapshot);
  LOG_INFO << "admin: certificates reloaded for config version " << snapshot_->version;
  return {snapshot_->version, true};
}

mcproxy::admin::v1::Status Server::status() const {
  mcproxy::admin::v1::Status out;
  out.set_version(versionText());
  out.set_uptime_seconds(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                                   std::chrono::steady_clock::now() - start_time_)
                                                   .count()));
  out.set_snapshot_version(snapshot_->version);
  for (const auto& listener : snapshot_->listeners) {
    auto* entry = out.add_listeners();
    entry->set_name(listener->name);
    entry->set_address(listener->address_text);
    auto bound = bound_listeners_.find(listener->address_text);
    if (bound != bound_listeners_.end()) entry->set_bound_address(bound->second.toString());
    entry->set_active_connections(listener->stats.active.value());
    entry->set_total_connections(listener->stats.connections.value());
  }
  return out;
}

void Server::installSignalHandlers() {
  auto addSignal = [this](int signo, void (*callback)(evutil_socket_t, short, void*)) {
    signal_events_.emplace_back(evsignal_new(dispatcher_.base(), signo, callback, this),
                                &event_free);
    evsignal_add(signal_events_.back().get(), nullptr);
  };
  addSignal(SIGTERM, [](evutil_socket_t, short, void* self) {
    static_cast<Server*>(self)->onTerminate("SIGTERM");
  });
  addSignal(SIGINT, [](evutil_socket_t, short, void* self) {
    static_cast<Server*>(self)->onTerminate("SIGINT");
  });
  addSignal(SIGHUP, [](evutil_socket_t, short, void* self) {
    static_cast<Server*>(self)->reload("SIGHUP");
  });
  addSignal(SIGUSR1, [](evutil_socket_t, short, void* self) {
    auto* server = static_cast<Server*>(self);
    server->access_log_writer_.reopenFiles();  // logrotate's postrotate
    server->dumpStats();
  });
  drain_timer_ = std::make_unique<event::Timer>(dispatcher_, [this] { onDrainTick(); });
}

bool Server::applySnapshot(std::shared_ptr<const snapshot::Snapshot> snapshot) {
  // Bind every new listener first, so a port that cannot be bound refuses the whole snapshot.
  struct NewListener {
    const snapshot::CompiledListener* config;
    network::Address bound;
    std::vector<network::UniqueFd> sockets;  // one per worker
  };
  std::vector<NewListener> added;
  for (const auto& listener : snapshot->listeners) {
    if (bound_listeners_.count(listener->address_text)) continue;
    NewListener entry{listener.get(), listener->address, {}};
    for (size_t i = 0; i < workers_.size(); ++i) {
      // The first socket resolves port 0; the other workers bind to the port it got.
      std::string error;
      network::UniqueFd socket =
          createListenSocket(entry.bound, static_cast<int>(listener->backlog), error);
      if (!socket.valid()) {
        LOG_ERROR << "listener " << listener->name << ": " << error;
        return false;
      }
      entry.bound = boundAddress(socket.get());
      entry.sockets.push_back(std::move(socket));
    }
    added.push_back(std::move(entry));
  }

  // Workers see the snapshot before the sockets that need it: posts run in order.
  // The compile just freed the config it read, and the old snapshot goes once the workers let
  // it go: the watch tick after that gives the pages back (a reload's high point falls between
  // ticks, where the load-drop check cannot see it).
  trim_after_reload_ = true;
  snapshot_ = std::move(snapshot);
  for (const auto& cluster : snapshot_->clusters) cluster->publishWeights();
  for (auto& worker : workers_) worker->publishSnapshot(snapshot_);
  health_checker_.update(snapshot_->clusters);
  for (NewListener& entry : added) {
    for (size_t i = 0; i < workers_.size(); ++i) {
      workers_[i]->addListener(entry.config->address_text, std::move(entry.sockets[i]));
    }
    bound_listeners_[entry.config->address_text] = entry.bound;
    LOG_INFO << "listener " << entry.config->name << " listening on " << entry.bound.toString()
             << " (" << entry.config->routes.size() << " route(s), " << workers_.size()
             << " worker socket(s))";
  }
  for (auto it = bound_listeners_.begin(); it != bound_listeners_.end();) {
    if (snapshot_->findListener(it->first) != nullptr) {
      ++it;
      continue;
    }
    for (auto& worker : workers_) worker->removeListener(it->first);
    LOG_INFO << "listener " << it->first << " (" << it->second.toString()
             << ") closed; its open connections continue";
    it = bound_listeners_.erase(it);
  }
  if (store_ && snapshot_->version > 0) {
    // So that `mcproxyctl snapshots prune` keeps what this process runs.
    try {
      store_->recordRunning(static_cast<int64_t>(snapshot_->version));
    } catch (const snapshot::StoreError& e) {
      LOG_WARN << "database: cannot record the running version: " << e.what();
    }
  }
  return true;
}

void Server::reload(const std::string& why) {
  if (draining_) return;
  const auto started = std::chrono::steady_clock::now();
  snapshot::CompileResult compiled;
  std::string source;
  try {
    if (store_) {
      std::optional<snapshot::StoredSnapshot> stored = loadLatestApart();
      if (!stored) return;
      source = options_.db_path + " version " + std::to_string(stored->info.version) + " (" +
               stored->info.source + ")";
      compiled = compileConfig(std::move(stored->config), stored->info.version);
    } else {
      source = configOrigin();
      compiled = compileConfig(loadConfigFile(), snapshot_->version + 1);
    }
  } catch (const config::ConfigError& e) {
    LOG_ERROR << why << ": reload refused, still running version " << snapshot_->version << ": "
              << e.what();
    return;
  } catch (const snapshot::StoreError& e) {
    LOG_ERROR << why << ": reload refused, still running version " << snapshot_->version << ": "
              << e.what();
    return;
  }
  for (const auto& warning : compiled.warnings) LOG_WARN << "config: " << warning;
  const uint64_t version = compiled.snapshot->version;
  const size_t routes = routeCount(*compiled.snapshot);
  if (!applySnapshot(compiled.snapshot)) {
    LOG_ERROR << why << ": reload refused, still running version " << snapshot_->version;
    return;
  }
  LOG_INFO << why << ": reload done: config version " << version << " from " << source << " ("
           << routes << " routes) in " << millisecondsSince(started)
           << " ms serves new connections; open ones finish on the version they started with";
}

void Server::onWatchTick() {
  // A file the running snapshot was compiled from changed (a GeoIP database): compile again.
  for (const auto& file : snapshot_->watched_files) {
    if (file.changed()) {
      reload(file.path + " changed");
      break;
    }
  }
  if (store_) {
    try {
      const int64_t data_version = store_->dataVersion();
      if (data_version != store_data_version_) {
        store_data_version_ = data_version;
        const int64_t latest = store_->latestVersion();
        if (latest != static_cast<int64_t>(snapshot_->version)) {
          reload("database changed (version " + std::to_string(latest) + ")");
        }
      }
    } catch (const snapshot::StoreError& e) {
      LOG_ERROR << "database poll: " << e.what();
    }
  }
  trimHeapAfterReload();
  trimHeapAfterLoadDrop();
  if (!draining_) watch_timer_->arm(options_.db_poll_interval);
}

void Server::trimHeapAfterReload() {
  if (!trim_after_reload_ || snapshot::Snapshot::alive() > 1) return;
  trim_after_reload_ = false;
  malloc_trim(0);
  heap_trims_.inc();
}

void Server::trimHeapAfterLoadDrop() {
  // glibc keeps freed heap for the process: after 5,000 connections have come and gone, or a
  // few clients' large buffers, that is memory an operator sees as used for nothing. Once the
  // heap in use has dropped by kTrimAfterFreed from its peak since the last trim, hand the free
  // pages back. A steady load never trims; the check is one mallinfo2() a tick on this thread.
  constexpr size_t kTrimAfterFreed = 16 << 20;
  const size_t in_use = mallinfo2().uordblks;
  heap_in_use_.set(static_cast<int64_t>(in_use));
  heap_peak_since_trim_ = std::max(heap_peak_since_trim_, in_use);
  if (heap_peak_since_trim_ >= in_use + kTrimAfterFreed) {
    malloc_trim(0);
    heap_trims_.inc();
    LOG_DEBUG << "heap trimmed: " << in_use << " bytes in use, " << heap_peak_since_trim_
              << " at the peak";
    heap_peak_since_trim_ = in_use;
  }
}

void Server::onTerminate(const char* signal_name) {
  if (draining_) {
    LOG_INFO << signal_name << " again: closing every connection now";
    drain_deadline_ = std::chrono::steady_clock::now();
    return;
  }
  draining_ = true;
  if (watch_timer_) watch_timer_->cancel();
  drain_deadline_ = std::chrono::steady_clock::now() + snapshot_->drain_timeout;
  size_t open = 0;
  for (auto& worker : workers_) open += worker->activeConnections();
  LOG_INFO << signal_name << ": draining; stopped accepting, " << open
           << " connection(s) open, deadline " << snapshot_->drain_timeout.count() << " ms";
  for (auto& worker : workers_) worker->stopListening();
  onDrainTick();
}

void Server::onDrainTick() {
  size_t open = 0;
  for (auto& worker : workers_) open += worker->activeConnections();
  if (open == 0) {
    shutdown();
    return;
  }
  if (std::chrono::steady_clock::now() >= drain_deadline_ && !forced_close_sent_) {
    LOG_WARN << "drain deadline passed: closing " << open << " connection(s)";
    forced_close_sent_ = true;
    for (auto& worker : workers_) worker->closeAllConnections(network::CloseReason::kDrainTimeout);
  }
  drain_timer_->arm(kDrainPollInterval);
}

void Server::shutdown() {
  LOG_INFO << "all connections closed; stopping workers";
  for (auto& worker : workers_) worker->stop();
  dispatcher_.exit();
}

void Server::dumpStats() const {
  LOG_INFO << "stat server.snapshots_alive " << snapshot::Snapshot::alive();
  size_t dumped = 1;
  for (const auto& sample : stats_.samples()) {
    if (sample.value == 0) continue;
    LOG_INFO << "stat " << sample.name << " " << sample.value;
    ++dumped;
  }
  // Marks the end of one dump, so a reader knows it has seen all of it.
  LOG_INFO << "stats dump done: " << dumped << " non-zero stat(s)";
}

}  // namespace mcproxy::server

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
#include "source/common/network/host_name.h"
#include "source/common/tls/digest.h"
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

// The admin backend changes use on the change thread: the database through a connection of its
// own, compiles there, and the main thread only to run the result.
class Server::ChangeBackend : public ConfigChanges {
 public:
  explicit ChangeBackend(Server& server) : server_(server) {}

  std::shared_ptr<const snapshot::Snapshot> currentSnapshot() const override {
    return server_.publishedSnapshot();
  }
  snapshot::SnapshotStore* store() override {
    if (server_.options_.db_path.empty()) return nullptr;
    if (!store_) store_ = std::make_unique<snapshot::SnapshotStore>(server_.options_.db_path);
    return store_.get();
  }
  ChangeResult applyConfig(const mcproxy::config::v1::Bootstrap& config, const std::string& source,
                           std::optional<int64_t> built_on) override {
    // Validate first: an invalid change throws here and touches neither the database nor the
    // running routes.
    const auto started = std::chrono::steady_clock::now();
    // Normalized as the store writes it: the snapshot's bytes are then the version's canonical
    // bytes, which the next route edit is made to (applyRouteEdit).
    snapshot::CompileResult compiled =
        server_.compileConfig(snapshot::SnapshotStore::normalize(config), 0);
    const double compile_ms = millisecondsSince(started);
    const auto store_started = std::chrono::steady_clock::now();
    const snapshot::WriteResult written = store()->write(config, source, 0, built_on);
    const double store_ms = millisecondsSince(store_started);
    const auto running = currentSnapshot();
    if (!written.created && static_cast<uint64_t>(written.version) == running->version) {
      return {running->version, false};
    }
    compiled.snapshot->version = static_cast<uint64_t>(written.version);
    compiled.snapshot->config_hash = written.content_hash;  // compiled from the normalized config
    const ChangeResult result = server_.runOnMainThread(
        std::move(compiled.snapshot), std::move(compiled.warnings), source, written);
    LOG_INFO << "config version " << written.version << " (" << source
             << ") is running: compiled in " << compile_ms << " ms, stored in " << store_ms
             << " ms, " << millisecondsSince(started) << " ms in all (on the change thread)";
    return result;
  }
  std::optional<ChangeResult> applyRouteEdit(snapshot::RouteEdit edit,
                                             const std::string& source) override {
    const auto started = std::chrono::steady_clock::now();
    const auto running = currentSnapshot();
    const int64_t newest = store()->latestVersion();
    if (newest == 0 || static_cast<uint64_t>(newest) != running->version) return std::nullopt;
    // The edit is made to the running snapshot's bytes: they must be exactly what is stored.
    const std::string stored_hash = store()->info(newest).content_hash;
    if ((running->config_hash.empty() ? tls::sha256Hex(running->config_bytes)
                                      : running->config_hash) != stored_hash) {
      LOG_INFO << source << ": made the long way (the running config's bytes are not version "
               << newest << "'s canonical bytes)";
      return std::nullopt;
    }
    auto prepared = snapshot::prepareRouteEdit(running->config_bytes, newest, std::move(edit));
    if (!prepared.ok()) {
      LOG_INFO << source << ": made the long way (" << prepared.status().message() << ")";
      return std::nullopt;
    }
    const double prepare_ms = millisecondsSince(started);
    const auto patch_started = std::chrono::steady_clock::now();
    snapshot::CompileResult compiled =
        snapshot::patchRoutes(*running, *prepared, server_.stats_, server_.shared_objects_);
    const double patch_ms = millisecondsSince(patch_started);
    const auto store_started = std::chrono::steady_clock::now();
    snapshot::WriteResult written;
    try {
      written = store()->writeRouteEdit(*prepared, source);
    } catch (const snapshot::VersionConflict&) {
      return std::nullopt;  // another writer came first: the long way builds on its version
    }
    const double store_ms = millisecondsSince(store_started);
    compiled.snapshot->version = static_cast<uint64_t>(written.version);
    const ChangeResult result = server_.runOnMainThread(
        std::move(compiled.snapshot), std::move(compiled.warnings), source, written);
    LOG_INFO << "config version " << written.version << " (" << source << ") is running: version "
             << newest << "'s bytes edited in " << prepare_ms << " ms, its snapshot patched in "
             << patch_ms << " ms, stored in " << store_ms << " ms, " << millisecondsSince(started)
             << " ms in all (on the change thread)";
    return result;
  }
  ChangeResult reloadCertificates() override {
    // Compiling again reads every certificate and key; a broken pair throws and nothing changes.
    const auto running = currentSnapshot();
    snapshot::CompileResult compiled = server_.compileConfig(running->config(), running->version);
    server_.runOnMainThread(std::move(compiled.snapshot), std::move(compiled.warnings),
                            "certificates reloaded", std::nullopt);
    LOG_INFO << "admin: certificates reloaded for config version " << running->version;
    return {running->version, true};
  }

 private:
  Server& server_;
  std::unique_ptr<snapshot::SnapshotStore> store_;  // opened on the change thread
};

Server::Server(Options options) : options_(std::move(options)) {
  if (options_.workers == 0) {
    options_.workers = std::max<size_t>(1, std::thread::hardware_concurrency());
  }
}

Server::~Server() { stopChangeThread(); }

void Server::startChangeThread() {
  change_backend_ = std::make_unique<ChangeBackend>(*this);
  change_thread_ = std::thread([this] {
    logging::setThreadName("change");
    change_dispatcher_.run();
  });
}

void Server::stopChangeThread() {
  if (!change_thread_.joinable()) return;
  // A change waiting for the main thread gives up; one compiling finishes first.
  stopping_changes_ = true;
  change_dispatcher_.exit();
  change_thread_.join();
  change_backend_.reset();
}

void Server::runChange(std::function<void(ConfigChanges&)> work) {
  ++changes_in_flight_;
  change_dispatcher_.post([this, work = std::move(work)] {
    work(*change_backend_);
    --changes_in_flight_;
  });
}

std::shared_ptr<const snapshot::Snapshot> Server::publishedSnapshot() const {
  std::lock_guard lock(published_mutex_);
  return published_;
}

ChangeResult Server::runOnMainThread(std::shared_ptr<snapshot::Snapshot> snapshot,
                                     std::vector<std::string> warnings, const std::string& source,
                                     std::optional<snapshot::WriteResult> written) {
  auto done = std::make_shared<std::promise<ChangeResult>>();
  std::future<ChangeResult> answer = done->get_future();
  dispatcher_.post([this, done, snapshot = std::move(snapshot), warnings = std::move(warnings),
                    source, written]() mutable {
    try {
      for (const auto& warning : warnings) LOG_WARN << "config: " << warning;
      const uint64_t version = snapshot->version;
      if (written) {
        store_data_version_ = store_->dataVersion();  // that commit needs no reload
      }
      std::shared_ptr<const snapshot::Snapshot> replaced = snapshot_;
      if (!applySnapshot(std::move(snapshot))) {
        throw config::ConfigError("listeners", "a listener of version " + std::to_string(version) +
                                                   " cannot be bound; still running the previous"
                                                   " one (" +
                                                   source + ")");
      }
      if (written) running_hash_ = written->content_hash;
      // The snapshot this one replaced (100,000 routes take tens of milliseconds to free) goes
      // on the change thread, unless connections still use it.
      change_dispatcher_.post([replaced = std::move(replaced)] {});
      done->set_value({version, !written || written->created});
    } catch (...) {
      done->set_exception(std::current_exception());
    }
  });
  while (answer.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
    if (stopping_changes_) {
      throw snapshot::StoreError("the proxy is stopping: " + source +
                                 (written ? " is stored and runs at the next start" : "") +
                                 ", but does not run now");
    }
  }
  return answer.get();
}

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
    if (!stored && !options_.fleet.empty()) {
      // Nothing to serve until the fleet's config arrives; the database takes nothing else.
      LOG_WARN << "database " << options_.db_path << " holds no version yet: NOT READY until "
               << "fleet " << options_.fleet << "'s current config arrives from etcd";
      // A config needs a listener; an empty snapshot (version 0) serves nothing meanwhile.
      return snapshot::CompileResult{std::make_shared<snapshot::Snapshot>(), {}};
    }
    if (!stored) {
      // An empty database is seeded from the config; after that the database is the truth.
      const mcproxy::config::v1::Bootstrap seed = loadConfigFile();
      compileConfig(seed, 1);  // validates: a broken config throws before anything is written
      const auto written = store_->write(seed, "seed:" + configOrigin());
      stored = store_->load(written.version);
      LOG_INFO << "database " << options_.db_path << " was empty: seeded version "
               << written.version << " from " << configOrigin();
    } else if (!options_.config_path.empty() && options_.fleet.empty()) {
      LOG_WARN << "database " << options_.db_path << " already holds version "
               << stored->info.version << "; --config " << options_.config_path
               << " is NOT applied. To apply it: mcproxyctl compile --config "
               << options_.config_path << " --db " << options_.db_path;
    }
    running_hash_ = stored->info.content_hash;
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
      if (options_.fleet.empty()) {
        if (auto left = store_->leaveFleet()) {
          LOG_WARN << "database " << options_.db_path << " followed fleet " << left->fleet
                   << "; started without --fleet, it takes local changes again";
        }
      }
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
  startChangeThread();
  if (!startAdmin(admin)) return 1;
  if (!startFleet()) return 1;
  ready_ = true;
  LOG_INFO << "started " << workers_.size() << " worker(s), config version " << snapshot_->version;

  dispatcher_.run();
  stopChangeThread();
  if (follower_) follower_->stop();  // its key in etcd goes with its lease
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

bool Server::startFleet() {
  if (options_.fleet.empty()) return true;
  auto etcd = fleet::EtcdOptions::parse(options_.etcd_urls, options_.etcd_ca, options_.etcd_cert,
                                        options_.etcd_key);
  if (!etcd.ok()) {
    LOG_ERROR << etcd.status().message();
    return false;
  }
  fleet::FollowerOptions follow{options_.fleet, options_.node_id, std::chrono::seconds(10),
                                [etcd = *etcd]() -> absl::StatusOr<std::unique_ptr<fleet::Etcd>> {
                                  auto client = fleet::EtcdClient::connect(etcd);
                                  if (!client.ok()) return client.status();
                                  return std::unique_ptr<fleet::Etcd>(std::move(*client));
                                }};
  if (follow.node_id.empty()) follow.node_id = network::hostName();
  if (absl::Status s = fleet::checkName("the host name (--node-id)", follow.node_id); !s.ok()) {
    LOG_ERROR << s.message();
    return false;
  }
  fleet::NodeStatus running;
  running.set_local_version(static_cast<int64_t>(snapshot_->version));
  running.set_applied_hash(running_hash_);
  try {
    // The fleet version the running local one came from (its row alone, not its config).
    if (snapshot_->version > 0) {
      running.set_applied_version(fleet::fleetVersionOf(
          follow.fleet, store_->info(static_cast<int64_t>(snapshot_->version)).source));
    }
    store_->joinFleet({follow.fleet, etcd->describe(), follow.node_id, ""});
  } catch (const snapshot::StoreError& e) {
    LOG_ERROR << "database error: " << e.what();
    return false;
  }
  follower_ = std::make_unique<fleet::Follower>(
      std::move(follow), std::move(running),
      [this](const fleet::PublishedSnapshot& published, mcproxy::config::v1::Bootstrap config) {
        return applyFleetSnapshot(published, std::move(config));
      });
  follower_->start();
  return true;
}

std::future<fleet::ApplyVerdict> Server::applyFleetSnapshot(
    const fleet::PublishedSnapshot& published, mcproxy::config::v1::Bootstrap config) {
  auto verdict = std::make_shared<std::promise<fleet::ApplyVerdict>>();
  std::future<fleet::ApplyVerdict> answer = verdict->get_future();
  // Like an admin change: compiled and stored on the change thread, run by the main thread.
  runChange([this, verdict, published, config = std::move(config)](ConfigChanges& where) {
    fleet::ApplyVerdict out;
    const std::string source = fleet::localSource(options_.fleet, published);
    try {
      const ChangeResult result = where.applyConfig(config, source, std::nullopt);
      out.applied = true;
      out.local_version = static_cast<int64_t>(result.snapshot_version);
    } catch (const config::ConfigError& e) {
      out.error = e.what();
    } catch (const snapshot::StoreError& e) {
      out.error = std::string("database: ") + e.what();
    }
    verdict->set_value(out);
  });
  return answer;
}

mcproxy::admin::v1::Status Server::status() const {
  mcproxy::admin::v1::Status out;
  out.set_version(versionText());
  out.set_uptime_seconds(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                                   std::chrono::steady_clock::now() - start_time_)
                                                   .count()));
  out.set_snapshot_version(snapshot_->version);
  out.set_snapshot_hash(running_hash_);
  if (follower_) {
    out.set_fleet(options_.fleet);
    out.set_etcd_connected(follower_->connected());
    *out.mutable_fleet_node() = follower_->status();
  }
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
  {
    std::lock_guard lock(published_mutex_);
    published_ = snapshot_;
  }
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
  std::string hash;
  try {
    if (store_) {
      std::optional<snapshot::StoredSnapshot> stored = loadLatestApart();
      if (!stored) return;
      source = options_.db_path + " version " + std::to_string(stored->info.version) + " (" +
               stored->info.source + ")";
      hash = stored->info.content_hash;
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
  if (store_) running_hash_ = hash;
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
  // A change on the change thread commits before the main thread runs it: its commit is not
  // another writer's (the next tick looks again).
  if (store_ && changes_in_flight_ == 0) {
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
  // Both walk the heap (mallinfo2 alone takes 20-40 ms with 100,000 routes' worth of it): on the
  // change thread, so the main loop answers meanwhile.
  const bool after_reload = trim_after_reload_ && snapshot::Snapshot::alive() <= 1;
  if (after_reload) trim_after_reload_ = false;
  change_dispatcher_.post([this, after_reload] {
    if (after_reload) {
      malloc_trim(0);
      heap_trims_.inc();
    }
    trimHeapAfterLoadDrop();
  });
  if (!draining_) watch_timer_->arm(options_.db_poll_interval);
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

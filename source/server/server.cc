#include "source/server/server.h"

#include <event2/event.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include "source/common/config/config_error.h"
#include "source/common/logging/logger.h"
#include "source/server/listen_socket.h"
#include "source/snapshot/config_loader.h"

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

}  // namespace

Server::Server(Options options) : options_(std::move(options)) {
  if (options_.workers == 0) {
    options_.workers = std::max<size_t>(1, std::thread::hardware_concurrency());
  }
}

Server::~Server() = default;

mcproxy::config::v1::Bootstrap Server::loadConfig() const {
  if (options_.config_path.empty()) {
    return snapshot::parseTextConfig(snapshot::embeddedDefaultConfigText(), "<embedded default>");
  }
  return snapshot::loadConfigFile(options_.config_path);
}

int Server::run() {
  raiseFileLimit();
  // Before anything is announced: a SIGTERM that arrives right after "started" must drain,
  // not kill the process with the default action. libevent delivers signals in run() below.
  installSignalHandlers();
  snapshot::CompileResult compiled;
  try {
    compiled = snapshot::compile(loadConfig(), stats_, 1);
  } catch (const config::ConfigError& e) {
    LOG_ERROR << "config error: "
              << (options_.config_path.empty() ? std::string("<embedded default>")
                                               : options_.config_path)
              << ": " << e.what();
    return 1;
  }
  for (const auto& warning : compiled.warnings) LOG_WARN << "config: " << warning;
  snapshot_ = compiled.snapshot;

  if (options_.config_path.empty()) {
    LOG_INFO << "no --config given: running the embedded default config (route localhost -> "
                "127.0.0.1:9443). To add routes, write a config (mc-proxy --print-default-config "
                "prints this one as a start; docs/configuration.md has every field) and run "
                "mc-proxy --config FILE";
  }

  for (size_t i = 0; i < options_.workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(i));
  }
  for (auto& worker : workers_) worker->publishSnapshot(snapshot_);
  if (!bindListeners(*snapshot_)) return 1;
  for (auto& worker : workers_) worker->start();
  LOG_INFO << "started " << workers_.size() << " worker(s), config version " << snapshot_->version;

  dispatcher_.run();
  for (auto& worker : workers_) worker->join();
  signal_events_.clear();
  LOG_INFO << "exited cleanly";
  dumpStats();
  return 0;
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
  addSignal(SIGHUP,
            [](evutil_socket_t, short, void* self) { static_cast<Server*>(self)->onReload(); });
  addSignal(SIGUSR1,
            [](evutil_socket_t, short, void* self) { static_cast<Server*>(self)->dumpStats(); });
  drain_timer_ = std::make_unique<event::Timer>(dispatcher_, [this] { onDrainTick(); });
}

bool Server::bindListeners(const snapshot::Snapshot& snapshot) {
  for (const auto& listener : snapshot.listeners) {
    // The first socket resolves port 0; the other workers bind to the port it got.
    network::Address address = listener->address;
    for (auto& worker : workers_) {
      std::string error;
      network::UniqueFd socket =
          createListenSocket(address, static_cast<int>(listener->backlog), error);
      if (!socket.valid()) {
        LOG_ERROR << "listener " << listener->name << ": " << error;
        return false;
      }
      address = boundAddress(socket.get());
      worker->addListener(listener->address_text, std::move(socket));
    }
    LOG_INFO << "listener " << listener->name << " listening on " << address.toString() << " ("
             << listener->routes.size() << " route(s), " << workers_.size() << " worker socket(s))";
  }
  return true;
}

void Server::publish(std::shared_ptr<const snapshot::Snapshot> snapshot) {
  snapshot_ = std::move(snapshot);
  for (auto& worker : workers_) worker->publishSnapshot(snapshot_);
}

void Server::onReload() {
  if (draining_) return;
  LOG_INFO << "SIGHUP: reloading "
           << (options_.config_path.empty() ? "<embedded default>" : options_.config_path);
  snapshot::CompileResult compiled;
  try {
    compiled = snapshot::compile(loadConfig(), stats_, snapshot_->version + 1);
  } catch (const config::ConfigError& e) {
    LOG_ERROR << "reload refused, still running version " << snapshot_->version << ": " << e.what();
    return;
  }
  // Listening sockets stay as they are; a reload changes routes and filters.
  for (const auto& listener : compiled.snapshot->listeners) {
    if (snapshot_->findListener(listener->address_text) == nullptr) {
      LOG_ERROR << "reload refused, still running version " << snapshot_->version << ": listener "
                << listener->address_text
                << " is new; adding or removing listeners needs a restart";
      return;
    }
  }
  if (compiled.snapshot->listeners.size() != snapshot_->listeners.size()) {
    LOG_ERROR << "reload refused, still running version " << snapshot_->version
              << ": removing listeners needs a restart";
    return;
  }
  for (const auto& warning : compiled.warnings) LOG_WARN << "config: " << warning;
  publish(compiled.snapshot);
  LOG_INFO << "reload done: config version " << snapshot_->version
           << " serves new connections; open ones finish on the version they started with";
}

void Server::onTerminate(const char* signal_name) {
  if (draining_) {
    LOG_INFO << signal_name << " again: closing every connection now";
    drain_deadline_ = std::chrono::steady_clock::now();
    return;
  }
  draining_ = true;
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
  size_t dumped = 0;
  for (const auto& sample : stats_.samples()) {
    if (sample.value == 0) continue;
    LOG_INFO << "stat " << sample.name << " " << sample.value;
    ++dumped;
  }
  // Marks the end of one dump, so a reader knows it has seen all of it.
  LOG_INFO << "stats dump done: " << dumped << " non-zero stat(s)";
}

}  // namespace mcproxy::server

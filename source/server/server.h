#pragma once

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "source/common/access_log/access_log.h"
#include "source/common/event/dispatcher.h"
#include "source/common/stats/stats.h"
#include "source/common/upstream/health_checker.h"
#include "source/fleet/follower.h"
#include "source/server/admin/admin_backend.h"
#include "source/server/admin/admin_server.h"
#include "source/server/options.h"
#include "source/server/worker.h"
#include "source/snapshot/snapshot.h"
#include "source/snapshot/store.h"

struct event;

namespace mcproxy::server {

// The running process: the main thread's loop (signals, reload, database watch, drain) and
// the workers.
class Server : public AdminBackend {
 public:
  explicit Server(Options options);
  ~Server() override;

  // Loads the config, binds the listeners, starts the workers and runs until drained.
  // Returns the process exit code.
  int run();

 private:
  class ChangeBackend;

  // AdminBackend: what the admin plane reads; changes run on the change thread (runChange),
  // with the ChangeBackend (ConfigChanges).
  void runChange(std::function<void(ConfigChanges&)> work) override;
  std::shared_ptr<const snapshot::Snapshot> currentSnapshot() const override { return snapshot_; }
  snapshot::SnapshotStore* store() override { return store_.get(); }
  mcproxy::admin::v1::Status status() const override;
  const stats::Store& stats() const override { return stats_; }
  // With --fleet, not before the node runs a version (an empty database waits for the fleet).
  bool ready() const override {
    return ready_ && (options_.fleet.empty() || snapshot_->version > 0);
  }

  // Starts the admin server when a socket is configured; false when it cannot.
  bool startAdmin(const mcproxy::config::v1::Admin& admin);
  std::string configOrigin() const;
  mcproxy::config::v1::Bootstrap loadConfigFile() const;
  // The database's newest version (store_->loadLatest()), read on a short-lived thread.
  std::optional<snapshot::StoredSnapshot> loadLatestApart();
  // The first snapshot: from the database (seeding an empty one) or from the config file.
  // Logs and returns nullopt when the process cannot start.
  std::optional<snapshot::CompileResult> loadInitialSnapshot();
  void installSignalHandlers();
  // --fleet: marks the database as the fleet's and starts following (false: bad options).
  bool startFleet();
  // Called on the follower's thread: compiles and stores a published config on the change
  // thread and runs it (source "fleet:NAME version V"); the future says how it went.
  std::future<fleet::ApplyVerdict> applyFleetSnapshot(const fleet::PublishedSnapshot& published,
                                                      mcproxy::config::v1::Bootstrap config);
  // Binds listeners the snapshot adds, publishes it to every worker, and closes listeners it
  // no longer has. False (nothing changed) when a new listener cannot be bound.
  bool applySnapshot(std::shared_ptr<const snapshot::Snapshot> snapshot);
  // Recompiles from the config source and applies the result; `why` is logged.
  void reload(const std::string& why);
  // Every --db-poll-ms: database commits by other processes and changed watched files.
  void onWatchTick();
  // Gives freed heap back to the system once a spike of connections has mostly gone (on the
  // change thread; heap_peak_since_trim_ is that thread's).
  void trimHeapAfterLoadDrop();
  void onTerminate(const char* signal_name);
  void onDrainTick();
  void shutdown();
  void dumpStats() const;

  // The running snapshot, for threads other than the main one.
  std::shared_ptr<const snapshot::Snapshot> publishedSnapshot() const;
  // On the change thread: runs a snapshot compiled there (and stored, with `written`) on the
  // main thread, and waits for that. Throws what applying it threw.
  ChangeResult runOnMainThread(std::shared_ptr<snapshot::Snapshot> snapshot,
                               std::vector<std::string> warnings, const std::string& source,
                               std::optional<snapshot::WriteResult> written);
  void startChangeThread();
  void stopChangeThread();

  // Compiles the config with what this process's compiles share (its rate limiters).
  snapshot::CompileResult compileConfig(mcproxy::config::v1::Bootstrap config, uint64_t version);

  Options options_;
  stats::Store stats_;
  config::SharedObjects shared_objects_{/*live=*/true};
  // Before the workers, which queue lines for it; after the stats, which it counts in.
  access_log::Writer access_log_writer_{stats_};
  event::Dispatcher dispatcher_;
  std::vector<std::unique_ptr<Worker>> workers_;
  // Checks the running clusters' endpoints for every worker (main thread).
  upstream::HealthChecker health_checker_{dispatcher_, [this](std::string why) { reload(why); }};
  std::shared_ptr<const snapshot::Snapshot> snapshot_;
  std::unique_ptr<snapshot::SnapshotStore> store_;  // with --db only
  std::string running_hash_;                   // the running version's content hash (with --db)
  std::unique_ptr<fleet::Follower> follower_;  // with --fleet only
  int64_t store_data_version_ = 0;
  std::unique_ptr<event::Timer> watch_timer_;
  size_t heap_peak_since_trim_ = 0;
  bool trim_after_reload_ = false;
  stats::Gauge& heap_in_use_ =
      stats_.gauge("server.heap_in_use_bytes",
                   {"mcproxy_heap_in_use_bytes", {}, "Bytes of heap in use (mallinfo2)."});
  stats::Counter& heap_trims_ = stats_.counter("server.heap_trims");
  std::map<std::string, network::Address> bound_listeners_;  // configured address -> bound
  std::vector<std::unique_ptr<struct event, void (*)(struct event*)>> signal_events_;
  std::unique_ptr<event::Timer> drain_timer_;
  std::chrono::steady_clock::time_point drain_deadline_;
  bool draining_ = false;
  bool forced_close_sent_ = false;
  bool ready_ = false;
  std::chrono::steady_clock::time_point start_time_ = std::chrono::steady_clock::now();
  std::unique_ptr<AdminServer> admin_;
  // Admin changes are compiled and written here, off the main loop (runChange); the main thread
  // only runs what they produced.
  event::Dispatcher change_dispatcher_;
  std::thread change_thread_;
  std::unique_ptr<ChangeBackend> change_backend_;
  std::atomic<int> changes_in_flight_{0};
  std::atomic<bool> stopping_changes_{false};
  mutable std::mutex published_mutex_;
  std::shared_ptr<const snapshot::Snapshot> published_;  // snapshot_, under published_mutex_
};

}  // namespace mcproxy::server

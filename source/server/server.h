#pragma once

#include <memory>
#include <string>
#include <vector>

#include "source/common/event/dispatcher.h"
#include "source/common/stats/stats.h"
#include "source/server/options.h"
#include "source/server/worker.h"
#include "source/snapshot/snapshot.h"

struct event;

namespace mcproxy::server {

// The running process: the main thread's loop (signals, reload, drain) and the workers.
class Server {
 public:
  explicit Server(Options options);
  ~Server();

  // Loads the config, binds the listeners, starts the workers and runs until drained.
  // Returns the process exit code.
  int run();

 private:
  mcproxy::config::v1::Bootstrap loadConfig() const;
  void installSignalHandlers();
  bool bindListeners(const snapshot::Snapshot& snapshot);
  void publish(std::shared_ptr<const snapshot::Snapshot> snapshot);
  void onReload();
  void onTerminate(const char* signal_name);
  void onDrainTick();
  void shutdown();
  void dumpStats() const;

  Options options_;
  stats::Store stats_;
  event::Dispatcher dispatcher_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::shared_ptr<const snapshot::Snapshot> snapshot_;
  std::vector<std::unique_ptr<struct event, void (*)(struct event*)>> signal_events_;
  std::unique_ptr<event::Timer> drain_timer_;
  std::chrono::steady_clock::time_point drain_deadline_;
  bool draining_ = false;
  bool forced_close_sent_ = false;
};

}  // namespace mcproxy::server

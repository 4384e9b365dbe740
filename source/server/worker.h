#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "source/common/event/dispatcher.h"
#include "source/common/network/fd.h"
#include "source/common/network/transfer_pool.h"
#include "source/common/upstream/conn_pool.h"
#include "source/common/worker/resources.h"
#include "source/server/connection_impl.h"
#include "source/snapshot/snapshot.h"

namespace mcproxy::server {

// One worker thread: its own event loop, its own listening sockets (SO_REUSEPORT), the
// connections accepted on them, and what those share on this thread only (upstream connection
// pool, relay pipes). The main thread talks to it only through post().
class Worker : public ConnectionOwner, public worker::Resources {
 public:
  Worker(size_t index, access_log::WorkerQueue& access_log);
  ~Worker() override;

  void start();
  // Waits for the thread after stop() was posted.
  void join();

  // Each of these posts to the worker's thread and returns at once.
  void publishSnapshot(std::shared_ptr<const snapshot::Snapshot> snapshot);
  void addListener(const std::string& address_text, network::UniqueFd socket);
  void removeListener(const std::string& address_text);
  // Closes the listening sockets and tells every open connection to drain.
  void stopListening();
  void closeAllConnections(network::CloseReason reason);
  void stop();

  // Read from the main thread while draining.
  size_t activeConnections() const { return active_connections_.load(std::memory_order_relaxed); }

  // ConnectionOwner
  void onConnectionClosed(ConnectionImpl& connection) override;

  // worker::Resources (on the worker's thread only)
  event::Dispatcher& dispatcher() override { return dispatcher_; }
  upstream::ConnPool& httpPool() override { return *http_pool_; }
  network::TransferPool& transferPool() override { return transfer_pool_; }
  access_log::WorkerQueue& accessLog() override { return access_log_; }

 private:
  struct ActiveListener {
    std::string address_text;
    network::UniqueFd socket;
    std::unique_ptr<event::IoEvent> accept_event;
  };

  void onAcceptReady(ActiveListener& listener);

  const size_t index_;
  access_log::WorkerQueue& access_log_;  // owned by the server's access log writer
  event::Dispatcher dispatcher_;
  // After the dispatcher (whose events they use), before the connections (which use them).
  network::TransferPool transfer_pool_;
  std::unique_ptr<upstream::ConnPool> http_pool_;
  std::thread thread_;
  // Only touched on the worker thread.
  std::shared_ptr<const snapshot::Snapshot> snapshot_;
  std::vector<std::unique_ptr<ActiveListener>> listeners_;
  std::list<std::unique_ptr<ConnectionImpl>> connections_;
  std::unique_ptr<event::Timer> accept_pause_timer_;
  uint64_t next_connection_id_;
  std::atomic<size_t> active_connections_{0};
};

}  // namespace mcproxy::server

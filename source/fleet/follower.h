#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>

#include "source/fleet/fleet.h"

namespace mcproxy::fleet {

struct FollowerOptions {
  std::string fleet;
  std::string node_id;
  std::chrono::seconds lease_ttl{10};
  // A new session with etcd (EtcdClient::connect with the node's --etcd options).
  std::function<absl::StatusOr<std::unique_ptr<Etcd>>()> connect;
};

// What the process made of a snapshot the fleet published.
struct ApplyVerdict {
  bool applied = false;
  int64_t local_version = 0;  // the version it was stored as in this node's database
  std::string error;          // why it was refused
};

// Follows a fleet's `current` on a thread of its own: watches it in etcd, fetches and checks each
// snapshot it points at, hands it to the process to compile and apply (`apply`: the server
// posts it to its main thread, which answers through the future), and keeps this node's
// lease-bound status key up to date. When etcd is unreachable the node goes on with what it runs
// and reconnects with backoff (0.2 s doubling to 5 s), then catches up to `current`.
class Follower {
 public:
  using ApplyFn = std::function<std::future<ApplyVerdict>(const PublishedSnapshot&,
                                                          mcproxy::config::v1::Bootstrap)>;

  // `running`: what the node runs at start (from its database), so that a `current` with the
  // same content hash is recognized as applied without compiling it again.
  Follower(FollowerOptions options, NodeStatus running, ApplyFn apply);
  ~Follower();
  Follower(const Follower&) = delete;
  Follower& operator=(const Follower&) = delete;

  void start();
  // Revokes the lease (the node's key goes at once) and joins the thread.
  void stop();

  NodeStatus status() const;
  bool connected() const { return connected_.load(std::memory_order_relaxed); }
  const FollowerOptions& options() const { return options_; }

 private:
  void run();
  // One connection's life: lease, catch-up, watch. Returns why it ended.
  absl::Status follow(Etcd& etcd);
  // Reads current, considers it, and watches it from the revision read.
  absl::Status catchUpAndWatch(Etcd& etcd);
  absl::Status consider(Etcd& etcd, const std::string& value);
  // Keeps what runs, and says why this version does not (log, node key).
  void refuse(const PublishedSnapshot& published, const std::string& why);
  absl::Status report(Etcd& etcd, int64_t lease);
  void sleepFor(std::chrono::milliseconds pause);
  void update(const std::function<void(NodeStatus&)>& change);

  FollowerOptions options_;
  ApplyFn apply_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> connected_{false};
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  std::thread thread_;
  mutable std::mutex status_mutex_;
  NodeStatus status_;
  bool status_dirty_ = true;  // under status_mutex_
};

}  // namespace mcproxy::fleet

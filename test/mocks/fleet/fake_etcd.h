#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "source/fleet/etcd_client.h"

namespace mcproxy::fleet {

// The state of an in-memory etcd: keys with revisions, leases, the event log watches read, and a
// switch that makes every session fail (etcd down). Sessions made while it is down fail to
// connect. Thread-safe: the follower's thread and the test's share it.
class FakeEtcdCluster {
 public:
  void setDown(bool down) {
    std::lock_guard lock(mutex_);
    down_ = down;
    ++generation_;  // sessions of before lose their connection
    changed_.notify_all();
  }
  // A put by someone else (etcdctl): bumps the revision and wakes watches.
  void put(const std::string& key, const std::string& value, int64_t lease = 0) {
    std::lock_guard lock(mutex_);
    putLocked(key, value, lease);
  }
  std::optional<etcdserverpb::KeyValue> value(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = kvs_.find(key);
    if (it == kvs_.end()) return std::nullopt;
    return it->second;
  }
  bool leaseAlive(int64_t lease) {
    std::lock_guard lock(mutex_);
    return leases_.count(lease) != 0;
  }
  // Forgets a lease as if its TTL ran out while nobody renewed it (its keys go).
  void expireLease(int64_t lease) {
    std::lock_guard lock(mutex_);
    revokeLocked(lease);
  }
  int64_t grantedLeases() {
    std::lock_guard lock(mutex_);
    return next_lease_ - 1;
  }
  // Runs once, inside the next transaction, before its compares: another writer racing it.
  void beforeNextTxn(std::function<void()> hook) {
    std::lock_guard lock(mutex_);
    before_txn_ = std::move(hook);
  }

  absl::StatusOr<std::unique_ptr<Etcd>> connect();
  // A session that works whether or not the cluster is down for the others (a publisher in
  // another network while the node is cut off).
  std::unique_ptr<Etcd> connectFromElsewhere();

 private:
  friend class FakeEtcdSession;

  void putLocked(const std::string& key, const std::string& value, int64_t lease) {
    ++revision_;
    etcdserverpb::KeyValue& kv = kvs_[key];
    if (kv.create_revision() == 0) kv.set_create_revision(revision_);
    kv.set_key(key);
    kv.set_value(value);
    kv.set_mod_revision(revision_);
    kv.set_version(kv.version() + 1);
    kv.set_lease(lease);
    etcdserverpb::Event event;
    event.set_type(etcdserverpb::Event::PUT);
    *event.mutable_kv() = kv;
    log_.push_back(event);
    changed_.notify_all();
  }
  void revokeLocked(int64_t lease) {
    leases_.erase(lease);
    for (auto it = kvs_.begin(); it != kvs_.end();) {
      if (it->second.lease() == lease) {
        ++revision_;
        etcdserverpb::Event event;
        event.set_type(etcdserverpb::Event::DELETE);
        event.mutable_kv()->set_key(it->first);
        event.mutable_kv()->set_mod_revision(revision_);
        log_.push_back(event);
        it = kvs_.erase(it);
      } else {
        ++it;
      }
    }
    changed_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  bool down_ = false;
  int64_t generation_ = 0;
  int64_t revision_ = 1;
  std::map<std::string, etcdserverpb::KeyValue> kvs_;
  std::map<int64_t, int64_t> leases_;  // id -> TTL
  int64_t next_lease_ = 1;
  std::vector<etcdserverpb::Event> log_;
  std::function<void()> before_txn_;
};

class FakeEtcdSession : public Etcd {
 public:
  FakeEtcdSession(FakeEtcdCluster& cluster, int64_t generation, bool elsewhere = false)
      : cluster_(cluster), generation_(generation), elsewhere_(elsewhere) {}

  absl::StatusOr<etcdserverpb::RangeResponse> range(const std::string& key,
                                                    const std::string& range_end,
                                                    bool keys_only) override {
    std::lock_guard lock(cluster_.mutex_);
    if (absl::Status s = alive(); !s.ok()) return s;
    etcdserverpb::RangeResponse response;
    response.mutable_header()->set_revision(cluster_.revision_);
    for (auto it = cluster_.kvs_.lower_bound(key); it != cluster_.kvs_.end(); ++it) {
      if (range_end.empty() ? it->first != key : it->first >= range_end) break;
      *response.add_kvs() = it->second;
      if (keys_only) response.mutable_kvs()->rbegin()->clear_value();
    }
    return response;
  }
  absl::Status put(const std::string& key, const std::string& value, int64_t lease) override {
    std::lock_guard lock(cluster_.mutex_);
    if (absl::Status s = alive(); !s.ok()) return s;
    if (lease != 0 && !cluster_.leases_.count(lease)) {
      return absl::NotFoundError("etcdserver: requested lease not found");
    }
    cluster_.putLocked(key, value, lease);
    return absl::OkStatus();
  }
  absl::StatusOr<etcdserverpb::TxnResponse> txn(const etcdserverpb::TxnRequest& request) override {
    std::function<void()> hook;
    {
      std::lock_guard lock(cluster_.mutex_);
      hook = std::move(cluster_.before_txn_);
      cluster_.before_txn_ = nullptr;
    }
    if (hook) hook();
    std::lock_guard lock(cluster_.mutex_);
    if (absl::Status s = alive(); !s.ok()) return s;
    bool succeeded = true;
    for (const auto& compare : request.compare()) {
      auto it = cluster_.kvs_.find(compare.key());
      const int64_t mod = it == cluster_.kvs_.end() ? 0 : it->second.mod_revision();
      if (compare.target() != etcdserverpb::Compare::MOD) {
        return absl::UnimplementedError("the fake compares mod revisions only");
      }
      if (compare.result() == etcdserverpb::Compare::EQUAL) {
        succeeded = succeeded && mod == compare.mod_revision();
      } else if (compare.result() == etcdserverpb::Compare::GREATER) {
        succeeded = succeeded && mod > compare.mod_revision();
      } else {
        return absl::UnimplementedError("the fake compares with EQUAL and GREATER only");
      }
    }
    for (const auto& op : succeeded ? request.success() : request.failure()) {
      if (!op.has_request_put()) return absl::UnimplementedError("the fake puts only");
      cluster_.putLocked(op.request_put().key(), op.request_put().value(),
                         op.request_put().lease());
    }
    etcdserverpb::TxnResponse response;
    response.set_succeeded(succeeded);
    return response;
  }
  absl::StatusOr<int64_t> deleteRange(const std::string& key,
                                      const std::string& range_end) override {
    std::lock_guard lock(cluster_.mutex_);
    if (absl::Status s = alive(); !s.ok()) return s;
    int64_t deleted = 0;
    for (auto it = cluster_.kvs_.lower_bound(key); it != cluster_.kvs_.end();) {
      if (range_end.empty() ? it->first != key : it->first >= range_end) break;
      it = cluster_.kvs_.erase(it);
      ++deleted;
    }
    if (deleted > 0) ++cluster_.revision_;
    return deleted;
  }
  absl::StatusOr<int64_t> grantLease(int64_t ttl_seconds) override {
    std::lock_guard lock(cluster_.mutex_);
    if (absl::Status s = alive(); !s.ok()) return s;
    const int64_t id = cluster_.next_lease_++;
    cluster_.leases_[id] = ttl_seconds;
    return id;
  }
  absl::StatusOr<int64_t> keepAlive(int64_t lease) override {
    std::lock_guard lock(cluster_.mutex_);
    if (absl::Status s = alive(); !s.ok()) return s;
    auto it = cluster_.leases_.find(lease);
    return it == cluster_.leases_.end() ? 0 : it->second;
  }
  absl::Status revokeLease(int64_t lease) override {
    std::lock_guard lock(cluster_.mutex_);
    if (absl::Status s = alive(); !s.ok()) return s;
    cluster_.revokeLocked(lease);
    return absl::OkStatus();
  }
  absl::Status watch(const std::string& key, int64_t start_revision) override {
    std::lock_guard lock(cluster_.mutex_);
    if (absl::Status s = alive(); !s.ok()) return s;
    watch_key_ = key;
    watch_from_ = start_revision;
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<etcdserverpb::WatchResponse>> nextWatchResponse(
      std::chrono::milliseconds timeout) override {
    std::unique_lock lock(cluster_.mutex_);
    etcdserverpb::WatchResponse response;
    cluster_.changed_.wait_for(lock, timeout, [&] {
      if (!alive().ok()) return true;
      for (const auto& event : cluster_.log_) {
        if (event.kv().key() == watch_key_ && event.kv().mod_revision() >= watch_from_) {
          return true;
        }
      }
      return false;
    });
    if (absl::Status s = alive(); !s.ok()) return s;
    for (const auto& event : cluster_.log_) {
      if (event.kv().key() == watch_key_ && event.kv().mod_revision() >= watch_from_) {
        *response.add_events() = event;
        watch_from_ = event.kv().mod_revision() + 1;
      }
    }
    if (response.events().empty()) return std::optional<etcdserverpb::WatchResponse>();
    return std::optional<etcdserverpb::WatchResponse>(response);
  }
  const std::string& endpoint() const override { return endpoint_; }

 private:
  absl::Status alive() const {
    if (!elsewhere_ && (cluster_.down_ || cluster_.generation_ != generation_)) {
      return absl::UnavailableError("fake etcd: connection lost");
    }
    return absl::OkStatus();
  }

  FakeEtcdCluster& cluster_;
  const int64_t generation_;
  const bool elsewhere_;
  std::string endpoint_ = "fake://etcd";
  std::string watch_key_;
  int64_t watch_from_ = 0;
};

inline absl::StatusOr<std::unique_ptr<Etcd>> FakeEtcdCluster::connect() {
  std::lock_guard lock(mutex_);
  if (down_) return absl::UnavailableError("etcd unreachable (fake://etcd: connection refused)");
  return std::unique_ptr<Etcd>(std::make_unique<FakeEtcdSession>(*this, generation_));
}

inline std::unique_ptr<Etcd> FakeEtcdCluster::connectFromElsewhere() {
  std::lock_guard lock(mutex_);
  return std::make_unique<FakeEtcdSession>(*this, generation_, /*elsewhere=*/true);
}

}  // namespace mcproxy::fleet

#include "source/fleet/follower.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "source/common/logging/logger.h"
#include "source/common/network/host_name.h"

namespace mcproxy::fleet {
namespace {

using Clock = std::chrono::steady_clock;

std::string shortHash(const std::string& hash) { return hash.substr(0, 12); }

std::string describeRunning(const NodeStatus& status) {
  if (status.local_version() == 0) return "nothing yet";
  return absl::StrCat("local version ", status.local_version(), " (fleet version ",
                      status.applied_version(), ", ", shortHash(status.applied_hash()), ")");
}

}  // namespace

Follower::Follower(FollowerOptions options, NodeStatus running, ApplyFn apply)
    : options_(std::move(options)), apply_(std::move(apply)), status_(std::move(running)) {
  status_.set_node_id(options_.node_id);
  status_.set_hostname(network::hostName());
  status_.set_pid(::getpid());
  if (status_.state().empty()) status_.set_state(status_.local_version() ? "applied" : "waiting");
}

Follower::~Follower() { stop(); }

void Follower::start() {
  thread_ = std::thread([this] { run(); });
}

void Follower::stop() {
  {
    std::lock_guard lock(wake_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

NodeStatus Follower::status() const {
  std::lock_guard lock(status_mutex_);
  return status_;
}

void Follower::update(const std::function<void(NodeStatus&)>& change) {
  std::lock_guard lock(status_mutex_);
  change(status_);
  status_.set_updated_at(utcNow());
  status_dirty_ = true;
}

void Follower::sleepFor(std::chrono::milliseconds pause) {
  std::unique_lock lock(wake_mutex_);
  wake_.wait_for(lock, pause, [this] { return stopping_.load(); });
}

void Follower::run() {
  std::chrono::milliseconds backoff{200};
  bool reported_down = false;
  while (!stopping_) {
    auto etcd = options_.connect();
    if (!etcd.ok()) {
      if (!reported_down) {
        LOG_ERROR << "fleet " << options_.fleet << ": " << etcd.status().message() << ": SERVING "
                  << describeRunning(status())
                  << " WITHOUT FOLLOWING THE FLEET until etcd answers; retrying with backoff";
        reported_down = true;
      }
      sleepFor(backoff);
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(5));
      continue;
    }
    LOG_INFO << "fleet " << options_.fleet << ": following through etcd " << (*etcd)->endpoint()
             << " as node " << options_.node_id << ", running " << describeRunning(status());
    reported_down = false;
    connected_ = true;
    const auto session_started = Clock::now();
    const absl::Status ended = follow(**etcd);
    connected_ = false;
    // A session that ends at once (etcd refusing this client) backs off like a failed connect;
    // one that lasted starts again from the shortest pause.
    backoff = Clock::now() - session_started > std::chrono::seconds(10)
                  ? std::chrono::milliseconds(200)
                  : std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(5));
    if (!stopping_) {
      LOG_ERROR << "fleet " << options_.fleet << ": lost etcd (" << ended.message() << "): serving "
                << describeRunning(status()) << "; reconnecting";
      reported_down = true;
      sleepFor(backoff);
    }
  }
}

absl::Status Follower::report(Etcd& etcd, int64_t lease) {
  std::string json;
  {
    std::lock_guard lock(status_mutex_);
    if (!status_dirty_) return absl::OkStatus();
    json = toJson(status_);
    status_dirty_ = false;
  }
  absl::Status put = etcd.put(nodeKey(options_.fleet, options_.node_id), json, lease);
  if (!put.ok()) {
    std::lock_guard lock(status_mutex_);
    status_dirty_ = true;
  }
  return put;
}

absl::Status Follower::consider(Etcd& etcd, const std::string& value) {
  PublishedSnapshot published;
  if (absl::Status s = fromJson(value, published); !s.ok()) {
    LOG_ERROR << "fleet " << options_.fleet << ": current is unreadable: " << s.message();
    return absl::OkStatus();
  }
  const NodeStatus now = status();
  if (published.content_hash() == now.applied_hash() && now.local_version() != 0) {
    if (published.version() != now.applied_version() || now.state() != "applied") {
      update([&](NodeStatus& s) {
        s.set_applied_version(published.version());
        s.set_state("applied");
        s.clear_error();
        s.clear_refused_version();
      });
    }
    return absl::OkStatus();
  }
  auto config = fetchSnapshot(etcd, published);
  if (!config.ok()) {
    if (!absl::IsDataLoss(config.status())) return config.status();  // the connection: retry
    refuse(published, std::string(config.status().message()));
    return absl::OkStatus();
  }
  std::future<ApplyVerdict> pending = apply_(published, std::move(*config));
  while (pending.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
    if (stopping_) return absl::CancelledError("stopping");
  }
  const ApplyVerdict verdict = pending.get();
  if (verdict.applied) {
    LOG_INFO << "fleet " << options_.fleet << ": version " << published.version() << " ("
             << shortHash(published.content_hash()) << ") applied as local version "
             << verdict.local_version;
    update([&](NodeStatus& s) {
      s.set_state("applied");
      s.set_applied_version(published.version());
      s.set_applied_hash(published.content_hash());
      s.set_local_version(verdict.local_version);
      s.clear_error();
      s.clear_refused_version();
    });
  } else {
    refuse(published, verdict.error);
  }
  return absl::OkStatus();
}

void Follower::refuse(const PublishedSnapshot& published, const std::string& why) {
  LOG_ERROR << "fleet " << options_.fleet << ": version " << published.version()
            << " REFUSED on this node: " << why << "; still serving " << describeRunning(status());
  update([&](NodeStatus& s) {
    s.set_state("refused");
    s.set_refused_version(published.version());
    s.set_error(why);
  });
}

absl::Status Follower::catchUpAndWatch(Etcd& etcd) {
  auto current = etcd.range(currentKey(options_.fleet));
  if (!current.ok()) return current.status();
  if (current->kvs().empty()) {
    LOG_INFO << "fleet " << options_.fleet << ": nothing published yet";
  } else if (absl::Status s = consider(etcd, current->kvs(0).value()); !s.ok()) {
    return s;
  }
  // From the revision read: no publish between the read and the watch is missed.
  return etcd.watch(currentKey(options_.fleet), current->header().revision() + 1);
}

absl::Status Follower::follow(Etcd& etcd) {
  auto lease = etcd.grantLease(options_.lease_ttl.count());
  if (!lease.ok()) return lease.status();
  update([](NodeStatus&) {});  // the key is new with this lease
  if (absl::Status s = report(etcd, *lease); !s.ok()) return s;
  if (absl::Status s = catchUpAndWatch(etcd); !s.ok()) return s;
  const auto renew_every =
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.lease_ttl / 3);
  auto next_renewal = Clock::now() + renew_every;
  while (!stopping_) {
    if (absl::Status s = report(etcd, *lease); !s.ok()) return s;
    auto response = etcd.nextWatchResponse(std::chrono::milliseconds(250));
    if (!response.ok()) return response.status();
    if (*response) {
      const etcdserverpb::WatchResponse& watch = **response;
      if (watch.compact_revision() != 0 || watch.canceled()) {
        // The history the watch needed is gone: read current again and watch from there.
        LOG_WARN << "fleet " << options_.fleet << ": watch restarted ("
                 << (watch.cancel_reason().empty() ? "compacted" : watch.cancel_reason()) << ")";
        if (absl::Status s = catchUpAndWatch(etcd); !s.ok()) return s;
        continue;
      }
      // Only the newest event matters: a node applies what current points at now.
      for (int i = watch.events_size() - 1; i >= 0; --i) {
        const auto& event = watch.events(i);
        if (event.type() != etcdserverpb::Event::PUT) continue;
        if (absl::Status s = consider(etcd, event.kv().value()); !s.ok()) return s;
        break;
      }
    }
    if (Clock::now() >= next_renewal) {
      auto ttl = etcd.keepAlive(*lease);
      if (!ttl.ok()) return ttl.status();
      if (*ttl <= 0) {  // expired meanwhile (etcd was away longer than the TTL): a new one
        auto renewed = etcd.grantLease(options_.lease_ttl.count());
        if (!renewed.ok()) return renewed.status();
        lease = renewed;
        update([](NodeStatus&) {});
      }
      next_renewal = Clock::now() + renew_every;
    }
  }
  (void)etcd.revokeLease(*lease);  // the node's key goes now, not after the TTL
  return absl::CancelledError("stopping");
}

}  // namespace mcproxy::fleet

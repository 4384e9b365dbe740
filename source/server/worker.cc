#include "source/server/worker.h"

#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "source/common/logging/logger.h"

namespace mcproxy::server {
namespace {

// Accepts per wake-up, so one busy listener cannot starve the connections already open.
constexpr int kMaxAcceptsPerWakeup = 64;
// After EMFILE/ENFILE, accepting again at once would spin; wait this long.
constexpr std::chrono::milliseconds kAcceptPauseOnFdExhaustion{100};

}  // namespace

Worker::Worker(size_t index, access_log::WorkerQueue& access_log)
    : index_(index),
      access_log_(access_log),
      http_pool_(std::make_unique<upstream::ConnPool>(dispatcher_)),
      next_connection_id_((static_cast<uint64_t>(index) << 48) + 1) {
  accept_pause_timer_ = std::make_unique<event::Timer>(dispatcher_, [this] {
    for (auto& listener : listeners_) listener->accept_event->enable();
  });
}

Worker::~Worker() {
  // A start that fails after the workers run (the admin socket cannot be bound) returns without
  // the drain: the thread must still end before its state goes.
  if (thread_.joinable()) {
    stop();
    thread_.join();
  }
}

void Worker::start() {
  thread_ = std::thread([this] {
    logging::setThreadName("worker-" + std::to_string(index_));
    dispatcher_.run();
    // Connections still open at exit were closed by closeAllConnections(); free what is left,
    // then the upstream connections they used, on this thread.
    connections_.clear();
    listeners_.clear();
    dispatcher_.runDeferredDeletes();
    http_pool_.reset();
    dispatcher_.runDeferredDeletes();
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::publishSnapshot(std::shared_ptr<const snapshot::Snapshot> snapshot) {
  dispatcher_.post(
      [this, snapshot = std::move(snapshot)]() mutable { snapshot_ = std::move(snapshot); });
}

void Worker::addListener(const std::string& address_text, network::UniqueFd socket) {
  auto listener = std::make_shared<ActiveListener>();
  listener->address_text = address_text;
  listener->socket = std::move(socket);
  dispatcher_.post([this, listener] {
    auto owned = std::make_unique<ActiveListener>(std::move(*listener));
    ActiveListener* raw = owned.get();
    owned->accept_event = std::make_unique<event::IoEvent>(dispatcher_, owned->socket.get(),
                                                           event::IoEvent::Kind::kRead,
                                                           [this, raw] { onAcceptReady(*raw); });
    owned->accept_event->enable();
    listeners_.push_back(std::move(owned));
  });
}

void Worker::removeListener(const std::string& address_text) {
  dispatcher_.post([this, address_text] {
    std::erase_if(listeners_, [&](const std::unique_ptr<ActiveListener>& listener) {
      return listener->address_text == address_text;
    });
  });
}

void Worker::stopListening() {
  dispatcher_.post([this] {
    accept_pause_timer_->cancel();
    listeners_.clear();  // closes the sockets
    // drain() may close a connection, which removes it from the list: walk a copy.
    std::vector<ConnectionImpl*> open;
    for (auto& connection : connections_) open.push_back(connection.get());
    for (ConnectionImpl* connection : open) {
      if (!connection->closed()) connection->drain();
    }
  });
}

void Worker::closeAllConnections(network::CloseReason reason) {
  dispatcher_.post([this, reason] {
    // close() removes the connection from the list; walk a copy of the pointers.
    std::vector<ConnectionImpl*> open;
    for (auto& connection : connections_) open.push_back(connection.get());
    for (ConnectionImpl* connection : open) connection->close(reason);
  });
}

void Worker::stop() { dispatcher_.exit(); }

void Worker::onAcceptReady(ActiveListener& listener) {
  for (int i = 0; i < kMaxAcceptsPerWakeup; ++i) {
    sockaddr_storage remote{};
    socklen_t remote_len = sizeof(remote);
    const int fd = ::accept4(listener.socket.get(), reinterpret_cast<sockaddr*>(&remote),
                             &remote_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    const snapshot::CompiledListener* config =
        snapshot_ ? snapshot_->findListener(listener.address_text) : nullptr;
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        if (config != nullptr) config->stats.accept_overflow.inc();
        LOG_WARN << "listener " << listener.address_text << ": accept failed ("
                 << std::strerror(errno) << "); pausing accepts for "
                 << kAcceptPauseOnFdExhaustion.count() << " ms";
        for (auto& each : listeners_) each->accept_event->disable();
        accept_pause_timer_->arm(kAcceptPauseOnFdExhaustion);
      }
      return;  // EAGAIN: nothing more to accept; other errors concern that one connection
    }
    network::UniqueFd socket(fd);
    if (config == nullptr) continue;  // the listener left the config; refuse by closing
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_storage local{};
    socklen_t local_len = sizeof(local);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len);

    auto connection = std::make_unique<ConnectionImpl>(
        *this, *this, std::move(socket), next_connection_id_++, snapshot_, *config,
        network::Address::fromSockaddr(reinterpret_cast<sockaddr*>(&remote), remote_len),
        network::Address::fromSockaddr(reinterpret_cast<sockaddr*>(&local), local_len));
    ConnectionImpl* raw = connection.get();
    connections_.push_front(std::move(connection));
    raw->owner_position = connections_.begin();
    active_connections_.fetch_add(1, std::memory_order_relaxed);
    raw->start();
  }
}

void Worker::onConnectionClosed(ConnectionImpl& connection) {
  std::unique_ptr<ConnectionImpl> owned = std::move(*connection.owner_position);
  connections_.erase(connection.owner_position);
  active_connections_.fetch_sub(1, std::memory_order_relaxed);
  dispatcher_.deferredDelete(std::move(owned));
}

}  // namespace mcproxy::server

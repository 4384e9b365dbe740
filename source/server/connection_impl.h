#pragma once

#include <list>
#include <memory>
#include <vector>

#include "source/common/event/dispatcher.h"
#include "source/common/network/fd.h"
#include "source/common/network/filter.h"
#include "source/common/network/filter_manager.h"
#include "source/common/worker/resources.h"
#include "source/snapshot/snapshot.h"

namespace mcproxy::server {

class ConnectionImpl;

// Whoever keeps the open connections (a worker); told when one closes.
class ConnectionOwner {
 public:
  virtual ~ConnectionOwner() = default;
  virtual void onConnectionClosed(ConnectionImpl& connection) = 0;
};

// A downstream connection: its socket, and its filter chain (network::FilterManager) over the
// bytes read, until a terminal filter takes the transport over.
class ConnectionImpl : public network::Connection,
                       public network::FilterManagerConnection,
                       public event::DeferredDeletable {
 public:
  ConnectionImpl(ConnectionOwner& owner, worker::Resources& worker, network::UniqueFd fd,
                 uint64_t id, std::shared_ptr<const snapshot::Snapshot> snapshot,
                 const snapshot::CompiledListener& listener, const network::Address& remote,
                 const network::Address& local);
  ~ConnectionImpl() override;

  // Builds the filters and runs onNewConnection().
  void start();
  // Tells every filter the proxy drains (onDrain()).
  void drain();

  // network::Connection
  uint64_t id() const override { return stream_info_.connection_id; }
  int fd() const override { return fd_.get(); }
  event::Dispatcher& dispatcher() override { return dispatcher_; }
  worker::Resources& worker() override { return worker_; }
  network::StreamInfo& streamInfo() override { return stream_info_; }
  const access_log::AccessLog* accessLog() const override { return listener_.access_log.get(); }
  void close(network::CloseReason reason) override;
  bool closed() const override { return closed_; }

  // network::FilterManagerConnection
  network::Connection& connection() override { return *this; }
  buffer::Buffer& readBuffer() override { return read_buffer_; }
  bool readEnded() const override { return end_stream_; }
  void onFiltersReady() override;
  void onTransportTaken() override;

  // Where the owner keeps this connection, for O(1) removal.
  std::list<std::unique_ptr<ConnectionImpl>>::iterator owner_position;

 private:
  void onReadReady();

  ConnectionOwner& owner_;
  worker::Resources& worker_;
  event::Dispatcher& dispatcher_;
  network::UniqueFd fd_;
  // Keeps the routes and filter factories this connection uses alive until it ends.
  std::shared_ptr<const snapshot::Snapshot> snapshot_;
  const snapshot::CompiledListener& listener_;
  network::StreamInfo stream_info_;
  std::unique_ptr<network::FilterManager> filters_;
  std::unique_ptr<event::IoEvent> read_event_;
  buffer::Buffer read_buffer_;
  bool end_stream_ = false;
  bool closed_ = false;
};

}  // namespace mcproxy::server

#pragma once

#include <list>
#include <memory>
#include <vector>

#include "source/common/event/dispatcher.h"
#include "source/common/network/fd.h"
#include "source/common/network/filter.h"
#include "source/snapshot/snapshot.h"

namespace mcproxy::server {

class ConnectionImpl;

// Whoever keeps the open connections (a worker); told when one closes.
class ConnectionOwner {
 public:
  virtual ~ConnectionOwner() = default;
  virtual void onConnectionClosed(ConnectionImpl& connection) = 0;
};

// A downstream connection and its filter chain. Until a terminal filter takes over the
// transport, it reads the client's bytes into one buffer and runs the chain over it.
class ConnectionImpl : public network::Connection, public event::DeferredDeletable {
 public:
  ConnectionImpl(ConnectionOwner& owner, event::Dispatcher& dispatcher, network::UniqueFd fd,
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
  network::StreamInfo& streamInfo() override { return stream_info_; }
  void close(network::CloseReason reason) override;
  bool closed() const override { return closed_; }

  // Where the owner keeps this connection, for O(1) removal.
  std::list<std::unique_ptr<ConnectionImpl>>::iterator owner_position;

 private:
  struct ActiveFilter : public network::ReadFilterCallbacks {
    ActiveFilter(ConnectionImpl& parent, size_t index, std::unique_ptr<network::ReadFilter> filter)
        : parent(parent), index(index), filter(std::move(filter)) {}
    network::Connection& connection() override { return parent; }
    void continueReading() override { parent.continueChain(index + 1); }
    void takeOverTransport() override { parent.onTransportTaken(); }

    ConnectionImpl& parent;
    size_t index;
    std::unique_ptr<network::ReadFilter> filter;
  };

  void onReadReady();
  void continueChain(size_t from);
  void runNewConnection(size_t from);
  void runData(size_t from);
  void onTransportTaken();

  ConnectionOwner& owner_;
  event::Dispatcher& dispatcher_;
  network::UniqueFd fd_;
  // Keeps the routes and filter factories this connection uses alive until it ends.
  std::shared_ptr<const snapshot::Snapshot> snapshot_;
  const snapshot::CompiledListener& listener_;
  network::StreamInfo stream_info_;
  std::vector<std::unique_ptr<ActiveFilter>> filters_;
  std::unique_ptr<event::IoEvent> read_event_;
  buffer::Buffer read_buffer_;
  bool new_connection_done_ = false;
  bool end_stream_ = false;
  bool transport_taken_ = false;
  bool closed_ = false;
};

}  // namespace mcproxy::server

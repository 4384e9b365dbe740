#pragma once

#include <memory>
#include <vector>

#include "source/common/buffer/buffer.h"
#include "source/common/network/filter.h"
#include "source/common/network/filter_factory.h"

namespace mcproxy::network {

// What the filter manager needs from the connection it runs a chain for.
class FilterManagerConnection {
 public:
  virtual ~FilterManagerConnection() = default;
  virtual Connection& connection() = 0;
  // Bytes the client sent that no filter consumed yet, and whether it closed its side.
  virtual buffer::Buffer& readBuffer() = 0;
  virtual bool readEnded() const = 0;
  // Every filter let the new connection through (onNewConnection): time to read.
  virtual void onFiltersReady() = 0;
  // A terminal filter took the transport: the connection stops reading for the chain.
  virtual void onTransportTaken() = 0;
};

// A connection's network filter chain: runs onNewConnection, then onData over the read buffer,
// through the filters in order, stopping where one returns kStopIteration until it calls
// continueReading(). No sockets here (unit-tested with fakes).
class FilterManager {
 public:
  FilterManager(FilterManagerConnection& connection, const std::vector<FilterFactoryCb>& factories);
  ~FilterManager();
  FilterManager(const FilterManager&) = delete;
  FilterManager& operator=(const FilterManager&) = delete;

  // Runs onNewConnection through the chain.
  void start();
  // New bytes (or the end) are in the read buffer: the chain runs over it from its start.
  void onData();
  // The proxy drains (every filter's onDrain()).
  void drain();
  // The connection closes (every filter's onConnectionClose()).
  void onClose();
  bool transportTaken() const { return transport_taken_; }

 private:
  struct ActiveFilter : public ReadFilterCallbacks {
    ActiveFilter(FilterManager& manager, size_t index, std::unique_ptr<ReadFilter> filter)
        : manager(manager), index(index), filter(std::move(filter)) {}
    Connection& connection() override { return manager.connection_.connection(); }
    void continueReading() override { manager.continueChain(index + 1); }
    void takeOverTransport() override { manager.takeOverTransport(); }

    FilterManager& manager;
    size_t index;
    std::unique_ptr<ReadFilter> filter;
  };

  bool closed() { return connection_.connection().closed(); }
  void runNewConnection(size_t from);
  void runData(size_t from);
  void continueChain(size_t from);
  void takeOverTransport();

  FilterManagerConnection& connection_;
  std::vector<std::unique_ptr<ActiveFilter>> filters_;
  bool new_connection_done_ = false;
  bool transport_taken_ = false;
};

}  // namespace mcproxy::network

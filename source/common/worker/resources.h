#pragma once

#include "source/common/event/dispatcher.h"

namespace mcproxy::access_log {
class WorkerQueue;
}
namespace mcproxy::network {
class TransferPool;
}
namespace mcproxy::upstream {
class ConnPool;
}

namespace mcproxy::worker {

// What a worker thread owns and lends the connections it runs. Used on that thread only, so
// nothing here takes a lock; destroyed with the worker, after its connections.
class Resources {
 public:
  virtual ~Resources() = default;
  virtual event::Dispatcher& dispatcher() = 0;
  // Upstream HTTP connections shared by the worker's client connections.
  virtual upstream::ConnPool& httpPool() = 0;
  // Pipes and buffers that L4 relays borrow while bytes are in flight.
  virtual network::TransferPool& transferPool() = 0;
  // Access log lines on their way to the logging thread (never blocks).
  virtual access_log::WorkerQueue& accessLog() = 0;
};

}  // namespace mcproxy::worker

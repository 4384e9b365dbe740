#pragma once

#include "source/common/access_log/access_log.h"
#include "source/common/event/dispatcher.h"
#include "source/common/network/transfer_pool.h"
#include "source/common/stats/stats.h"
#include "source/common/upstream/conn_pool.h"
#include "source/common/worker/resources.h"

namespace mcproxy::worker {

// A worker's resources on a dispatcher of their own, outside any server: for filter chains run
// by tools (mcproxyctl check) and tests. Its access log writer is never started: what is queued
// stays queued (accessLog().pop()).
class StandaloneResources : public Resources {
 public:
  event::Dispatcher& dispatcher() override { return dispatcher_; }
  upstream::ConnPool& httpPool() override { return pool_; }
  network::TransferPool& transferPool() override { return transfer_pool_; }
  access_log::WorkerQueue& accessLog() override { return access_log_; }

  stats::Store stats;

 private:
  event::Dispatcher dispatcher_;
  network::TransferPool transfer_pool_;
  upstream::ConnPool pool_{dispatcher_};
  access_log::Writer writer_{stats};
  access_log::WorkerQueue& access_log_ = writer_.addQueue();
};

}  // namespace mcproxy::worker

#pragma once

#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "source/common/event/dispatcher.h"
#include "source/common/upstream/cluster.h"
#include "source/common/upstream/conn_pool.h"

namespace mcproxy::upstream {

// Active health checks of the running clusters' endpoints, and the re-resolution of endpoints
// given by name. One per process, on the main thread: an endpoint is checked once however many
// workers send it traffic, and its verdict reaches them through EndpointState's atomic (no lock,
// no message). Checks go on across reloads while the cluster keeps the endpoint with the same
// check; the first check of a new endpoint decides its state at once, later ones after
// healthy_threshold / unhealthy_threshold results in a row.
class HealthChecker {
 public:
  // `on_dns_change` is called (with why) when a name resolves to another address than the one
  // the running snapshot has: the caller compiles again.
  HealthChecker(event::Dispatcher& dispatcher, std::function<void(std::string)> on_dns_change);
  ~HealthChecker();

  // The clusters of the snapshot now running (what a check needs is copied from them).
  void update(std::span<const std::shared_ptr<const Cluster>> clusters);

  // Checks started so far (tests).
  uint64_t checksStarted() const { return checks_started_; }

 private:
  class EndpointCheck;
  class NameRefresh;

  event::Dispatcher& dispatcher_;
  std::function<void(std::string)> on_dns_change_;
  ConnPool pool_;  // HTTP and gRPC checks reuse their connection, as a client would
  std::map<std::string, std::unique_ptr<EndpointCheck>> checks_;   // by cluster/address/check
  std::map<std::string, std::unique_ptr<NameRefresh>> refreshes_;  // by cluster name
  uint64_t checks_started_ = 0;
};

}  // namespace mcproxy::upstream

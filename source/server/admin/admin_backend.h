#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "api/mcproxy/admin/v1/admin.pb.h"
#include "source/common/stats/stats.h"
#include "source/snapshot/route_edit.h"
#include "source/snapshot/snapshot.h"
#include "source/snapshot/store.h"

namespace mcproxy::server {

struct ChangeResult {
  uint64_t snapshot_version;
  bool changed;
};

// What a config change needs from the running proxy, where changes are made: the server's
// change thread (Server::ChangeBackend), with a database connection of its own.
class ConfigChanges {
 public:
  virtual ~ConfigChanges() = default;
  virtual std::shared_ptr<const snapshot::Snapshot> currentSnapshot() const = 0;
  // Null without --db: then only certificates can be reloaded.
  virtual snapshot::SnapshotStore* store() = 0;
  // Validates `config`, stores it as a new version and runs it, in that order: an invalid one
  // throws config::ConfigError and changes nothing. `built_on`: the stored version `config` is
  // a change of; snapshot::VersionConflict (nothing written) when it is no longer the newest.
  virtual ChangeResult applyConfig(const mcproxy::config::v1::Bootstrap& config,
                                   const std::string& source,
                                   std::optional<int64_t> built_on = std::nullopt) = 0;
  // Makes a route edit to the running config by patching the running snapshot and storing one
  // route row: the cost of a change of one route, whatever the number of others. nullopt when
  // it cannot be made that way (the running version is not the newest stored one, or another
  // writer came first); the caller then makes the change the long way (applyConfig). Throws
  // as applyConfig does for an invalid route or a refused write.
  virtual std::optional<ChangeResult> applyRouteEdit(snapshot::RouteEdit edit,
                                                     const std::string& source) = 0;
  // Compiles the running config again (certificates and keys are read anew) and runs it.
  virtual ChangeResult reloadCertificates() = 0;
};

// What the admin plane reads from the running proxy, on the main thread (the Server implements
// it); changes go through runChange().
class AdminBackend {
 public:
  virtual ~AdminBackend() = default;
  // Runs `work`, a config change, on the change thread, so that the admin plane and the main
  // loop answer while it compiles and writes. `work` sends its reply back itself.
  virtual void runChange(std::function<void(ConfigChanges&)> work) = 0;
  virtual std::shared_ptr<const snapshot::Snapshot> currentSnapshot() const = 0;
  // Null without --db (the snapshot history is then unknown).
  virtual snapshot::SnapshotStore* store() = 0;
  virtual mcproxy::admin::v1::Status status() const = 0;
  virtual const stats::Store& stats() const = 0;
  virtual bool ready() const = 0;
};

}  // namespace mcproxy::server

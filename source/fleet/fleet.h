#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/mcproxy/config/v1/bootstrap.pb.h"
#include "api/mcproxy/fleet/v1/fleet.pb.h"
#include "source/fleet/etcd_client.h"
#include "source/snapshot/store.h"

// A fleet: many mc-proxy nodes following one published config through etcd (docs/fleet.md).
//   /mcproxy/<fleet>/current               PublishedSnapshot JSON: what every node should run
//   /mcproxy/<fleet>/snapshots/<version>   PublishedSnapshot JSON, one per published version
//   /mcproxy/<fleet>/chunks/<hash>/<n>     the canonical config bytes, 1 MiB a value
//   /mcproxy/<fleet>/nodes/<node-id>       NodeStatus JSON, bound to the node's lease
namespace mcproxy::fleet {

using mcproxy::fleet::v1::NodeStatus;
using mcproxy::fleet::v1::PublishedSnapshot;

// etcd refuses requests over 1.5 MiB by default (--max-request-bytes): a chunk stays well below.
constexpr size_t kChunkBytes = 1 << 20;

// Letters, digits, '.', '_' and '-': a fleet name and a node id are parts of keys.
absl::Status checkName(const std::string& what, const std::string& name);

std::string fleetPrefix(const std::string& fleet);
std::string currentKey(const std::string& fleet);
std::string snapshotKey(const std::string& fleet, int64_t version);
std::string nodesPrefix(const std::string& fleet);
std::string nodeKey(const std::string& fleet, const std::string& node_id);

// The source a node stores a fleet version under ("fleet:edge version 12 (file:edge.textproto)"),
// and the fleet version read back from such a source (0 for a source that is not `fleet`'s).
std::string localSource(const std::string& fleet, const PublishedSnapshot& published);
int64_t fleetVersionOf(const std::string& fleet, const std::string& source);

// Now, as the times in etcd's values say it: ISO 8601, UTC, milliseconds.
std::string utcNow();

std::string toJson(const google::protobuf::Message& message);
absl::Status fromJson(const std::string& json, google::protobuf::Message& message);

struct PublishOptions {
  std::string fleet;
  int64_t version = 0;                // 0: the database's newest
  std::optional<int64_t> if_current;  // publish only while `current` is this version (0: none)
  std::string published_by;
};

// Writes a version of `store` to the fleet: its chunks first, then, in one transaction that
// compares `current` (and the version's own key) with what was read, the version's key and
// `current`. A publisher that lost a race gets ABORTED and nothing it wrote is pointed at.
// Publishing an older version is a rollback.
absl::StatusOr<PublishedSnapshot> publish(Etcd& etcd, snapshot::SnapshotStore& store,
                                          const PublishOptions& options);

// The config a published snapshot holds: every chunk read, the content hash checked
// (DATA_LOSS when a chunk is missing or the bytes do not hash to what was published).
absl::StatusOr<mcproxy::config::v1::Bootstrap> fetchSnapshot(Etcd& etcd,
                                                             const PublishedSnapshot& published);

struct FleetPruneResult {
  std::vector<int64_t> deleted;  // published versions whose keys went
  std::vector<int64_t> kept;
  int64_t chunk_sets_deleted = 0;  // contents no kept version uses
};

// Deletes published versions but the newest `keep` and the one `current` points at, and the
// chunks of every content no kept version uses (etcd's quota, 2 GiB by default, holds about 400
// versions of 100,000 routes). A publish that raced it and whose chunks went fails its
// transaction (it checks its first chunk is still there) and is made again.
absl::StatusOr<FleetPruneResult> pruneFleet(Etcd& etcd, const std::string& fleet, int64_t keep,
                                            bool dry_run);

struct FleetView {
  std::optional<PublishedSnapshot> current;
  std::vector<NodeStatus> nodes;  // by node id
};
absl::StatusOr<FleetView> readFleet(Etcd& etcd, const std::string& fleet);

}  // namespace mcproxy::fleet

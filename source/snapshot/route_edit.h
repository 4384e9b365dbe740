#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "api/mcproxy/config/v1/bootstrap.pb.h"

namespace mcproxy::snapshot {

// The deterministic protobuf serialization: what a version's canonical bytes
// (SnapshotStore::canonicalBytes) and every hash the store keeps are made of, and how a route
// edit serializes the route it splices in.
std::string deterministicBytes(const google::protobuf::Message& message);

// One route added to or removed from one listener: the change the admin API makes most, and
// the one that must cost what it changes at 100,000 routes. It is made to a version's canonical
// bytes (SnapshotStore::canonicalBytes) without parsing the other routes, stored as one route
// row, and compiled by patching the running snapshot (patchRoutes).
struct RouteEdit {
  enum class Kind { kAdd, kRemove };
  Kind kind = Kind::kAdd;
  size_t listener_index = 0;         // in the config's listeners
  mcproxy::config::v1::Route route;  // kAdd: normalized (SnapshotStore::normalizeRoute)
  std::string hostname;              // kRemove: lower-case
};

// A route edit made to a stored version, ready to be compiled and stored.
struct PreparedRouteEdit {
  RouteEdit edit;
  int64_t base_version = 0;
  // The base without its listeners' routes (default routes kept): everything else a version
  // stores, which the edit leaves as it was.
  mcproxy::config::v1::Bootstrap skeleton;
  std::string canonical_after;  // the edited config's canonical bytes
  std::string content_hash;     // SHA-256 (hex) of canonical_after
  int64_t route_count = 0;      // after the edit, default routes included
};

// The canonical bytes of the config after `edit`: kAdd appends the route to the listener's
// routes, kRemove drops the route named `hostname`. NotFound when there is no such listener or
// route; InvalidArgument when `canonical` is not a serialized Bootstrap.
absl::StatusOr<std::string> applyRouteEdit(std::string_view canonical, const RouteEdit& edit);

struct Skeleton {
  mcproxy::config::v1::Bootstrap config;  // listeners without routes; default routes kept
  std::vector<int64_t> route_counts;      // each listener's routes (default route not counted)
};
absl::StatusOr<Skeleton> skeletonOf(std::string_view canonical);

// Prepares `edit` to version `base_version`, whose canonical bytes are `base_canonical` (the
// caller checked them against the version's content hash).
absl::StatusOr<PreparedRouteEdit> prepareRouteEdit(std::string_view base_canonical,
                                                   int64_t base_version, RouteEdit edit);

}  // namespace mcproxy::snapshot

#include "source/fleet/fleet.h"

#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mcproxy::fleet {
namespace {

std::string chunkPrefix(const std::string& fleet, const std::string& hash) {
  return absl::StrCat(fleetPrefix(fleet), "chunks/", hash, "/");
}

std::string chunkKey(const std::string& prefix, int index) {
  return absl::StrFormat("%s%06d", prefix, index);
}

// The key's mod revision compared with `revision` (0: the key does not exist).
etcdserverpb::Compare modRevision(const std::string& key,
                                  etcdserverpb::Compare::CompareResult result, int64_t revision) {
  etcdserverpb::Compare compare;
  compare.set_key(key);
  compare.set_target(etcdserverpb::Compare::MOD);
  compare.set_result(result);
  compare.set_mod_revision(revision);
  return compare;
}

}  // namespace

absl::Status checkName(const std::string& what, const std::string& name) {
  if (name.empty() || name.size() > 128) {
    return absl::InvalidArgumentError(what + " must be 1 to 128 characters");
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(what + " \"" + name +
                                        "\" may hold only letters, digits, '.', '_' and '-'");
    }
  }
  return absl::OkStatus();
}

std::string fleetPrefix(const std::string& fleet) { return "/mcproxy/" + fleet + "/"; }
std::string currentKey(const std::string& fleet) { return fleetPrefix(fleet) + "current"; }
std::string snapshotKey(const std::string& fleet, int64_t version) {
  return absl::StrCat(fleetPrefix(fleet), "snapshots/", version);
}
std::string nodesPrefix(const std::string& fleet) { return fleetPrefix(fleet) + "nodes/"; }
std::string nodeKey(const std::string& fleet, const std::string& node_id) {
  return nodesPrefix(fleet) + node_id;
}

std::string localSource(const std::string& fleet, const PublishedSnapshot& published) {
  return absl::StrCat(snapshot::SnapshotStore::kFleetSourcePrefix, fleet, " version ",
                      published.version(), " (", published.source(), ")");
}

int64_t fleetVersionOf(const std::string& fleet, const std::string& source) {
  const std::vector<std::string> words = absl::StrSplit(source, ' ');
  int64_t version = 0;
  if (words.size() < 3 || words[0] != snapshot::SnapshotStore::kFleetSourcePrefix + fleet ||
      words[1] != "version" || !absl::SimpleAtoi(words[2], &version)) {
    return 0;
  }
  return version;
}

std::string utcNow() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
}

std::string toJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

absl::Status fromJson(const std::string& json, google::protobuf::Message& message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &message, options);
  if (!status.ok()) {
    return absl::DataLossError("not a " + message.GetTypeName() + ": " +
                               std::string(status.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<PublishedSnapshot> publish(Etcd& etcd, snapshot::SnapshotStore& store,
                                          const PublishOptions& options) {
  if (absl::Status s = checkName("--fleet", options.fleet); !s.ok()) return s;
  const int64_t version = options.version > 0 ? options.version : store.latestVersion();
  if (version == 0) return absl::FailedPreconditionError("the database holds no version");
  snapshot::StoredSnapshot stored = store.load(version);  // throws for a missing version
  const std::string bytes = snapshot::SnapshotStore::canonicalBytes(stored.config);

  PublishedSnapshot published;
  published.set_version(version);
  published.set_content_hash(stored.info.content_hash);
  published.set_source(stored.info.source);
  published.set_created_at(stored.info.created_at);
  published.set_size_bytes(static_cast<int64_t>(bytes.size()));
  published.set_chunks(static_cast<int32_t>((bytes.size() + kChunkBytes - 1) / kChunkBytes));
  published.set_chunk_prefix(chunkPrefix(options.fleet, stored.info.content_hash));
  published.set_published_at(utcNow());
  published.set_published_by(options.published_by);
  published.set_listeners(stored.info.listeners);
  published.set_routes(stored.info.routes);

  // What the transaction will compare: `current` and this version's key as read now.
  auto current = etcd.get(currentKey(options.fleet));
  if (!current.ok()) return current.status();
  PublishedSnapshot current_snapshot;
  if (*current) {
    if (absl::Status s = fromJson((*current)->value(), current_snapshot); !s.ok()) return s;
  }
  if (options.if_current && *options.if_current != current_snapshot.version()) {
    return absl::FailedPreconditionError(
        absl::StrCat("fleet ", options.fleet, " runs version ", current_snapshot.version(),
                     ", not ", *options.if_current, " (--if-current): nothing was published"));
  }
  auto existing = etcd.get(snapshotKey(options.fleet, version));
  if (!existing.ok()) return existing.status();
  if (*existing) {
    PublishedSnapshot before;
    if (absl::Status s = fromJson((*existing)->value(), before); !s.ok()) return s;
    if (before.content_hash() != published.content_hash()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "fleet ", options.fleet, " already has a version ", version, " with another content (",
          before.content_hash().substr(0, 12), ", published from ", before.published_by(),
          "): one database authors a fleet; nothing was published"));
    }
    published = before;  // a republish (rollback) points at what was published then
    published.set_published_at(utcNow());
    published.set_published_by(options.published_by);
  }

  // The chunks are content-addressed: writing them again is harmless, and nothing reads them
  // before `current` points at them.
  for (int i = 0; i < published.chunks(); ++i) {
    const std::string piece = bytes.substr(static_cast<size_t>(i) * kChunkBytes, kChunkBytes);
    if (absl::Status s = etcd.put(chunkKey(published.chunk_prefix(), i), piece); !s.ok()) return s;
  }

  etcdserverpb::TxnRequest txn;
  *txn.add_compare() = modRevision(currentKey(options.fleet), etcdserverpb::Compare::EQUAL,
                                   *current ? (*current)->mod_revision() : 0);
  // The chunks are still there (a prune may delete a content's chunks while nothing points at
  // them yet).
  *txn.add_compare() =
      modRevision(chunkKey(published.chunk_prefix(), 0), etcdserverpb::Compare::GREATER, 0);
  *txn.add_compare() =
      modRevision(snapshotKey(options.fleet, version), etcdserverpb::Compare::EQUAL,
                  *existing ? (*existing)->mod_revision() : 0);
  const std::string json = toJson(published);
  auto* put_snapshot = txn.add_success()->mutable_request_put();
  put_snapshot->set_key(snapshotKey(options.fleet, version));
  put_snapshot->set_value(json);
  auto* put_current = txn.add_success()->mutable_request_put();
  put_current->set_key(currentKey(options.fleet));
  put_current->set_value(json);
  auto result = etcd.txn(txn);
  if (!result.ok()) return result.status();
  if (!result->succeeded()) {
    auto chunk = etcd.get(chunkKey(published.chunk_prefix(), 0));
    if (chunk.ok() && !*chunk) {
      return absl::AbortedError("fleet " + options.fleet + ": a prune deleted this publish's " +
                                "chunks before it could point current at them; publish again");
    }
    auto now = etcd.get(currentKey(options.fleet));
    PublishedSnapshot winner;
    if (now.ok() && *now) (void)fromJson((*now)->value(), winner);
    return absl::AbortedError(
        absl::StrCat("another publisher moved fleet ", options.fleet, "'s current to version ",
                     winner.version(), " (from ", winner.published_by(),
                     ") while this one published; current was not changed by this publish"));
  }
  return published;
}

absl::StatusOr<mcproxy::config::v1::Bootstrap> fetchSnapshot(Etcd& etcd,
                                                             const PublishedSnapshot& published) {
  std::string bytes;
  bytes.reserve(static_cast<size_t>(published.size_bytes()));
  for (int i = 0; i < published.chunks(); ++i) {
    auto chunk = etcd.get(chunkKey(published.chunk_prefix(), i));
    if (!chunk.ok()) return chunk.status();
    if (!*chunk) {
      return absl::DataLossError(absl::StrCat("version ", published.version(), ": chunk ", i,
                                              " of ", published.chunks(), " is missing"));
    }
    bytes += (*chunk)->value();
  }
  mcproxy::config::v1::Bootstrap config;
  if (static_cast<int64_t>(bytes.size()) != published.size_bytes() ||
      !config.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat("version ", published.version(), ": ", bytes.size(),
                                            " bytes read, ", published.size_bytes(),
                                            " published, or not a config"));
  }
  const std::string hash = snapshot::SnapshotStore::contentHash(config);
  if (hash != published.content_hash()) {
    return absl::DataLossError(absl::StrCat("version ", published.version(), " hashes to ", hash,
                                            ", not the published ", published.content_hash()));
  }
  return config;
}

absl::StatusOr<FleetPruneResult> pruneFleet(Etcd& etcd, const std::string& fleet, int64_t keep,
                                            bool dry_run) {
  if (absl::Status s = checkName("--fleet", fleet); !s.ok()) return s;
  if (keep < 1) return absl::InvalidArgumentError("--keep must be 1 or more");
  auto current = etcd.get(currentKey(fleet));
  if (!current.ok()) return current.status();
  PublishedSnapshot current_snapshot;
  if (*current) {
    if (absl::Status s = fromJson((*current)->value(), current_snapshot); !s.ok()) return s;
  }
  auto published = etcd.rangePrefix(fleetPrefix(fleet) + "snapshots/");
  if (!published.ok()) return published.status();
  std::map<int64_t, PublishedSnapshot> versions;  // newest last
  for (const auto& kv : published->kvs()) {
    PublishedSnapshot snapshot;
    if (fromJson(kv.value(), snapshot).ok()) versions[snapshot.version()] = snapshot;
  }
  FleetPruneResult result;
  std::set<std::string> kept_prefixes = {current_snapshot.chunk_prefix()};
  int64_t newer = 0;
  for (auto it = versions.rbegin(); it != versions.rend(); ++it, ++newer) {
    if (newer < keep || it->first == current_snapshot.version()) {
      result.kept.push_back(it->first);
      kept_prefixes.insert(it->second.chunk_prefix());
    } else {
      result.deleted.push_back(it->first);
    }
  }
  std::sort(result.kept.begin(), result.kept.end());
  std::sort(result.deleted.begin(), result.deleted.end());
  // Every content's chunks, kept or not (a publish that never moved current leaves some).
  auto chunks = etcd.rangePrefix(fleetPrefix(fleet) + "chunks/", /*keys_only=*/true);
  if (!chunks.ok()) return chunks.status();
  std::set<std::string> doomed_prefixes;
  for (const auto& kv : chunks->kvs()) {
    const std::string prefix = kv.key().substr(0, kv.key().rfind('/') + 1);
    if (!kept_prefixes.count(prefix)) doomed_prefixes.insert(prefix);
  }
  result.chunk_sets_deleted = static_cast<int64_t>(doomed_prefixes.size());
  if (dry_run) return result;
  for (int64_t version : result.deleted) {
    if (auto gone = etcd.deleteRange(snapshotKey(fleet, version), ""); !gone.ok()) {
      return gone.status();
    }
  }
  for (const std::string& prefix : doomed_prefixes) {
    if (auto gone = etcd.deleteRange(prefix, Etcd::prefixEnd(prefix)); !gone.ok()) {
      return gone.status();
    }
  }
  return result;
}

absl::StatusOr<FleetView> readFleet(Etcd& etcd, const std::string& fleet) {
  if (absl::Status s = checkName("--fleet", fleet); !s.ok()) return s;
  FleetView view;
  auto current = etcd.get(currentKey(fleet));
  if (!current.ok()) return current.status();
  if (*current) {
    PublishedSnapshot snapshot;
    if (absl::Status s = fromJson((*current)->value(), snapshot); !s.ok()) return s;
    view.current = snapshot;
  }
  auto nodes = etcd.rangePrefix(nodesPrefix(fleet));
  if (!nodes.ok()) return nodes.status();
  for (const auto& kv : nodes->kvs()) {
    NodeStatus node;
    if (fromJson(kv.value(), node).ok()) view.nodes.push_back(std::move(node));
  }
  return view;
}

}  // namespace mcproxy::fleet

#include "source/snapshot/route_edit.h"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <optional>

#include "source/common/tls/digest.h"

namespace mcproxy::snapshot {
namespace {

// Field numbers of the messages walked here (bootstrap.proto).
constexpr uint32_t kBootstrapListeners = 1;
constexpr uint32_t kListenerRoutes = 4;
constexpr uint32_t kRouteHostname = 1;

constexpr int kVarint = 0;
constexpr int kFixed64 = 1;
constexpr int kLengthDelimited = 2;
constexpr int kFixed32 = 5;

// One field of a serialized message, as byte ranges of it.
struct Field {
  uint32_t number = 0;
  int wire_type = 0;
  size_t begin = 0;    // the tag's first byte
  size_t payload = 0;  // a length-delimited field's contents (after the length)
  size_t end = 0;      // one past the field's last byte
  std::string_view contents(std::string_view message) const {
    return message.substr(payload, end - payload);
  }
};

bool readVarint(std::string_view bytes, size_t& at, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && at < bytes.size(); shift += 7) {
    const auto byte = static_cast<uint8_t>(bytes[at++]);
    value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

void writeVarint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void writeLengthDelimited(std::string& out, uint32_t number, std::string_view contents) {
  writeVarint(out, (uint64_t{number} << 3) | kLengthDelimited);
  writeVarint(out, contents.size());
  out.append(contents);
}

// Walks a message's fields in order; `visit` returns false to stop early.
template <class Visit>
absl::Status forEachField(std::string_view message, Visit visit) {
  size_t at = 0;
  while (at < message.size()) {
    Field field;
    field.begin = at;
    uint64_t tag = 0;
    if (!readVarint(message, at, tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) {
      return absl::InvalidArgumentError(absl::StrCat("bad field tag at byte ", field.begin));
    }
    field.number = static_cast<uint32_t>(tag >> 3);
    field.wire_type = static_cast<int>(tag & 7);
    uint64_t value = 0;
    switch (field.wire_type) {
      case kVarint:
        if (!readVarint(message, at, value)) return absl::InvalidArgumentError("bad varint");
        break;
      case kFixed64:
        at += 8;
        break;
      case kFixed32:
        at += 4;
        break;
      case kLengthDelimited:
        if (!readVarint(message, at, value) || value > message.size() - at) {
          return absl::InvalidArgumentError(absl::StrCat("bad length at byte ", field.begin));
        }
        field.payload = at;
        at += value;
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("unexpected wire type ", field.wire_type, " at byte ", field.begin));
    }
    if (at > message.size()) return absl::InvalidArgumentError("message ends inside a field");
    field.end = at;
    if (!visit(field)) break;
  }
  return absl::OkStatus();
}

// The listener entry `index` of a serialized Bootstrap.
absl::StatusOr<Field> findListener(std::string_view canonical, size_t index) {
  std::optional<Field> found;
  size_t seen = 0;
  absl::Status walked = forEachField(canonical, [&](const Field& field) {
    if (field.number != kBootstrapListeners || field.wire_type != kLengthDelimited) return true;
    if (seen++ == index) found = field;
    return !found;
  });
  if (!walked.ok()) return walked;
  if (!found) return absl::NotFoundError(absl::StrCat("the config has no listeners[", index, "]"));
  return *found;
}

// A serialized route's hostname: its first field when it has one (fields are written in
// number order, and hostname is 1).
std::string_view hostnameOf(std::string_view route) {
  std::string_view hostname;
  (void)forEachField(route, [&](const Field& field) {
    if (field.number == kRouteHostname && field.wire_type == kLengthDelimited) {
      hostname = field.contents(route);
    }
    return false;
  });
  return hostname;
}

}  // namespace

std::string deterministicBytes(const google::protobuf::Message& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return bytes;
}

absl::StatusOr<std::string> applyRouteEdit(std::string_view canonical, const RouteEdit& edit) {
  absl::StatusOr<Field> listener = findListener(canonical, edit.listener_index);
  if (!listener.ok()) return listener.status();
  const std::string_view contents = listener->contents(canonical);
  // The listener's contents are rebuilt from [0, cut_begin) + inserted + [cut_end, size).
  size_t cut_begin = contents.size();
  size_t cut_end = contents.size();
  std::string inserted;
  if (edit.kind == RouteEdit::Kind::kAdd) {
    // After the last field numbered up to routes: the end of the routes, in number order.
    absl::Status walked = forEachField(contents, [&](const Field& field) {
      if (field.number > kListenerRoutes) {
        cut_begin = cut_end = field.begin;
        return false;
      }
      return true;
    });
    if (!walked.ok()) return walked;
    writeLengthDelimited(inserted, kListenerRoutes, deterministicBytes(edit.route));
  } else {
    bool found = false;
    absl::Status walked = forEachField(contents, [&](const Field& field) {
      if (field.number == kListenerRoutes && field.wire_type == kLengthDelimited &&
          hostnameOf(field.contents(contents)) == edit.hostname) {
        cut_begin = field.begin;
        cut_end = field.end;
        found = true;
      }
      return !found && field.number <= kListenerRoutes;
    });
    if (!walked.ok()) return walked;
    if (!found) {
      return absl::NotFoundError(absl::StrCat("listeners[", edit.listener_index,
                                              "] has no route \"", edit.hostname, "\""));
    }
  }
  // Written in one pass: the listener's tag and new length, then its pieces.
  std::string out;
  out.reserve(canonical.size() + inserted.size() + 16);
  out.append(canonical.substr(0, listener->begin));
  writeVarint(out, (uint64_t{kBootstrapListeners} << 3) | kLengthDelimited);
  writeVarint(out, contents.size() - (cut_end - cut_begin) + inserted.size());
  out.append(contents.substr(0, cut_begin)).append(inserted).append(contents.substr(cut_end));
  out.append(canonical.substr(listener->end));
  return out;
}

absl::StatusOr<Skeleton> skeletonOf(std::string_view canonical) {
  Skeleton skeleton;
  std::string bytes;
  absl::Status inner = absl::OkStatus();
  absl::Status walked = forEachField(canonical, [&](const Field& field) {
    if (field.number != kBootstrapListeners || field.wire_type != kLengthDelimited) {
      bytes.append(canonical.substr(field.begin, field.end - field.begin));
      return true;
    }
    const std::string_view contents = field.contents(canonical);
    std::string listener;
    int64_t routes = 0;
    inner = forEachField(contents, [&](const Field& part) {
      if (part.number == kListenerRoutes) {
        ++routes;
      } else {
        listener.append(contents.substr(part.begin, part.end - part.begin));
      }
      return true;
    });
    writeLengthDelimited(bytes, kBootstrapListeners, listener);
    skeleton.route_counts.push_back(routes);
    return inner.ok();
  });
  if (!walked.ok()) return walked;
  if (!inner.ok()) return inner;
  if (!skeleton.config.ParseFromString(bytes)) {
    return absl::InvalidArgumentError("the config's bytes do not parse as a Bootstrap");
  }
  return skeleton;
}

absl::StatusOr<PreparedRouteEdit> prepareRouteEdit(std::string_view base_canonical,
                                                   int64_t base_version, RouteEdit edit) {
  absl::StatusOr<Skeleton> skeleton = skeletonOf(base_canonical);
  if (!skeleton.ok()) return skeleton.status();
  absl::StatusOr<std::string> after = applyRouteEdit(base_canonical, edit);
  if (!after.ok()) return after.status();
  PreparedRouteEdit prepared;
  prepared.base_version = base_version;
  for (size_t i = 0; i < skeleton->route_counts.size(); ++i) {
    prepared.route_count += skeleton->route_counts[i] +
                            (skeleton->config.listeners(static_cast<int>(i)).has_default_route());
  }
  prepared.route_count += edit.kind == RouteEdit::Kind::kAdd ? 1 : -1;
  prepared.skeleton = std::move(skeleton->config);
  prepared.content_hash = tls::sha256Hex(*after);
  prepared.canonical_after = std::move(*after);
  prepared.edit = std::move(edit);
  return prepared;
}

}  // namespace mcproxy::snapshot

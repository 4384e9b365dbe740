#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace mcproxy::http {

// The open streams of one HTTP/2 connection, by stream id. A peer's new stream ids only grow
// (RFC 9113 §5.1.1), so a new stream goes at the end of a sorted vector: no allocation per
// stream once the vector has grown to the connection's concurrency, and lookups (one per header
// and DATA frame) are a binary search over a few cache lines.
template <class Value>
class StreamTable {
 public:
  Value* find(int32_t id) {
    auto it = lowerBound(id);
    return it != entries_.end() && it->first == id ? &it->second : nullptr;
  }
  Value& insert(int32_t id, Value value) {
    auto it = entries_.empty() || entries_.back().first < id ? entries_.end() : lowerBound(id);
    return entries_.insert(it, {id, std::move(value)})->second;
  }
  // The removed value (so that its owner may outlive the entry), or a default one.
  Value take(int32_t id) {
    auto it = lowerBound(id);
    if (it == entries_.end() || it->first != id) return Value();
    Value value = std::move(it->second);
    entries_.erase(it);
    return value;
  }
  size_t size() const { return entries_.size(); }
  template <class Fn>
  void forEach(Fn fn) {
    for (auto& [id, value] : entries_) fn(id, value);
  }
  void clear() { entries_.clear(); }

 private:
  using Entries = std::vector<std::pair<int32_t, Value>>;
  typename Entries::iterator lowerBound(int32_t id) {
    return std::lower_bound(entries_.begin(), entries_.end(), id,
                            [](const auto& entry, int32_t key) { return entry.first < key; });
  }
  Entries entries_;
};

}  // namespace mcproxy::http

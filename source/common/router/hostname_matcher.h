#pragma once

#include <absl/container/flat_hash_map.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace mcproxy::router {

// Checks that `pattern` is "name.example" or "*.name.example": DNS characters, no empty
// labels, a wildcard only as the whole leftmost label. Returns an error message or "".
std::string validateHostnamePattern(std::string_view pattern);

// Lower-cases ASCII.
std::string toLowerAscii(std::string_view text);

// Maps hostnames to values: exact names first, then "*.suffix" wildcards, the longest suffix
// winning. A wildcard matches any depth below its suffix ("*.b.test" matches "x.b.test" and
// "y.x.b.test") but not the suffix itself. Case-insensitive. A lookup costs one hash probe per
// label of the hostname, whatever the number of entries.
//
// A copy shares the entries instead of copying them (copy-on-write): what the copy adds or
// removes is kept in a layer of its own over the shared entries, so a route table of 100,000
// entries is copied and changed in time independent of its size. While a layer holds anything,
// a lookup takes one more hash probe; once it outgrows a sixteenth of the entries it is folded
// into a new table of the matcher's own.
template <typename T>
class HostnameMatcher {
 public:
  // Returns false (and changes nothing) when the same pattern is already present.
  bool add(std::string_view pattern, T value) {
    Key key = keyOf(pattern);
    if (lookup(key.name(), key.wildcard) != nullptr) return false;
    change(std::string(key.name()), key.wildcard, std::move(value));
    ++size_;
    return true;
  }

  // Returns false when the pattern is not present.
  bool remove(std::string_view pattern) {
    Key key = keyOf(pattern);
    if (lookup(key.name(), key.wildcard) == nullptr) return false;
    change(std::string(key.name()), key.wildcard, std::nullopt);
    --size_;
    return true;
  }

  // Whether `pattern` itself is present (not what it would match).
  bool contains(std::string_view pattern) const {
    Key key = keyOf(pattern);
    return lookup(key.name(), key.wildcard) != nullptr;
  }

  const T* find(std::string_view hostname) const {
    std::string lowered;
    if (hasUpper(hostname)) {
      lowered = toLowerAscii(hostname);
      hostname = lowered;
    }
    if (const T* found = lookup(hostname, false)) return found;
    return findWildcard(hostname);
  }

  // The longest wildcard matching `hostname` (lower-case), ignoring exact entries.
  const T* findWildcard(std::string_view hostname) const {
    if (!anyWildcard()) return nullptr;
    for (size_t dot = hostname.find('.'); dot != std::string_view::npos;
         dot = hostname.find('.', dot + 1)) {
      if (const T* found = lookup(hostname.substr(dot + 1), true)) return found;
    }
    return nullptr;
  }

  size_t size() const { return size_; }
  // Entries held in the layer over shared ones (0 for a matcher whose entries are its own).
  size_t layered() const { return layer_.exact.size() + layer_.wildcard.size(); }

 private:
  // Wildcards are keyed by the suffix after "*.".
  struct Table {
    absl::flat_hash_map<std::string, T> exact;
    absl::flat_hash_map<std::string, T> wildcard;
  };
  // Changes over the shared table; nullopt: removed.
  struct Layer {
    absl::flat_hash_map<std::string, std::optional<T>> exact;
    absl::flat_hash_map<std::string, std::optional<T>> wildcard;
  };

  // A pattern as the tables key it: lower-case, a wildcard by the suffix after "*.".
  struct Key {
    std::string lowered;
    bool wildcard;
    std::string_view name() const {
      return wildcard ? std::string_view(lowered).substr(2) : std::string_view(lowered);
    }
  };
  static Key keyOf(std::string_view pattern) {
    std::string lowered = toLowerAscii(pattern);
    const bool wildcard = lowered.starts_with("*.");
    return {std::move(lowered), wildcard};
  }

  static bool hasUpper(std::string_view text) {
    for (char c : text) {
      if (c >= 'A' && c <= 'Z') return true;
    }
    return false;
  }

  // Looked up by string_view: no string is made per lookup.
  static absl::string_view key(std::string_view name) { return {name.data(), name.size()}; }

  bool anyWildcard() const {
    return !layer_.wildcard.empty() || (table_ != nullptr && !table_->wildcard.empty());
  }

  const T* lookup(std::string_view name, bool wildcard) const {
    const auto& layer = wildcard ? layer_.wildcard : layer_.exact;
    if (!layer.empty()) {
      if (auto it = layer.find(key(name)); it != layer.end()) {
        return it->second ? &*it->second : nullptr;
      }
    }
    if (table_ == nullptr) return nullptr;
    const auto& table = wildcard ? table_->wildcard : table_->exact;
    auto it = table.find(key(name));
    return it == table.end() ? nullptr : &it->second;
  }

  void change(std::string name, bool wildcard, std::optional<T> value) {
    if (table_ == nullptr) table_ = std::make_shared<Table>();
    if (table_.use_count() == 1 && layered() == 0) {
      // Not shared: changed in place.
      put(wildcard ? table_->wildcard : table_->exact, std::move(name), std::move(value));
      return;
    }
    auto& layer = wildcard ? layer_.wildcard : layer_.exact;
    layer.insert_or_assign(std::move(name), std::move(value));
    if (layered() > 64 && layered() * 16 > size_) fold();
  }

  // Sets `name` to `value` in `table`, or erases it (nullopt).
  static void put(absl::flat_hash_map<std::string, T>& table, std::string name,
                  std::optional<T> value) {
    if (value) {
      table.insert_or_assign(std::move(name), std::move(*value));
    } else {
      table.erase(name);
    }
  }

  // A table of this matcher's own: the shared entries with the layer applied.
  void fold() {
    auto table = std::make_shared<Table>(*table_);
    for (auto& [name, value] : layer_.exact) put(table->exact, name, std::move(value));
    for (auto& [name, value] : layer_.wildcard) put(table->wildcard, name, std::move(value));
    layer_ = Layer{};
    table_ = std::move(table);
  }

  // Shared by copies; changed in place only while this matcher is its only user.
  std::shared_ptr<Table> table_;
  Layer layer_;
  size_t size_ = 0;
};

}  // namespace mcproxy::router

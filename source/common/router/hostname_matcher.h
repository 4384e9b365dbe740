#pragma once

#include <absl/container/flat_hash_map.h>

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
template <typename T>
class HostnameMatcher {
 public:
  // Returns false (and changes nothing) when the same pattern is already present.
  bool add(std::string_view pattern, T value) {
    std::string key = toLowerAscii(pattern);
    if (key.starts_with("*.")) return wildcard_.emplace(key.substr(2), std::move(value)).second;
    return exact_.emplace(std::move(key), std::move(value)).second;
  }

  const T* find(std::string_view hostname) const {
    std::string lowered;
    if (hasUpper(hostname)) {
      lowered = toLowerAscii(hostname);
      hostname = lowered;
    }
    if (auto it = exact_.find(key(hostname)); it != exact_.end()) return &it->second;
    return findWildcard(hostname);
  }

  // The longest wildcard matching `hostname` (lower-case), ignoring exact entries.
  const T* findWildcard(std::string_view hostname) const {
    if (wildcard_.empty()) return nullptr;
    for (size_t dot = hostname.find('.'); dot != std::string_view::npos;
         dot = hostname.find('.', dot + 1)) {
      if (auto it = wildcard_.find(key(hostname.substr(dot + 1))); it != wildcard_.end()) {
        return &it->second;
      }
    }
    return nullptr;
  }

  size_t size() const { return exact_.size() + wildcard_.size(); }

 private:
  static bool hasUpper(std::string_view text) {
    for (char c : text) {
      if (c >= 'A' && c <= 'Z') return true;
    }
    return false;
  }

  // Looked up by string_view: no string is made per lookup.
  static absl::string_view key(std::string_view name) { return {name.data(), name.size()}; }

  absl::flat_hash_map<std::string, T> exact_;
  absl::flat_hash_map<std::string, T> wildcard_;  // keyed by the suffix after "*."
};

}  // namespace mcproxy::router

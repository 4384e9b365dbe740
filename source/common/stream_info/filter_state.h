#pragma once

#include <absl/container/flat_hash_map.h>

#include <memory>
#include <string>
#include <string_view>

namespace mcproxy::stream_info {

// State a filter shares with the filters after it, for one connection or one request: named
// objects the filter defines (a subclass of Object), or plain strings. Later filters and the
// log phase read them by name. Empty until something is set (no allocation).
class FilterState {
 public:
  class Object {
   public:
    virtual ~Object() = default;
    // How the object shows in logs; empty if it does not.
    virtual std::string asString() const { return {}; }
  };

  void set(std::string_view name, std::unique_ptr<Object> object);
  void setString(std::string_view name, std::string value);
  // The object set under `name` if it is a T, else null.
  template <class T>
  T* get(std::string_view name) const {
    auto it = objects_.find(key(name));
    return it == objects_.end() ? nullptr : dynamic_cast<T*>(it->second.get());
  }
  // A string set with setString(), or null.
  const std::string* getString(std::string_view name) const;
  bool has(std::string_view name) const { return objects_.contains(key(name)); }
  bool remove(std::string_view name) { return objects_.erase(key(name)) > 0; }
  size_t size() const { return objects_.size(); }
  template <class Fn>
  void forEach(Fn fn) const {
    for (const auto& [name, object] : objects_) fn(name, *object);
  }

 private:
  // Debian's abseil has its own string_view type: lookups go through it, no string is made.
  static absl::string_view key(std::string_view name) { return {name.data(), name.size()}; }
  absl::flat_hash_map<std::string, std::unique_ptr<Object>> objects_;
};

}  // namespace mcproxy::stream_info

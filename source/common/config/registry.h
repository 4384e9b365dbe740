#pragma once

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace mcproxy::config {

// The factories of one kind (network filters, HTTP filters) linked into the binary, by name.
// Registration happens during static initialisation (the MCPROXY_REGISTER_* macros), lookups
// after main() starts, so the map needs no lock.
template <class Factory>
class Registry {
 public:
  static void add(std::unique_ptr<Factory> factory) {
    const std::string name = factory->name();
    if (!factories().emplace(name, std::move(factory)).second) {
      throw std::logic_error("factory registered twice: " + name);
    }
  }
  static const Factory* find(const std::string& name) {
    auto it = factories().find(name);
    return it == factories().end() ? nullptr : it->second.get();
  }
  static std::vector<std::string> names() {
    std::vector<std::string> out;
    for (const auto& [name, factory] : factories()) out.push_back(name);
    return out;
  }

 private:
  // Function-local, so that registration from other translation units' static initialisers
  // never sees an unconstructed map.
  static std::map<std::string, std::unique_ptr<Factory>>& factories() {
    static std::map<std::string, std::unique_ptr<Factory>> registry;
    return registry;
  }
};

}  // namespace mcproxy::config

#include "source/common/network/filter_factory.h"

#include <map>
#include <stdexcept>

namespace mcproxy::network {
namespace {

// Function-local so that registration from other translation units' static initialisers
// never sees an unconstructed map.
std::map<std::string, std::unique_ptr<NamedNetworkFilterConfigFactory>>& factories() {
  static std::map<std::string, std::unique_ptr<NamedNetworkFilterConfigFactory>> registry;
  return registry;
}

}  // namespace

void FilterRegistry::add(std::unique_ptr<NamedNetworkFilterConfigFactory> factory) {
  const std::string name = factory->name();
  if (!factories().emplace(name, std::move(factory)).second) {
    throw std::logic_error("network filter registered twice: " + name);
  }
}

const NamedNetworkFilterConfigFactory* FilterRegistry::find(const std::string& name) {
  auto it = factories().find(name);
  return it == factories().end() ? nullptr : it->second.get();
}

std::vector<std::string> FilterRegistry::names() {
  std::vector<std::string> out;
  for (const auto& [name, factory] : factories()) out.push_back(name);
  return out;
}

}  // namespace mcproxy::network

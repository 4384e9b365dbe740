#pragma once

#include <stdexcept>
#include <string>

namespace mcproxy::config {

// A configuration that cannot be used. The message starts with the field path, e.g.
// "listeners[0].routes[1].backend: port must be a number from 0 to 65535, got \"x\"".
class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& field_path, const std::string& reason)
      : std::runtime_error(field_path.empty() ? reason : field_path + ": " + reason) {}
};

}  // namespace mcproxy::config

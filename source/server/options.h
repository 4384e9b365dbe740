#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "source/common/logging/logger.h"

namespace mcproxy::server {

struct Options {
  std::string config_path;   // empty: the embedded default config
  std::string db_path;       // empty: run from the config file alone
  std::string admin_socket;  // overrides the config's admin { socket }
  std::chrono::milliseconds db_poll_interval{1000};
  size_t workers = 0;  // 0: one per core
  // --fleet: follow the fleet's published config through etcd (needs --db and --etcd).
  std::string fleet;
  std::string etcd_urls;
  std::string etcd_ca;
  std::string etcd_cert;
  std::string etcd_key;
  std::string node_id;  // default: the host name
  logging::Level log_level = logging::Level::kInfo;
  bool print_default_config = false;
  bool show_version = false;
  bool show_help = false;
};

// Parses argv. Returns nullopt and sets `error` for unknown flags or bad values.
std::optional<Options> parseOptions(int argc, char** argv, std::string& error);

const char* usageText();
const char* versionText();

}  // namespace mcproxy::server

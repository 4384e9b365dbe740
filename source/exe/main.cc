// mc-proxy: the proxy process.
#include <csignal>
#include <cstdio>
#include <iostream>

#include "source/common/logging/logger.h"
#include "source/server/options.h"
#include "source/server/server.h"
#include "source/snapshot/config_loader.h"

int main(int argc, char** argv) {
  std::string error;
  auto options = mcproxy::server::parseOptions(argc, argv, error);
  if (!options) {
    std::cerr << "mc-proxy: " << error << "\n";
    return 2;
  }
  if (options->show_help) {
    std::cout << mcproxy::server::usageText();
    return 0;
  }
  if (options->show_version) {
    std::cout << mcproxy::server::versionText() << "\n";
    return 0;
  }
  if (options->print_default_config) {
    std::cout << mcproxy::snapshot::embeddedDefaultConfigText();
    return 0;
  }
  // A peer that closes while we write must cost that connection, not the process.
  std::signal(SIGPIPE, SIG_IGN);
  mcproxy::logging::setMinLevel(options->log_level);
  mcproxy::logging::setThreadName("main");
  LOG_INFO << mcproxy::server::versionText() << " starting";
  mcproxy::server::Server server(*options);
  return server.run();
}

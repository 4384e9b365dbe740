// mcproxyctl: the operator's command line for mc-proxy.
#include <iostream>
#include <string>
#include <vector>

#include "source/common/config/config_error.h"
#include "source/common/stats/stats.h"
#include "source/snapshot/config_loader.h"
#include "source/snapshot/snapshot.h"

namespace {

constexpr const char* kUsage = R"(usage: mcproxyctl COMMAND [options]

Commands:
  validate --config FILE   check a config (text format or .json) without applying it;
                           prints warnings, exits 0 when valid and 1 when not
  version                  print the version
)";

int validate(const std::vector<std::string>& args) {
  std::string path;
  for (size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "--config" || args[i] == "-c") && i + 1 < args.size()) {
      path = args[++i];
    } else if (args[i].starts_with("--config=")) {
      path = args[i].substr(9);
    } else {
      std::cerr << "mcproxyctl validate: unexpected argument \"" << args[i] << "\"\n";
      return 2;
    }
  }
  if (path.empty()) {
    std::cerr << "mcproxyctl validate: --config FILE is required\n";
    return 2;
  }
  mcproxy::stats::Store stats;
  try {
    auto result = mcproxy::snapshot::compile(mcproxy::snapshot::loadConfigFile(path), stats, 1);
    for (const auto& warning : result.warnings) std::cerr << "warning: " << warning << "\n";
    size_t routes = 0;
    for (const auto& listener : result.snapshot->listeners) routes += listener->routes.size();
    std::cout << path << ": valid (" << result.snapshot->listeners.size() << " listener(s), "
              << routes << " route(s))\n";
    return 0;
  } catch (const mcproxy::config::ConfigError& e) {
    std::cerr << path << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "help") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "validate") return validate(args);
  if (command == "version" || command == "--version") {
    std::cout << "mcproxyctl 0.1.0\n";
    return 0;
  }
  std::cerr << "mcproxyctl: unknown command \"" << command << "\"\n" << kUsage;
  return 2;
}

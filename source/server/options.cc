#include "source/server/options.h"

#include <charconv>
#include <cstring>

#include "source/fleet/fleet.h"

namespace mcproxy::server {

const char* usageText() {
  return R"(usage: mc-proxy [--config FILE] [--db FILE] [--workers N] [--log-level LEVEL]
       mc-proxy --db FILE --fleet NAME --etcd URLS [--config FILE] [...]

A TLS edge proxy: routes TLS connections by SNI to backends.

  --config FILE           configuration in protobuf text format (.textproto) or JSON (.json);
                          without it, mc-proxy runs its embedded default config
  --db FILE               SQLite snapshot store, the source of truth: an empty one is seeded
                          from the config; a non-empty one is loaded and the config file is
                          not re-applied (mcproxyctl compile does that). Changes written to
                          it by other processes are picked up.
  --db-poll-ms N          how often to look for database changes (default 1000)
  --admin-socket PATH     serve the admin API on this Unix socket (overrides the config's
                          admin { socket })
  --fleet NAME            follow fleet NAME's published config through etcd (docs/fleet.md):
                          listeners and routes come from the fleet, are compiled here and
                          stored in --db (required) as local versions; local changes are
                          refused while the database follows the fleet. --config then only
                          gives the process settings (admin)
  --etcd URLS             etcd endpoints, comma-separated http:// or https:// URLs
  --etcd-ca FILE          CA bundle to verify etcd's certificate (default: the system's)
  --etcd-cert FILE        client certificate for etcd (with --etcd-key)
  --etcd-key FILE
  --node-id ID            this node's name in the fleet (default: the host name)
  --workers N             worker threads (default: one per core)
  --log-level LEVEL       debug, info, warn or error (default: info)
  --print-default-config  print the embedded default config and exit
  --version               print the version and exit
  --help                  print this help and exit

Signals: SIGTERM/SIGINT drain and exit, SIGHUP reloads (the database's newest version,
or the config file without --db),
SIGUSR1 writes every counter to the log.
)";
}

const char* versionText() { return "mc-proxy 0.1.0"; }

std::optional<Options> parseOptions(int argc, char** argv, std::string& error) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_inline_value = false;
    if (const size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline_value = true;
    }
    auto takeValue = [&](std::string& out) {
      if (has_inline_value) {
        out = value;
        return true;
      }
      if (i + 1 >= argc) {
        error = arg + " needs a value";
        return false;
      }
      out = argv[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      options.show_help = true;
    } else if (arg == "--version") {
      options.show_version = true;
    } else if (arg == "--print-default-config") {
      options.print_default_config = true;
    } else if (arg == "--config" || arg == "-c") {
      if (!takeValue(options.config_path)) return std::nullopt;
    } else if (arg == "--db") {
      if (!takeValue(options.db_path)) return std::nullopt;
    } else if (arg == "--admin-socket") {
      if (!takeValue(options.admin_socket)) return std::nullopt;
    } else if (arg == "--db-poll-ms") {
      std::string text;
      if (!takeValue(text)) return std::nullopt;
      unsigned ms = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
      if (ec != std::errc() || end != text.data() + text.size() || ms < 10 || ms > 600000) {
        error = "--db-poll-ms must be a number from 10 to 600000, got \"" + text + "\"";
        return std::nullopt;
      }
      options.db_poll_interval = std::chrono::milliseconds(ms);
    } else if (arg == "--workers") {
      std::string text;
      if (!takeValue(text)) return std::nullopt;
      size_t workers = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), workers);
      if (ec != std::errc() || end != text.data() + text.size() || workers == 0 || workers > 256) {
        error = "--workers must be a number from 1 to 256, got \"" + text + "\"";
        return std::nullopt;
      }
      options.workers = workers;
    } else if (arg == "--fleet") {
      if (!takeValue(options.fleet)) return std::nullopt;
    } else if (arg == "--etcd") {
      if (!takeValue(options.etcd_urls)) return std::nullopt;
    } else if (arg == "--etcd-ca") {
      if (!takeValue(options.etcd_ca)) return std::nullopt;
    } else if (arg == "--etcd-cert") {
      if (!takeValue(options.etcd_cert)) return std::nullopt;
    } else if (arg == "--etcd-key") {
      if (!takeValue(options.etcd_key)) return std::nullopt;
    } else if (arg == "--node-id") {
      if (!takeValue(options.node_id)) return std::nullopt;
    } else if (arg == "--log-level") {
      std::string text;
      if (!takeValue(text)) return std::nullopt;
      if (!logging::parseLevel(text, options.log_level)) {
        error = "--log-level must be debug, info, warn or error, got \"" + text + "\"";
        return std::nullopt;
      }
    } else {
      error = "unknown argument \"" + std::string(argv[i]) + "\" (see --help)";
      return std::nullopt;
    }
  }
  if (!options.fleet.empty() && (options.db_path.empty() || options.etcd_urls.empty())) {
    error = "--fleet needs --db (the node's own history) and --etcd (where the fleet is)";
    return std::nullopt;
  }
  if (options.fleet.empty() && !options.etcd_urls.empty()) {
    error = "--etcd is used with --fleet NAME";
    return std::nullopt;
  }
  if (!options.fleet.empty()) {
    for (const auto& [what, name] : {std::pair<std::string, std::string>{"--fleet", options.fleet},
                                     {"--node-id", options.node_id}}) {
      if (name.empty() && what == "--node-id") continue;  // the host name
      if (absl::Status s = fleet::checkName(what, name); !s.ok()) {
        error = std::string(s.message());
        return std::nullopt;
      }
    }
    if (auto etcd = fleet::EtcdOptions::parse(options.etcd_urls); !etcd.ok()) {
      error = std::string(etcd.status().message());
      return std::nullopt;
    }
  }
  if (options.etcd_cert.empty() != options.etcd_key.empty()) {
    error = "--etcd-cert and --etcd-key go together";
    return std::nullopt;
  }
  return options;
}

}  // namespace mcproxy::server

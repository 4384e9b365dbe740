// mcproxyctl: the operator's command line for mc-proxy.
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "source/common/config/config_error.h"
#include "source/common/stats/stats.h"
#include "source/snapshot/config_loader.h"
#include "source/snapshot/migrations.h"
#include "source/snapshot/snapshot.h"
#include "source/snapshot/store.h"

namespace {

using mcproxy::snapshot::SnapshotStore;

// Exit codes scripts can rely on.
constexpr int kOk = 0;
constexpr int kInvalid = 1;  // the config (or the request) is invalid; nothing was changed
constexpr int kUsage = 2;    // the command line is wrong
constexpr int kFailed = 3;   // the database could not be read or written

constexpr const char* kUsageText = R"(usage: mcproxyctl COMMAND [options]

Config:
  validate --config FILE             check a config (text format, or JSON when FILE ends in
                                     .json) without writing anything; prints warnings
  compile --config FILE --db DB      validate, then store it as the newest snapshot version
                                     (nothing is written when invalid or unchanged)
Snapshots:
  snapshots list --db DB [--json]    every version, newest first
  snapshots diff A B --db DB         what changed from version A to version B
  snapshots rollback N --db DB       make version N's config the newest version again
  snapshots verify --db DB           recompute every version's content hash from its rows
Database:
  db migrate --db DB [--to N]        upgrade the schema (mc-proxy also does this at start)
Other:
  version

Exit codes: 0 ok, 1 invalid config or request (nothing changed), 2 usage, 3 database error.
A running mc-proxy --db DB picks up new versions by itself.
)";

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;  // "--db" -> value; boolean flags -> ""
};

bool parseArgs(const std::vector<std::string>& raw, Args& out, std::string& error) {
  static const std::map<std::string, bool> kKnown = {
      {"--config", true}, {"--db", true}, {"--to", true}, {"--json", false}};
  for (size_t i = 0; i < raw.size(); ++i) {
    std::string arg = raw[i];
    if (!arg.starts_with("--")) {
      out.positional.push_back(arg);
      continue;
    }
    std::string value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto known = kKnown.find(arg);
    if (known == kKnown.end()) {
      error = "unknown option " + arg;
      return false;
    }
    if (known->second && eq == std::string::npos) {
      if (i + 1 >= raw.size()) {
        error = arg + " needs a value";
        return false;
      }
      value = raw[++i];
    }
    out.flags[arg] = value;
  }
  return true;
}

std::string jsonEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof(buffer), "\\u%04x", c);
      out += buffer;
    } else {
      out += c;
    }
  }
  return out;
}

// Loads and compiles FILE; prints warnings. Throws ConfigError.
mcproxy::snapshot::CompileResult validateFile(const std::string& path) {
  mcproxy::stats::Store stats;
  auto result = mcproxy::snapshot::compile(mcproxy::snapshot::loadConfigFile(path), stats, 1);
  for (const auto& warning : result.warnings)
    std::cerr << "warning: " << path << ": " << warning << "\n";
  return result;
}

size_t routeCount(const mcproxy::snapshot::Snapshot& snapshot) {
  size_t routes = 0;
  for (const auto& listener : snapshot.listeners) routes += listener->routes.size();
  return routes;
}

int validateCommand(const Args& args) {
  auto config = args.flags.find("--config");
  if (config == args.flags.end()) {
    std::cerr << "mcproxyctl validate: --config FILE is required\n";
    return kUsage;
  }
  try {
    auto result = validateFile(config->second);
    std::cout << config->second << ": valid (" << result.snapshot->listeners.size()
              << " listener(s), " << routeCount(*result.snapshot) << " route(s))\n";
    return kOk;
  } catch (const mcproxy::config::ConfigError& e) {
    std::cerr << config->second << ": " << e.what() << "\n";
    return kInvalid;
  }
}

int compileCommand(const Args& args) {
  auto config = args.flags.find("--config");
  auto db = args.flags.find("--db");
  if (config == args.flags.end() || db == args.flags.end()) {
    std::cerr << "mcproxyctl compile: --config FILE and --db DB are required\n";
    return kUsage;
  }
  mcproxy::snapshot::CompileResult compiled;
  try {
    compiled = validateFile(config->second);
  } catch (const mcproxy::config::ConfigError& e) {
    std::cerr << config->second << ": " << e.what() << "\n";
    return kInvalid;
  }
  const auto started = std::chrono::steady_clock::now();
  SnapshotStore store(db->second);
  const auto written = store.write(compiled.snapshot->config, "file:" + config->second);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  if (written.created) {
    std::cout << db->second << ": version " << written.version << " written ("
              << routeCount(*compiled.snapshot) << " routes, " << std::fixed << std::setprecision(1)
              << ms << " ms)\n";
  } else {
    std::cout << db->second << ": unchanged, version " << written.version
              << " already holds this config\n";
  }
  return kOk;
}

int snapshotsCommand(const Args& args) {
  auto db = args.flags.find("--db");
  if (args.positional.empty() || db == args.flags.end()) {
    std::cerr << "mcproxyctl snapshots: list|diff|rollback|verify and --db DB are required\n";
    return kUsage;
  }
  const std::string& action = args.positional[0];
  SnapshotStore store(db->second);
  auto versionArg = [&](size_t index, int64_t& out) {
    if (args.positional.size() <= index) return false;
    try {
      out = std::stoll(args.positional[index]);
      return out > 0;
    } catch (const std::exception&) {
      return false;
    }
  };
  if (action == "list") {
    const auto history = store.history();
    if (args.flags.count("--json")) {
      std::cout << "[";
      for (size_t i = 0; i < history.size(); ++i) {
        const auto& s = history[i];
        std::cout << (i ? "," : "") << "\n  {\"version\": " << s.version << ", \"created_at\": \""
                  << s.created_at << "\", \"source\": \"" << jsonEscape(s.source)
                  << "\", \"content_hash\": \"" << s.content_hash
                  << "\", \"rollback_of\": " << s.rollback_of << ", \"listeners\": " << s.listeners
                  << ", \"routes\": " << s.routes << "}";
      }
      std::cout << (history.empty() ? "]\n" : "\n]\n");
      return kOk;
    }
    std::cout << std::left << std::setw(8) << "VERSION" << std::setw(26) << "CREATED (UTC)"
              << std::setw(10) << "LISTENERS" << std::setw(8) << "ROUTES" << std::setw(14) << "HASH"
              << "SOURCE\n";
    for (const auto& s : history) {
      std::cout << std::setw(8) << s.version << std::setw(26) << s.created_at << std::setw(10)
                << s.listeners << std::setw(8) << s.routes << std::setw(14)
                << s.content_hash.substr(0, 12) << s.source << "\n";
    }
    return kOk;
  }
  if (action == "diff") {
    int64_t from = 0;
    int64_t to = 0;
    if (!versionArg(1, from) || !versionArg(2, to)) {
      std::cerr << "mcproxyctl snapshots diff A B: two version numbers are required\n";
      return kUsage;
    }
    const auto lines = store.diff(from, to);
    for (const auto& line : lines) std::cout << line << "\n";
    if (lines.empty()) std::cout << "no differences\n";
    return kOk;
  }
  if (action == "rollback") {
    int64_t version = 0;
    if (!versionArg(1, version)) {
      std::cerr << "mcproxyctl snapshots rollback N: a version number is required\n";
      return kUsage;
    }
    // The old version must still compile here (a backend host may no longer resolve).
    auto old = store.load(version);
    try {
      mcproxy::stats::Store stats;
      mcproxy::snapshot::compile(old.config, stats, 1);
    } catch (const mcproxy::config::ConfigError& e) {
      std::cerr << "version " << version << " no longer compiles: " << e.what() << "\n";
      return kInvalid;
    }
    const auto written = store.rollback(version);
    std::cout << db->second << ": version " << written.version << " restores version " << version
              << "\n";
    return kOk;
  }
  if (action == "verify") {
    int bad = 0;
    const std::string integrity = [&] {
      auto statement = store.database().prepare("PRAGMA integrity_check");
      return statement.step() ? statement.text(0) : std::string("no answer");
    }();
    if (integrity != "ok") {
      std::cerr << "integrity_check: " << integrity << "\n";
      ++bad;
    }
    for (const auto& s : store.history()) {
      std::string error;
      if (!store.verify(s.version, error)) {
        std::cerr << error << "\n";
        ++bad;
      }
    }
    std::cout << (bad == 0 ? "ok" : "MISMATCH") << ": " << store.history().size()
              << " version(s) checked\n";
    return bad == 0 ? kOk : kInvalid;
  }
  std::cerr << "mcproxyctl snapshots: unknown action \"" << action << "\"\n";
  return kUsage;
}

int dbCommand(const Args& args) {
  auto db = args.flags.find("--db");
  if (args.positional.empty() || args.positional[0] != "migrate" || db == args.flags.end()) {
    std::cerr << "mcproxyctl db migrate --db DB [--to N]\n";
    return kUsage;
  }
  int64_t target = 0;
  if (auto to = args.flags.find("--to"); to != args.flags.end()) target = std::stoll(to->second);
  mcproxy::snapshot::Database database(db->second);
  const auto applied = mcproxy::snapshot::migrate(database, target);
  std::cout << db->second << ": schema version " << mcproxy::snapshot::schemaVersion(database)
            << " (" << applied.size() << " migration(s) applied)\n";
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "help") {
    std::cout << kUsageText;
    return argc < 2 ? kUsage : kOk;
  }
  const std::string command = argv[1];
  if (command == "version" || command == "--version") {
    std::cout << "mcproxyctl 0.1.0\n";
    return kOk;
  }
  Args args;
  std::string error;
  if (!parseArgs(std::vector<std::string>(argv + 2, argv + argc), args, error)) {
    std::cerr << "mcproxyctl " << command << ": " << error << "\n";
    return kUsage;
  }
  try {
    if (command == "validate") return validateCommand(args);
    if (command == "compile") return compileCommand(args);
    if (command == "snapshots") return snapshotsCommand(args);
    if (command == "db") return dbCommand(args);
  } catch (const mcproxy::snapshot::StoreError& e) {
    std::cerr << "mcproxyctl " << command << ": " << e.what() << "\n";
    return kFailed;
  } catch (const std::exception& e) {
    std::cerr << "mcproxyctl " << command << ": " << e.what() << "\n";
    return kFailed;
  }
  std::cerr << "mcproxyctl: unknown command \"" << command << "\"\n" << kUsageText;
  return kUsage;
}

#include "source/snapshot/config_loader.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <sstream>

#include "source/common/config/config_error.h"

namespace mcproxy::snapshot {
namespace {

using config::ConfigError;

// Keeps the first parse error with its position.
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!error.empty()) return;
    // protobuf counts from 0; editors count from 1.
    where = std::to_string(line + 1) + ":" + std::to_string(column + 1);
    error = message;
  }
  std::string where;
  std::string error;
};

}  // namespace

mcproxy::config::v1::Bootstrap parseTextConfig(const std::string& text, const std::string& origin) {
  mcproxy::config::v1::Bootstrap config;
  google::protobuf::TextFormat::Parser parser;
  FirstErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    throw ConfigError(origin + ":" + errors.where,
                      errors.error.empty() ? "parse error" : errors.error);
  }
  return config;
}

mcproxy::config::v1::Bootstrap loadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path, "cannot open the config file");
  std::stringstream contents;
  contents << in.rdbuf();
  if (path.ends_with(".json")) {
    mcproxy::config::v1::Bootstrap config;
    const auto status = google::protobuf::util::JsonStringToMessage(contents.str(), &config);
    if (!status.ok()) throw ConfigError(path, std::string(status.message()));
    return config;
  }
  return parseTextConfig(contents.str(), path);
}

const std::string& embeddedDefaultConfigText() {
  static const std::string text =
      R"(# mc-proxy's embedded default config (mc-proxy --print-default-config).
# One L4 listener on loopback: TLS for "localhost" passes through to a backend on port 9443;
# any other name is refused. Copy this file, edit it, and run: mc-proxy --config FILE
listeners {
  name: "default"
  address: "127.0.0.1:8443"
  proxy_protocol: false
  routes { hostname: "localhost" backend: "127.0.0.1:9443" mode: L4 }
}
drain_timeout_ms: 15000
)";
  return text;
}

}  // namespace mcproxy::snapshot

#include "source/snapshot/config_loader.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

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

// Length of the well-formed UTF-8 sequence at the start of `text`, or 0 if it is not one
// (overlong forms, surrogates and code points above U+10FFFF included).
size_t utf8SequenceLength(std::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  size_t length;
  unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (text.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

bool validUtf8(std::string_view text) {
  while (!text.empty()) {
    const size_t length = utf8SequenceLength(text);
    if (length == 0) return false;
    text.remove_prefix(length);
  }
  return true;
}

// Text format lets a string field hold any bytes (raw, or escaped like "\377"); protobuf then
// complains about them on every serialization. Refuse them here, naming the field.
void requireUtf8Strings(const google::protobuf::Message& message, const std::string& path) {
  const auto* reflection = message.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const auto* field : fields) {
    const std::string field_path = (path.empty() ? "" : path + ".") + field->name();
    const int count = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      const std::string element_path =
          field->is_repeated() ? field_path + "[" + std::to_string(i) + "]" : field_path;
      if (field->type() == google::protobuf::FieldDescriptor::TYPE_STRING) {
        const std::string value = field->is_repeated()
                                      ? reflection->GetRepeatedString(message, field, i)
                                      : reflection->GetString(message, field);
        if (!validUtf8(value)) throw ConfigError(element_path, "is not valid UTF-8");
      } else if (field->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
        requireUtf8Strings(field->is_repeated() ? reflection->GetRepeatedMessage(message, field, i)
                                                : reflection->GetMessage(message, field),
                           element_path);
      }
    }
  }
}

}  // namespace

void parseTextMessage(const std::string& text, const std::string& origin,
                      google::protobuf::Message& message) {
  google::protobuf::TextFormat::Parser parser;
  FirstErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &message)) {
    throw ConfigError(origin + ":" + errors.where,
                      errors.error.empty() ? "parse error" : errors.error);
  }
  try {
    requireUtf8Strings(message, "");
  } catch (const ConfigError& e) {
    throw ConfigError(origin, e.what());
  }
}

bool readWholeFile(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream contents;
  contents << in.rdbuf();
  out = std::move(contents).str();
  return true;
}

void loadMessageFile(const std::string& path, google::protobuf::Message& message) {
  std::string contents;
  if (!readWholeFile(path, contents)) throw ConfigError(path, "cannot open the file");
  if (path.ends_with(".json")) {
    const auto status = google::protobuf::util::JsonStringToMessage(contents, &message);
    if (!status.ok()) throw ConfigError(path, std::string(status.message()));
    return;
  }
  parseTextMessage(contents, path, message);
}

mcproxy::config::v1::Bootstrap parseTextConfig(const std::string& text, const std::string& origin) {
  mcproxy::config::v1::Bootstrap config;
  parseTextMessage(text, origin, config);
  return config;
}

mcproxy::config::v1::Bootstrap loadConfigFile(const std::string& path) {
  mcproxy::config::v1::Bootstrap config;
  loadMessageFile(path, config);
  return config;
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

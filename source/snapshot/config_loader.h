#pragma once

#include <string>

#include "api/mcproxy/config/v1/bootstrap.pb.h"

namespace mcproxy::snapshot {

// Reads a Bootstrap from `path`: protobuf JSON when the name ends in ".json", text format
// otherwise. Throws config::ConfigError("FILE:LINE:COLUMN", reason) on a syntax error.
mcproxy::config::v1::Bootstrap loadConfigFile(const std::string& path);

// The bytes of `path`; false when it cannot be opened.
bool readWholeFile(const std::string& path, std::string& out);

// Reads any message the same way (route tests for mcproxyctl check).
void loadMessageFile(const std::string& path, google::protobuf::Message& message);

// Parses text-format config from memory; `origin` names it in errors.
mcproxy::config::v1::Bootstrap parseTextConfig(const std::string& text, const std::string& origin);

// The config mc-proxy runs with when given none.
const std::string& embeddedDefaultConfigText();

}  // namespace mcproxy::snapshot

#pragma once

#include <string>
#include <string_view>

namespace mcproxy::json {

// Appends `text` as a JSON string: quoted, with '"', '\\' and control bytes escaped, and bytes
// that are not UTF-8 written as \u00XX, so that any input makes valid JSON.
void appendString(std::string_view text, std::string& out);
std::string quoted(std::string_view text);

}  // namespace mcproxy::json

#include "source/common/router/hostname_matcher.h"

namespace mcproxy::router {

std::string toLowerAscii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

std::string validateHostnamePattern(std::string_view pattern) {
  if (pattern.empty()) return "hostname is empty";
  if (pattern.size() > 255) return "hostname is longer than 255 characters";
  std::string_view name = pattern;
  if (name.starts_with("*.")) {
    name.remove_prefix(2);
  } else if (name.find('*') != std::string_view::npos) {
    return "a wildcard must be the whole leftmost label, as in \"*.example.com\"";
  }
  if (name.empty()) return "wildcard has no suffix";
  size_t label_start = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      if (i == label_start) return "hostname has an empty label";
      if (i - label_start > 63) return "a hostname label is longer than 63 characters";
      label_start = i + 1;
      continue;
    }
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return std::string("hostname has an invalid character '") + c + "'";
  }
  return "";
}

}  // namespace mcproxy::router

#pragma once

#include <string>
#include <string_view>

namespace mcproxy::tls {

// SHA-256 of `bytes`, 64 lower-case hex digits (sha256sum's form).
std::string sha256Hex(std::string_view bytes);

}  // namespace mcproxy::tls

#pragma once

#include <string>
#include <string_view>

namespace mcproxy::tls {

// SHA-256 of `bytes`, 64 lower-case hex digits (sha256sum's form).
std::string sha256Hex(std::string_view bytes);
// SHA-256 of `bytes`, the first `length` (at most 32) raw bytes of it.
std::string sha256Prefix(std::string_view bytes, size_t length);

}  // namespace mcproxy::tls

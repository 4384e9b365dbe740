#include "source/common/http/request_id.h"

#include <absl/random/distributions.h>

#include <cstdint>

namespace mcproxy::http {

std::string newRequestId(absl::BitGenRef random) {
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t halves[2] = {absl::Uniform<uint64_t>(random), absl::Uniform<uint64_t>(random)};
  halves[0] = (halves[0] & ~uint64_t{0xf000}) | 0x4000;                      // version 4
  halves[1] = (halves[1] & ~(uint64_t{0xc} << 60)) | (uint64_t{0x8} << 60);  // variant 10xx
  // 8-4-4-4-12: where each of the 16 bytes goes, most significant first.
  static constexpr uint8_t kAt[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
  std::string id(36, '-');
  for (int i = 0; i < 16; ++i) {
    const uint8_t byte = static_cast<uint8_t>(halves[i / 8] >> (56 - 8 * (i % 8)));
    id[kAt[i]] = kHex[byte >> 4];
    id[kAt[i] + 1] = kHex[byte & 0xf];
  }
  return id;
}

bool acceptableRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

}  // namespace mcproxy::http

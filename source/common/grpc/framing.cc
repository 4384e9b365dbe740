#include "source/common/grpc/framing.h"

#include <cstdint>

#include "absl/strings/numbers.h"

namespace mcproxy::grpc {

std::string frameMessage(std::string_view serialized) {
  const uint32_t len = static_cast<uint32_t>(serialized.size());
  std::string out{0, static_cast<char>(len >> 24), static_cast<char>(len >> 16),
                  static_cast<char>(len >> 8), static_cast<char>(len)};
  out.append(serialized);
  return out;
}

std::optional<FrameHeader> frameHeader(std::string_view bytes) {
  if (bytes.size() < 5) return std::nullopt;
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  return FrameHeader{p[0] != 0,
                     (size_t{p[1]} << 24) | (size_t{p[2]} << 16) | (size_t{p[3]} << 8) | p[4]};
}

std::string encodeMessageText(std::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string decodeMessageText(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    int value = 0;
    if (text[i] == '%' && i + 2 < text.size() &&
        absl::SimpleHexAtoi(std::string(text.substr(i + 1, 2)), &value)) {
      out += static_cast<char>(value);
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace mcproxy::grpc

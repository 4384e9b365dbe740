#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mcproxy::grpc {

// gRPC's length-prefixed message framing: a 0 byte (not compressed), the length in 4 bytes
// big-endian, the serialized message.
std::string frameMessage(std::string_view serialized);
// What a frame's 5-byte prefix says; nullopt while `bytes` holds fewer than 5 bytes.
struct FrameHeader {
  bool compressed;
  size_t length;  // of the message after the prefix
};
std::optional<FrameHeader> frameHeader(std::string_view bytes);

// grpc-message values are percent-encoded (printable ASCII but '%' passes).
std::string encodeMessageText(std::string_view text);
std::string decodeMessageText(std::string_view text);

}  // namespace mcproxy::grpc

#include "source/common/tls/client_hello.h"

#include <algorithm>

namespace mcproxy::tls {
namespace {

constexpr uint8_t kContentTypeHandshake = 22;
constexpr uint8_t kHandshakeClientHello = 1;
constexpr size_t kRecordHeaderBytes = 5;
constexpr size_t kMaxRecordPayload = 16384;  // RFC 8446 §5.1: 2^14
constexpr uint16_t kExtensionServerName = 0;
constexpr uint16_t kExtensionAlpn = 16;
constexpr uint8_t kNameTypeHostName = 0;

// Bounds-checked big-endian reader over one byte range.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  size_t remaining() const { return data_.size() - pos_; }
  bool u8(uint8_t& out) {
    if (remaining() < 1) return false;
    out = static_cast<uint8_t>(data_[pos_++]);
    return true;
  }
  bool u16(uint16_t& out) {
    if (remaining() < 2) return false;
    out = static_cast<uint16_t>((static_cast<uint8_t>(data_[pos_]) << 8) |
                                static_cast<uint8_t>(data_[pos_ + 1]));
    pos_ += 2;
    return true;
  }
  bool bytes(size_t len, std::string_view& out) {
    if (remaining() < len) return false;
    out = data_.substr(pos_, len);
    pos_ += len;
    return true;
  }
  bool skip(size_t len) {
    std::string_view ignored;
    return bytes(len, ignored);
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

ParseResult malformed(std::string why) { return {ParseStatus::kMalformed, std::move(why)}; }

bool validHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

ParseResult parseServerName(std::string_view ext, ClientHelloInfo& info) {
  Reader reader(ext);
  uint16_t list_len;
  if (!reader.u16(list_len) || list_len != reader.remaining() || list_len == 0) {
    return malformed("server_name list length does not match the extension");
  }
  bool seen_host_name = false;
  while (reader.remaining() > 0) {
    uint8_t name_type;
    uint16_t name_len;
    std::string_view name;
    if (!reader.u8(name_type) || !reader.u16(name_len) || !reader.bytes(name_len, name)) {
      return malformed("server_name entry overruns its list");
    }
    if (name_type != kNameTypeHostName) continue;
    if (seen_host_name) return malformed("more than one host_name in server_name");
    seen_host_name = true;
    if (name.empty() || name.size() > 255) return malformed("host_name length out of range");
    if (!std::all_of(name.begin(), name.end(), validHostChar)) {
      return malformed("host_name has characters a DNS name cannot have");
    }
    std::string lower(name);
    if (lower.back() == '.') lower.pop_back();  // "a.test." names the same host as "a.test"
    if (lower.empty()) return malformed("host_name is only a dot");
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
    info.server_name = std::move(lower);
  }
  return {ParseStatus::kDone, ""};
}

ParseResult parseAlpn(std::string_view ext, ClientHelloInfo& info) {
  Reader reader(ext);
  uint16_t list_len;
  if (!reader.u16(list_len) || list_len != reader.remaining() || list_len < 2) {
    return malformed("ALPN list length does not match the extension");
  }
  while (reader.remaining() > 0) {
    uint8_t len;
    std::string_view protocol;
    if (!reader.u8(len) || len == 0 || !reader.bytes(len, protocol)) {
      return malformed("ALPN protocol name overruns its list");
    }
    info.alpn.emplace_back(protocol);
  }
  return {ParseStatus::kDone, ""};
}

// Parses the ClientHello body (after the 4-byte handshake header).
ParseResult parseBody(std::string_view body, ClientHelloInfo& info) {
  Reader reader(body);
  uint16_t legacy_version;
  uint8_t session_id_len;
  uint16_t cipher_suites_len;
  uint8_t compression_len;
  if (!reader.u16(legacy_version) || !reader.skip(32)) return malformed("ClientHello too short");
  if (!reader.u8(session_id_len) || session_id_len > 32 || !reader.skip(session_id_len)) {
    return malformed("bad legacy_session_id");
  }
  if (!reader.u16(cipher_suites_len) || cipher_suites_len < 2 || cipher_suites_len % 2 != 0 ||
      !reader.skip(cipher_suites_len)) {
    return malformed("bad cipher_suites");
  }
  if (!reader.u8(compression_len) || compression_len < 1 || !reader.skip(compression_len)) {
    return malformed("bad legacy_compression_methods");
  }
  if (reader.remaining() == 0) return {ParseStatus::kDone, ""};  // no extensions at all
  uint16_t extensions_len;
  if (!reader.u16(extensions_len) || extensions_len != reader.remaining()) {
    return malformed("extensions length does not match the ClientHello");
  }
  std::vector<uint16_t> seen;
  while (reader.remaining() > 0) {
    uint16_t type;
    uint16_t len;
    std::string_view ext;
    if (!reader.u16(type) || !reader.u16(len) || !reader.bytes(len, ext)) {
      return malformed("extension overruns the ClientHello");
    }
    if (std::find(seen.begin(), seen.end(), type) != seen.end()) {
      return malformed("extension " + std::to_string(type) + " appears twice");
    }
    seen.push_back(type);
    ParseResult result{ParseStatus::kDone, ""};
    if (type == kExtensionServerName) result = parseServerName(ext, info);
    if (type == kExtensionAlpn) result = parseAlpn(ext, info);
    if (result.status != ParseStatus::kDone) return result;
  }
  return {ParseStatus::kDone, ""};
}

}  // namespace

ParseResult parseClientHello(std::string_view data, size_t max_bytes, ClientHelloInfo& info) {
  info = ClientHelloInfo{};
  // Reject non-TLS early, from the first bytes, so plain-text clients fail fast.
  if (!data.empty() && static_cast<uint8_t>(data[0]) != kContentTypeHandshake) {
    return {ParseStatus::kNotTls, "first byte is not a TLS handshake record"};
  }
  if (data.size() >= 2 && static_cast<uint8_t>(data[1]) != 3) {
    return {ParseStatus::kNotTls, "record version is not TLS (3.x)"};
  }

  std::string handshake;  // the handshake message, reassembled from record payloads
  size_t offset = 0;
  while (true) {
    if (data.size() - offset < kRecordHeaderBytes) break;
    const auto* header = reinterpret_cast<const uint8_t*>(data.data() + offset);
    if (header[0] != kContentTypeHandshake) {
      return malformed("non-handshake record inside the ClientHello");
    }
    if (header[1] != 3 || header[2] > 4) {
      return {ParseStatus::kNotTls, "record version is not TLS 1.0-1.3"};
    }
    const uint16_t version = static_cast<uint16_t>((header[1] << 8) | header[2]);
    if (offset == 0) info.record_version = version;
    const size_t payload_len = static_cast<size_t>((header[3] << 8) | header[4]);
    if (payload_len == 0 || payload_len > kMaxRecordPayload) {
      return malformed("record length " + std::to_string(payload_len) + " out of range");
    }
    if (offset + kRecordHeaderBytes + payload_len > max_bytes) {
      return {ParseStatus::kTooLarge,
              "ClientHello records exceed " + std::to_string(max_bytes) + " bytes"};
    }
    if (data.size() - offset - kRecordHeaderBytes < payload_len) break;  // record incomplete
    handshake.append(data.substr(offset + kRecordHeaderBytes, payload_len));
    offset += kRecordHeaderBytes + payload_len;

    if (static_cast<uint8_t>(handshake[0]) != kHandshakeClientHello) {
      return malformed("first handshake message is not a ClientHello");
    }
    if (handshake.size() < 4) continue;
    const size_t body_len = (static_cast<uint8_t>(handshake[1]) << 16) |
                            (static_cast<uint8_t>(handshake[2]) << 8) |
                            static_cast<uint8_t>(handshake[3]);
    // Each record adds at least one payload byte and a 5-byte header; a message that cannot fit
    // even in full records is rejected before waiting for it.
    const size_t min_record_bytes =
        4 + body_len +
        kRecordHeaderBytes * ((4 + body_len + kMaxRecordPayload - 1) / kMaxRecordPayload);
    if (min_record_bytes > max_bytes) {
      return {ParseStatus::kTooLarge, "ClientHello of " + std::to_string(body_len) +
                                          " bytes exceeds " + std::to_string(max_bytes)};
    }
    if (handshake.size() < 4 + body_len) continue;
    ParseResult result = parseBody(std::string_view(handshake).substr(4, body_len), info);
    if (result.status == ParseStatus::kDone) info.record_bytes = offset;
    return result;
  }
  if (data.size() >= max_bytes) {
    return {ParseStatus::kTooLarge,
            "no complete ClientHello in " + std::to_string(max_bytes) + " bytes"};
  }
  return {ParseStatus::kNeedMoreData, ""};
}

const char* parseStatusName(ParseStatus status) {
  switch (status) {
    case ParseStatus::kNeedMoreData:
      return "need_more_data";
    case ParseStatus::kDone:
      return "done";
    case ParseStatus::kNotTls:
      return "not_tls";
    case ParseStatus::kMalformed:
      return "malformed";
    case ParseStatus::kTooLarge:
      return "too_large";
  }
  return "?";
}

}  // namespace mcproxy::tls

#include "source/common/proxy_protocol/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <array>
#include <cstring>

namespace mcproxy::proxy_protocol {
namespace {

constexpr char kV2Signature[] = "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A";
constexpr size_t kV2SignatureBytes = 12;
constexpr size_t kV2HeaderBytes = 16;
constexpr std::string_view kV1Prefix = "PROXY ";

// v2 fields, doc/proxy-protocol.txt section 2.2.
constexpr uint8_t kCommandLocal = 0x0;
constexpr uint8_t kCommandProxy = 0x1;
constexpr uint8_t kFamilyUnspec = 0x0;
constexpr uint8_t kFamilyInet = 0x1;
constexpr uint8_t kFamilyInet6 = 0x2;
constexpr uint8_t kFamilyUnix = 0x3;
constexpr uint8_t kTransportUnspec = 0x0;
constexpr uint8_t kTransportStream = 0x1;
constexpr uint8_t kTransportDgram = 0x2;
constexpr size_t kInetAddressBytes = 12;
constexpr size_t kInet6AddressBytes = 36;
constexpr size_t kUnixAddressBytes = 216;

constexpr uint8_t kTlvAlpn = 0x01;
constexpr uint8_t kTlvAuthority = 0x02;
constexpr uint8_t kTlvCrc32c = 0x03;
constexpr uint8_t kTlvUniqueId = 0x05;
constexpr size_t kMaxUniqueIdBytes = 128;

ParseResult invalid(std::string why) { return {ParseStatus::kInvalid, std::move(why)}; }

// A port as v1 writes it: 1 to 5 digits, no leading zero (but "0" itself), at most 65535.
bool parseV1Port(std::string_view text, uint16_t& port) {
  if (text.empty() || text.size() > 5) return false;
  if (text.size() > 1 && text[0] == '0') return false;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

uint16_t portAt(const uint8_t* at) {
  uint16_t port_network_order;
  std::memcpy(&port_network_order, at, 2);  // no alignment assumed
  return port_network_order;
}

network::Address makeAddress(int family, const void* ip, uint16_t port_network_order) {
  sockaddr_storage storage{};
  socklen_t len;
  if (family == AF_INET) {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&storage);
    in4->sin_family = AF_INET;
    std::memcpy(&in4->sin_addr, ip, 4);
    in4->sin_port = port_network_order;
    len = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    std::memcpy(&in6->sin6_addr, ip, 16);
    in6->sin6_port = port_network_order;
    len = sizeof(sockaddr_in6);
  }
  return network::Address::fromSockaddr(reinterpret_cast<sockaddr*>(&storage), len);
}

ParseResult parseV1(std::string_view data, ProxyHeader& header) {
  const size_t crlf = data.substr(0, kMaxV1HeaderBytes).find("\r\n");
  if (crlf == std::string_view::npos) {
    if (data.size() >= kMaxV1HeaderBytes) return invalid("v1 header longer than 107 bytes");
    // A lone LF or CR where the CRLF should be is no better than a missing one.
    if (data.find('\n') != std::string_view::npos) return invalid("v1 header ends without CRLF");
    return {ParseStatus::kNeedMoreData, ""};
  }
  std::string_view line = data.substr(kV1Prefix.size(), crlf - kV1Prefix.size());
  header = ProxyHeader{};
  header.version = 1;
  header.header_bytes = crlf + 2;
  if (line.starts_with("UNKNOWN")) {
    // "the receiver must ignore anything presented before the CRLF"
    if (line.size() > 7 && line[7] != ' ')
      return invalid("v1 protocol is not TCP4, TCP6 or UNKNOWN");
    return {ParseStatus::kDone, ""};
  }
  int family;
  if (line.starts_with("TCP4 ")) {
    family = AF_INET;
  } else if (line.starts_with("TCP6 ")) {
    family = AF_INET6;
  } else {
    return invalid("v1 protocol is not TCP4, TCP6 or UNKNOWN");
  }
  line.remove_prefix(5);
  // Exactly four fields separated by single spaces.
  std::array<std::string_view, 4> fields;
  for (size_t i = 0; i < fields.size(); ++i) {
    const size_t space = line.find(' ');
    if (i < 3) {
      if (space == std::string_view::npos || space == 0) return invalid("v1 needs 4 fields");
      fields[i] = line.substr(0, space);
      line.remove_prefix(space + 1);
    } else {
      if (space != std::string_view::npos || line.empty()) return invalid("v1 needs 4 fields");
      fields[i] = line;
    }
  }
  unsigned char source_ip[16];
  unsigned char destination_ip[16];
  const std::string source_text(fields[0]);
  const std::string destination_text(fields[1]);
  if (inet_pton(family, source_text.c_str(), source_ip) != 1 ||
      inet_pton(family, destination_text.c_str(), destination_ip) != 1) {
    return invalid(std::string("v1 address is not a valid ") +
                   (family == AF_INET ? "IPv4" : "IPv6") + " address");
  }
  uint16_t source_port;
  uint16_t destination_port;
  if (!parseV1Port(fields[2], source_port) || !parseV1Port(fields[3], destination_port)) {
    return invalid("v1 port is not a number from 0 to 65535 without leading zeros");
  }
  header.has_inet_addresses = true;
  header.source = makeAddress(family, source_ip, htons(source_port));
  header.destination = makeAddress(family, destination_ip, htons(destination_port));
  return {ParseStatus::kDone, ""};
}

ParseResult parseTlvs(std::string_view whole_header, std::string_view tlvs, ProxyHeader& header) {
  size_t offset = 0;
  while (offset < tlvs.size()) {
    if (tlvs.size() - offset < 3) return invalid("v2 TLV header cut short");
    const uint8_t type = static_cast<uint8_t>(tlvs[offset]);
    const size_t length =
        (static_cast<uint8_t>(tlvs[offset + 1]) << 8) | static_cast<uint8_t>(tlvs[offset + 2]);
    if (tlvs.size() - offset - 3 < length) return invalid("v2 TLV runs past the header");
    const std::string_view value = tlvs.substr(offset + 3, length);
    switch (type) {
      case kTlvAlpn:
        header.alpn.assign(value);
        break;
      case kTlvAuthority:
        header.authority.assign(value);
        break;
      case kTlvUniqueId:
        if (length > kMaxUniqueIdBytes) return invalid("v2 UNIQUE_ID longer than 128 bytes");
        header.unique_id.assign(value);
        break;
      case kTlvCrc32c: {
        if (length != 4) return invalid("v2 CRC32C TLV is not 4 bytes");
        const uint32_t expected = (static_cast<uint32_t>(static_cast<uint8_t>(value[0])) << 24) |
                                  (static_cast<uint32_t>(static_cast<uint8_t>(value[1])) << 16) |
                                  (static_cast<uint32_t>(static_cast<uint8_t>(value[2])) << 8) |
                                  static_cast<uint32_t>(static_cast<uint8_t>(value[3]));
        // The checksum covers the whole header with the checksum field itself zeroed.
        std::string zeroed(whole_header);
        const size_t value_offset = static_cast<size_t>(value.data() - whole_header.data());
        std::memset(zeroed.data() + value_offset, 0, 4);
        if (crc32c(zeroed) != expected) return invalid("v2 CRC32C does not match");
        header.crc32c_checked = true;
        break;
      }
      default:
        break;  // NOOP, SSL, NETNS and unknown types are skipped, as the spec asks
    }
    offset += 3 + length;
  }
  return {ParseStatus::kDone, ""};
}

ParseResult parseV2(std::string_view data, ProxyHeader& header) {
  if (data.size() < kV2HeaderBytes) return {ParseStatus::kNeedMoreData, ""};
  const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
  const uint8_t version = bytes[12] >> 4;
  const uint8_t command = bytes[12] & 0x0f;
  const uint8_t family = bytes[13] >> 4;
  const uint8_t transport = bytes[13] & 0x0f;
  const size_t length = (static_cast<size_t>(bytes[14]) << 8) | bytes[15];
  if (version != 2) return invalid("v2 signature with version " + std::to_string(version));
  if (command != kCommandLocal && command != kCommandProxy) {
    return invalid("v2 command " + std::to_string(command) + " is neither LOCAL nor PROXY");
  }
  if (family > kFamilyUnix)
    return invalid("v2 address family " + std::to_string(family) + " is unknown");
  if (transport > kTransportDgram) {
    return invalid("v2 transport " + std::to_string(transport) + " is unknown");
  }
  if (data.size() < kV2HeaderBytes + length) return {ParseStatus::kNeedMoreData, ""};

  header = ProxyHeader{};
  header.version = 2;
  header.header_bytes = kV2HeaderBytes + length;
  header.local_command = command == kCommandLocal;
  const std::string_view whole = data.substr(0, header.header_bytes);
  std::string_view rest = data.substr(kV2HeaderBytes, length);

  size_t address_bytes = 0;
  if (family == kFamilyInet) address_bytes = kInetAddressBytes;
  if (family == kFamilyInet6) address_bytes = kInet6AddressBytes;
  if (family == kFamilyUnix) address_bytes = kUnixAddressBytes;
  if (rest.size() < address_bytes) {
    return invalid("v2 length " + std::to_string(length) + " is too short for its address family");
  }
  if (command == kCommandProxy && family != kFamilyUnspec) {
    if (transport == kTransportDgram) return invalid("v2 DGRAM transport on a stream listener");
    if (transport == kTransportUnspec) return invalid("v2 PROXY command with UNSPEC transport");
    const auto* address = reinterpret_cast<const uint8_t*>(rest.data());
    if (family == kFamilyInet) {
      header.has_inet_addresses = true;
      header.source = makeAddress(AF_INET, address, portAt(address + 8));
      header.destination = makeAddress(AF_INET, address + 4, portAt(address + 10));
    } else if (family == kFamilyInet6) {
      header.has_inet_addresses = true;
      header.source = makeAddress(AF_INET6, address, portAt(address + 32));
      header.destination = makeAddress(AF_INET6, address + 16, portAt(address + 34));
    } else {
      const char* path = reinterpret_cast<const char*>(address);
      header.unix_source.assign(path, strnlen(path, 108));
    }
  }
  // LOCAL: "the receiver must accept this connection as valid and must use the real
  // connection endpoints and discard the protocol block including the family"; TLVs still
  // follow the address block and are checked.
  return parseTlvs(whole, rest.substr(address_bytes), header);
}

}  // namespace

std::string_view v2Signature() { return std::string_view(kV2Signature, kV2SignatureBytes); }

ParseResult parse(std::string_view data, ProxyHeader& header) {
  // Decide the version from as few bytes as possible, so garbage is refused early.
  const std::string_view signature = v2Signature();
  const size_t v2_prefix = std::min(data.size(), kV2SignatureBytes);
  const size_t v1_prefix = std::min(data.size(), kV1Prefix.size());
  if (data.substr(0, v2_prefix) == signature.substr(0, v2_prefix) && v2_prefix > 0) {
    if (data.size() < kV2SignatureBytes) return {ParseStatus::kNeedMoreData, ""};
    return parseV2(data, header);
  }
  if (data.substr(0, v1_prefix) == kV1Prefix.substr(0, v1_prefix) && v1_prefix > 0) {
    if (data.size() < kV1Prefix.size()) return {ParseStatus::kNeedMoreData, ""};
    return parseV1(data, header);
  }
  if (data.empty()) return {ParseStatus::kNeedMoreData, ""};
  return invalid("neither a v1 nor a v2 PROXY header");
}

std::string encodeV1(const network::Address& source, const network::Address& destination) {
  const int family = source.family();
  if ((family != AF_INET && family != AF_INET6) || destination.family() != family) {
    return "PROXY UNKNOWN\r\n";
  }
  return std::string("PROXY ") + (family == AF_INET ? "TCP4 " : "TCP6 ") + source.ip() + " " +
         destination.ip() + " " + std::to_string(source.port()) + " " +
         std::to_string(destination.port()) + "\r\n";
}

namespace {

// The 16 bytes of an IPv6 address, IPv4 ones mapped (::ffff:a.b.c.d).
void ipv6Bytes(const network::Address& address, uint8_t out[16]) {
  if (address.family() == AF_INET6) {
    std::memcpy(out, &reinterpret_cast<const sockaddr_in6*>(address.sockaddrPtr())->sin6_addr, 16);
    return;
  }
  std::memset(out, 0, 10);
  out[10] = out[11] = 0xff;
  std::memcpy(out + 12, &reinterpret_cast<const sockaddr_in*>(address.sockaddrPtr())->sin_addr, 4);
}

void appendU16(std::string& out, uint16_t value) {
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value & 0xff));
}

}  // namespace

std::string encodeLocal(uint32_t version) {
  if (version == 1) return "PROXY UNKNOWN\r\n";
  std::string out(v2Signature());
  out.push_back(static_cast<char>(0x20 | kCommandLocal));
  out.push_back(static_cast<char>(kFamilyUnspec << 4));
  appendU16(out, 0);
  return out;
}

std::string encodeV2(const network::Address& source, const network::Address& destination,
                     std::string_view authority, bool with_crc32c) {
  std::string out(v2Signature());
  const bool inet4 = source.family() == AF_INET && destination.family() == AF_INET;
  out.push_back(static_cast<char>(0x20 | kCommandProxy));
  out.push_back(static_cast<char>(((inet4 ? kFamilyInet : kFamilyInet6) << 4) | kTransportStream));
  std::string body;
  if (inet4) {
    body.append(reinterpret_cast<const char*>(
                    &reinterpret_cast<const sockaddr_in*>(source.sockaddrPtr())->sin_addr),
                4);
    body.append(reinterpret_cast<const char*>(
                    &reinterpret_cast<const sockaddr_in*>(destination.sockaddrPtr())->sin_addr),
                4);
  } else {
    uint8_t ip[16];
    ipv6Bytes(source, ip);
    body.append(reinterpret_cast<const char*>(ip), 16);
    ipv6Bytes(destination, ip);
    body.append(reinterpret_cast<const char*>(ip), 16);
  }
  appendU16(body, source.port());
  appendU16(body, destination.port());
  if (!authority.empty()) {
    body.push_back(static_cast<char>(kTlvAuthority));
    appendU16(body, static_cast<uint16_t>(authority.size()));
    body.append(authority);
  }
  size_t crc_offset = 0;
  if (with_crc32c) {
    body.push_back(static_cast<char>(kTlvCrc32c));
    appendU16(body, 4);
    crc_offset = kV2HeaderBytes + body.size();
    body.append(4, '\0');
  }
  appendU16(out, static_cast<uint16_t>(body.size()));
  out += body;
  if (with_crc32c) {
    const uint32_t crc = crc32c(out);
    for (int i = 0; i < 4; ++i) out[crc_offset + i] = static_cast<char>(crc >> (24 - 8 * i));
  }
  return out;
}

std::string encodeFor(const network::StreamInfo& info, uint32_t version) {
  const network::Address& destination =
      info.proxy_destination.valid() ? info.proxy_destination : info.downstream_local;
  return version == 1 ? encodeV1(info.real_client, destination)
                      : encodeV2(info.real_client, destination, info.requested_server_name);
}

uint32_t crc32c(std::string_view data) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (char c : data) crc = table[(crc ^ static_cast<uint8_t>(c)) & 0xff] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

}  // namespace mcproxy::proxy_protocol

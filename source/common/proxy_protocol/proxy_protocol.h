#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "source/common/network/address.h"
#include "source/common/network/stream_info.h"

namespace mcproxy::proxy_protocol {

// What a PROXY protocol header (HAProxy doc/proxy-protocol.txt, v1 and v2) says.
struct ProxyHeader {
  int version = 0;  // 1 or 2
  // True for v1 TCP4/TCP6 and v2 PROXY with an INET/INET6 family: `source` and `destination`
  // are the original connection's. False for v1 UNKNOWN, v2 LOCAL, and v2 UNSPEC/UNIX families:
  // the receiver keeps the TCP peer as the client.
  bool has_inet_addresses = false;
  bool local_command = false;    // v2 LOCAL (health checks from the proxy itself)
  network::Address source;       // the client
  network::Address destination;  // the address the client connected to
  std::string unix_source;       // v2 AF_UNIX addresses, informational
  std::string alpn;              // PP2_TYPE_ALPN
  std::string authority;         // PP2_TYPE_AUTHORITY (the SNI or Host the client used)
  std::string unique_id;         // PP2_TYPE_UNIQUE_ID
  bool crc32c_checked = false;   // a PP2_TYPE_CRC32C TLV was present and matched
  size_t header_bytes = 0;       // bytes the header occupied; the payload follows
};

enum class ParseStatus { kNeedMoreData, kDone, kInvalid };

struct ParseResult {
  ParseStatus status;
  std::string error;  // for kInvalid: which rule was broken
};

// Parses a v1 or v2 header at the start of `data`. Bytes after the header are not looked at.
ParseResult parse(std::string_view data, ProxyHeader& header);

// v1: "PROXY TCP4|TCP6 src dst sport dport\r\n"; "PROXY UNKNOWN\r\n" when the two addresses
// are not of one family or are not IP addresses.
std::string encodeV1(const network::Address& source, const network::Address& destination);

// v2 PROXY command, STREAM transport; an IPv4 address paired with an IPv6 one is sent as
// IPv4-mapped IPv6. `authority` (the SNI), when not empty, goes in a PP2_TYPE_AUTHORITY TLV;
// `with_crc32c` adds a PP2_TYPE_CRC32C TLV.
std::string encodeV2(const network::Address& source, const network::Address& destination,
                     std::string_view authority, bool with_crc32c = false);

// The header a hop sends for the connection `info` describes: the real client (from an earlier
// tier when there was one), the address it connected to, and the SNI as AUTHORITY (v2).
std::string encodeFor(const network::StreamInfo& info, uint32_t version);

// The header of a connection the proxy makes for itself (a health check): v1 "PROXY UNKNOWN",
// v2 the LOCAL command with no addresses. The receiver uses the connection's own addresses.
std::string encodeLocal(uint32_t version);

// CRC32c (Castagnoli), as PP2_TYPE_CRC32C uses it.
uint32_t crc32c(std::string_view data);

// The 12-byte v2 signature.
std::string_view v2Signature();

// Longest v1 header, CRLF included.
constexpr size_t kMaxV1HeaderBytes = 107;

}  // namespace mcproxy::proxy_protocol

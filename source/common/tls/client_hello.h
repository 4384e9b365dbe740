#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mcproxy::tls {

// What tls_inspector learns from a ClientHello.
struct ClientHelloInfo {
  std::string server_name;        // SNI host_name, lower-cased; empty when absent
  std::vector<std::string> alpn;  // protocols offered, in the client's order
  uint16_t record_version = 0;    // version of the first TLS record
  size_t record_bytes = 0;        // bytes of TLS records that carried the ClientHello
};

enum class ParseStatus {
  kNeedMoreData,  // a valid prefix; call again with more bytes
  kDone,          // `info` is filled in
  kNotTls,        // the first bytes are not a TLS handshake record
  kMalformed,     // TLS framing, but the ClientHello breaks the spec
  kTooLarge,      // the ClientHello does not fit in max_bytes
};

struct ParseResult {
  ParseStatus status;
  std::string error;  // why, for kNotTls/kMalformed/kTooLarge
};

// Parses a ClientHello from the first bytes a client sent, without consuming them. The
// handshake message may be split across several TLS records and `data` may end anywhere.
// `max_bytes` bounds the record bytes (headers included) the ClientHello may occupy.
ParseResult parseClientHello(std::string_view data, size_t max_bytes, ClientHelloInfo& info);

const char* parseStatusName(ParseStatus status);

}  // namespace mcproxy::tls

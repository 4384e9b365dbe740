#pragma once

#include <absl/status/statusor.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "source/common/http/headers.h"
#include "source/common/http/stream_info.h"
#include "source/common/network/stream_info.h"

namespace mcproxy::formatter {

// What a value is taken from: a connection, and for a request also its StreamInfo and headers.
struct Context {
  const network::StreamInfo& connection;
  const http::StreamInfo* stream = nullptr;
  const http::HeaderMap* request_headers = nullptr;
};

// A value of a connection or a request, known to access logs (JSON keys, TEXT %COMMANDS%) and
// to header values in HTTP filters. docs/logging.md lists them.
enum class Field {
  kTime,                // when the connection (or request) began: RFC 3339, UTC, milliseconds
  kListener,            //
  kClientIp,            // the real client, after PROXY
  kClientPort,          //
  kPeerIp,              // the TCP peer
  kSni,                 //
  kAlpn,                // L7: negotiated; L4: what the client offered, comma-separated
  kRoute,               // the route's hostname, "default" for a default route
  kMode,                // "L4" or "L7"
  kBackend,             // where bytes or the request went
  kTlsVersion,          // L7: the negotiated TLS version
  kTlsCipher,           // L7: the negotiated cipher
  kTlsFailure,          // L7: why the handshake with the client failed
  kDurationMs,          // start to end (or to now, for a request header value)
  kCloseReason,         // why the connection closed; a request: how it ended
  kBytesFromClient,     // a connection's bytes read from the client
  kBytesToClient,       // a connection's bytes written to the client
  kMethod,              // L7 request
  kAuthority,           //
  kPath,                //
  kProtocol,            // "HTTP/2", "HTTP/1.1"
  kStatus,              // the response status sent (0: none)
  kRequestBytes,        // request body bytes from the client
  kResponseBytes,       // response body bytes to the client
  kUpstreamConnectMs,   // waiting for a backend connection (0: a pooled one was ready)
  kUpstreamResponseMs,  // request start to the backend's response headers
  kRequestId,           // x-request-id as forwarded to the backend
  kUserAgent,           //
  kClientCertSubject,   // L7 with mutual TLS: the client certificate's subject (RFC 2253)
  kClientCertSha256,    // L7 with mutual TLS: the client certificate's SHA-256, hex
};

// For a JSON line: the key, and whether the value is a number (null when not known).
struct FieldName {
  Field field;
  const char* command;  // TIME, CLIENT_IP, ...
  const char* json;     // time, client_ip, ...
  bool number;
};
// Every field, in the order of the enum.
const std::vector<FieldName>& fieldNames();
inline const FieldName& nameOf(Field field) { return fieldNames()[static_cast<size_t>(field)]; }

// Appends `field`'s value; false when it has none here (a request field of a connection, a
// backend's timing when no backend answered).
bool appendField(Field field, const Context& context, std::string& out);

// A value with substitutions, parsed once when the config is compiled: any field as %COMMAND%
// (%CLIENT_IP%, %SNI%, %STATUS%, ...), %REQ(name)% (a request header's value, empty when
// absent) and %% (a literal %). A field with no value here is written as `missing` ("" in a
// header value, "-" in a TEXT log line).
class Formatter {
 public:
  // An error names what is wrong ("unknown %SNII%", "unterminated %").
  static absl::StatusOr<Formatter> parse(std::string_view text, std::string missing = "");

  std::string format(const Context& context) const;
  // No substitution at all: format() returns the text as given.
  bool literal() const {
    return parts_.size() <= 1 && (parts_.empty() || parts_[0].kind == Kind::kText);
  }
  // Reads request headers (%REQ(name)%, %METHOD%, %PATH%, %AUTHORITY%, %USER_AGENT%).
  bool readsRequestHeaders() const;

 private:
  enum class Kind { kText, kField, kRequestHeader };
  struct Part {
    Kind kind;
    Field field = Field::kTime;
    std::string text;  // the literal, or the header name
  };
  std::vector<Part> parts_;
  std::string missing_;
};

// RFC 3339 in UTC with milliseconds: "2026-12-01T16:20:05.123Z".
std::string rfc3339(std::chrono::system_clock::time_point time);
// A steady-clock instant as wall-clock time (access logs keep steady times; lines want dates).
std::chrono::system_clock::time_point wallTime(std::chrono::steady_clock::time_point time);

}  // namespace mcproxy::formatter

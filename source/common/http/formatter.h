#pragma once

#include <absl/status/statusor.h>

#include <string>
#include <string_view>
#include <vector>

#include "source/common/http/headers.h"
#include "source/common/http/stream_info.h"

namespace mcproxy::http {

// A value with substitutions, parsed once when the config is compiled: %CLIENT_IP% (the real
// client, after PROXY), %CLIENT_PORT%, %PEER_IP% (the TCP peer), %SNI%, %ROUTE% (the route's
// hostname, "default" for a default route), %LISTENER%, %PROTOCOL%, %REQ(name)% (the request
// header's value, empty when absent) and %% (a literal %).
class Formatter {
 public:
  // An error names what is wrong ("unknown %SNII%", "unterminated %").
  static absl::StatusOr<Formatter> parse(std::string_view text);

  std::string format(const StreamInfo& info, const HeaderMap* request_headers) const;
  // No substitution at all: format() returns the text as given.
  bool literal() const {
    return parts_.size() <= 1 && (parts_.empty() || parts_[0].kind == Kind::kText);
  }
  // Uses %REQ(name)%.
  bool readsRequestHeaders() const;

 private:
  enum class Kind {
    kText,
    kClientIp,
    kClientPort,
    kPeerIp,
    kSni,
    kRoute,
    kListener,
    kProtocol,
    kRequestHeader
  };
  struct Part {
    Kind kind;
    std::string text;  // the literal, or the header name
  };
  std::vector<Part> parts_;
};

}  // namespace mcproxy::http

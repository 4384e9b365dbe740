#pragma once

#include <cstdint>

#include "source/common/http/filter.h"

namespace mcproxy::extensions::forwarding_headers {

struct ForwardingHeadersConfig {
  uint32_t trusted_hops = 0;
};

// mcproxy.filters.http.forwarding_headers: X-Forwarded-For, X-Forwarded-Proto and X-Real-IP
// for the backend, from the real client address (after PROXY protocol) and, with trusted_hops,
// from what trusted hops in front of this proxy appended; and X-Request-Id, generated unless a
// trusted hop sent one.
class ForwardingHeadersFilter : public http::StreamFilter {
 public:
  ForwardingHeadersFilter(const ForwardingHeadersConfig& config, http::FilterCallbacks& callbacks)
      : config_(config), callbacks_(callbacks) {}

  http::FilterStatus onRequestHeaders(http::HeaderMap& headers, bool end_stream) override;

 private:
  // x-request-id: kept from a trusted hop, else a new one; the log and the backend see it.
  void setRequestId(http::HeaderMap& headers);

  const ForwardingHeadersConfig& config_;
  http::FilterCallbacks& callbacks_;
};

}  // namespace mcproxy::extensions::forwarding_headers

#pragma once

#include <string>
#include <vector>

#include "source/common/formatter/formatter.h"
#include "source/common/http/filter.h"
#include "source/common/router/route.h"

namespace mcproxy::extensions::direct_response {

struct Rule {
  router::PathMatcher path;
  int status = 200;
  std::vector<std::pair<std::string, formatter::Formatter>> headers;
  std::string body;
};

struct DirectResponseConfig {
  std::vector<Rule> rules;
};

// mcproxy.filters.http.direct_response: answers requests a rule matches with that rule's status,
// headers and body; others go on.
class DirectResponseFilter : public http::StreamFilter {
 public:
  DirectResponseFilter(const DirectResponseConfig& config, http::FilterCallbacks& callbacks)
      : config_(config), callbacks_(callbacks) {}

  http::FilterStatus onRequestHeaders(http::HeaderMap& headers, bool end_stream) override;

 private:
  const DirectResponseConfig& config_;
  http::FilterCallbacks& callbacks_;
};

}  // namespace mcproxy::extensions::direct_response

#include "extensions/filters/http/direct_response/direct_response.h"

namespace mcproxy::extensions::direct_response {

http::FilterStatus DirectResponseFilter::onRequestHeaders(http::HeaderMap& headers, bool) {
  for (const Rule& rule : config_.rules) {
    if (!rule.path.matches(headers.path())) continue;
    http::HeaderMap extra;
    for (const auto& [name, value] : rule.headers) {
      std::string text =
          value.format({callbacks_.streamInfo().connection, &callbacks_.streamInfo(), &headers});
      if (http::validHeaderValue(text)) extra.add(name, std::move(text));
    }
    callbacks_.sendLocalReply(rule.status, rule.body, std::move(extra), "direct response");
    return http::FilterStatus::kStopIteration;
  }
  return http::FilterStatus::kContinue;
}

}  // namespace mcproxy::extensions::direct_response

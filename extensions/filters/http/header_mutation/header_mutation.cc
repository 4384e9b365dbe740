#include "extensions/filters/http/header_mutation/header_mutation.h"

namespace mcproxy::extensions::header_mutation {

void Mutations::apply(http::HeaderMap& headers, const http::StreamInfo& info,
                      const http::HeaderMap* request_headers) const {
  for (const std::string& name : remove) headers.remove(name);
  for (const Value& value : set) {
    std::string text = value.value.format({info.connection, &info, request_headers});
    // A substituted value (a request header, the SNI) is not trusted to be a valid field.
    if (http::validHeaderValue(text)) headers.set(value.name, std::move(text));
  }
  for (const Value& value : add) {
    std::string text = value.value.format({info.connection, &info, request_headers});
    if (http::validHeaderValue(text)) headers.add(value.name, std::move(text));
  }
}

http::FilterStatus HeaderMutationFilter::onRequestHeaders(http::HeaderMap& headers, bool) {
  if (config_.request.empty()) return http::FilterStatus::kContinue;
  if (config_.request.reads_request_headers) {
    // %REQ(name)% reads the headers as they came to this filter: a copy, as the mutations
    // change `headers` itself.
    const http::HeaderMap original = headers;
    config_.request.apply(headers, callbacks_.streamInfo(), &original);
  } else {
    config_.request.apply(headers, callbacks_.streamInfo(), nullptr);
  }
  return http::FilterStatus::kContinue;
}

http::FilterStatus HeaderMutationFilter::onResponseHeaders(http::HeaderMap& headers, bool) {
  config_.response.apply(headers, callbacks_.streamInfo(), callbacks_.requestHeaders());
  return http::FilterStatus::kContinue;
}

}  // namespace mcproxy::extensions::header_mutation

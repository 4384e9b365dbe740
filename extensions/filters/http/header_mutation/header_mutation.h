#pragma once

#include <string>
#include <vector>

#include "source/common/formatter/formatter.h"
#include "source/common/http/filter.h"

namespace mcproxy::extensions::header_mutation {

// One side's changes, applied in this order: remove, set, add.
struct Mutations {
  struct Value {
    std::string name;
    formatter::Formatter value;
  };
  std::vector<std::string> remove;
  std::vector<Value> set;
  std::vector<Value> add;

  bool reads_request_headers = false;  // some value reads a request header

  bool empty() const { return remove.empty() && set.empty() && add.empty(); }
  void apply(http::HeaderMap& headers, const http::StreamInfo& info,
             const http::HeaderMap* request_headers) const;
};

struct HeaderMutationConfig {
  Mutations request;
  Mutations response;
};

// mcproxy.filters.http.header_mutation: removes, sets and adds request headers before the
// backend sees them and response headers before the client does.
class HeaderMutationFilter : public http::StreamFilter {
 public:
  HeaderMutationFilter(const HeaderMutationConfig& config, http::FilterCallbacks& callbacks)
      : config_(config), callbacks_(callbacks) {}

  http::FilterStatus onRequestHeaders(http::HeaderMap& headers, bool end_stream) override;
  http::FilterStatus onResponseHeaders(http::HeaderMap& headers, bool end_stream) override;

 private:
  const HeaderMutationConfig& config_;
  http::FilterCallbacks& callbacks_;
};

}  // namespace mcproxy::extensions::header_mutation

#include "extensions/filters/http/forwarding_headers/forwarding_headers.h"

#include <absl/strings/ascii.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>

#include <string>
#include <vector>

#include "source/common/http/request_id.h"

namespace mcproxy::extensions::forwarding_headers {

void ForwardingHeadersFilter::setRequestId(http::HeaderMap& headers) {
  http::StreamInfo& info = callbacks_.streamInfo();
  const std::string* incoming = headers.get("x-request-id");
  if (config_.trusted_hops > 0 && incoming != nullptr && http::acceptableRequestId(*incoming)) {
    info.request_id = *incoming;  // a trusted hop in front named the request already
  } else {
    info.request_id = http::newRequestId(callbacks_.dispatcher().random());
  }
  headers.set("x-request-id", info.request_id);
}

http::FilterStatus ForwardingHeadersFilter::onRequestHeaders(http::HeaderMap& headers, bool) {
  setRequestId(headers);
  std::string client = callbacks_.streamInfo().connection.real_client.ip();
  if (config_.trusted_hops == 0) {  // what the client sent is replaced
    headers.set("x-forwarded-for", client);
    headers.set("x-forwarded-proto", "https");
    headers.set("x-real-ip", std::move(client));
    return http::FilterStatus::kContinue;
  }
  std::vector<std::string> forwarded_for;
  std::string proto = "https";
  {
    // Every X-Forwarded-For field, in order, is one list; its last entries came from the hops we
    // trust, anything before them from whoever the client claims to be.
    for (const http::Header& header : headers) {
      if (header.name != "x-forwarded-for") continue;
      for (absl::string_view entry : absl::StrSplit(header.value, ',')) {
        entry = absl::StripAsciiWhitespace(entry);
        if (!entry.empty()) forwarded_for.emplace_back(entry.data(), entry.size());
      }
    }
    if (forwarded_for.size() > config_.trusted_hops) {
      forwarded_for.erase(forwarded_for.begin(), forwarded_for.end() - config_.trusted_hops);
    }
    if (const std::string* incoming = headers.get("x-forwarded-proto")) proto = *incoming;
  }
  const std::string real_ip = forwarded_for.empty() ? client : forwarded_for.front();
  forwarded_for.push_back(std::move(client));
  headers.set("x-forwarded-for", absl::StrJoin(forwarded_for, ", "));
  headers.set("x-forwarded-proto", std::move(proto));
  headers.set("x-real-ip", real_ip);
  return http::FilterStatus::kContinue;
}

}  // namespace mcproxy::extensions::forwarding_headers

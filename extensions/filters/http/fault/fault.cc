#include "extensions/filters/http/fault/fault.h"

#include <absl/hash/hash.h>

namespace mcproxy::extensions::fault {

bool FaultFilter::chosen(uint32_t percent, uint64_t salt) const {
  if (percent >= 100) return true;
  const http::StreamInfo& info = callbacks_.streamInfo();
  const size_t draw =
      absl::HashOf(info.connection.connection_id, info.start_time.time_since_epoch().count(), salt);
  return draw % 100 < percent;
}

http::FilterStatus FaultFilter::onRequestHeaders(http::HeaderMap& headers, bool) {
  if (!config_.header.empty() && headers.get(config_.header) == nullptr) {
    return http::FilterStatus::kContinue;
  }
  const bool delay = config_.delay_percent > 0 && chosen(config_.delay_percent, 1);
  const bool abort_request = config_.abort_status != 0 && chosen(config_.abort_percent, 2);
  if (delay) {
    abort_after_delay_ = abort_request;
    callbacks_.timeoutQueue().arm(timer_, config_.delay);
    return http::FilterStatus::kStopIteration;
  }
  if (abort_request) {
    abort();
    return http::FilterStatus::kStopIteration;
  }
  return http::FilterStatus::kContinue;
}

void FaultFilter::onDelayOver() {
  if (abort_after_delay_) {
    abort();
  } else {
    callbacks_.continueRequest();
  }
}

void FaultFilter::abort() {
  callbacks_.sendLocalReply(config_.abort_status, "fault filter abort\n", {}, "fault abort");
}

}  // namespace mcproxy::extensions::fault

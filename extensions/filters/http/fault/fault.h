#pragma once

#include <chrono>
#include <string>

#include "source/common/event/timeout_queue.h"
#include "source/common/http/filter.h"

namespace mcproxy::extensions::fault {

struct FaultConfig {
  std::chrono::milliseconds delay{0};
  uint32_t delay_percent = 0;  // 0: no delay
  int abort_status = 0;        // 0: no abort
  uint32_t abort_percent = 0;
  std::string header;  // when set, only requests carrying it are faulted
};

// mcproxy.filters.http.fault: delays chosen requests (the request phase stops and resumes on a
// timer) and answers chosen ones with an error instead of the backend.
class FaultFilter : public http::StreamFilter {
 public:
  FaultFilter(const FaultConfig& config, http::FilterCallbacks& callbacks)
      : config_(config), callbacks_(callbacks), timer_([this] { onDelayOver(); }) {}

  http::FilterStatus onRequestHeaders(http::HeaderMap& headers, bool end_stream) override;

 private:
  // Whether this request falls in the first `percent` of 100, by a hash of the stream (no shared
  // random state; the same stream always draws the same).
  bool chosen(uint32_t percent, uint64_t salt) const;
  void onDelayOver();
  void abort();

  const FaultConfig& config_;
  http::FilterCallbacks& callbacks_;
  event::TimeoutQueue::Entry timer_;
  bool abort_after_delay_ = false;
};

}  // namespace mcproxy::extensions::fault

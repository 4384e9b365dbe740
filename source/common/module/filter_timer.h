#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "source/common/event/dispatcher.h"

namespace mcproxy::module {

// The one timer a module filter may have (mcproxy_*_set_timer): `fire(token)` once after the
// delay, or at the next turn of the loop for 0; setting it again replaces what was pending. The
// libevent timer is made the first time it is set.
class FilterTimer {
 public:
  FilterTimer(event::Dispatcher& dispatcher, std::function<void(uint64_t)> fire)
      : dispatcher_(dispatcher), fire_(std::move(fire)) {}

  void set(uint64_t delay_ms, uint64_t token) {
    if (!timer_) timer_ = std::make_unique<event::Timer>(dispatcher_, [this] { fire_(token_); });
    token_ = token;
    if (delay_ms == 0) {
      timer_->fireSoon();
    } else {
      timer_->arm(std::chrono::milliseconds(delay_ms));
    }
  }
  void cancel() {
    if (timer_) timer_->cancel();
  }

 private:
  event::Dispatcher& dispatcher_;
  std::function<void(uint64_t)> fire_;
  std::unique_ptr<event::Timer> timer_;
  uint64_t token_ = 0;
};

}  // namespace mcproxy::module

#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "source/common/network/address.h"

namespace mcproxy::extensions::firewall {

// A per-client-address connection rate limit shared by every worker, without locks: the
// generic cell rate algorithm (GCRA), which behaves exactly like a token bucket of `burst`
// tokens refilled every `period`, but needs only one timestamp per address. Addresses live in a
// fixed table of `slots` entries, so memory stays at 16 bytes a slot however many addresses
// flood in; when the table is full, the address seen longest ago is forgotten (its next
// connection starts with a full bucket).
class RateLimiter {
 public:
  RateLimiter(uint32_t burst, std::chrono::seconds period, size_t slots);

  // Counts a new connection from `address` at `now`; false when it is over the limit (such a
  // connection is not counted).
  bool allow(const network::Address& address, std::chrono::steady_clock::time_point now);

  uint32_t burst() const { return burst_; }
  std::chrono::seconds period() const { return period_; }
  size_t slots() const { return mask_ + 1; }

 private:
  struct Slot {
    std::atomic<uint64_t> key{0};  // hash of the address; 0 = free
    std::atomic<int64_t> tat{0};   // GCRA "theoretical arrival time", ns since epoch_
  };
  Slot& slotFor(uint64_t key, int64_t now);

  const uint32_t burst_;
  const std::chrono::seconds period_;
  const int64_t emission_interval_ns_;  // period / burst
  const int64_t tolerance_ns_;          // period - emission interval: how far ahead TAT may run
  size_t mask_;
  std::unique_ptr<Slot[]> table_;
  const std::chrono::steady_clock::time_point epoch_;
};

}  // namespace mcproxy::extensions::firewall

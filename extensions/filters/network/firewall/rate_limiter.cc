#include "extensions/filters/network/firewall/rate_limiter.h"

#include <bit>

namespace mcproxy::extensions::firewall {
namespace {

constexpr int kProbes = 4;

uint64_t addressKey(const network::Address& address) {
  const uint64_t key = network::hashIp(address);
  return key == 0 ? 1 : key;  // 0 marks a free slot
}

}  // namespace

RateLimiter::RateLimiter(uint32_t burst, std::chrono::seconds period, size_t slots)
    : burst_(burst),
      period_(period),
      emission_interval_ns_(std::chrono::nanoseconds(period).count() / burst),
      tolerance_ns_(std::chrono::nanoseconds(period).count() - emission_interval_ns_),
      mask_(std::bit_ceil(std::max<size_t>(slots, kProbes)) - 1),
      table_(std::make_unique<Slot[]>(mask_ + 1)),
      epoch_(std::chrono::steady_clock::now()) {}

RateLimiter::Slot& RateLimiter::slotFor(uint64_t key, int64_t now) {
  Slot* oldest = nullptr;
  for (int probe = 0; probe < kProbes; ++probe) {
    Slot& slot = table_[(key + probe) & mask_];
    uint64_t current = slot.key.load(std::memory_order_acquire);
    if (current == key) return slot;
    // A free slot, or one whose bucket has refilled completely (its TAT is in the past): the
    // address it held would start over with a full bucket anyway, so it can be reused.
    if (current == 0 || slot.tat.load(std::memory_order_relaxed) <= now) {
      if (slot.key.compare_exchange_strong(current, key, std::memory_order_acq_rel)) {
        slot.tat.store(now, std::memory_order_relaxed);
        return slot;
      }
      if (current == key) return slot;  // another worker claimed it for the same address
    }
    if (oldest == nullptr ||
        slot.tat.load(std::memory_order_relaxed) < oldest->tat.load(std::memory_order_relaxed)) {
      oldest = &slot;
    }
  }
  // Every probed slot holds a busy address: forget the one seen longest ago.
  oldest->key.store(key, std::memory_order_release);
  oldest->tat.store(now, std::memory_order_relaxed);
  return *oldest;
}

bool RateLimiter::allow(const network::Address& address,
                        std::chrono::steady_clock::time_point now) {
  const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - epoch_).count();
  Slot& slot = slotFor(addressKey(address), now_ns);
  int64_t tat = slot.tat.load(std::memory_order_relaxed);
  while (true) {
    const int64_t start = std::max(tat, now_ns);
    if (start - now_ns > tolerance_ns_) return false;
    if (slot.tat.compare_exchange_weak(tat, start + emission_interval_ns_,
                                       std::memory_order_relaxed)) {
      return true;
    }
  }
}

}  // namespace mcproxy::extensions::firewall

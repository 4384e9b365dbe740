#include "source/common/event/handle_slots.h"

namespace mcproxy::event {
namespace {

// A handle is the slot's address with the slot's generation in the top 16 bits (user-space
// addresses fit in 48).
constexpr int kGenerationShift = 48;
constexpr uintptr_t kAddressMask = (uintptr_t{1} << kGenerationShift) - 1;

}  // namespace

uintptr_t HandleSlots::acquire(void* owner, uint8_t kind) {
  if (free_.empty()) {
    chunks_.push_back(std::make_unique<Slot[]>(kChunk));
    for (size_t i = 0; i < kChunk; ++i) free_.push_back(&chunks_.back()[i]);
  }
  Slot* slot = free_.front();
  free_.pop_front();
  slot->thread.store(pthread_self(), std::memory_order_relaxed);
  slot->kind.store(kind, std::memory_order_relaxed);
  slot->owner.store(owner, std::memory_order_release);
  const uint16_t generation = slot->generation.load(std::memory_order_relaxed);
  return reinterpret_cast<uintptr_t>(slot) | (uintptr_t{generation} << kGenerationShift);
}

void HandleSlots::release(uintptr_t handle) {
  auto* slot = reinterpret_cast<Slot*>(handle & kAddressMask);
  slot->owner.store(nullptr, std::memory_order_release);
  slot->generation.fetch_add(1, std::memory_order_relaxed);
  free_.push_back(slot);
}

void* HandleSlots::resolve(uintptr_t handle, uint8_t kind, Problem& problem) {
  auto* slot = reinterpret_cast<Slot*>(handle & kAddressMask);
  if (slot == nullptr) {
    problem = Problem::kEnded;
    return nullptr;
  }
  if (!pthread_equal(slot->thread.load(std::memory_order_relaxed), pthread_self())) {
    problem = Problem::kWrongThread;
    return nullptr;
  }
  const uint16_t generation = static_cast<uint16_t>(handle >> kGenerationShift);
  void* owner = slot->owner.load(std::memory_order_acquire);
  if (owner == nullptr || slot->generation.load(std::memory_order_relaxed) != generation ||
      slot->kind.load(std::memory_order_relaxed) != kind) {
    problem = Problem::kEnded;
    return nullptr;
  }
  problem = Problem::kNone;
  return owner;
}

}  // namespace mcproxy::event

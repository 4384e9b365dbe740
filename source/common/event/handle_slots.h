#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

namespace mcproxy::event {

// Handles for code outside the proxy's control (plugin modules): a value that names an object
// of this thread without being a pointer to it. A handle whose object is gone resolves to null
// instead of to freed memory: slots are never freed while their loop lives, and each reuse bumps
// a generation the handle carries. Owned by a Dispatcher; acquire() and release() on its thread.
class HandleSlots {
 public:
  HandleSlots() = default;
  HandleSlots(const HandleSlots&) = delete;
  HandleSlots& operator=(const HandleSlots&) = delete;

  // A new handle for `owner`, of a kind the caller chooses (a network or an HTTP filter).
  uintptr_t acquire(void* owner, uint8_t kind);
  // The handle stops resolving; its slot is reused later (oldest first).
  void release(uintptr_t handle);

  enum class Problem { kNone, kEnded, kWrongThread };
  // The owner of a live handle of `kind` made on the calling thread; null, with `problem` set,
  // for a released (stale) handle, another kind, or another thread.
  static void* resolve(uintptr_t handle, uint8_t kind, Problem& problem);

 private:
  struct alignas(16) Slot {
    std::atomic<void*> owner{nullptr};
    std::atomic<uint16_t> generation{0};
    std::atomic<uint8_t> kind{0};
    std::atomic<pthread_t> thread{};
  };
  static constexpr size_t kChunk = 256;

  std::vector<std::unique_ptr<Slot[]>> chunks_;
  std::deque<Slot*> free_;  // FIFO: a slot is reused as late as possible
};

}  // namespace mcproxy::event

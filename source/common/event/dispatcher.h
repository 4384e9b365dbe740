#pragma once

#include <absl/random/random.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "source/common/event/handle_slots.h"
#include "source/common/network/fd.h"

struct event_base;
struct event;

namespace mcproxy::event {

class Dispatcher;

// Something whose destruction must wait until the current event callback has returned, e.g. a
// connection that closes itself from inside one of its own callbacks.
class DeferredDeletable {
 public:
  virtual ~DeferredDeletable() = default;
};

// A persistent read or write interest on one fd. enable()/disable() are cheap when the state
// does not change (no epoll_ctl).
class IoEvent {
 public:
  enum class Kind { kRead, kWrite };
  IoEvent(Dispatcher& dispatcher, int fd, Kind kind, std::function<void()> on_ready);
  ~IoEvent();
  IoEvent(const IoEvent&) = delete;
  IoEvent& operator=(const IoEvent&) = delete;

  void enable();
  void disable();
  bool enabled() const { return enabled_; }
  // Runs the callback once in this turn of the loop, as though the fd were ready: for input a
  // user-space buffer holds (OpenSSL's read-ahead), which epoll cannot report. disable() undoes
  // it.
  void activate();

 private:
  static void trampoline(int fd, short what, void* arg);
  struct event* event_;
  std::function<void()> on_ready_;
  bool enabled_ = false;
};

// A one-shot timer; arm() again to re-arm.
class Timer {
 public:
  Timer(Dispatcher& dispatcher, std::function<void()> on_fire);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void arm(std::chrono::milliseconds after);
  // Fires once the callback that is running now returns, in this same turn of the loop: after
  // the other events already ready in this turn, without a wait for I/O or the timer heap. For
  // work that should batch over one turn (a flush), where a 0 ms timer would add a turn.
  void fireSoon();
  void cancel();
  bool armed() const;

 private:
  static void trampoline(int fd, short what, void* arg);
  struct event* event_;
  std::function<void()> on_fire_;
};

// One libevent event_base and the thread that runs it. Everything on a dispatcher runs on its
// thread; other threads reach it only through post().
class Dispatcher {
 public:
  Dispatcher();
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Runs until exit() is called (does not return when there are no events).
  void run();
  // One turn of the loop: waits for at least one event and runs what is ready (tests, tools).
  void runOnce();
  // Thread-safe: makes run() return once the current callbacks are done.
  void exit();
  // Thread-safe: runs `fn` on this dispatcher's thread, in order of posting.
  void post(std::function<void()> fn);
  // Destroys `object` after the current callback returns.
  void deferredDelete(std::unique_ptr<DeferredDeletable> object);
  // Destroys what deferredDelete() holds now (when the loop has stopped).
  void runDeferredDeletes();

  event_base* base() { return base_; }
  // Monotonic time (vDSO clock read; no syscall), unless frozen.
  std::chrono::steady_clock::time_point now() const;
  // Offline evaluation (mcproxyctl check): now() answers `time` from here on, so what filters
  // decide by the clock (rate limits) follows the test, not the machine.
  void freezeTime(std::chrono::steady_clock::time_point time) { frozen_now_ = time; }
  // This loop's random source (request ids): one per thread, as absl::BitGen is not
  // thread-safe, seeded from the OS.
  absl::BitGen& random() { return random_; }
  // Handles this loop's objects give to plugin modules.
  HandleSlots& handles() { return handles_; }

 private:
  void runPosted();

  event_base* base_;
  network::UniqueFd wakeup_fd_;  // eventfd written by post()
  std::unique_ptr<IoEvent> wakeup_event_;
  std::mutex posted_mutex_;  // guards posted_ only; never taken on the data path
  std::vector<std::function<void()>> posted_;
  std::vector<std::unique_ptr<DeferredDeletable>> to_delete_;
  std::unique_ptr<Timer> deferred_delete_timer_;
  absl::BitGen random_;
  HandleSlots handles_;
  std::optional<std::chrono::steady_clock::time_point> frozen_now_;
};

}  // namespace mcproxy::event

#include "source/common/event/dispatcher.h"

#include <event2/event.h>
#include <sys/eventfd.h>

#include <cstdint>
#include <stdexcept>

namespace mcproxy::event {

IoEvent::IoEvent(Dispatcher& dispatcher, int fd, Kind kind, std::function<void()> on_ready)
    : event_(event_new(dispatcher.base(), fd,
                       static_cast<short>((kind == Kind::kRead ? EV_READ : EV_WRITE) | EV_PERSIST),
                       &IoEvent::trampoline, this)),
      on_ready_(std::move(on_ready)) {
  if (event_ == nullptr) throw std::runtime_error("event_new failed");
}

IoEvent::~IoEvent() { event_free(event_); }

void IoEvent::enable() {
  if (enabled_) return;
  event_add(event_, nullptr);
  enabled_ = true;
}

void IoEvent::activate() {
  event_active(event_, event_get_events(event_) & (EV_READ | EV_WRITE), 0);
}

void IoEvent::disable() {
  if (!enabled_) return;
  event_del(event_);
  enabled_ = false;
}

void IoEvent::trampoline(int, short, void* arg) { static_cast<IoEvent*>(arg)->on_ready_(); }

Timer::Timer(Dispatcher& dispatcher, std::function<void()> on_fire)
    : event_(evtimer_new(dispatcher.base(), &Timer::trampoline, this)),
      on_fire_(std::move(on_fire)) {
  if (event_ == nullptr) throw std::runtime_error("evtimer_new failed");
}

Timer::~Timer() { event_free(event_); }

void Timer::arm(std::chrono::milliseconds after) {
  const timeval tv{static_cast<time_t>(after.count() / 1000),
                   static_cast<suseconds_t>((after.count() % 1000) * 1000)};
  evtimer_add(event_, &tv);
}

void Timer::fireSoon() { event_active(event_, EV_TIMEOUT, 0); }

void Timer::cancel() { evtimer_del(event_); }

bool Timer::armed() const { return evtimer_pending(event_, nullptr) != 0; }

void Timer::trampoline(int, short, void* arg) { static_cast<Timer*>(arg)->on_fire_(); }

Dispatcher::Dispatcher() {
  event_config* config = event_config_new();
  // A base belongs to exactly one thread; other threads only write to the wakeup eventfd.
  event_config_set_flag(config, EVENT_BASE_FLAG_NOLOCK);
  base_ = event_base_new_with_config(config);
  event_config_free(config);
  if (base_ == nullptr) throw std::runtime_error("event_base_new failed");
  wakeup_fd_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wakeup_fd_.valid()) throw std::runtime_error("eventfd failed");
  wakeup_event_ = std::make_unique<IoEvent>(*this, wakeup_fd_.get(), IoEvent::Kind::kRead, [this] {
    uint64_t count;
    while (::read(wakeup_fd_.get(), &count, sizeof(count)) > 0) {
    }
    runPosted();
  });
  wakeup_event_->enable();
  deferred_delete_timer_ = std::make_unique<Timer>(*this, [this] { runDeferredDeletes(); });
}

Dispatcher::~Dispatcher() {
  runDeferredDeletes();
  deferred_delete_timer_.reset();
  wakeup_event_.reset();
  event_base_free(base_);
}

void Dispatcher::run() { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); }

void Dispatcher::runOnce() { event_base_loop(base_, EVLOOP_ONCE); }

void Dispatcher::exit() {
  post([this] { event_base_loopexit(base_, nullptr); });
}

void Dispatcher::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    posted_.push_back(std::move(fn));
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t rc = ::write(wakeup_fd_.get(), &one, sizeof(one));
}

void Dispatcher::runPosted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

void Dispatcher::deferredDelete(std::unique_ptr<DeferredDeletable> object) {
  to_delete_.push_back(std::move(object));
  // In this turn of the loop, once the callback that is running returns.
  if (!deferred_delete_timer_->armed()) deferred_delete_timer_->fireSoon();
}

void Dispatcher::runDeferredDeletes() {
  // Destructors may defer more deletions; loop until none are left.
  while (!to_delete_.empty()) {
    std::vector<std::unique_ptr<DeferredDeletable>> batch;
    batch.swap(to_delete_);
    batch.clear();
  }
}

std::chrono::steady_clock::time_point Dispatcher::now() const {
  if (frozen_now_) [[unlikely]]
    return *frozen_now_;
  return std::chrono::steady_clock::now();
}

}  // namespace mcproxy::event

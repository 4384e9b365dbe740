#include "source/common/event/timeout_queue.h"

#include <algorithm>

namespace mcproxy::event {

void TimeoutQueue::Entry::cancel() {
  if (queue_ != nullptr) queue_->unlink(*this);
}

TimeoutQueue::TimeoutQueue(Dispatcher& dispatcher)
    : dispatcher_(dispatcher), timer_(dispatcher, [this] { onTimer(); }) {}

TimeoutQueue::~TimeoutQueue() {
  for (Lane& lane : lanes_) {
    while (lane.head != nullptr) unlink(*lane.head);
  }
}

void TimeoutQueue::arm(Entry& entry, std::chrono::milliseconds timeout) {
  entry.cancel();
  auto lane = std::find_if(lanes_.begin(), lanes_.end(),
                           [&](const Lane& each) { return each.timeout == timeout; });
  if (lane == lanes_.end()) lane = lanes_.insert(lanes_.end(), Lane{timeout});
  entry.queue_ = this;
  entry.lane_ = static_cast<size_t>(lane - lanes_.begin());
  entry.deadline_ = dispatcher_.now() + timeout;
  entry.prev_ = lane->tail;
  entry.next_ = nullptr;
  (lane->tail != nullptr ? lane->tail->next_ : lane->head) = &entry;
  lane->tail = &entry;
  if (lane->head == &entry) rearm();
}

void TimeoutQueue::unlink(Entry& entry) {
  Lane& lane = lanes_[entry.lane_];
  (entry.prev_ != nullptr ? entry.prev_->next_ : lane.head) = entry.next_;
  (entry.next_ != nullptr ? entry.next_->prev_ : lane.tail) = entry.prev_;
  entry.queue_ = nullptr;
  entry.prev_ = entry.next_ = nullptr;
  // A later deadline at a head only makes the timer fire early, and onTimer() re-arms.
}

void TimeoutQueue::rearm() {
  const Entry* earliest = nullptr;
  for (const Lane& lane : lanes_) {
    if (lane.head != nullptr &&
        (earliest == nullptr || lane.head->deadline_ < earliest->deadline_)) {
      earliest = lane.head;
    }
  }
  if (earliest == nullptr) {
    timer_.cancel();
    return;
  }
  const auto wait = earliest->deadline_ - dispatcher_.now();
  timer_.arm(
      std::max(std::chrono::milliseconds(0), std::chrono::ceil<std::chrono::milliseconds>(wait)));
}

void TimeoutQueue::onTimer() {
  const auto now = dispatcher_.now();
  // Callbacks may arm, cancel or destroy entries: look for an expired head afresh each time.
  while (true) {
    Entry* expired = nullptr;
    for (Lane& lane : lanes_) {
      if (lane.head != nullptr && lane.head->deadline_ <= now) {
        expired = lane.head;
        break;
      }
    }
    if (expired == nullptr) break;
    unlink(*expired);
    expired->on_timeout_();
  }
  rearm();
}

}  // namespace mcproxy::event

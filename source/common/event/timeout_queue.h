#pragma once

#include <chrono>
#include <functional>
#include <vector>

#include "source/common/event/dispatcher.h"

namespace mcproxy::event {

// Many deadlines on one timer, without an allocation per deadline: entries with the same
// timeout form a FIFO (the order they are armed in is their deadline order), and the timer waits
// for the earliest head. Meant for per-request timeouts, which take few distinct values per
// connection. An entry unlinks itself when destroyed (RAII); it must not outlive its queue.
class TimeoutQueue {
 public:
  class Entry {
   public:
    explicit Entry(std::function<void()> on_timeout) : on_timeout_(std::move(on_timeout)) {}
    ~Entry() { cancel(); }
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;

    bool armed() const { return queue_ != nullptr; }
    void cancel();

   private:
    friend class TimeoutQueue;
    std::function<void()> on_timeout_;
    TimeoutQueue* queue_ = nullptr;
    size_t lane_ = 0;
    Entry* prev_ = nullptr;
    Entry* next_ = nullptr;
    std::chrono::steady_clock::time_point deadline_;
  };

  explicit TimeoutQueue(Dispatcher& dispatcher);
  ~TimeoutQueue();
  TimeoutQueue(const TimeoutQueue&) = delete;
  TimeoutQueue& operator=(const TimeoutQueue&) = delete;

  // (Re)arms `entry` to fire `timeout` from now.
  void arm(Entry& entry, std::chrono::milliseconds timeout);

 private:
  struct Lane {
    std::chrono::milliseconds timeout;
    Entry* head = nullptr;
    Entry* tail = nullptr;
  };
  void unlink(Entry& entry);
  void onTimer();
  void rearm();

  Dispatcher& dispatcher_;
  std::vector<Lane> lanes_;
  Timer timer_;
};

}  // namespace mcproxy::event

#include "source/common/event/timeout_queue.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mcproxy::event {
namespace {

void runFor(Dispatcher& dispatcher, std::chrono::milliseconds time) {
  bool over = false;
  Timer stop(dispatcher, [&over] { over = true; });
  stop.arm(time);
  while (!over) dispatcher.runOnce();
}

TEST(TimeoutQueueTest, EntriesFireInDeadlineOrderAcrossTimeouts) {
  Dispatcher dispatcher;
  TimeoutQueue queue(dispatcher);
  std::vector<std::string> fired;
  TimeoutQueue::Entry slow([&] { fired.push_back("slow"); });
  TimeoutQueue::Entry fast_a([&] { fired.push_back("fast_a"); });
  TimeoutQueue::Entry fast_b([&] { fired.push_back("fast_b"); });
  queue.arm(slow, std::chrono::milliseconds(60));
  queue.arm(fast_a, std::chrono::milliseconds(10));
  queue.arm(fast_b, std::chrono::milliseconds(10));
  EXPECT_TRUE(slow.armed());
  runFor(dispatcher, std::chrono::milliseconds(30));
  EXPECT_EQ(fired, (std::vector<std::string>{"fast_a", "fast_b"}));
  runFor(dispatcher, std::chrono::milliseconds(50));
  EXPECT_EQ(fired, (std::vector<std::string>{"fast_a", "fast_b", "slow"}));
  EXPECT_FALSE(slow.armed());
}

TEST(TimeoutQueueTest, CancelledRearmedAndDestroyedEntriesDoNotFire) {
  Dispatcher dispatcher;
  TimeoutQueue queue(dispatcher);
  int fired = 0;
  TimeoutQueue::Entry cancelled([&] { ++fired; });
  TimeoutQueue::Entry rearmed([&] { ++fired; });
  queue.arm(cancelled, std::chrono::milliseconds(10));
  queue.arm(rearmed, std::chrono::milliseconds(10));
  {
    TimeoutQueue::Entry gone([&] { ++fired; });
    queue.arm(gone, std::chrono::milliseconds(10));
  }  // unlinks itself
  cancelled.cancel();
  queue.arm(rearmed, std::chrono::milliseconds(200));
  runFor(dispatcher, std::chrono::milliseconds(40));
  EXPECT_EQ(fired, 0);
  EXPECT_TRUE(rearmed.armed());
}

TEST(TimeoutQueueTest, ACallbackMayArmAndDestroyOthers) {
  Dispatcher dispatcher;
  TimeoutQueue queue(dispatcher);
  std::vector<std::string> fired;
  auto victim = std::make_unique<TimeoutQueue::Entry>([&] { fired.push_back("victim"); });
  TimeoutQueue::Entry later([&] { fired.push_back("later"); });
  TimeoutQueue::Entry first([&] {
    fired.push_back("first");
    victim.reset();
    queue.arm(later, std::chrono::milliseconds(5));
  });
  queue.arm(first, std::chrono::milliseconds(5));
  queue.arm(*victim, std::chrono::milliseconds(5));
  runFor(dispatcher, std::chrono::milliseconds(40));
  EXPECT_EQ(fired, (std::vector<std::string>{"first", "later"}));
}

}  // namespace
}  // namespace mcproxy::event

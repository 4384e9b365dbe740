#include "source/common/event/handle_slots.h"

#include <gtest/gtest.h>

#include <thread>

namespace mcproxy::event {
namespace {

TEST(HandleSlotsTest, AHandleResolvesUntilReleasedAndNeverAfter) {
  HandleSlots slots;
  int owner = 0;
  const uintptr_t handle = slots.acquire(&owner, 1);
  HandleSlots::Problem problem;
  EXPECT_EQ(HandleSlots::resolve(handle, 1, problem), &owner);
  EXPECT_EQ(problem, HandleSlots::Problem::kNone);
  EXPECT_EQ(HandleSlots::resolve(handle, 2, problem), nullptr);  // another kind
  EXPECT_EQ(problem, HandleSlots::Problem::kEnded);
  slots.release(handle);
  EXPECT_EQ(HandleSlots::resolve(handle, 1, problem), nullptr);
  EXPECT_EQ(problem, HandleSlots::Problem::kEnded);
  EXPECT_EQ(HandleSlots::resolve(0, 1, problem), nullptr);
}

TEST(HandleSlotsTest, AReusedSlotDoesNotAnswerAnOldHandle) {
  HandleSlots slots;
  int first = 0;
  int second = 0;
  const uintptr_t old = slots.acquire(&first, 1);
  slots.release(old);
  // Slots are reused oldest first: cycle through every free one to land on the same slot.
  uintptr_t again = 0;
  for (int i = 0; i < 1000; ++i) {
    again = slots.acquire(&second, 1);
    if ((again & ((uintptr_t{1} << 48) - 1)) == (old & ((uintptr_t{1} << 48) - 1))) break;
    slots.release(again);
  }
  ASSERT_EQ(again & ((uintptr_t{1} << 48) - 1), old & ((uintptr_t{1} << 48) - 1));
  HandleSlots::Problem problem;
  EXPECT_EQ(HandleSlots::resolve(old, 1, problem), nullptr);  // the generation moved on
  EXPECT_EQ(HandleSlots::resolve(again, 1, problem), &second);
}

TEST(HandleSlotsTest, AnotherThreadGetsWrongThread) {
  HandleSlots slots;
  int owner = 0;
  const uintptr_t handle = slots.acquire(&owner, 1);
  HandleSlots::Problem problem = HandleSlots::Problem::kNone;
  void* resolved = &owner;
  std::thread([&] { resolved = HandleSlots::resolve(handle, 1, problem); }).join();
  EXPECT_EQ(resolved, nullptr);
  EXPECT_EQ(problem, HandleSlots::Problem::kWrongThread);
}

}  // namespace
}  // namespace mcproxy::event

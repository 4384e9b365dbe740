#include "source/common/http/nghttp2_memory.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "test/common/http/resident_pages.h"

namespace mcproxy::http {
namespace {

// Everything the session has to send, copied out as the proxy's codecs do.
std::string sendAll(nghttp2_session* session) {
  std::string out;
  const uint8_t* data = nullptr;
  ssize_t n;
  while ((n = nghttp2_session_mem_send(session, &data)) > 0) {
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  return out;
}

class Sessions : public testing::Test {
 protected:
  void SetUp() override {
    nghttp2_session_callbacks_new(&callbacks_);
    for (auto& entry : sessions_) {
      entry.memory = std::make_unique<SessionMemory>();
      ASSERT_EQ(nghttp2_session_server_new3(&entry.session, callbacks_, nullptr, nullptr,
                                            entry.memory->allocator()),
                0);
      const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
      nghttp2_submit_settings(entry.session, NGHTTP2_FLAG_NONE, settings, 1);
      ASSERT_EQ(sendAll(entry.session).size(), 9u + 6u);  // SETTINGS: the frame buffer's page
    }
  }
  void TearDown() override {
    for (auto& entry : sessions_) nghttp2_session_del(entry.session);
    nghttp2_session_callbacks_del(callbacks_);
  }

  struct Entry {
    std::unique_ptr<SessionMemory> memory;
    nghttp2_session* session = nullptr;
  };
  nghttp2_session_callbacks* callbacks_ = nullptr;
  std::vector<Entry> sessions_ = std::vector<Entry>(256);
};

TEST_F(Sessions, IdleSessionsGiveTheirFrameBufferPagesBack) {
  const size_t before = test::residentPages();
  for (auto& entry : sessions_) entry.memory->releaseIdlePages();
  const size_t released = before - test::residentPages();
  // One written page each (the SETTINGS frame); allow for anything else the process touched.
  EXPECT_GE(released, sessions_.size() * 9 / 10);
  EXPECT_LE(released, sessions_.size() * 11 / 10);
}

TEST_F(Sessions, ASessionSendsIntactFramesAfterItsBufferWasReleased) {
  const uint8_t opaque[8] = {'p', 'i', 'n', 'g', 'd', 'a', 't', 'a'};
  for (auto& entry : sessions_) {
    entry.memory->releaseIdlePages();
    nghttp2_submit_ping(entry.session, NGHTTP2_FLAG_NONE, opaque);
    const std::string frame = sendAll(entry.session);
    ASSERT_EQ(frame, std::string("\0\0\x08\x06\0\0\0\0\0pingdata", 17));
    entry.memory->releaseIdlePages();  // twice in a row is harmless
  }
}

TEST(SessionMemory, OtherBlocksGiveBackOnlyPagesOfZeros) {
  SessionMemory memory;
  nghttp2_mem* allocator = memory.allocator();
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  auto* block = static_cast<volatile char*>(allocator->malloc(4 * page, allocator->mem_user_data));
  ASSERT_NE(block, nullptr);
  block[0] = 7;         // page 0: data
  block[page] = 0;      // page 1: written, all zeros
  block[2 * page] = 1;  // page 2: written, zeros again
  block[2 * page] = 0;
  auto resident = [&](size_t index) {
    unsigned char in_core = 0;
    mincore(const_cast<char*>(block) + index * page, page, &in_core);
    return (in_core & 1) != 0;
  };
  ASSERT_TRUE(resident(0) && resident(1) && resident(2));
  memory.releaseIdlePages();
  EXPECT_TRUE(resident(0));
  EXPECT_EQ(block[0], 7);
  EXPECT_FALSE(resident(1));
  EXPECT_FALSE(resident(2));
  EXPECT_EQ(block[page], 0);
  allocator->free(const_cast<char*>(block), allocator->mem_user_data);
}

}  // namespace
}  // namespace mcproxy::http

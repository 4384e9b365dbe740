#include "source/common/http/nghttp2_memory.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace mcproxy::http {
namespace {

size_t residentPages() {
  std::ifstream statm("/proc/self/statm");
  size_t size = 0;
  size_t resident = 0;
  statm >> size >> resident;
  return resident;
}

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
  const size_t before = residentPages();
  for (auto& entry : sessions_) entry.memory->releaseFrameBuffer();
  const size_t released = before - residentPages();
  // One written page each (the SETTINGS frame); allow for anything else the process touched.
  EXPECT_GE(released, sessions_.size() * 9 / 10);
  EXPECT_LE(released, sessions_.size() * 11 / 10);
}

TEST_F(Sessions, ASessionSendsIntactFramesAfterItsBufferWasReleased) {
  const uint8_t opaque[8] = {'p', 'i', 'n', 'g', 'd', 'a', 't', 'a'};
  for (auto& entry : sessions_) {
    entry.memory->releaseFrameBuffer();
    nghttp2_submit_ping(entry.session, NGHTTP2_FLAG_NONE, opaque);
    const std::string frame = sendAll(entry.session);
    ASSERT_EQ(frame, std::string("\0\0\x08\x06\0\0\0\0\0pingdata", 17));
    entry.memory->releaseFrameBuffer();  // twice in a row is harmless
  }
}

TEST(SessionMemory, AnAllocatorWithoutASessionReleasesNothing) {
  SessionMemory memory;
  memory.releaseFrameBuffer();
  nghttp2_mem* allocator = memory.allocator();
  void* block = allocator->malloc(64 * 1024, allocator->mem_user_data);
  ASSERT_NE(block, nullptr);
  static_cast<char*>(block)[0] = 7;
  memory.releaseFrameBuffer();  // not a frame buffer's size: kept
  EXPECT_EQ(static_cast<char*>(block)[0], 7);
  allocator->free(block, allocator->mem_user_data);
}

}  // namespace
}  // namespace mcproxy::http

#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <vector>

namespace mcproxy::http {

// The allocator every nghttp2 session of the proxy uses. Blocks of a page or more (the 16 KiB
// outbound frame buffer and the 4 KiB stream map nghttp2 gives each session up front) come
// straight from mmap, without a header: their pages cost memory only once written, so an idle
// connection pays for what its session has used rather than for what it might. Smaller blocks
// come from malloc.
nghttp2_mem* lazyPagesAllocator();

// The same allocator for one session, which also keeps a list of the session's mapped blocks
// and knows which is its outbound frame buffer (the one nghttp2 allocates first thing and
// keeps), so that a connection gone quiet can give pages back. Must outlive its session.
class SessionMemory {
 public:
  SessionMemory();
  SessionMemory(const SessionMemory&) = delete;
  SessionMemory& operator=(const SessionMemory&) = delete;

  nghttp2_mem* allocator() { return &allocator_; }
  // Returns to the kernel the frame buffer's pages and every other written page of the
  // session's mapped blocks that holds only zeros (the stream map once its streams are gone);
  // all read as zeros when next touched. Only while the session has nothing to send
  // (!nghttp2_session_want_write()) and every byte nghttp2_session_mem_send() returned has been
  // copied out: the frame buffer's bytes are dead then.
  void releaseIdlePages();

  // For the allocator's callbacks.
  void onAllocated(void* block, size_t size);
  void onReleased(void* block);

 private:
  struct Block {
    void* start;
    size_t size;
  };
  nghttp2_mem allocator_;
  std::vector<Block> blocks_;
  void* frame_buffer_ = nullptr;
};

}  // namespace mcproxy::http

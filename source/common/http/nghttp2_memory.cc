#include "source/common/http/nghttp2_memory.h"

#include <malloc.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace mcproxy::http {
namespace {

// Blocks from one page on are mapped; smaller ones come from malloc.
constexpr size_t kPage = 4096;
constexpr size_t kMapThreshold = kPage;
// nghttp2's NGHTTP2_FRAMEBUF_CHUNKLEN (frame header, pad length, 16 KiB payload; private to the
// library): the size of the outbound frame buffer a session allocates as it is made. Should a
// later nghttp2 change it, no buffer is found and nothing is released.
constexpr size_t kFrameBufferSize = 9 + 1 + 16384;

// The sizes of the mapped blocks. Mapped blocks carry no header: a header would be written into
// their first page, and an untouched page is the point. Only a page-aligned pointer can be one
// of them, so most frees never look here. One table for the process, behind a mutex: a session
// may be freed on another thread than the one that made it (a worker's leftovers are destroyed
// by the main thread at exit), and the lock is taken only around mmap()/munmap(), which take
// the kernel's lock on the address space anyway: a few times per HTTP/2 session, never per
// request.
struct MappedBlocks {
  std::mutex mutex;
  std::unordered_map<void*, size_t> sizes;
};

MappedBlocks& mappedBlocks() {
  static MappedBlocks blocks;
  return blocks;
}

bool pageAligned(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & (kPage - 1)) == 0; }

// The mapped size of `ptr`, or 0 when it came from malloc. With `forget`, the block also leaves
// the table (it is about to be unmapped).
size_t mappedSize(void* ptr, bool forget = false) {
  if (!pageAligned(ptr)) return 0;
  MappedBlocks& blocks = mappedBlocks();
  std::lock_guard<std::mutex> lock(blocks.mutex);
  auto it = blocks.sizes.find(ptr);
  if (it == blocks.sizes.end()) return 0;
  const size_t size = it->second;
  if (forget) blocks.sizes.erase(it);
  return size;
}

// user_data is the SessionMemory of a session, or null (lazyPagesAllocator()).
void* allocate(size_t size, void* user_data) {
  if (size < kMapThreshold) return std::malloc(size);
  void* mapped = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) return nullptr;
  {
    MappedBlocks& blocks = mappedBlocks();
    std::lock_guard<std::mutex> lock(blocks.mutex);
    blocks.sizes.emplace(mapped, size);
  }
  if (user_data != nullptr) static_cast<SessionMemory*>(user_data)->onAllocated(mapped, size);
  return mapped;
}

void release(void* ptr, void* user_data) {
  if (ptr == nullptr) return;
  if (const size_t size = mappedSize(ptr, /*forget=*/true)) {
    // Only mapped blocks are a session's to track: small frees skip the lookup.
    if (user_data != nullptr) static_cast<SessionMemory*>(user_data)->onReleased(ptr);
    munmap(ptr, size);
    return;
  }
  std::free(ptr);
}

void* allocateZeroed(size_t count, size_t size, void* user_data) {
  if (size != 0 && count > SIZE_MAX / size) return nullptr;
  const size_t total = count * size;
  if (total < kMapThreshold) return std::calloc(count, size);
  return allocate(total, user_data);  // fresh mappings read as zero without being touched
}

void* reallocate(void* ptr, size_t size, void* user_data) {
  if (ptr == nullptr) return allocate(size, user_data);
  if (size == 0) {
    release(ptr, user_data);
    return nullptr;
  }
  const size_t old_mapped = mappedSize(ptr);
  if (old_mapped == 0 && size < kMapThreshold) return std::realloc(ptr, size);
  const size_t old_size = old_mapped != 0 ? old_mapped : malloc_usable_size(ptr);
  void* moved = allocate(size, user_data);
  if (moved == nullptr) return nullptr;
  std::memcpy(moved, ptr, old_size < size ? old_size : size);
  release(ptr, user_data);
  return moved;
}

bool allZeros(const char* page) {
  uint64_t bits = 0;
  for (size_t i = 0; i < kPage; i += sizeof(uint64_t)) {
    uint64_t word;
    std::memcpy(&word, page + i, sizeof(word));
    bits |= word;
  }
  return bits == 0;
}

// Gives back the resident pages of a mapped block that hold only zeros: what they will read
// as afterwards anyway, so this is safe whatever the block is.
void releaseZeroPages(char* start, size_t size) {
  constexpr size_t kBatch = 64;  // pages per mincore() call
  const size_t pages = (size + kPage - 1) / kPage;
  unsigned char resident[kBatch];
  for (size_t first = 0; first < pages; first += kBatch) {
    const size_t count = std::min(kBatch, pages - first);
    if (mincore(start + first * kPage, count * kPage, resident) != 0) return;
    for (size_t i = 0; i < count; ++i) {
      char* page = start + (first + i) * kPage;
      if ((resident[i] & 1) != 0 && allZeros(page)) madvise(page, kPage, MADV_DONTNEED);
    }
  }
}

}  // namespace

nghttp2_mem* lazyPagesAllocator() {
  static nghttp2_mem allocator{nullptr, &allocate, &release, &allocateZeroed, &reallocate};
  return &allocator;
}

SessionMemory::SessionMemory()
    : allocator_{this, &allocate, &release, &allocateZeroed, &reallocate} {}

void SessionMemory::onAllocated(void* block, size_t size) {
  blocks_.push_back({block, size});
  // The first block of that size is the buffer the session keeps; later ones (frames longer
  // than one buffer) come and go.
  if (frame_buffer_ == nullptr && size == kFrameBufferSize) frame_buffer_ = block;
}

void SessionMemory::onReleased(void* block) {
  if (block == frame_buffer_) frame_buffer_ = nullptr;
  std::erase_if(blocks_, [block](const Block& entry) { return entry.start == block; });
}

void SessionMemory::releaseIdlePages() {
  for (const Block& block : blocks_) {
    if (block.start == frame_buffer_) {
      madvise(block.start, block.size, MADV_DONTNEED);
    } else {
      releaseZeroPages(static_cast<char*>(block.start), block.size);
    }
  }
}

}  // namespace mcproxy::http

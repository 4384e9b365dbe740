#pragma once

#include <nghttp2/nghttp2.h>

namespace mcproxy::http {

// The allocator every nghttp2 session of the proxy uses. Blocks of a page or more (the 16 KiB
// outbound frame buffer and the 4 KiB stream map nghttp2 gives each session up front) come
// straight from mmap, without a header: their pages cost memory only once written, so an idle
// connection pays for what its session has used rather than for what it might. Smaller blocks
// come from malloc.
nghttp2_mem* lazyPagesAllocator();

}  // namespace mcproxy::http

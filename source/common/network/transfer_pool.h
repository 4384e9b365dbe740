#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "source/common/network/fd.h"

namespace mcproxy::network {

// Where a relay's bytes wait between reading one socket and writing the other: a kernel pipe
// (splice) or user-space memory. A relay holds one only while bytes are in flight: it takes one
// from its worker's pool when it reads and gives it back once it is empty, so an idle
// connection costs no pipe descriptors and no buffer (as HAProxy's pipe pool does).
struct TransferSpace {
  UniqueFd pipe_read;
  UniqueFd pipe_write;
  std::unique_ptr<char[]> buffer;
  size_t capacity = 0;
};

// A worker's idle TransferSpaces. The worker owns it; its relays borrow from it.
class TransferPool {
 public:
  // A pipe (`splice`) or buffer of about `capacity` bytes; nullptr with `error` (e.g. EMFILE).
  std::unique_ptr<TransferSpace> acquire(bool splice, size_t capacity, std::string& error);
  // `space` must be empty.
  void release(std::unique_ptr<TransferSpace> space);

 private:
  static constexpr size_t kMaxIdle = 64;  // per kind; enough for a worker's bursts
  std::vector<std::unique_ptr<TransferSpace>> pipes_;
  std::vector<std::unique_ptr<TransferSpace>> buffers_;
};

}  // namespace mcproxy::network

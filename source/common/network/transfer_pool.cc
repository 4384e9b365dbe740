#include "source/common/network/transfer_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mcproxy::network {

std::unique_ptr<TransferSpace> TransferPool::acquire(bool splice, size_t capacity,
                                                     std::string& error) {
  auto& idle = splice ? pipes_ : buffers_;
  std::unique_ptr<TransferSpace> space;
  if (!idle.empty()) {
    space = std::move(idle.back());
    idle.pop_back();
  } else {
    space = std::make_unique<TransferSpace>();
  }
  if (space->capacity == capacity) return space;
  if (!splice) {
    space->buffer = std::make_unique_for_overwrite<char[]>(capacity);
    space->capacity = capacity;
    return space;
  }
  if (!space->pipe_write.valid()) {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
      error = std::string("pipe2: ") + std::strerror(errno);
      return nullptr;
    }
    space->pipe_read.reset(fds[0]);
    space->pipe_write.reset(fds[1]);
  }
  // The kernel rounds up to whole pages and may refuse sizes above pipe-max-size; the pipe's
  // real size is what bounds the bytes in flight.
  ::fcntl(space->pipe_write.get(), F_SETPIPE_SZ, static_cast<int>(capacity));
  const int actual = ::fcntl(space->pipe_write.get(), F_GETPIPE_SZ);
  space->capacity = actual > 0 ? static_cast<size_t>(actual) : capacity;
  return space;
}

void TransferPool::release(std::unique_ptr<TransferSpace> space) {
  auto& idle = space->pipe_write.valid() ? pipes_ : buffers_;
  if (idle.size() < kMaxIdle) idle.push_back(std::move(space));
}

}  // namespace mcproxy::network

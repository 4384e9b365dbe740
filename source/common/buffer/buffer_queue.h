#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "source/common/buffer/buffer.h"

namespace mcproxy::buffer {

// Body bytes waiting to be sent, kept as the pieces they arrived in: appending takes a piece
// over without copying it, and the sender copies from the front into its frames as it goes.
// (A contiguous buffer would copy every piece that arrives while the previous ones still wait,
// and grow by reallocation.)
class BufferQueue {
 public:
  // Takes the bytes of `piece` (leaving it empty).
  void append(Buffer& piece) {
    if (piece.empty()) return;
    size_ += piece.size();
    if (head_ == pieces_.size()) {
      pieces_.clear();
      head_ = 0;
      front_offset_ = 0;
    }
    pieces_.push_back(piece.release());
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Copies up to `len` bytes from the front into `out`, drops them, and returns how many.
  size_t copyOut(void* out, size_t len) {
    size_t copied = 0;
    while (copied < len && head_ < pieces_.size()) {
      std::string& front = pieces_[head_];
      const size_t n = std::min(len - copied, front.size() - front_offset_);
      std::memcpy(static_cast<char*>(out) + copied, front.data() + front_offset_, n);
      copied += n;
      front_offset_ += n;
      if (front_offset_ == front.size()) {
        std::string().swap(front);  // its memory goes now, not with the queue
        ++head_;
        front_offset_ = 0;
      }
    }
    size_ -= copied;
    return copied;
  }
  // Moves up to `len` bytes from the front to the end of `out`; returns how many.
  size_t appendTo(std::string& out, size_t len) {
    const size_t start = out.size();
    out.resize(start + std::min(len, size_));
    const size_t n = copyOut(out.data() + start, out.size() - start);
    return n;
  }
  void clear() {
    pieces_.clear();
    head_ = 0;
    front_offset_ = 0;
    size_ = 0;
  }

 private:
  std::vector<std::string> pieces_;
  size_t head_ = 0;          // pieces_[head_] is the front piece
  size_t front_offset_ = 0;  // bytes of the front piece already copied out
  size_t size_ = 0;
};

}  // namespace mcproxy::buffer

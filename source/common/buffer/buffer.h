#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mcproxy::buffer {

// Contiguous bytes: what a socket gave and a network filter has not consumed yet (filters that
// only peek, like tls_inspector, read data(); the one that consumes drains), or a body passing
// through the HTTP filters and codecs.
class Buffer {
 public:
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(bytes_.data()) + start_; }
  size_t size() const { return bytes_.size() - start_; }
  bool empty() const { return size() == 0; }
  std::string_view view() const { return std::string_view(bytes_).substr(start_); }

  void append(const void* data, size_t len) {
    // Drained bytes at the front go once they are half of what is kept: a buffer that is
    // written and read in turns never grows past twice what it holds.
    if (start_ > 0 && start_ >= bytes_.size() / 2) {
      bytes_.erase(0, start_);
      start_ = 0;
    }
    bytes_.append(static_cast<const char*>(data), len);
  }
  void append(std::string_view data) { append(data.data(), data.size()); }
  // Moves every byte of `other` to the end of this one (without a copy when this is empty).
  void move(Buffer& other) {
    if (empty()) {
      bytes_ = other.release();
      start_ = 0;
    } else {
      append(other.view());
      other.clear();
    }
  }
  void drain(size_t len) {
    start_ += len < size() ? len : size();
    if (start_ == bytes_.size()) clear();
  }
  void clear() {
    bytes_.clear();
    start_ = 0;
  }
  // Moves every byte out, leaving the buffer empty.
  std::string release() {
    std::string out = start_ == 0 ? std::move(bytes_) : bytes_.substr(start_);
    clear();
    return out;
  }

 private:
  std::string bytes_;
  size_t start_ = 0;
};

}  // namespace mcproxy::buffer

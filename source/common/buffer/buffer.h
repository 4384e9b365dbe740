#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mcproxy::buffer {

// Contiguous bytes read from a socket but not yet consumed by a filter. Filters that only peek
// (tls_inspector) read data(); the filter that consumes the bytes drains them.
class Buffer {
 public:
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(bytes_.data()) + start_; }
  size_t size() const { return bytes_.size() - start_; }
  bool empty() const { return size() == 0; }
  std::string_view view() const { return std::string_view(bytes_).substr(start_); }

  void append(const void* data, size_t len) { bytes_.append(static_cast<const char*>(data), len); }
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

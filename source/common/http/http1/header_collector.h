#pragma once

#include <cstddef>

#include "source/common/http/headers.h"

namespace mcproxy::http::http1 {

// Collects a header section (or trailers) from http_parser's field and value callbacks, which
// split a name or a value wherever a read ended. Names are lower-cased. Shared by the server
// and the client codec: one place where a name split across reads stays one name.
class HeaderCollector {
 public:
  explicit HeaderCollector(size_t max_bytes) : max_bytes_(max_bytes) {}

  // Starts a section collected into `target`; `bytes_so_far` counts against the limit (the
  // request line).
  void start(HeaderMap& target, size_t bytes_so_far = 0) {
    target_ = &target;
    bytes_ = bytes_so_far;
    in_name_ = false;
  }
  // False when the section grew past the limit.
  bool onField(const char* at, size_t len);
  bool onValue(const char* at, size_t len);
  // Adds to the count without collecting (the request target).
  bool count(size_t len) {
    bytes_ += len;
    return bytes_ <= max_bytes_;
  }
  bool collecting() const { return target_ != nullptr; }
  void stop() { target_ = nullptr; }

 private:
  const size_t max_bytes_;
  HeaderMap* target_ = nullptr;
  size_t bytes_ = 0;
  bool in_name_ = false;  // the last piece was (part of) a name
};

}  // namespace mcproxy::http::http1

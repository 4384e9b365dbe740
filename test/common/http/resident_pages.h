#pragma once

#include <cstddef>
#include <fstream>

namespace mcproxy::test {

// The process's resident pages (/proc/self/statm): what memory a test made the process keep.
inline size_t residentPages() {
  std::ifstream statm("/proc/self/statm");
  size_t size = 0;
  size_t resident = 0;
  statm >> size >> resident;
  return resident;
}

}  // namespace mcproxy::test

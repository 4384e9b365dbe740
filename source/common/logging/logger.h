#pragma once

#include <atomic>
#include <cstdint>
#include <sstream>
#include <string>

namespace mcproxy::logging {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Process-wide minimum level; messages below it are not formatted at all.
Level minLevel();
void setMinLevel(Level level);
// Parses "debug", "info", "warn", "error"; returns false for anything else.
bool parseLevel(const std::string& text, Level& level);
// Names the calling thread in log lines ("main", "worker-0", ...).
void setThreadName(const std::string& name);

// Bounds how many lines a noisy event writes: `per_second` lines in each second, from any
// thread (atomics, no lock); the next line allowed says how many were left out.
class RateLimit {
 public:
  explicit RateLimit(int per_second) : per_second_(per_second) {}
  // True when a line may go out now; `suppressed` is set to how many were refused since the
  // last one allowed.
  bool allow(uint64_t& suppressed);

 private:
  const int per_second_;
  std::atomic<int64_t> second_{0};
  std::atomic<int> count_{0};
  std::atomic<uint64_t> suppressed_{0};
};

// One log line, written to stderr with a single write(2) when it goes out of scope so lines
// from different threads never interleave.
class LogLine {
 public:
  explicit LogLine(Level level) : level_(level) {}
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  template <typename T>
  LogLine& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  Level level_;
  std::ostringstream stream_;
};

}  // namespace mcproxy::logging

#define MC_LOG(level)                                                      \
  if (::mcproxy::logging::Level::level < ::mcproxy::logging::minLevel()) { \
  } else                                                                   \
    ::mcproxy::logging::LogLine(::mcproxy::logging::Level::level)

#define LOG_DEBUG MC_LOG(kDebug)
#define LOG_INFO MC_LOG(kInfo)
#define LOG_WARN MC_LOG(kWarn)
#define LOG_ERROR MC_LOG(kError)

#include "source/common/logging/logger.h"

#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <ctime>

namespace mcproxy::logging {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};
thread_local std::string t_thread_name = "main";

const char* levelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "?";
}

}  // namespace

bool RateLimit::allow(uint64_t& suppressed) {
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  int64_t second = second_.load(std::memory_order_relaxed);
  if (second != now && second_.compare_exchange_strong(second, now)) {
    count_.store(0, std::memory_order_relaxed);
  }
  if (count_.fetch_add(1, std::memory_order_relaxed) >= per_second_) {
    suppressed_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  suppressed = suppressed_.exchange(0, std::memory_order_relaxed);
  return true;
}

Level minLevel() { return static_cast<Level>(g_min_level.load(std::memory_order_relaxed)); }

void setMinLevel(Level level) { g_min_level.store(static_cast<int>(level)); }

bool parseLevel(const std::string& text, Level& level) {
  for (Level candidate : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError}) {
    if (text == levelName(candidate)) {
      level = candidate;
      return true;
    }
  }
  return false;
}

void setThreadName(const std::string& name) {
  t_thread_name = name;
  // Also the kernel's name (15 bytes): `top -H`, /proc/PID/task/TID/comm and tools/bench's
  // per-worker CPU see it.
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

LogLine::~LogLine() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char stamp[32];
  const size_t n = std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(stamp + n, sizeof(stamp) - n, ".%03dZ", static_cast<int>(millis));

  std::string line;
  line.reserve(96);
  line.append("[").append(stamp).append("][").append(levelName(level_)).append("][");
  line.append(t_thread_name).append("] ").append(stream_.str()).append("\n");
  size_t written = 0;
  while (written < line.size()) {
    const ssize_t rc = ::write(STDERR_FILENO, line.data() + written, line.size() - written);
    if (rc <= 0) break;
    written += static_cast<size_t>(rc);
  }
}

}  // namespace mcproxy::logging

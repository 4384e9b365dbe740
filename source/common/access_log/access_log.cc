#include "source/common/access_log/access_log.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "source/common/json/json_string.h"
#include "source/common/logging/logger.h"
#include "source/common/router/route.h"

namespace mcproxy::access_log {
namespace {

constexpr int kWaitMs = 200;  // a bound on how long a line waits if a wake-up is missed

using formatter::Field;

// The fields every line has, then a connection's or a request's own.
constexpr Field kCommonFields[] = {
    Field::kTime,       Field::kListener,  Field::kClientIp,   Field::kClientPort, Field::kPeerIp,
    Field::kSni,        Field::kAlpn,      Field::kRoute,      Field::kMode,       Field::kBackend,
    Field::kTlsVersion, Field::kTlsCipher, Field::kDurationMs, Field::kCloseReason};
constexpr Field kConnectionFields[] = {Field::kBytesFromClient, Field::kBytesToClient,
                                       Field::kTlsFailure, Field::kClientCertSubject,
                                       Field::kClientCertSha256};
constexpr Field kRequestFields[] = {Field::kMethod,
                                    Field::kAuthority,
                                    Field::kPath,
                                    Field::kProtocol,
                                    Field::kStatus,
                                    Field::kRequestBytes,
                                    Field::kResponseBytes,
                                    Field::kUpstreamConnectMs,
                                    Field::kUpstreamResponseMs,
                                    Field::kRequestId,
                                    Field::kUserAgent,
                                    Field::kClientCertSubject,
                                    Field::kClientCertSha256};

// `,"key":` for each field, made once: a line is 25 of them.
const std::vector<std::string>& jsonKeys() {
  static const std::vector<std::string> kKeys = [] {
    std::vector<std::string> keys;
    for (const formatter::FieldName& name : formatter::fieldNames()) {
      keys.push_back(std::string(",\"") + name.json + "\":");
    }
    return keys;
  }();
  return kKeys;
}

void appendJsonField(Field field, const formatter::Context& context, std::string& out,
                     std::string& scratch) {
  out += jsonKeys()[static_cast<size_t>(field)];
  if (formatter::nameOf(field).number) {  // digits need no escaping: straight into the line
    if (!formatter::appendField(field, context, out)) out += "null";
    return;
  }
  scratch.clear();
  if (formatter::appendField(field, context, scratch)) {
    json::appendString(scratch, out);
  } else {
    out += "\"\"";
  }
}

}  // namespace

// ---- File ----

absl::StatusOr<std::shared_ptr<File>> File::open(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("empty path");
  std::shared_ptr<File> file(new File(path));
  if (path == "-") return file;
  file->fd_.reset(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
  if (!file->fd_.valid()) {
    return absl::InvalidArgumentError(path + ": " + std::strerror(errno));
  }
  return file;
}

bool File::write(const std::vector<std::string>& lines, std::string& error) {
  const int fd = path_ == "-" ? STDOUT_FILENO : fd_.get();
  constexpr size_t kPerCall = 256;  // well under IOV_MAX
  iovec chunks[kPerCall];
  size_t next = 0;    // the first line not yet (wholly) written
  size_t offset = 0;  // what of it was written already
  while (next < lines.size()) {
    size_t count = 0;
    for (size_t i = next; i < lines.size() && count < kPerCall; ++i, ++count) {
      const size_t skip = i == next ? offset : 0;
      chunks[count] = {const_cast<char*>(lines[i].data() + skip), lines[i].size() - skip};
    }
    ssize_t n = ::writev(fd, chunks, static_cast<int>(count));
    if (n < 0) {
      if (errno == EINTR) continue;
      error = path_ + ": " + std::strerror(errno);
      return false;
    }
    while (n > 0 && next < lines.size()) {  // a short write goes on where it stopped
      const size_t left = lines[next].size() - offset;
      if (static_cast<size_t>(n) < left) {
        offset += static_cast<size_t>(n);
        break;
      }
      n -= static_cast<ssize_t>(left);
      ++next;
      offset = 0;
    }
  }
  return true;
}

std::string File::reopen() {
  if (path_ == "-") return "";
  network::UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
  if (!fd.valid()) return path_ + ": " + std::strerror(errno);
  fd_ = std::move(fd);
  return "";
}

// ---- WorkerQueue ----

WorkerQueue::WorkerQueue(Writer& writer, size_t capacity)
    : writer_(writer), slots_(capacity), mask_(capacity - 1) {}

void WorkerQueue::push(Entry&& entry) {
  const size_t head = head_.load(std::memory_order_relaxed);
  if (head - tail_.load(std::memory_order_acquire) > mask_) {
    writer_.onDropped();
    return;
  }
  slots_[head & mask_] = std::move(entry);
  head_.store(head + 1, std::memory_order_seq_cst);
  writer_.onPushed();
}

bool WorkerQueue::pop(Entry& entry) {
  const size_t tail = tail_.load(std::memory_order_relaxed);
  if (tail == head_.load(std::memory_order_acquire)) return false;
  entry = std::move(slots_[tail & mask_]);
  slots_[tail & mask_] = Entry{};  // the file reference goes now, not when the slot is reused
  tail_.store(tail + 1, std::memory_order_release);
  return true;
}

bool WorkerQueue::empty() const {
  return tail_.load(std::memory_order_relaxed) == head_.load(std::memory_order_seq_cst);
}

// ---- Writer ----

Writer::Writer(stats::Store& stats)
    : stats_{stats.counter("access_log.lines",
                           {"mcproxy_access_log_lines_total", {}, "Access log lines written."}),
             stats.counter("access_log.dropped",
                           {"mcproxy_access_log_dropped_total",
                            {},
                            "Access log lines dropped: a worker's queue was full."}),
             stats.counter("access_log.write_errors", {"mcproxy_access_log_write_errors_total",
                                                       {},
                                                       "Access log lines lost to failed writes."}),
             stats.counter(
                 "access_log.reopens",
                 {"mcproxy_access_log_reopens_total", {}, "Access log files reopened (SIGUSR1)."})},
      wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

Writer::~Writer() {
  if (thread_.joinable()) {
    stopping_.store(true);
    const uint64_t one = 1;
    (void)!::write(wake_fd_.get(), &one, sizeof(one));
    thread_.join();
  }
}

WorkerQueue& Writer::addQueue() {
  queues_.push_back(std::make_unique<WorkerQueue>(*this, kQueueCapacity));
  return *queues_.back();
}

void Writer::start() {
  thread_ = std::thread([this] {
    logging::setThreadName("access-log");
    run();
  });
}

void Writer::reopenFiles() { reopen_generation_.fetch_add(1); }

void Writer::onPushed() {
  // The thread announced it sleeps (and looked at the queues after that): wake it. Otherwise it
  // is busy and will see the line without a system call.
  if (sleeping_.load(std::memory_order_seq_cst) && sleeping_.exchange(false)) {
    const uint64_t one = 1;
    (void)!::write(wake_fd_.get(), &one, sizeof(one));
  }
}

void Writer::run() {
  while (true) {
    if (drain()) continue;
    if (stopping_.load()) return;  // nothing was left
    wait();
  }
}

bool Writer::drain() {
  // Lines go out per file, in the order each worker queued them.
  size_t lines = 0;
  Entry entry;
  const uint64_t generation = reopen_generation_.load();
  for (auto& queue : queues_) {
    // A bounded round per queue: a busy worker does not starve the others' files.
    for (int i = 0; i < 1024 && queue->pop(entry); ++i) {
      auto batch = std::find_if(batches_.begin(), batches_.end(),
                                [&](const Batch& b) { return b.file == entry.file; });
      if (batch == batches_.end()) batch = batches_.insert(batches_.end(), {entry.file, {}});
      batch->lines.push_back(std::move(entry.line));
      ++lines;
    }
  }
  for (Batch& batch : batches_) {
    if (batch.lines.empty()) continue;
    File& file = *batch.file;
    if (file.generation == File::kNever) file.generation = generation;  // just opened
    if (file.generation != generation) {
      file.generation = generation;
      const std::string error = file.reopen();
      if (error.empty()) {
        stats_.reopens.inc();
      } else {
        LOG_ERROR << "access log: cannot reopen " << error << "; still writing the old file";
      }
    }
    std::string error;
    const size_t count = batch.lines.size();
    if (file.write(batch.lines, error)) {
      stats_.lines.inc(count);
    } else {
      stats_.write_errors.inc(count);
      LOG_ERROR << "access log: " << error << "; " << count << " lines lost";
    }
    batch.lines.clear();
  }
  if (lines == 0) {
    // A quiet round: files no line needed are let go (a reload may have dropped them).
    batches_.clear();
  }
  return lines > 0;
}

void Writer::wait() {
  sleeping_.store(true, std::memory_order_seq_cst);
  for (const auto& queue : queues_) {
    if (!queue->empty()) {
      sleeping_.store(false);
      return;
    }
  }
  if (stopping_.load()) {
    sleeping_.store(false);
    return;
  }
  pollfd wake{wake_fd_.get(), POLLIN, 0};
  ::poll(&wake, 1, kWaitMs);
  sleeping_.store(false);
  uint64_t count;
  (void)!::read(wake_fd_.get(), &count, sizeof(count));
}

// ---- AccessLog ----

std::string AccessLog::connectionLine(const network::StreamInfo& connection) const {
  return line({connection}, false);
}

std::string AccessLog::requestLine(const formatter::Context& context) const {
  return line(context, true);
}

std::string AccessLog::line(const formatter::Context& context, bool request) const {
  if (format_ == Format::kText) return text_.format(context) + "\n";
  std::string out;
  out.reserve(512);
  out += request ? "{\"kind\":\"request\"" : "{\"kind\":\"connection\"";
  std::string scratch;
  for (Field field : kCommonFields) appendJsonField(field, context, out, scratch);
  if (request) {
    for (Field field : kRequestFields) appendJsonField(field, context, out, scratch);
  } else {
    for (Field field : kConnectionFields) appendJsonField(field, context, out, scratch);
  }
  out += "}\n";
  return out;
}

bool logsConnection(const network::StreamInfo& connection) {
  if (connection.route == nullptr || connection.route->mode == router::RouteMode::kL4) {
    return true;
  }
  if (connection.requests > 0) return false;
  switch (connection.close_reason) {
    case network::CloseReason::kFinished:      // opened and closed without asking anything
    case network::CloseReason::kIdleTimeout:   // a preconnect that was never used
    case network::CloseReason::kDrainTimeout:  // the proxy shut down
    case network::CloseReason::kDownstreamReset:
      return false;
    default:
      return true;
  }
}

void write(WorkerQueue& queue, const AccessLog& log, std::string line) {
  if (log.file()) queue.push({log.file(), std::move(line)});
}

}  // namespace mcproxy::access_log

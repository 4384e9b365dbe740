#pragma once

#include <absl/status/statusor.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "source/common/formatter/formatter.h"
#include "source/common/network/fd.h"
#include "source/common/stats/stats.h"

namespace mcproxy::access_log {

// A file access log lines are appended to ("-": standard output). Opened when a config naming
// it is compiled, so that a path that cannot be written is a config error; after that written
// and reopened only by the writer thread.
class File {
 public:
  static absl::StatusOr<std::shared_ptr<File>> open(const std::string& path);

  const std::string& path() const { return path_; }
  // Writer thread only. Appends `lines` (each ending in '\n') with as few writev(2) calls as
  // it takes; false with `error` set on failure.
  bool write(const std::vector<std::string>& lines, std::string& error);
  // Writer thread only: opens the path again (after logrotate renamed it). On failure the old
  // descriptor stays and the reason is returned.
  std::string reopen();
  // The reopen generation this file was last opened in (writer thread only; kNever until its
  // first line).
  static constexpr uint64_t kNever = ~uint64_t{0};
  uint64_t generation = kNever;

 private:
  explicit File(std::string path) : path_(std::move(path)) {}
  std::string path_;
  network::UniqueFd fd_;  // invalid for "-": standard output, never reopened
};

// A line on its way to a file.
struct Entry {
  std::shared_ptr<File> file;
  std::string line;  // ends with '\n'
};

class Writer;

// Lines from one worker to the writer thread: a bounded single-producer, single-consumer ring
// without locks. A worker never waits: when the ring is full the line is dropped and counted.
class WorkerQueue {
 public:
  WorkerQueue(Writer& writer, size_t capacity);

  // The worker's side.
  void push(Entry&& entry);
  // The writer thread's side.
  bool pop(Entry& entry);
  bool empty() const;

 private:
  Writer& writer_;
  std::vector<Entry> slots_;
  const size_t mask_;
  alignas(64) std::atomic<size_t> head_{0};  // next slot the worker fills
  alignas(64) std::atomic<size_t> tail_{0};  // next slot the writer empties
};

struct WriterStats {
  stats::Counter& lines;         // written
  stats::Counter& dropped;       // a worker's queue was full
  stats::Counter& write_errors;  // lines lost to a failed write
  stats::Counter& reopens;       // files opened again on request
};

// The logging thread: takes the lines every worker queued, appends them to their files (one
// write per file per round), and reopens files when asked (SIGUSR1, for logrotate). The data
// path only formats a line and pushes it; it never blocks on file I/O.
class Writer {
 public:
  // Lines a worker may have queued before its oldest is written; more are dropped.
  static constexpr size_t kQueueCapacity = 8192;

  explicit Writer(stats::Store& stats);
  // Writes what is still queued, then stops the thread.
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // A queue for one worker; made before the thread starts (the main thread, at startup).
  WorkerQueue& addQueue();
  void start();
  // Any thread: every file is opened again before its next line is written.
  void reopenFiles();

  // For WorkerQueue.
  void onPushed();
  void onDropped() { stats_.dropped.inc(); }

 private:
  void run();
  // Writes everything queued; false when nothing was.
  bool drain();
  void wait();

  // The lines of one round for one file (writer thread only; kept for their capacity).
  struct Batch {
    std::shared_ptr<File> file;
    std::vector<std::string> lines;
  };

  WriterStats stats_;
  std::vector<std::unique_ptr<WorkerQueue>> queues_;
  std::vector<Batch> batches_;
  network::UniqueFd wake_fd_;  // an eventfd the workers write when the thread sleeps
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> reopen_generation_{0};
  std::thread thread_;
};

enum class Format { kJson, kText };

// A compiled access_log setting: where lines go and how they look. Immutable, owned by the
// snapshot (through its listener); the file it writes is shared with the snapshots after it.
class AccessLog {
 public:
  // `text`: the line's format, for Format::kText.
  AccessLog(std::shared_ptr<File> file, Format format, formatter::Formatter text = {})
      : file_(std::move(file)), format_(format), text_(std::move(text)) {}

  // Null when the config was only validated (the CLI): nothing is written.
  const std::shared_ptr<File>& file() const { return file_; }
  // One line (with '\n') for a connection (L4, or refused), and for a request.
  std::string connectionLine(const network::StreamInfo& connection) const;
  std::string requestLine(const formatter::Context& context) const;

 private:
  std::string line(const formatter::Context& context, bool request) const;

  std::shared_ptr<File> file_;
  Format format_;
  formatter::Formatter text_;
};

// Whether a closed connection gets a line of its own: an L4 connection, and one refused before
// any request (no route, firewall, a bad PROXY header or ClientHello, a failed handshake). An
// L7 connection that carried requests is logged by them.
bool logsConnection(const network::StreamInfo& connection);

// Queues `line` for `log`'s file on this worker's queue (no-op when the log was only validated).
void write(WorkerQueue& queue, const AccessLog& log, std::string line);

}  // namespace mcproxy::access_log

#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

namespace mcproxy::http::http2 {

// RFC 9113 §5.1 for the streams nghttp2 no longer remembers (the server session keeps no closed
// streams, to stay small at rest): which stream ids the client opened, as runs of consecutive
// ids, and how the most recent streams closed. 140 bytes per connection, no allocation.
class ClosedStreams {
 public:
  enum class Verdict {
    kIgnore,         // §5.1: frames on a stream we reset may still be in flight
    kStreamClosed,   // §5.1 closed: DATA or HEADERS on a closed stream
    kProtocolError,  // §5.1.1: a new stream with an id lower than one already opened
  };

  // The client opened `id` (ids only grow: nghttp2 refuses a lower one as a new stream).
  void onOpened(int32_t id);
  // We sent RST_STREAM on `id` (nghttp2 or the proxy).
  void onResetSent(int32_t id);
  void onClosed(int32_t id);
  int32_t highestOpened() const { return runs_count_ == 0 ? 0 : runs_[runs_count_ - 1].last; }

  // What to do with a DATA (`headers` false) or HEADERS frame for client stream `id` that no
  // open stream has, with id <= highestOpened().
  Verdict judge(int32_t id, bool headers) const;

 private:
  struct Run {
    int32_t first;
    int32_t last;
  };
  // Past this many runs the two oldest merge: ids in the gap then count as opened (their
  // frames get STREAM_CLOSED rather than PROTOCOL_ERROR; both end the connection).
  static constexpr size_t kMaxRuns = 8;
  static constexpr size_t kRecent = 16;

  bool opened(int32_t id) const;
  // Where `id` is in the ring, or kRecent.
  size_t findRecent(int32_t id) const;
  void remember(int32_t entry);

  std::array<Run, kMaxRuns> runs_{};
  uint8_t runs_count_ = 0;
  uint8_t next_recent_ = 0;
  uint8_t resets_in_ring_ = 0;  // negative entries of recent_: none, and onClosed need not look
  // A ring, by close order: the stream id, negated when we reset the stream (ids are 31-bit).
  std::array<int32_t, kRecent> recent_{};
};

// Finds the frame headers in what a client sends (after the 24-byte preface), across reads.
// nghttp2 calls nothing for a DATA frame on a stream it no longer has, so the server codec feeds
// it up to each DATA or HEADERS frame and judges that frame first (ClosedStreams).
class FrameHeaderScanner {
 public:
  // Calls on_header(offset, type, stream_id) for each frame header completed in `data`; offset
  // is where the header starts in `data` (0 when it began in an earlier read). Stops early when
  // on_header returns false.
  template <class OnHeader>
  void scan(const char* data, size_t len, OnHeader on_header) {
    size_t at = 0;
    while (at < len) {
      if (skip_ > 0) {
        const size_t n = std::min(skip_, len - at);
        skip_ -= n;
        at += n;
        continue;
      }
      const size_t start = at;
      while (have_ < sizeof(header_) && at < len) {
        header_[have_++] = static_cast<uint8_t>(data[at++]);
      }
      if (have_ < sizeof(header_)) return;
      have_ = 0;
      skip_ = (size_t{header_[0]} << 16) | (size_t{header_[1]} << 8) | header_[2];
      const int32_t stream = static_cast<int32_t>(((uint32_t{header_[5]} & 0x7f) << 24) |
                                                  (uint32_t{header_[6]} << 16) |
                                                  (uint32_t{header_[7]} << 8) | header_[8]);
      // A header split over reads continues at the start of the next one: `start` is 0 then.
      if (!on_header(start, header_[3], stream)) return;
    }
  }

 private:
  size_t skip_ = 24;  // the client preface, then the payload of the current frame
  uint8_t header_[9];
  size_t have_ = 0;
};

}  // namespace mcproxy::http::http2

#include "source/common/http/http2/closed_streams.h"

#include <cstdlib>

namespace mcproxy::http::http2 {

void ClosedStreams::onOpened(int32_t id) {
  if (runs_count_ > 0 && id == runs_[runs_count_ - 1].last + 2) {
    runs_[runs_count_ - 1].last = id;
    return;
  }
  if (runs_count_ == kMaxRuns) {
    runs_[1].first = runs_[0].first;
    std::move(runs_.begin() + 1, runs_.end(), runs_.begin());
    --runs_count_;
  }
  runs_[runs_count_++] = {id, id};
}

size_t ClosedStreams::findRecent(int32_t id) const {
  for (size_t i = 0; i < kRecent; ++i) {
    if (std::abs(recent_[i]) == id) return i;
  }
  return kRecent;
}

void ClosedStreams::remember(int32_t entry) {
  if (recent_[next_recent_] < 0) --resets_in_ring_;
  if (entry < 0) ++resets_in_ring_;
  recent_[next_recent_] = entry;
  next_recent_ = static_cast<uint8_t>((next_recent_ + 1) % kRecent);
}

void ClosedStreams::onResetSent(int32_t id) {
  const size_t at = findRecent(id);
  if (at != kRecent) {
    if (recent_[at] > 0) ++resets_in_ring_;
    recent_[at] = -id;
  } else {
    remember(-id);
  }
}

void ClosedStreams::onClosed(int32_t id) {
  // Every stream closes: look for our reset only when the ring holds one.
  if (resets_in_ring_ > 0) {
    for (const int32_t entry : recent_) {
      if (entry == -id) return;  // reset by us: recorded then
    }
  }
  remember(id);
}

bool ClosedStreams::opened(int32_t id) const {
  for (size_t i = 0; i < runs_count_; ++i) {
    const Run& run = runs_[i];
    if (id >= run.first && id <= run.last && (id - run.first) % 2 == 0) return true;
  }
  return false;
}

ClosedStreams::Verdict ClosedStreams::judge(int32_t id, bool headers) const {
  const size_t at = findRecent(id);
  if (at != kRecent && recent_[at] < 0) return Verdict::kIgnore;
  if (headers && !opened(id)) return Verdict::kProtocolError;
  return Verdict::kStreamClosed;
}

}  // namespace mcproxy::http::http2

#include "source/common/http/http2/closed_streams.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

namespace mcproxy::http::http2 {
namespace {

using Verdict = ClosedStreams::Verdict;

TEST(ClosedStreams, FramesOnAStreamWeResetAreIgnored) {
  ClosedStreams streams;
  streams.onOpened(1);
  streams.onResetSent(1);
  streams.onClosed(1);
  EXPECT_EQ(streams.judge(1, /*headers=*/false), Verdict::kIgnore);
  EXPECT_EQ(streams.judge(1, /*headers=*/true), Verdict::kIgnore);
}

TEST(ClosedStreams, FramesOnAStreamThatEndedOrTheClientResetAreStreamClosed) {
  ClosedStreams streams;
  streams.onOpened(1);
  streams.onClosed(1);
  streams.onOpened(3);
  streams.onClosed(3);  // the client reset it: we sent nothing
  EXPECT_EQ(streams.judge(1, false), Verdict::kStreamClosed);
  EXPECT_EQ(streams.judge(3, true), Verdict::kStreamClosed);
}

TEST(ClosedStreams, HeadersOpeningALowerStreamIdIsAProtocolError) {
  ClosedStreams streams;
  streams.onOpened(5);
  EXPECT_EQ(streams.highestOpened(), 5);
  EXPECT_EQ(streams.judge(3, /*headers=*/true), Verdict::kProtocolError);
  // DATA there is on a stream the first use of 5 closed implicitly (RFC 9113 §5.1.1).
  EXPECT_EQ(streams.judge(3, /*headers=*/false), Verdict::kStreamClosed);
}

TEST(ClosedStreams, OpenedIdsAreRememberedAsRunsAndStayBounded) {
  ClosedStreams streams;
  for (int32_t id = 1; id <= 2001; id += 2) streams.onOpened(id);  // one run
  EXPECT_EQ(streams.judge(999, true), Verdict::kStreamClosed);
  // Gaps: every other id skipped, far more runs than kept. The oldest merge, so an id in an old
  // gap counts as opened; a recent gap is still told apart.
  for (int32_t id = 2005; id < 2105; id += 4) streams.onOpened(id);
  EXPECT_EQ(streams.judge(2103, true), Verdict::kProtocolError);
  EXPECT_EQ(streams.judge(2101, true), Verdict::kStreamClosed);
  EXPECT_EQ(streams.judge(2003, true),
            Verdict::kStreamClosed);  // merged away: not an error code we can tell
}

TEST(ClosedStreams, OnlyTheMostRecentClosesAreKept) {
  ClosedStreams streams;
  streams.onOpened(1);
  streams.onResetSent(1);
  for (int32_t id = 3; id < 3 + 2 * 16; id += 2) {
    streams.onOpened(id);
    streams.onClosed(id);
  }
  // Stream 1's reset fell out of the ring: after a while a late frame is an error (RFC 9113
  // §5.1 lets an endpoint limit how long it ignores them).
  EXPECT_EQ(streams.judge(1, false), Verdict::kStreamClosed);
}

std::string frame(uint8_t type, int32_t stream, size_t length) {
  std::string bytes;
  bytes += static_cast<char>(length >> 16);
  bytes += static_cast<char>(length >> 8);
  bytes += static_cast<char>(length);
  bytes += static_cast<char>(type);
  bytes += '\0';
  bytes += static_cast<char>(stream >> 24);
  bytes += static_cast<char>(stream >> 16);
  bytes += static_cast<char>(stream >> 8);
  bytes += static_cast<char>(stream);
  return bytes + std::string(length, 'x');
}

TEST(FrameHeaderScanner, FindsEveryHeaderWhateverTheReadBoundaries) {
  const std::string client = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 6) + frame(1, 1, 20) +
                             frame(0, 1, 100) + frame(0, 3, 0) + frame(8, 0, 4);
  using Seen = std::tuple<size_t, uint8_t, int32_t>;  // where the header starts, type, stream
  const std::vector<Seen> expected = {{24, 4, 0}, {39, 1, 1}, {68, 0, 1}, {177, 0, 3}, {186, 8, 0}};
  for (size_t chunk : {client.size(), size_t{1}, size_t{5}, size_t{9}, size_t{64}}) {
    FrameHeaderScanner scanner;
    std::vector<Seen> seen;
    for (size_t at = 0; at < client.size(); at += chunk) {
      const size_t n = std::min(chunk, client.size() - at);
      scanner.scan(client.data() + at, n, [&](size_t offset, uint8_t type, int32_t stream) {
        // A header that began in an earlier read is reported at offset 0 of this one.
        const size_t expected_start = std::get<0>(expected[seen.size()]);
        EXPECT_EQ(at + offset, std::max(at, expected_start)) << "reads of " << chunk;
        seen.emplace_back(expected_start, type, stream);
        return true;
      });
    }
    EXPECT_EQ(seen, expected) << "reads of " << chunk << " bytes";
  }
}

}  // namespace
}  // namespace mcproxy::http::http2

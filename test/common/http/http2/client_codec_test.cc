#include "source/common/http/http2/client_codec.h"

#include <gtest/gtest.h>

#include "test/mocks/http/codec.h"

namespace mcproxy::http::http2 {
namespace {

class Http2ClientCodecTest : public ::testing::Test {
 protected:
  Http2ClientCodecTest() : codec_(connection_, 65535) {}
  test::FakeStreamOwner& start(const HeaderMap& headers, bool end_stream) {
    owners_.push_back(std::make_unique<test::FakeStreamOwner>());
    test::FakeStreamOwner& owner = *owners_.back();
    owner.stream = &codec_.newStream(owner);
    owner.handle = StreamHandle(owner.stream);
    owner.stream->encodeHeaders(headers, end_stream);
    return owner;
  }
  // One round trip: our frames to the backend, its frames to us.
  void exchange() {
    std::string out;
    codec_.produce(out, 1 << 24);
    ASSERT_TRUE(backend_.input(out));
    const std::string in = backend_.output();
    ASSERT_TRUE(codec_.receive(in.data(), in.size()));
  }
  static HeaderMap request() {
    return {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "b.test"}};
  }

  test::FakeClientConnection connection_;
  ClientCodec codec_;
  test::Http2Peer backend_{/*server=*/true};
  std::vector<std::unique_ptr<test::FakeStreamOwner>> owners_;
};

TEST_F(Http2ClientCodecTest, RequestsAndResponsesWithTrailers) {
  test::FakeStreamOwner& owner = start(request(), true);
  exchange();
  ASSERT_EQ(backend_.streams.size(), 1u);
  const int32_t id = backend_.streams.begin()->first;
  EXPECT_EQ(*backend_.streams[id].headers.get(":authority"), "b.test");
  backend_.respond(id, {{":status", "200"}}, "body", {{"grpc-status", "0"}});
  exchange();
  EXPECT_EQ(owner.headers.status(), 200);
  EXPECT_EQ(owner.body, "body");
  EXPECT_EQ(*owner.trailers.get("grpc-status"), "0");
  EXPECT_EQ(owner.end_reason, StreamEndReason::kComplete);
}

TEST_F(Http2ClientCodecTest, AFinalResponseAfterAnInformationalOneIsTheResponseNotTrailers) {
  // nghttp2 files the final response after a 1xx under NGHTTP2_HCAT_HEADERS: the bug 107c211
  // fixed in this codec's predecessor.
  test::FakeStreamOwner& owner = start(request(), true);
  exchange();
  const int32_t id = backend_.streams.begin()->first;
  HeaderMap informational{{":status", "103"}, {"link", "</a.css>"}};
  NvList nv(informational);
  nghttp2_submit_headers(backend_.session(), NGHTTP2_FLAG_NONE, id, nullptr, nv.data(), nv.size(),
                         nullptr);
  backend_.respond(id, {{":status", "200"}, {"x-final", "1"}}, "ok");
  exchange();
  EXPECT_EQ(owner.headers.status(), 200);
  EXPECT_EQ(*owner.headers.get("x-final"), "1");
  EXPECT_TRUE(owner.trailers.empty());
  EXPECT_EQ(owner.body, "ok");
}

TEST_F(Http2ClientCodecTest, ResponseBodiesOpenTheBackendsWindowOnlyAsConsumed) {
  test::FakeStreamOwner& owner = start(request(), true);
  owner.consume = false;
  exchange();
  const int32_t id = backend_.streams.begin()->first;
  backend_.respond(id, {{":status", "200"}}, std::string(200000, 'z'));
  for (int i = 0; i < 5; ++i) exchange();
  EXPECT_EQ(owner.body.size(), 65535u);
  owner.stream->consumeBody(owner.body.size());
  for (int i = 0; i < 5; ++i) exchange();
  EXPECT_EQ(owner.body.size(), 2 * 65535u);
}

TEST_F(Http2ClientCodecTest, AnUnfinishedStreamIsResetWhenItsOwnerLetsGoAFinishedOneIsNot) {
  test::FakeStreamOwner& done = start(request(), true);
  test::FakeStreamOwner& open = start(request(), true);
  exchange();
  auto it = backend_.streams.begin();
  const int32_t done_id = it->first;
  const int32_t open_id = (++it)->first;
  backend_.respond(done_id, {{":status", "200"}}, "");
  exchange();
  EXPECT_TRUE(done.ended);
  open.handle.reset();
  exchange();
  EXPECT_EQ(backend_.streams[open_id].reset_code, NGHTTP2_CANCEL);
  EXPECT_EQ(backend_.streams[done_id].reset_code, NGHTTP2_NO_ERROR);
}

TEST_F(Http2ClientCodecTest, AResponseTimeoutAsksTheConnectionToCheckAndPingsAreAnswered) {
  test::FakeStreamOwner& owner = start(request(), true);
  exchange();
  owner.stream->onResponseTimeout();
  EXPECT_EQ(connection_.response_timeouts, 1);
  EXPECT_TRUE(codec_.ping());
  exchange();
  exchange();
  EXPECT_EQ(connection_.ping_acks, 1);
}

TEST_F(Http2ClientCodecTest, AGoawayRefusesTheStreamsItDidNotTakeAndStopsNewOnes) {
  test::FakeStreamOwner& taken = start(request(), true);
  test::FakeStreamOwner& refused = start(request(), true);
  exchange();
  const int32_t first = backend_.streams.begin()->first;
  nghttp2_submit_goaway(backend_.session(), NGHTTP2_FLAG_NONE, first, NGHTTP2_NO_ERROR, nullptr, 0);
  exchange();
  // A refused stream was never processed: the router may say so (and, later, retry it).
  EXPECT_EQ(refused.end_reason, StreamEndReason::kRefused);
  EXPECT_FALSE(taken.ended);
  EXPECT_FALSE(codec_.acceptsStreams());
  EXPECT_TRUE(codec_.exhausted());
  codec_.onConnectionEnd(StreamEndReason::kConnectionFailure, "upstream closed the connection");
  EXPECT_EQ(taken.end_reason, StreamEndReason::kConnectionFailure);
  EXPECT_EQ(taken.end_detail, "upstream closed the connection");
}

TEST_F(Http2ClientCodecTest, ARequestCancelledBeforeItsHeadersLeftIsForgotten) {
  test::FakeStreamOwner& owner = start(request(), false);
  owner.handle = StreamHandle();  // detached before produce(): nghttp2 cancels its HEADERS
  EXPECT_EQ(codec_.activeStreams(), 1u);
  exchange();
  EXPECT_TRUE(backend_.streams.empty());
  EXPECT_EQ(codec_.activeStreams(), 0u);  // not held until the connection ends
}

TEST_F(Http2ClientCodecTest, HeadResponsesEndWithTheirHeadersEvenWhenABodyFollows) {
  HeaderMap head = request();
  head.set(":method", "HEAD");
  test::FakeStreamOwner& owner = start(head, true);
  exchange();
  const int32_t id = backend_.streams.begin()->first;
  backend_.respond(id, {{":status", "404"}, {"content-length", "9"}}, "not found");
  exchange();
  EXPECT_EQ(owner.headers.status(), 404);
  EXPECT_TRUE(owner.body.empty());
  EXPECT_EQ(owner.end_reason, StreamEndReason::kComplete);
}

}  // namespace
}  // namespace mcproxy::http::http2

#include "source/common/http/http1/client_codec.h"

#include <gtest/gtest.h>

#include "test/mocks/http/codec.h"

namespace mcproxy::http::http1 {
namespace {

class Http1ClientCodecTest : public ::testing::Test {
 protected:
  Http1ClientCodecTest() : codec_(connection_, 4096, 1024) {}
  // Starts a request; returns its owner.
  test::FakeStreamOwner& start(const HeaderMap& headers, bool end_stream) {
    owners_.push_back(std::make_unique<test::FakeStreamOwner>());
    test::FakeStreamOwner& owner = *owners_.back();
    owner.stream = &codec_.newStream(owner);
    owner.handle = StreamHandle(owner.stream);
    owner.stream->encodeHeaders(headers, end_stream);
    return owner;
  }
  std::string output() {
    std::string out;
    codec_.produce(out, 1 << 20);
    return out;
  }
  bool backend(const std::string& bytes) { return codec_.receive(bytes.data(), bytes.size()); }
  static HeaderMap request(const std::string& method) {
    return {{":method", method},      {":scheme", "http"}, {":path", "/p"},
            {":authority", "b.test"}, {"te", "trailers"},  {"x-a", "1"}};
  }

  test::FakeClientConnection connection_;
  ClientCodec codec_;
  std::vector<std::unique_ptr<test::FakeStreamOwner>> owners_;
};

TEST_F(Http1ClientCodecTest, ARequestWithoutBodyAndItsResponseLeaveTheConnectionReusable) {
  test::FakeStreamOwner& owner = start(request("GET"), true);
  // HTTP/1.1 cannot carry trailers: "te: trailers" would promise what cannot come.
  EXPECT_EQ(output(), "GET /p HTTP/1.1\r\nhost: b.test\r\nx-a: 1\r\n\r\n");
  EXPECT_FALSE(codec_.acceptsStreams());
  ASSERT_TRUE(backend("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"));
  EXPECT_EQ(owner.headers.status(), 200);
  EXPECT_EQ(owner.headers.get("connection"), nullptr);  // this hop's business
  EXPECT_EQ(owner.body, "ok");
  EXPECT_TRUE(owner.request_complete);
  EXPECT_EQ(owner.end_reason, StreamEndReason::kComplete);
  EXPECT_TRUE(codec_.acceptsStreams());
  EXPECT_FALSE(codec_.finished());
}

TEST_F(Http1ClientCodecTest, ABodyWithoutLengthGoesChunked) {
  test::FakeStreamOwner& owner = start(request("POST"), false);
  buffer::Buffer body;
  body.append("hello");
  owner.stream->encodeData(body, false);
  std::string out = output();
  owner.stream->encodeTrailers({{"x-sum", "1"}});
  out += output();
  EXPECT_EQ(out,
            "POST /p HTTP/1.1\r\nhost: b.test\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n0\r\n\r\n");
  EXPECT_EQ(owner.body_sent, 5u);
}

TEST_F(Http1ClientCodecTest, HeaderNamesSplitAcrossReadsStayOneName) {
  // The bug 107c211 fixed in this codec's predecessor, and not in its server twin.
  test::FakeStreamOwner& owner = start(request("GET"), true);
  ASSERT_TRUE(backend("HTTP/1.1 200 OK\r\nContent-Le"));
  ASSERT_TRUE(backend("ngth: 1\r\nX-Spl"));
  ASSERT_TRUE(backend("it-Name: v\r\n\r\nz"));
  EXPECT_EQ(*owner.headers.get("content-length"), "1");
  EXPECT_EQ(*owner.headers.get("x-split-name"), "v");
  EXPECT_EQ(owner.headers.size(), 3u);
}

TEST_F(Http1ClientCodecTest, InformationalResponsesAreSkipped) {
  test::FakeStreamOwner& owner = start(request("POST"), true);
  ASSERT_TRUE(
      backend("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_EQ(owner.headers.status(), 201);
  EXPECT_EQ(owner.headers_count, 1);
}

TEST_F(Http1ClientCodecTest, AResponseToHeadHasNoBodyWhateverItsLengthSays) {
  test::FakeStreamOwner& owner = start(request("HEAD"), true);
  ASSERT_TRUE(backend("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"));
  EXPECT_TRUE(owner.ended);
  EXPECT_TRUE(codec_.acceptsStreams());
}

TEST_F(Http1ClientCodecTest, ABodyUntilCloseEndsWhenTheBackendCloses) {
  test::FakeStreamOwner& owner = start(request("GET"), true);
  ASSERT_TRUE(backend("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"));
  EXPECT_FALSE(owner.ended);
  codec_.onConnectionEnd(StreamEndReason::kRemoteReset, "upstream closed the connection");
  EXPECT_EQ(owner.body, "all of it");
  EXPECT_EQ(owner.end_reason, StreamEndReason::kComplete);
}

TEST_F(Http1ClientCodecTest, ATruncatedResponseIsAFailure) {
  test::FakeStreamOwner& owner = start(request("GET"), true);
  ASSERT_TRUE(backend("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"));
  codec_.onConnectionEnd(StreamEndReason::kRemoteReset, "upstream closed the connection");
  EXPECT_EQ(owner.end_reason, StreamEndReason::kRemoteReset);
}

TEST_F(Http1ClientCodecTest, BadHttpOrUnaskedBytesEndTheConnection) {
  test::FakeStreamOwner& owner = start(request("GET"), true);
  EXPECT_FALSE(backend("HTTP/1.1 2OO OK\r\n\r\n"));
  EXPECT_EQ(owner.end_reason, StreamEndReason::kConnectionFailure);
  EXPECT_NE(owner.end_detail.find("upstream sent bad HTTP/1.1"), std::string::npos);
  EXPECT_TRUE(codec_.finished());

  ClientCodec idle(connection_, 4096, 1024);
  const std::string unasked = "HTTP/1.1 200 OK\r\n\r\n";
  EXPECT_FALSE(idle.receive(unasked.data(), unasked.size()));
}

TEST_F(Http1ClientCodecTest, TheResponseIsReadOnlyAsFastAsTheOwnerTakesIt) {
  test::FakeStreamOwner& owner = start(request("GET"), true);
  owner.consume = false;
  ASSERT_TRUE(backend("HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n" + std::string(2000, 'x')));
  EXPECT_TRUE(codec_.readPaused());
  owner.stream->consumeBody(2000);
  EXPECT_FALSE(codec_.readPaused());
  EXPECT_EQ(connection_.read_resumes, 1);
}

TEST_F(Http1ClientCodecTest, AnOwnerThatLetsGoMidExchangeMakesTheConnectionUnusable) {
  start(request("GET"), true).handle.reset();
  EXPECT_FALSE(codec_.acceptsStreams());
  EXPECT_TRUE(codec_.finished());
}

TEST_F(Http1ClientCodecTest, AWebSocketHandshakeHoldsTheTunnelUntilA101) {
  HeaderMap handshake = request("GET");
  handshake.add("upgrade", "websocket");
  handshake.add("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
  test::FakeStreamOwner& owner = start(handshake, false);
  buffer::Buffer early;
  early.append("client-bytes");
  owner.stream->encodeData(early, false);
  const std::string head = output();
  EXPECT_NE(head.find("upgrade: websocket\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("connection: upgrade\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("transfer-encoding"), std::string::npos) << head;
  EXPECT_EQ(head.find("client-bytes"), std::string::npos);  // held: the backend may refuse
  ASSERT_TRUE(
      backend("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nserver-"));
  EXPECT_EQ(owner.headers.status(), 101);
  EXPECT_EQ(*owner.headers.get("upgrade"), "websocket");
  EXPECT_EQ(owner.headers.get("connection"), nullptr);
  EXPECT_EQ(owner.body, "server-");
  EXPECT_EQ(output(), "client-bytes");              // unframed, now that the backend switched
  ASSERT_TRUE(backend("HTTP/1.1 200 OK\r\n\r\n"));  // tunnel bytes, not a response
  EXPECT_EQ(owner.body, "server-HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_FALSE(codec_.acceptsStreams());
  codec_.onConnectionEnd(StreamEndReason::kRemoteReset, "upstream closed the connection");
  EXPECT_TRUE(owner.request_complete);  // the tunnel's end, as a body's
  EXPECT_EQ(owner.end_reason, StreamEndReason::kComplete);
}

TEST_F(Http1ClientCodecTest, ARefusedWebSocketHandshakeIsAnOrdinaryResponse) {
  HeaderMap handshake = request("GET");
  handshake.add("upgrade", "websocket");
  test::FakeStreamOwner& owner = start(handshake, false);
  output();
  ASSERT_TRUE(backend("HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno"));
  EXPECT_EQ(owner.headers.status(), 400);
  EXPECT_EQ(owner.body, "no");
  EXPECT_FALSE(codec_.acceptsStreams());  // the handshake's tunnel never went: not reusable
}

}  // namespace
}  // namespace mcproxy::http::http1

#include "source/common/http/http1/server_codec.h"

#include <gtest/gtest.h>

#include "test/mocks/http/codec.h"

namespace mcproxy::http::http1 {
namespace {

// The codec under test, fed bytes as a client sends them, with fake owners per exchange.
class Http1ServerCodecTest : public ::testing::Test {
 protected:
  Http1ServerCodecTest() : codec_(connection_, 4096, 1024) { connection_.codec = &codec_; }
  void send(const std::string& bytes) { ASSERT_TRUE(codec_.receive(bytes.data(), bytes.size())); }
  std::string output() {
    std::string out;
    codec_.produce(out, 1 << 20);
    return out;
  }
  test::FakeStreamOwner& owner(size_t i) { return *connection_.streams.at(i); }
  static void respond(test::FakeStreamOwner& owner, const HeaderMap& headers,
                      const std::string& body) {
    owner.stream->encodeHeaders(headers, body.empty());
    if (body.empty()) return;
    buffer::Buffer data;
    data.append(body);
    owner.stream->encodeData(data, true);
  }

  test::FakeServerConnection connection_;
  ServerCodec codec_;
};

TEST_F(Http1ServerCodecTest, ARequestBecomesHttp2ShapedWithoutHopByHopFields) {
  send(
      "GET /x?y HTTP/1.1\r\nHost: a.test\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\n"
      "TE: trailers\r\nX-Mixed-Case: V\r\n\r\n");
  ASSERT_EQ(connection_.streams.size(), 1u);
  const HeaderMap& headers = owner(0).headers;
  EXPECT_EQ(headers[0].name, ":method");
  EXPECT_EQ(headers[2].value, "/x?y");
  EXPECT_EQ(headers[3].name, ":authority");
  EXPECT_EQ(headers[3].value, "a.test");
  EXPECT_EQ(headers.get("connection"), nullptr);
  EXPECT_EQ(headers.get("keep-alive"), nullptr);
  EXPECT_EQ(*headers.get("te"), "trailers");  // end to end, for gRPC
  EXPECT_EQ(*headers.get("x-mixed-case"), "V");
  EXPECT_TRUE(owner(0).request_complete);  // no body: complete with its headers
}

TEST_F(Http1ServerCodecTest, PipelinedRequestsWaitForTheResponseBeforeThem) {
  send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(connection_.streams.size(), 1u);
  EXPECT_TRUE(codec_.readPaused());
  respond(owner(0), {{":status", "200"}, {"content-length", "2"}}, "ok");
  ASSERT_EQ(connection_.streams.size(), 2u);
  EXPECT_EQ(*owner(1).headers.get(":path"), "/2");
  EXPECT_EQ(owner(0).end_reason, StreamEndReason::kComplete);
  respond(owner(1), {{":status", "204"}}, "");
  EXPECT_EQ(output(),
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            "HTTP/1.1 204 No Content\r\n\r\n");
}

TEST_F(Http1ServerCodecTest, ABodyOfUnknownLengthIsChunkedWithTrailers) {
  send(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\nX-Sum: 9\r\n\r\n");
  EXPECT_EQ(owner(0).body, "hello");
  EXPECT_EQ(*owner(0).trailers.get("x-sum"), "9");
  owner(0).stream->encodeHeaders({{":status", "200"}}, false);
  buffer::Buffer data;
  data.append("abc");
  owner(0).stream->encodeData(data, false);
  EXPECT_EQ(owner(0).body_sent, 0u);
  std::string out = output();
  EXPECT_EQ(owner(0).body_sent, 3u);  // reported as the bytes go out, not as they are queued
  owner(0).stream->encodeTrailers({{"grpc-status", "0"}});
  EXPECT_EQ(out + output(),
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n"
            "0\r\ngrpc-status: 0\r\n\r\n");
}

TEST_F(Http1ServerCodecTest, AnHttp10ClientGetsABodyOfUnknownLengthUntilTheConnectionCloses) {
  send("GET / HTTP/1.0\r\nHost: a\r\n\r\n");
  owner(0).stream->encodeHeaders({{":status", "200"}}, false);
  buffer::Buffer data;
  data.append("abc");
  owner(0).stream->encodeData(data, true);
  EXPECT_EQ(output(), "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nabc");
  EXPECT_TRUE(codec_.finished());
}

TEST_F(Http1ServerCodecTest, AHeadResponseHasNoBody) {
  send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
  owner(0).stream->encodeHeaders({{":status", "200"}, {"content-length", "5"}}, false);
  buffer::Buffer data;
  data.append("hello");
  owner(0).stream->encodeData(data, true);
  EXPECT_EQ(output(), "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
  EXPECT_EQ(owner(0).body_sent, 5u);  // whoever sent it is not held up
  EXPECT_FALSE(codec_.finished());    // kept alive
}

TEST_F(Http1ServerCodecTest, ExpectContinueIsAnsweredHere) {
  send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_EQ(output(), "HTTP/1.1 100 Continue\r\n\r\n");
  EXPECT_EQ(owner(0).headers.get("expect"), nullptr);
  send("hi");
  EXPECT_EQ(owner(0).body, "hi");
}

TEST_F(Http1ServerCodecTest, BrokenRequestsAreAnsweredThroughTheOwnersLocalReply) {
  send("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
  ASSERT_EQ(connection_.streams.size(), 1u);
  EXPECT_EQ(owner(0).decode_error_status, 400);
  EXPECT_EQ(owner(0).decode_error, "bad request: unexpected content-length header");
  EXPECT_EQ(output().substr(0, 26), "HTTP/1.1 400 Bad Request\r\n");
  EXPECT_TRUE(codec_.finished());
}

TEST_F(Http1ServerCodecTest, GarbageBeforeAnyRequestGetsAStreamForItsAnswer) {
  send("\x01\x02 nonsense\r\n\r\n");
  ASSERT_EQ(connection_.streams.size(), 1u);
  EXPECT_EQ(owner(0).decode_error_status, 400);
  EXPECT_EQ(output().substr(0, 26), "HTTP/1.1 400 Bad Request\r\n");
  EXPECT_TRUE(codec_.finished());
}

TEST_F(Http1ServerCodecTest, ARequestBodyStopsReadingUntilTheOwnerTakesIt) {
  connection_.consume_bodies = false;
  send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3000\r\n\r\n" + std::string(1500, 'x'));
  EXPECT_TRUE(codec_.readPaused());  // 1500 unconsumed >= 1024
  owner(0).stream->consumeBody(1500);
  EXPECT_FALSE(codec_.readPaused());
}

TEST_F(Http1ServerCodecTest, AnAnswerGivenFromTheHeadersKeepsTheConnectionForTheNextRequest) {
  // The owner answers inside the headers callback: the parser is mid-request then.
  connection_.answer_at_headers = true;
  send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(connection_.streams.size(), 2u);
  EXPECT_EQ(output(),
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
  EXPECT_FALSE(codec_.finished());
}

TEST_F(Http1ServerCodecTest, AnAnswerBeforeTheBodyEndedClosesTheConnection) {
  send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
  respond(owner(0), {{":status", "413"}}, "");
  EXPECT_EQ(output(),
            "HTTP/1.1 413 Content Too Large\r\ncontent-length: 0\r\n"
            "connection: close\r\n\r\n");
  EXPECT_TRUE(codec_.finished());
}

TEST_F(Http1ServerCodecTest, AnOwnerThatLetsGoMidResponseClosesTheConnection) {
  send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  owner(0).stream->encodeHeaders({{":status", "200"}}, false);
  owner(0).handle.reset();
  EXPECT_TRUE(output().empty());
  EXPECT_TRUE(codec_.finished());
}

TEST_F(Http1ServerCodecTest, AWebSocketHandshakeBecomesATunnelAfterA101) {
  send(
      "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
      "early");
  ASSERT_EQ(connection_.streams.size(), 1u);
  const HeaderMap& headers = owner(0).headers;
  EXPECT_EQ(*headers.get("upgrade"), "websocket");  // the shared shape (http/upgrade.h)
  EXPECT_EQ(headers.get("connection"), nullptr);
  EXPECT_EQ(*headers.get("sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_FALSE(owner(0).request_complete);  // its body is the tunnel
  EXPECT_EQ(owner(0).body, "early");        // bytes after the handshake are the tunnel's
  owner(0).stream->encodeHeaders({{":status", "101"},
                                  {"upgrade", "websocket"},
                                  {"sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}},
                                 false);
  buffer::Buffer data;
  data.append(std::string("\x81\x02hi", 4));
  owner(0).stream->encodeData(data, false);
  EXPECT_EQ(output(),
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
            "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nconnection: upgrade\r\n\r\n"
            "\x81\x02hi");
  send("GET / HTTP/1.1\r\n");  // not a request any more: tunnel bytes, as they are
  EXPECT_EQ(owner(0).body, "earlyGET / HTTP/1.1\r\n");
  EXPECT_EQ(connection_.streams.size(), 1u);
  buffer::Buffer last;
  owner(0).stream->encodeData(last, true);  // the backend closed the tunnel
  EXPECT_TRUE(codec_.finished());
}

TEST_F(Http1ServerCodecTest, ARefusedWebSocketHandshakeClosesTheConnectionAfterTheAnswer) {
  send("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
  respond(owner(0), {{":status", "403"}, {"content-length", "2"}}, "no");
  EXPECT_EQ(output(), "HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno");
  EXPECT_TRUE(codec_.finished());
}

TEST_F(Http1ServerCodecTest, OtherUpgradesAreIgnoredAndTheConnectionEndsWithTheResponse) {
  send(
      "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
      "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n");
  ASSERT_EQ(connection_.streams.size(), 1u);
  EXPECT_EQ(owner(0).headers.get("upgrade"), nullptr);
  EXPECT_TRUE(owner(0).request_complete);
  respond(owner(0), {{":status", "200"}, {"content-length", "2"}}, "ok");
  EXPECT_EQ(output(), "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
  EXPECT_TRUE(codec_.finished());
}

TEST_F(Http1ServerCodecTest, AWebSocketHandshakeWithABodyIsRefused) {
  send(
      "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Content-Length: 3\r\n\r\nabc");
  EXPECT_EQ(owner(0).decode_error_status, 400);
  EXPECT_EQ(owner(0).decode_error, "bad request: a WebSocket handshake with a body");
}

}  // namespace
}  // namespace mcproxy::http::http1

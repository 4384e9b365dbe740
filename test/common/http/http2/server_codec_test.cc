#include "source/common/http/http2/server_codec.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "test/common/http/resident_pages.h"
#include "test/mocks/http/codec.h"

namespace mcproxy::http::http2 {
namespace {

// A client's preface, an empty SETTINGS, then GET / on streams 1, 3, ... 39 (HPACK: :method
// GET, :scheme https, :path /, :authority a.test).
std::string twentyRequests() {
  std::string bytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0", 33);
  const std::string block(
      "\x82\x87\x84\x01\x06"
      "a.test",
      11);
  for (int id = 1; id < 40; id += 2) {
    bytes += std::string("\0\0", 2) + static_cast<char>(block.size()) + "\x01\x05" +
             std::string(3, '\0') + static_cast<char>(id) + block;
  }
  return bytes;
}

const ServerLimits kLimits{100, 16 * 1024, 64 * 1024};

TEST(Http2ServerCodec, AQuietConnectionThatServedRequestsGivesPagesBack) {
  std::vector<std::unique_ptr<test::FakeServerConnection>> connections;
  std::vector<std::unique_ptr<ServerCodec>> codecs;
  const std::string client = twentyRequests();
  for (int i = 0; i < 128; ++i) {
    connections.push_back(std::make_unique<test::FakeServerConnection>());
    connections.back()->answer_at_headers = true;
    codecs.push_back(std::make_unique<ServerCodec>(*connections.back(), kLimits));
    connections.back()->codec = codecs.back().get();
    ASSERT_TRUE(codecs.back()->receive(client.data(), client.size()));
    std::string out;
    codecs.back()->produce(out, 1 << 20);
    ASSERT_FALSE(out.empty());
    ASSERT_EQ(connections.back()->ended(), 20u);  // every stream answered and closed
  }
  const size_t before = test::residentPages();
  for (auto& codec : codecs) codec->releaseIdleMemory();
  const size_t released = before - test::residentPages();
  // Each: the frame buffer's page, and the stream map's, all zeros once no closed streams are
  // kept (a map that keeps them is not, and stays).
  EXPECT_GE(released, codecs.size() * 2 * 9 / 10);
}

TEST(Http2ServerCodec, RequestsRoundTripWithBodiesAndTrailers) {
  test::FakeServerConnection connection;
  ServerCodec codec(connection, kLimits);
  connection.codec = &codec;
  test::Http2Peer client(/*server=*/false);
  const int32_t id = client.submit(
      {{":method", "POST"}, {":scheme", "https"}, {":path", "/up"}, {":authority", "a.test"}},
      "hello", {{"x-checksum", "1"}});
  ASSERT_TRUE(client.exchange(codec));
  ASSERT_EQ(connection.streams.size(), 1u);
  test::FakeStreamOwner& owner = *connection.streams[0];
  EXPECT_EQ(*owner.headers.get(":path"), "/up");
  EXPECT_EQ(owner.body, "hello");
  EXPECT_EQ(*owner.trailers.get("x-checksum"), "1");
  EXPECT_TRUE(owner.request_complete);

  owner.stream->encodeHeaders({{":status", "200"}}, false);
  buffer::Buffer body;
  body.append("world");
  owner.stream->encodeData(body, false);
  owner.stream->encodeTrailers({{"grpc-status", "0"}});
  ASSERT_TRUE(client.exchange(codec));
  const test::PeerStream& response = client.streams[id];
  EXPECT_EQ(*response.headers.get(":status"), "200");
  EXPECT_EQ(response.body, "world");
  EXPECT_EQ(*response.trailers.get("grpc-status"), "0");
  EXPECT_TRUE(response.closed);
  EXPECT_EQ(owner.end_reason, StreamEndReason::kComplete);
  EXPECT_EQ(owner.body_sent, 5u);  // the response body, reported as it left
}

TEST(Http2ServerCodec, AStreamResetInTheBatchOfItsHeadersNeverStarts) {
  // Rapid reset (CVE-2023-44487): HEADERS and RST_STREAM together cost the backend nothing.
  test::FakeServerConnection connection;
  ServerCodec codec(connection, kLimits);
  connection.codec = &codec;
  test::Http2Peer client(/*server=*/false);
  const int32_t id = client.submit(
      {{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {":authority", "a.test"}});
  client.reset(id);
  ASSERT_TRUE(client.exchange(codec));
  EXPECT_TRUE(connection.streams.empty());
}

TEST(Http2ServerCodec, RequestBodyOpensTheWindowOnlyAsTheOwnerConsumes) {
  test::FakeServerConnection connection;
  connection.consume_bodies = false;
  ServerCodec codec(connection, ServerLimits{100, 16 * 1024, 65535});
  connection.codec = &codec;
  test::Http2Peer client(/*server=*/false);
  client.submit(
      {{":method", "POST"}, {":scheme", "https"}, {":path", "/"}, {":authority", "a.test"}},
      std::string(200000, 'x'), {}, /*end=*/false);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(client.exchange(codec));
  test::FakeStreamOwner& owner = *connection.streams[0];
  // One stream window's worth, and no more: the proxy buffers at most that per stream.
  EXPECT_EQ(owner.body.size(), 65535u);
  owner.stream->consumeBody(owner.body.size());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(client.exchange(codec));
  EXPECT_EQ(owner.body.size(), 2 * 65535u);
}

TEST(Http2ServerCodec, AnOwnerThatLetsGoResetsAnUnfinishedStream) {
  test::FakeServerConnection connection;
  ServerCodec codec(connection, kLimits);
  connection.codec = &codec;
  test::Http2Peer client(/*server=*/false);
  const int32_t id = client.submit(
      {{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {":authority", "a.test"}});
  ASSERT_TRUE(client.exchange(codec));
  ASSERT_EQ(connection.streams.size(), 1u);
  connection.streams[0]->handle.reset();  // the owner goes: its handle detaches
  ASSERT_TRUE(client.exchange(codec));
  EXPECT_TRUE(client.streams[id].closed);
  EXPECT_EQ(client.streams[id].reset_code, NGHTTP2_INTERNAL_ERROR);
}

}  // namespace
}  // namespace mcproxy::http::http2

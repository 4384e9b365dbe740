#include "extensions/filters/network/http_connection_manager/downstream_http2.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "source/common/event/dispatcher.h"
#include "test/common/http/resident_pages.h"

namespace mcproxy::extensions::http_connection_manager {
namespace {

// A client connection whose upstream answers every request at once with a bare 200.
class AnsweringConnection : public DownstreamConnection {
 public:
  explicit AnsweringConnection(event::Dispatcher& dispatcher) : dispatcher_(dispatcher) {}
  void scheduleFlush() override {}
  void startUpstream(ProxyStream& stream) override {
    stream.response_headers = {{":status", "200"}};
    stream.response_complete = true;
    stream.downstream->onResponseHeaders(stream);
  }
  void onRequestComplete(ProxyStream&) override {}
  event::Dispatcher& dispatcher() override { return dispatcher_; }
  void onUpstreamFailed(int) override {}
  void onRequestFinished(const ProxyStream&) override { ++finished; }

  int finished = 0;

 private:
  event::Dispatcher& dispatcher_;
};

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

TEST(Http2DownstreamCodec, AQuietConnectionThatServedRequestsGivesPagesBack) {
  event::Dispatcher dispatcher;
  AnsweringConnection connection(dispatcher);
  const Http2Limits limits{100, 16 * 1024, 64 * 1024};
  const std::string client = twentyRequests();
  std::vector<std::unique_ptr<Http2DownstreamCodec>> codecs;
  for (int i = 0; i < 128; ++i) {
    codecs.push_back(std::make_unique<Http2DownstreamCodec>(connection, limits));
    ASSERT_TRUE(codecs.back()->receive(client.data(), client.size()));
    std::string out;
    codecs.back()->produce(out, 1 << 20);
    ASSERT_FALSE(out.empty());
  }
  ASSERT_EQ(connection.finished, 128 * 20);  // every stream answered and closed
  const size_t before = test::residentPages();
  for (auto& codec : codecs) codec->releaseIdleMemory();
  const size_t released = before - test::residentPages();
  // Each: the frame buffer's page, and the stream map's, all zeros once no closed streams are
  // kept (a map that keeps them is not, and stays).
  EXPECT_GE(released, codecs.size() * 2 * 9 / 10);
}

}  // namespace
}  // namespace mcproxy::extensions::http_connection_manager

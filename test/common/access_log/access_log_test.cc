#include "source/common/access_log/access_log.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "source/common/json/json_string.h"
#include "test/mocks/router/route.h"

namespace mcproxy::access_log {
namespace {

network::Address address(const std::string& text) {
  std::string error;
  return *network::Address::parseIpPort(text, error);
}

// Parses one JSON line (it must be valid JSON) into a Struct.
google::protobuf::Struct parse(const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  google::protobuf::Struct out;
  const auto status = google::protobuf::util::JsonStringToMessage(line, &out);
  EXPECT_TRUE(status.ok()) << status << " in " << line;
  return out;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

size_t lineCount(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

class AccessLogTest : public ::testing::Test {
 protected:
  AccessLogTest() {
    dir_ = std::filesystem::temp_directory_path() /
           ("access_log_test." + std::to_string(::getpid()) + "." +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    route_ = test::makeRoute(stats_, router::RouteMode::kL4);
    connection_.listener_name = "edge";
    connection_.real_client = address("192.0.2.7:4242");
    connection_.downstream_remote = address("10.0.0.1:5555");
    connection_.requested_server_name = "a.test";
    connection_.alpn = {"h2", "http/1.1"};
    connection_.start_time = std::chrono::steady_clock::now();
    connection_.end_time = connection_.start_time + std::chrono::milliseconds(25);
    connection_.bytes_from_downstream = 517;
    connection_.bytes_to_downstream = 4096;
  }
  ~AccessLogTest() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string& name) { return (dir_ / name).string(); }

  // Waits (bounded) until the writer counted `lines` written lines.
  bool waitForLines(uint64_t lines) {
    for (int i = 0; i < 500; ++i) {
      if (stats_.counter("access_log.lines").value() >= lines) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::filesystem::path dir_;
  stats::Store stats_;
  std::unique_ptr<router::Route> route_;
  network::StreamInfo connection_;
};

TEST_F(AccessLogTest, AnL4ConnectionLineHasEveryFieldWithNumbersAsNumbers) {
  connection_.route = route_.get();
  AccessLog log(nullptr, Format::kJson);
  const auto line = parse(log.connectionLine(connection_));
  const auto& fields = line.fields();
  EXPECT_EQ(fields.at("kind").string_value(), "connection");
  EXPECT_EQ(fields.at("listener").string_value(), "edge");
  EXPECT_EQ(fields.at("client_ip").string_value(), "192.0.2.7");
  EXPECT_EQ(fields.at("client_port").number_value(), 4242);
  EXPECT_EQ(fields.at("peer_ip").string_value(), "10.0.0.1");
  EXPECT_EQ(fields.at("sni").string_value(), "a.test");
  EXPECT_EQ(fields.at("alpn").string_value(), "h2,http/1.1");  // offered: L4 sees no more
  EXPECT_EQ(fields.at("route").string_value(), "a.test");
  EXPECT_EQ(fields.at("mode").string_value(), "L4");
  EXPECT_EQ(fields.at("backend").string_value(), "127.0.0.1:9000");
  EXPECT_EQ(fields.at("tls_version").string_value(), "");
  EXPECT_EQ(fields.at("duration_ms").number_value(), 25);
  EXPECT_EQ(fields.at("close_reason").string_value(), "finished");
  EXPECT_EQ(fields.at("bytes_from_client").number_value(), 517);
  EXPECT_EQ(fields.at("bytes_to_client").number_value(), 4096);
  EXPECT_FALSE(fields.contains("status"));
  EXPECT_TRUE(logsConnection(connection_));
}

TEST_F(AccessLogTest, ARequestLineHasTheRequestFieldsAndNullForWhatIsUnknown) {
  route_->mode = router::RouteMode::kL7;
  connection_.route = route_.get();
  connection_.negotiated_alpn = "h2";
  connection_.tls_version = "TLSv1.3";
  connection_.tls_cipher = "TLS_AES_128_GCM_SHA256";
  http::StreamInfo stream(connection_);
  stream.start_time = connection_.start_time;
  stream.end_time = stream.start_time + std::chrono::milliseconds(9);
  stream.protocol = "HTTP/2";
  stream.response_status = 502;
  stream.response_detail = "upstream connect failed";
  stream.response_body_bytes = 30;
  http::HeaderMap headers{{":method", "POST"}, {":path", "/a\"b"}, {":authority", "a.test"}};
  AccessLog log(nullptr, Format::kJson);
  const auto line = parse(log.requestLine({connection_, &stream, &headers}));
  const auto& fields = line.fields();
  EXPECT_EQ(fields.at("kind").string_value(), "request");
  EXPECT_EQ(fields.at("method").string_value(), "POST");
  EXPECT_EQ(fields.at("path").string_value(), "/a\"b");
  EXPECT_EQ(fields.at("status").number_value(), 502);
  EXPECT_EQ(fields.at("response_bytes").number_value(), 30);
  EXPECT_EQ(fields.at("close_reason").string_value(), "upstream connect failed");
  EXPECT_EQ(fields.at("tls_cipher").string_value(), "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ(fields.at("alpn").string_value(), "h2");
  EXPECT_EQ(fields.at("upstream_connect_ms").kind_case(), google::protobuf::Value::kNullValue);
  EXPECT_EQ(fields.at("upstream_response_ms").kind_case(), google::protobuf::Value::kNullValue);
  EXPECT_EQ(fields.at("user_agent").string_value(), "");
  EXPECT_FALSE(fields.contains("bytes_from_client"));
}

TEST_F(AccessLogTest, WhichConnectionsGetALineOfTheirOwn) {
  connection_.route = nullptr;  // refused before routing: firewall, no route, bad PROXY header
  connection_.close_reason = network::CloseReason::kFirewallBlockedIp;
  EXPECT_TRUE(logsConnection(connection_));
  route_->mode = router::RouteMode::kL7;
  connection_.route = route_.get();
  connection_.close_reason = network::CloseReason::kTlsHandshakeFailed;
  EXPECT_TRUE(logsConnection(connection_));
  connection_.close_reason = network::CloseReason::kIdleTimeout;
  EXPECT_FALSE(logsConnection(connection_));  // a preconnect never used
  connection_.requests = 3;
  connection_.close_reason = network::CloseReason::kHttpProtocolError;
  EXPECT_FALSE(logsConnection(connection_));  // its requests have lines
}

TEST_F(AccessLogTest, JsonStringsStayValidWhateverTheBytes) {
  std::string out;
  static constexpr char kBytes[] = "q\" b\\ \x01 \t caf\xc3\xa9 \xe2\x82\xac bad\xff\xc3";
  json::appendString(std::string_view(kBytes, sizeof(kBytes) - 1), out);
  EXPECT_EQ(out, "\"q\\\" b\\\\ \\u0001 \\u0009 caf\xc3\xa9 \xe2\x82\xac bad\\u00ff\\u00c3\"");
  out.clear();
  json::appendString("\xed\xa0\x80", out);  // a UTF-16 surrogate is not UTF-8
  EXPECT_EQ(out, "\"\\u00ed\\u00a0\\u0080\"");
}

TEST_F(AccessLogTest, TextLinesUseTheFormatAndADashForWhatIsMissing) {
  connection_.route = route_.get();
  auto text = formatter::Formatter::parse("%CLIENT_IP% %SNI% %STATUS% %BYTES_TO_CLIENT%", "-");
  ASSERT_TRUE(text.ok());
  AccessLog log(nullptr, Format::kText, std::move(*text));
  EXPECT_EQ(log.connectionLine(connection_), "192.0.2.7 a.test - 4096\n");
}

TEST_F(AccessLogTest, AFullQueueDropsAndCountsInsteadOfWaiting) {
  Writer writer(stats_);  // not started: nothing drains the queue
  WorkerQueue& queue = writer.addQueue();
  auto file = File::open(path("full.log"));
  ASSERT_TRUE(file.ok()) << file.status();
  for (size_t i = 0; i < Writer::kQueueCapacity + 3; ++i) queue.push({*file, "line\n"});
  EXPECT_EQ(stats_.counter("access_log.dropped").value(), 3u);
  Entry entry;
  size_t popped = 0;
  while (queue.pop(entry)) ++popped;
  EXPECT_EQ(popped, Writer::kQueueCapacity);
  EXPECT_TRUE(queue.empty());
}

TEST_F(AccessLogTest, TheWriterWritesEveryLineFromEveryWorkerInOrder) {
  auto file = File::open(path("all.log"));
  ASSERT_TRUE(file.ok()) << file.status();
  constexpr int kPerWorker = 3000;
  {
    Writer writer(stats_);
    WorkerQueue& first = writer.addQueue();
    WorkerQueue& second = writer.addQueue();
    writer.start();
    auto produce = [&](WorkerQueue& queue, char tag) {
      for (int i = 0; i < kPerWorker; ++i) {
        queue.push({*file, std::string(1, tag) + std::to_string(i) + "\n"});
        if (i % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    };
    std::thread a(produce, std::ref(first), 'a');
    std::thread b(produce, std::ref(second), 'b');
    a.join();
    b.join();
  }  // the writer drains what is queued before it stops
  const std::string text = readFile(path("all.log"));
  EXPECT_EQ(lineCount(text), 2u * kPerWorker);
  EXPECT_EQ(stats_.counter("access_log.lines").value(), 2u * kPerWorker);
  EXPECT_EQ(stats_.counter("access_log.dropped").value(), 0u);
  // Each worker's lines keep their order.
  EXPECT_LT(text.find("a10\n"), text.find("a11\n"));
  EXPECT_LT(text.find("b2998\n"), text.find("b2999\n"));
}

TEST_F(AccessLogTest, ARotatedFileIsReopenedAndNoLineIsLost) {
  auto file = File::open(path("access.log"));
  ASSERT_TRUE(file.ok()) << file.status();
  Writer writer(stats_);
  WorkerQueue& queue = writer.addQueue();
  writer.start();
  for (int i = 0; i < 10; ++i) queue.push({*file, "before\n"});
  ASSERT_TRUE(waitForLines(10));
  // logrotate: rename, then the signal.
  std::filesystem::rename(path("access.log"), path("access.log.1"));
  for (int i = 0; i < 5; ++i) queue.push({*file, "between\n"});  // still the old file
  ASSERT_TRUE(waitForLines(15));
  writer.reopenFiles();
  for (int i = 0; i < 7; ++i) queue.push({*file, "after\n"});
  ASSERT_TRUE(waitForLines(22));
  std::string rotated;
  for (int i = 0; i < 10; ++i) rotated += "before\n";
  for (int i = 0; i < 5; ++i) rotated += "between\n";
  EXPECT_EQ(readFile(path("access.log.1")), rotated);
  std::string after;
  for (int i = 0; i < 7; ++i) after += "after\n";
  EXPECT_EQ(readFile(path("access.log")), after);
  EXPECT_EQ(stats_.counter("access_log.reopens").value(), 1u);
}

TEST_F(AccessLogTest, AFileThatCannotBeOpenedSaysWhy) {
  auto file = File::open(path("no/such/dir/access.log"));
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().message(),
            path("no/such/dir/access.log") + ": No such file or directory");
  EXPECT_TRUE(File::open("-").ok());  // standard output
}

}  // namespace
}  // namespace mcproxy::access_log

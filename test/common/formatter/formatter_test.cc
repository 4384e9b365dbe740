#include "source/common/formatter/formatter.h"

#include <gtest/gtest.h>

#include "source/common/stats/stats.h"
#include "test/mocks/router/route.h"

namespace mcproxy::formatter {
namespace {

network::Address address(const std::string& text) {
  std::string error;
  return *network::Address::parseIpPort(text, error);
}

// A connection from 192.0.2.7:4242 (after PROXY; TCP peer 10.0.0.1) on listener "edge", routed
// to an L7 route, with one request on it.
class FormatterTest : public ::testing::Test {
 protected:
  FormatterTest() {
    route_ = test::makeRoute(stats_);
    connection_.listener_name = "edge";
    connection_.real_client = address("192.0.2.7:4242");
    connection_.downstream_remote = address("10.0.0.1:5555");
    connection_.requested_server_name = "a.test";
    connection_.route = route_.get();
    connection_.negotiated_alpn = "h2";
    connection_.tls_version = "TLSv1.3";
    connection_.start_time = std::chrono::steady_clock::now() - std::chrono::milliseconds(50);
    stream_.start_time = connection_.start_time + std::chrono::milliseconds(10);
    stream_.protocol = "HTTP/2";
    stream_.response_status = 204;
    stream_.request_id = "id-1";
    stream_.upstream_connect = std::chrono::milliseconds(3);
    stream_.upstream_response_time = stream_.start_time + std::chrono::milliseconds(7);
    stream_.end_time = stream_.start_time + std::chrono::milliseconds(12);
    headers_ = {{":method", "GET"},
                {":scheme", "https"},
                {":path", "/x?y"},
                {":authority", "a.test"},
                {"user-agent", "curl/8"}};
  }

  std::string format(const std::string& text, const std::string& missing = "") {
    auto formatter = Formatter::parse(text, missing);
    EXPECT_TRUE(formatter.ok()) << formatter.status();
    return formatter->format({connection_, &stream_, &headers_});
  }

  stats::Store stats_;
  std::unique_ptr<router::Route> route_;
  network::StreamInfo connection_;
  http::StreamInfo stream_{connection_};
  http::HeaderMap headers_;
};

TEST_F(FormatterTest, ConnectionAndRequestFields) {
  EXPECT_EQ(format("%CLIENT_IP%:%CLIENT_PORT% via %PEER_IP% %SNI% %ALPN% %TLS_VERSION%"),
            "192.0.2.7:4242 via 10.0.0.1 a.test h2 TLSv1.3");
  EXPECT_EQ(format("%LISTENER% %ROUTE% %MODE% %PROTOCOL%"), "edge a.test L7 HTTP/2");
  EXPECT_EQ(format("%METHOD% %AUTHORITY% %PATH% %STATUS% %USER_AGENT% %REQUEST_ID%"),
            "GET a.test /x?y 204 curl/8 id-1");
  EXPECT_EQ(format("%DURATION_MS% %UPSTREAM_CONNECT_MS% %UPSTREAM_RESPONSE_MS%"), "12 3 7");
  EXPECT_EQ(format("%REQ(User-Agent)% 100%%"), "curl/8 100%");
  EXPECT_EQ(format("%CLOSE_REASON%"), "finished");
}

TEST_F(FormatterTest, WhatIsNotKnownIsWrittenAsMissing) {
  stream_.upstream_connect.reset();
  EXPECT_EQ(format("[%UPSTREAM_CONNECT_MS%] [%REQ(x-none)%] [%TLS_CIPHER%]", "-"), "[-] [-] [-]");
  EXPECT_EQ(format("[%UPSTREAM_CONNECT_MS%]"), "[]");
}

TEST_F(FormatterTest, TimeIsRfc3339InUtcWithMilliseconds) {
  const std::string time = format("%TIME%");
  // 2026-12-01T16:20:05.123Z
  ASSERT_EQ(time.size(), 24u) << time;
  EXPECT_EQ(time[4], '-');
  EXPECT_EQ(time[10], 'T');
  EXPECT_EQ(time[19], '.');
  EXPECT_EQ(time.back(), 'Z');
  EXPECT_EQ(rfc3339(std::chrono::system_clock::time_point(std::chrono::milliseconds(1234))),
            "1970-01-01T00:00:01.234Z");
}

TEST_F(FormatterTest, AConnectionWithoutARequestHasNoRequestFields) {
  connection_.end_time = connection_.start_time + std::chrono::milliseconds(40);
  connection_.close_reason = network::CloseReason::kNoRoute;
  connection_.bytes_from_downstream = 517;
  auto formatter = Formatter::parse(
      "%STATUS% %METHOD% %CLOSE_REASON% %DURATION_MS% "
      "%BYTES_FROM_CLIENT% %BACKEND%",
      "-");
  ASSERT_TRUE(formatter.ok());
  EXPECT_EQ(formatter->format({connection_}), "- - no_route 40 517 127.0.0.1:9000");
}

TEST_F(FormatterTest, FieldNamesAreIndexedByTheirField) {
  for (size_t i = 0; i < fieldNames().size(); ++i) {
    EXPECT_EQ(static_cast<size_t>(fieldNames()[i].field), i) << fieldNames()[i].command;
  }
  EXPECT_STREQ(nameOf(Field::kUserAgent).json, "user_agent");
}

TEST_F(FormatterTest, ParseErrorsSayWhatIsWrong) {
  EXPECT_EQ(Formatter::parse("%CLIENT_IP").status().message(), "unterminated % at offset 0");
  const std::string unknown(Formatter::parse("%SNII%").status().message());
  EXPECT_TRUE(unknown.starts_with("unknown %SNII%; known: %TIME% %LISTENER%")) << unknown;
  EXPECT_EQ(Formatter::parse("%REQ(a b)%").status().message(), "%REQ(a b)% names no valid header");
  EXPECT_TRUE(Formatter::parse("plain").value().literal());
  EXPECT_TRUE(Formatter::parse("%PATH%").value().readsRequestHeaders());
  EXPECT_FALSE(Formatter::parse("%SNI%").value().readsRequestHeaders());
}

}  // namespace
}  // namespace mcproxy::formatter

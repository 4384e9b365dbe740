#include "source/common/http/upgrade.h"

#include <gtest/gtest.h>

namespace mcproxy::http::upgrade {
namespace {

TEST(UpgradeTest, AcceptValueIsRfc6455s) {
  // RFC 6455 §1.3's example.
  EXPECT_EQ(webSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(UpgradeTest, ExtendedConnectBecomesTheHttp1HandshakeWithAFreshKey) {
  HeaderMap request{{":method", "CONNECT"},
                    {":protocol", "WebSocket"},
                    {":scheme", "https"},
                    {":path", "/chat"},
                    {":authority", "a.test"},
                    {"sec-websocket-version", "13"},
                    {"sec-websocket-protocol", "chat"}};
  ASSERT_TRUE(fromExtendedConnect(request));
  EXPECT_EQ(request.method(), "GET");
  EXPECT_EQ(request.get(":protocol"), nullptr);
  EXPECT_EQ(requested(request), "websocket");
  ASSERT_NE(request.get("sec-websocket-key"), nullptr);
  EXPECT_EQ(request.get("sec-websocket-key")->size(), 24u);  // 16 bytes, base64
  EXPECT_EQ(*request.get("sec-websocket-protocol"), "chat");
  HeaderMap other = request;
  HeaderMap second{{":method", "CONNECT"}, {":protocol", "websocket"}, {":path", "/"}};
  fromExtendedConnect(second);
  EXPECT_NE(*second.get("sec-websocket-key"), *request.get("sec-websocket-key"));

  HeaderMap plain{{":method", "CONNECT"}, {":authority", "a.test:443"}};
  EXPECT_FALSE(fromExtendedConnect(plain));  // a classic CONNECT is not an upgrade
  EXPECT_EQ(plain.method(), "CONNECT");
}

TEST(UpgradeTest, TheHttp1HandshakeBecomesExtendedConnectAndBack) {
  HeaderMap request{{":method", "GET"},
                    {":scheme", "https"},
                    {":path", "/chat"},
                    {":authority", "a.test"},
                    {"upgrade", "websocket"},
                    {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="},
                    {"sec-websocket-version", "13"}};
  EXPECT_EQ(toExtendedConnect(request), "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(request[0].name, ":method");
  EXPECT_EQ(request[0].value, "CONNECT");
  EXPECT_EQ(request[1].name, ":protocol");  // pseudo-headers stay first
  EXPECT_EQ(request[1].value, "websocket");
  EXPECT_EQ(request.get("upgrade"), nullptr);
  EXPECT_EQ(request.get("sec-websocket-key"), nullptr);
  EXPECT_EQ(*request.get("sec-websocket-version"), "13");

  HeaderMap accepted{{":status", "200"}, {"sec-websocket-protocol", "chat"}};
  responseFromExtendedConnect(accepted, "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(accepted.status(), 101);
  EXPECT_EQ(*accepted.get("upgrade"), "websocket");
  EXPECT_EQ(*accepted.get("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  HeaderMap refused{{":status", "403"}};
  responseFromExtendedConnect(refused, "k");
  EXPECT_EQ(refused.status(), 403);
  EXPECT_EQ(refused.get("upgrade"), nullptr);
}

TEST(UpgradeTest, A101GoesToAnHttp2ClientAs200WithoutHttp1Fields) {
  HeaderMap response{{":status", "101"},
                     {"upgrade", "websocket"},
                     {"connection", "upgrade"},
                     {"sec-websocket-accept", "x"},
                     {"sec-websocket-protocol", "chat"}};
  responseForExtendedConnect(response);
  EXPECT_EQ(response.status(), 200);
  EXPECT_EQ(response.size(), 2u);
  EXPECT_EQ(*response.get("sec-websocket-protocol"), "chat");
}

}  // namespace
}  // namespace mcproxy::http::upgrade

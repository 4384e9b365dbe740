#include "source/common/network/address.h"

#include <gtest/gtest.h>

namespace mcproxy::network {
namespace {

TEST(AddressTest, ParsesIpv4AndIpv6) {
  std::string error;
  auto v4 = Address::parseIpPort("127.0.0.1:8443", error);
  ASSERT_TRUE(v4) << error;
  EXPECT_EQ(v4->family(), AF_INET);
  EXPECT_EQ(v4->port(), 8443);
  EXPECT_EQ(v4->toString(), "127.0.0.1:8443");
  auto v6 = Address::parseIpPort("[::1]:0", error);
  ASSERT_TRUE(v6) << error;
  EXPECT_EQ(v6->family(), AF_INET6);
  EXPECT_EQ(v6->toString(), "[::1]:0");
}

TEST(AddressTest, RejectsMalformedWithReasons) {
  std::string error;
  EXPECT_FALSE(Address::parseIpPort("127.0.0.1", error));
  EXPECT_NE(error.find("host:port"), std::string::npos);
  EXPECT_FALSE(Address::parseIpPort("127.0.0.1:99999", error));
  EXPECT_NE(error.find("port"), std::string::npos);
  EXPECT_FALSE(Address::parseIpPort("127.0.0.1:8x", error));
  EXPECT_FALSE(Address::parseIpPort("::1:80", error));
  EXPECT_NE(error.find("brackets"), std::string::npos);
  EXPECT_FALSE(Address::parseIpPort("[::1]80", error));
  EXPECT_FALSE(Address::parseIpPort("300.1.1.1:80", error));
  EXPECT_FALSE(Address::parseIpPort("localhost:80", error));
}

TEST(AddressTest, ResolvesHostnames) {
  std::string error;
  auto resolved = Address::resolveHostPort("localhost:9000", error);
  ASSERT_TRUE(resolved) << error;
  EXPECT_EQ(resolved->port(), 9000);
  EXPECT_FALSE(Address::resolveHostPort("no-such-host.invalid:80", error));
  EXPECT_NE(error.find("cannot resolve"), std::string::npos);
}

}  // namespace
}  // namespace mcproxy::network

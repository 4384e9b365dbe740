#include "source/common/network/cidr.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace mcproxy::network {
namespace {

Address ip(const std::string& text) {
  std::string error;
  const bool v6 = text.find(':') != std::string::npos;
  return *Address::parseIpPort(v6 ? "[" + text + "]:1" : text + ":1", error);
}

TEST(CidrSetTest, MembershipV4AndV6) {
  CidrSet set;
  std::string error;
  ASSERT_TRUE(set.add("10.0.0.0/8", error)) << error;
  ASSERT_TRUE(set.add("192.0.2.7", error)) << error;
  ASSERT_TRUE(set.add("2001:db8::/32", error)) << error;
  ASSERT_TRUE(set.add("::1", error)) << error;
  set.build();
  EXPECT_TRUE(set.contains(ip("10.255.255.255")));
  EXPECT_TRUE(set.contains(ip("10.0.0.0")));
  EXPECT_FALSE(set.contains(ip("11.0.0.0")));
  EXPECT_TRUE(set.contains(ip("192.0.2.7")));
  EXPECT_FALSE(set.contains(ip("192.0.2.8")));
  EXPECT_TRUE(set.contains(ip("2001:db8:ffff::1")));
  EXPECT_FALSE(set.contains(ip("2001:db9::")));
  EXPECT_TRUE(set.contains(ip("::1")));
  EXPECT_TRUE(set.contains(ip("::ffff:10.1.2.3")));  // IPv4-mapped is judged as IPv4
  EXPECT_FALSE(set.contains(ip("::ffff:11.1.2.3")));
}

TEST(CidrSetTest, OverlapsAndNeighboursMerge) {
  CidrSet set;
  std::string error;
  for (const char* cidr : {"10.0.0.0/24", "10.0.1.0/24", "10.0.0.128/25", "0.0.0.0/0"}) {
    ASSERT_TRUE(set.add(cidr, error)) << error;
  }
  set.build();
  EXPECT_EQ(set.ranges(), 1u);
  EXPECT_TRUE(set.contains(ip("255.255.255.255")));
  CidrSet all6;
  ASSERT_TRUE(all6.add("::/0", error));
  all6.build();
  EXPECT_TRUE(all6.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
}

TEST(CidrSetTest, RefusesMalformed) {
  CidrSet set;
  std::string error;
  EXPECT_FALSE(set.add("10.0.0.1/8", error));  // host bits set
  EXPECT_NE(error.find("bits set below"), std::string::npos);
  EXPECT_FALSE(set.add("10.0.0.0/33", error));
  EXPECT_FALSE(set.add("10.0.0.0/", error));
  EXPECT_FALSE(set.add("10.0.0.0/x", error));
  EXPECT_FALSE(set.add("example.com", error));
  EXPECT_FALSE(set.add("2001:db8::/129", error));
}

// 100,000 random networks, checked against a plain scan of every one of them.
TEST(CidrSetTest, HundredThousandEntriesAgreeWithAScan) {
  std::mt19937 rng(7);
  std::vector<std::pair<uint32_t, uint32_t>> networks;
  CidrSet set;
  std::string error;
  for (int i = 0; i < 100000; ++i) {
    const int prefix = 16 + static_cast<int>(rng() % 17);
    const uint32_t mask = prefix == 32 ? ~0u : ~(~0u >> prefix);
    const uint32_t base = rng() & mask;
    networks.emplace_back(base, base | ~mask);
    in_addr addr{htonl(base)};
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr, text, sizeof(text));
    ASSERT_TRUE(set.add(std::string(text) + "/" + std::to_string(prefix), error)) << error;
  }
  set.build();
  for (int i = 0; i < 2000; ++i) {
    const uint32_t probe = i % 2 ? rng() : networks[rng() % networks.size()].first + (rng() % 7);
    bool expected = false;
    for (const auto& [first, last] : networks) expected |= probe >= first && probe <= last;
    in_addr addr{htonl(probe)};
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr, text, sizeof(text));
    EXPECT_EQ(set.contains(ip(text)), expected) << text;
  }
}

}  // namespace
}  // namespace mcproxy::network

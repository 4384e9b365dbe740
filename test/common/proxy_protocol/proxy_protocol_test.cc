#include "source/common/proxy_protocol/proxy_protocol.h"

#include <dirent.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace mcproxy::proxy_protocol {
namespace {

network::Address address(const std::string& text) {
  std::string error;
  return *network::Address::parseIpPort(text, error);
}

ParseResult parseText(const std::string& data, ProxyHeader& header) { return parse(data, header); }

TEST(ProxyProtocolTest, V1Tcp4FieldsAndLength) {
  ProxyHeader header;
  const std::string line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
  ASSERT_EQ(parseText(line + "payload", header).status, ParseStatus::kDone);
  EXPECT_EQ(header.version, 1);
  EXPECT_TRUE(header.has_inet_addresses);
  EXPECT_EQ(header.source.toString(), "192.168.0.1:56324");
  EXPECT_EQ(header.destination.toString(), "192.168.0.11:443");
  EXPECT_EQ(header.header_bytes, line.size());
}

TEST(ProxyProtocolTest, V1UnknownKeepsThePeer) {
  ProxyHeader header;
  ASSERT_EQ(parseText("PROXY UNKNOWN\r\n", header).status, ParseStatus::kDone);
  EXPECT_FALSE(header.has_inet_addresses);
}

TEST(ProxyProtocolTest, LocalHeadersOfHealthChecksParseAsLocal) {
  ProxyHeader header;
  const std::string v2 = encodeLocal(2);
  ASSERT_EQ(parseText(v2 + "payload", header).status, ParseStatus::kDone);
  EXPECT_EQ(header.version, 2);
  EXPECT_TRUE(header.local_command);
  EXPECT_FALSE(header.has_inet_addresses);
  EXPECT_EQ(header.header_bytes, 16u);
  ProxyHeader v1;
  ASSERT_EQ(parseText(encodeLocal(1), v1).status, ParseStatus::kDone);
  EXPECT_EQ(v1.version, 1);
  EXPECT_FALSE(v1.has_inet_addresses);
}

TEST(ProxyProtocolTest, V1LengthLimitIs107Bytes) {
  ProxyHeader header;
  // 105 bytes of line + CRLF = 107: accepted. One more: refused.
  const std::string at_limit = "PROXY UNKNOWN " + std::string(91, 'x') + "\r\n";
  ASSERT_EQ(at_limit.size(), 107u);
  EXPECT_EQ(parseText(at_limit, header).status, ParseStatus::kDone);
  const std::string over = "PROXY UNKNOWN " + std::string(92, 'x') + "\r\n";
  EXPECT_EQ(parseText(over, header).status, ParseStatus::kInvalid);
  // And without waiting for the CRLF that would come too late.
  EXPECT_EQ(parseText(over.substr(0, 107), header).status, ParseStatus::kInvalid);
  EXPECT_EQ(parseText(over.substr(0, 106), header).status, ParseStatus::kNeedMoreData);
}

TEST(ProxyProtocolTest, V2InetWithTlvs) {
  const std::string encoded = encodeV2(address("10.1.2.3:4567"), address("10.9.9.9:443"), "a.test");
  ProxyHeader header;
  ASSERT_EQ(parseText(encoded + "\x16\x03", header).status, ParseStatus::kDone);
  EXPECT_EQ(header.version, 2);
  EXPECT_EQ(header.source.toString(), "10.1.2.3:4567");
  EXPECT_EQ(header.destination.toString(), "10.9.9.9:443");
  EXPECT_EQ(header.authority, "a.test");
  EXPECT_EQ(header.header_bytes, encoded.size());
  EXPECT_FALSE(header.crc32c_checked);
}

TEST(ProxyProtocolTest, V2MixedFamiliesAreSentAsIpv6) {
  const std::string encoded = encodeV2(address("10.1.2.3:1"), address("[::1]:2"), "");
  ProxyHeader header;
  ASSERT_EQ(parseText(encoded, header).status, ParseStatus::kDone);
  EXPECT_EQ(header.source.toString(), "[::ffff:10.1.2.3]:1");
  EXPECT_EQ(header.destination.toString(), "[::1]:2");
}

TEST(ProxyProtocolTest, V2Crc32cIsWrittenAndChecked) {
  std::string encoded =
      encodeV2(address("[2001:db8::1]:1"), address("[2001:db8::2]:2"), "b.test", true);
  ProxyHeader header;
  ASSERT_EQ(parseText(encoded, header).status, ParseStatus::kDone);
  EXPECT_TRUE(header.crc32c_checked);
  encoded[20] ^= 1;  // flip a bit of the source address
  EXPECT_EQ(parseText(encoded, header).status, ParseStatus::kInvalid);
}

TEST(ProxyProtocolTest, Crc32cKnownValue) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // the standard CRC-32C check value
}

TEST(ProxyProtocolTest, V1EncodeRoundTrips) {
  ProxyHeader header;
  const std::string v4 = encodeV1(address("1.2.3.4:5"), address("6.7.8.9:10"));
  EXPECT_EQ(v4, "PROXY TCP4 1.2.3.4 6.7.8.9 5 10\r\n");
  ASSERT_EQ(parseText(v4, header).status, ParseStatus::kDone);
  const std::string v6 = encodeV1(address("[::1]:5"), address("[::2]:10"));
  EXPECT_EQ(v6, "PROXY TCP6 ::1 ::2 5 10\r\n");
  EXPECT_EQ(encodeV1(address("1.2.3.4:5"), address("[::2]:10")), "PROXY UNKNOWN\r\n");
}

TEST(ProxyProtocolTest, EveryPrefixOfAValidHeaderNeedsMoreData) {
  for (const std::string& full :
       {encodeV2(address("10.1.2.3:4567"), address("10.9.9.9:443"), "a.test", true),
        std::string("PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n")}) {
    for (size_t len = 0; len < full.size(); ++len) {
      ProxyHeader header;
      EXPECT_EQ(parseText(full.substr(0, len), header).status, ParseStatus::kNeedMoreData) << len;
    }
  }
}

// The named files of test/fuzz/corpus/proxy_protocol/ are rules of the spec; the name says the
// answer the parser must give. (Files libFuzzer added, named by their SHA-1, only have to parse
// without harm: //test/fuzz:proxy_protocol_corpus_test replays them.)
TEST(ProxyProtocolTest, CorpusFromTheSpec) {
  const std::string dir =
      std::string(std::getenv("TEST_SRCDIR")) + "/mcproxy/test/fuzz/corpus/proxy_protocol";
  DIR* handle = opendir(dir.c_str());
  ASSERT_NE(handle, nullptr) << dir;
  std::vector<std::string> names;
  while (dirent* entry = readdir(handle)) {
    const std::string name = entry->d_name;
    if (name.starts_with("valid_") || name.starts_with("invalid_") ||
        name.starts_with("partial_")) {
      names.push_back(name);
    }
  }
  closedir(handle);
  ASSERT_GE(names.size(), 50u);
  for (const std::string& name : names) {
    std::ifstream in(dir + "/" + name, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    ProxyHeader header;
    const ParseResult result = parse(bytes.str(), header);
    ParseStatus expected = ParseStatus::kInvalid;
    if (name.starts_with("valid_")) expected = ParseStatus::kDone;
    if (name.starts_with("partial_")) expected = ParseStatus::kNeedMoreData;
    EXPECT_EQ(result.status, expected) << name << ": " << result.error;
    if (result.status == ParseStatus::kDone) {
      EXPECT_LE(header.header_bytes, bytes.str().size()) << name;
    }
  }
}

}  // namespace
}  // namespace mcproxy::proxy_protocol

#include "source/common/grpc/framing.h"

#include <gtest/gtest.h>

namespace mcproxy::grpc {
namespace {

TEST(FramingTest, FramesAndReadsBackTheLengthPrefix) {
  const std::string framed = frameMessage(std::string(300, 'x'));
  ASSERT_EQ(framed.size(), 305u);
  EXPECT_EQ(framed.substr(0, 5), std::string("\0\0\0\x01\x2c", 5));
  const auto header = frameHeader(framed);
  ASSERT_TRUE(header);
  EXPECT_FALSE(header->compressed);
  EXPECT_EQ(header->length, 300u);
  EXPECT_FALSE(frameHeader(framed.substr(0, 4)));  // not the whole prefix yet
  EXPECT_TRUE(frameHeader(std::string("\x01\0\0\0\0", 5))->compressed);
  EXPECT_EQ(frameMessage(""), std::string(5, '\0'));
}

TEST(FramingTest, MessageTextIsPercentEncodedBothWays) {
  const std::string text = "100% sure: caf\xc3\xa9\nnext";
  const std::string encoded = encodeMessageText(text);
  EXPECT_EQ(encoded, "100%25 sure: caf%C3%A9%0Anext");
  EXPECT_EQ(decodeMessageText(encoded), text);
  EXPECT_EQ(decodeMessageText("50%"), "50%");  // a lone '%' stays
}

}  // namespace
}  // namespace mcproxy::grpc

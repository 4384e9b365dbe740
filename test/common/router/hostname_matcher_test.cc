#include "source/common/router/hostname_matcher.h"

#include <gtest/gtest.h>

namespace mcproxy::router {
namespace {

TEST(HostnameMatcherTest, ExactBeatsWildcardAndLongestSuffixWins) {
  HostnameMatcher<int> matcher;
  ASSERT_TRUE(matcher.add("a.test", 1));
  ASSERT_TRUE(matcher.add("*.b.test", 2));
  ASSERT_TRUE(matcher.add("*.x.b.test", 3));
  ASSERT_TRUE(matcher.add("exact.b.test", 4));
  auto find = [&](const char* name) {
    const int* found = matcher.find(name);
    return found ? *found : 0;
  };
  EXPECT_EQ(find("a.test"), 1);
  EXPECT_EQ(find("y.b.test"), 2);
  EXPECT_EQ(find("deep.y.b.test"), 2);
  EXPECT_EQ(find("z.x.b.test"), 3);
  EXPECT_EQ(find("exact.b.test"), 4);
  EXPECT_EQ(find("b.test"), 0);  // a wildcard does not match its own suffix
  EXPECT_EQ(find("x.b.test"), 2);
  EXPECT_EQ(find("other.test"), 0);
  EXPECT_EQ(find(""), 0);
  EXPECT_EQ(find("sub.a.test"), 0);  // exact names do not match their subdomains
}

TEST(HostnameMatcherTest, CaseInsensitive) {
  HostnameMatcher<int> matcher;
  ASSERT_TRUE(matcher.add("MiXeD.Test", 1));
  ASSERT_TRUE(matcher.add("*.Wild.TEST", 2));
  EXPECT_NE(matcher.find("mixed.test"), nullptr);
  EXPECT_NE(matcher.find("MIXED.TEST"), nullptr);
  EXPECT_NE(matcher.find("A.wild.test"), nullptr);
}

TEST(HostnameMatcherTest, DuplicatesAreRefused) {
  HostnameMatcher<int> matcher;
  EXPECT_TRUE(matcher.add("a.test", 1));
  EXPECT_FALSE(matcher.add("A.TEST", 2));
  EXPECT_TRUE(matcher.add("*.a.test", 3));
  EXPECT_FALSE(matcher.add("*.a.test", 4));
  EXPECT_EQ(*matcher.find("a.test"), 1);
  EXPECT_EQ(matcher.size(), 2u);
}

TEST(HostnameMatcherTest, ManyRoutes) {
  HostnameMatcher<int> matcher;
  for (int i = 0; i < 100000; ++i)
    ASSERT_TRUE(matcher.add("host" + std::to_string(i) + ".test", i));
  EXPECT_EQ(*matcher.find("host99999.test"), 99999);
  EXPECT_EQ(matcher.find("host100000.test"), nullptr);
}

TEST(HostnamePatternTest, Validation) {
  EXPECT_EQ(validateHostnamePattern("a.test"), "");
  EXPECT_EQ(validateHostnamePattern("*.b.test"), "");
  EXPECT_EQ(validateHostnamePattern("under_score.test"), "");
  EXPECT_NE(validateHostnamePattern(""), "");
  EXPECT_NE(validateHostnamePattern("*"), "");
  EXPECT_NE(validateHostnamePattern("*."), "");
  EXPECT_NE(validateHostnamePattern("a.*.test"), "");
  EXPECT_NE(validateHostnamePattern("*a.test"), "");
  EXPECT_NE(validateHostnamePattern("a..test"), "");
  EXPECT_NE(validateHostnamePattern("a.test."), "");
  EXPECT_NE(validateHostnamePattern("bad host.test"), "");
  EXPECT_NE(validateHostnamePattern(std::string(64, 'a') + ".test"), "");
}

}  // namespace
}  // namespace mcproxy::router

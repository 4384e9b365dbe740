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

// A copy shares the entries; what it adds and removes stays its own (the route table of a
// patched snapshot, while the snapshot it came from still serves connections).
TEST(HostnameMatcherTest, CopiesShareEntriesAndChangeApart) {
  HostnameMatcher<int> original;
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(original.add("h" + std::to_string(i) + ".test", i));
  ASSERT_TRUE(original.add("*.wild.test", -1));
  HostnameMatcher<int> copy = original;
  EXPECT_EQ(copy.layered(), 0u);
  ASSERT_TRUE(copy.add("new.test", 5000));
  ASSERT_TRUE(copy.remove("h7.test"));
  ASSERT_TRUE(copy.remove("*.wild.test"));
  ASSERT_TRUE(copy.add("*.x.wild.test", -2));
  EXPECT_FALSE(copy.add("h8.test", 1));  // present in the shared entries
  EXPECT_FALSE(copy.remove("h7.test"));  // already removed in the layer
  EXPECT_EQ(copy.layered(), 4u);
  EXPECT_EQ(*copy.find("new.test"), 5000);
  EXPECT_EQ(copy.find("h7.test"), nullptr);
  EXPECT_EQ(*copy.find("h8.test"), 8);
  EXPECT_EQ(copy.find("a.wild.test"), nullptr);
  EXPECT_EQ(*copy.find("a.x.wild.test"), -2);
  EXPECT_TRUE(copy.contains("*.x.wild.test"));
  EXPECT_FALSE(copy.contains("*.wild.test"));
  EXPECT_EQ(copy.size(), 1001u);
  // The original is as it was.
  EXPECT_EQ(original.find("new.test"), nullptr);
  EXPECT_EQ(*original.find("h7.test"), 7);
  EXPECT_EQ(*original.find("a.x.wild.test"), -1);
  EXPECT_EQ(original.size(), 1001u);
  // Removed, then added again: the layer's value wins.
  ASSERT_TRUE(copy.add("H7.test", 77));
  EXPECT_EQ(*copy.find("h7.test"), 77);
  // A copy of the copy carries its layer and shares the same entries.
  HostnameMatcher<int> second = copy;
  ASSERT_TRUE(second.remove("new.test"));
  EXPECT_EQ(second.find("new.test"), nullptr);
  EXPECT_EQ(*copy.find("new.test"), 5000);
  EXPECT_EQ(*second.find("h7.test"), 77);
}

TEST(HostnameMatcherTest, LayerIsFoldedOnceItGrows) {
  HostnameMatcher<int> original;
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(original.add("h" + std::to_string(i) + ".test", i));
  HostnameMatcher<int> copy = original;
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(copy.remove("h" + std::to_string(i) + ".test"));
    ASSERT_TRUE(copy.add("n" + std::to_string(i) + ".test", i));
  }
  // 2,000 entries: the layer is folded before it holds more than 125.
  EXPECT_LE(copy.layered(), 125u);
  EXPECT_EQ(copy.size(), 2000u);
  for (int i = 0; i < 2000; ++i) {
    const std::string h = "h" + std::to_string(i) + ".test";
    if (i < 300) {
      EXPECT_EQ(copy.find(h), nullptr) << h;
      EXPECT_EQ(*copy.find("n" + std::to_string(i) + ".test"), i);
    } else {
      EXPECT_EQ(*copy.find(h), i) << h;
    }
    EXPECT_EQ(*original.find(h), i) << h;
  }
  EXPECT_EQ(original.find("n1.test"), nullptr);
  EXPECT_EQ(original.size(), 2000u);
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

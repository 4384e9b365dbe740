#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "source/common/router/hostname_matcher.h"
#include "source/common/router/route.h"
#include "source/common/stats/stats.h"
#include "test/mocks/router/route.h"

namespace mcproxy::router {
namespace {

// A listener's table: a.test, b.test, *.w.test, and optionally a default route.
class Table : public RouteTable {
 public:
  explicit Table(bool with_default) {
    for (const char* name : {"a.test", "b.test", "*.w.test", "(default)"}) {
      routes_[name] = test::makeRoute(stats_);
    }
    for (const char* name : {"a.test", "b.test", "*.w.test"}) {
      matcher_.add(name, routes_[name].get());
    }
    if (with_default) default_route_ = routes_["(default)"].get();
  }
  const Route* findRoute(std::string_view name) const override {
    if (const auto* found = matcher_.find(name)) return *found;
    return default_route_;
  }
  const Route& route(const std::string& name) { return *routes_[name]; }

 private:
  stats::Store stats_;
  std::map<std::string, std::unique_ptr<Route>> routes_;
  HostnameMatcher<const Route*> matcher_;
  const Route* default_route_ = nullptr;
};

TEST(AuthorityHost, DropsThePort) {
  EXPECT_EQ(authorityHost("a.test"), "a.test");
  EXPECT_EQ(authorityHost("a.test:8443"), "a.test");
  EXPECT_EQ(authorityHost("[::1]:8443"), "[::1]");
  EXPECT_EQ(authorityHost("[::1]"), "[::1]");
}

TEST(Misdirected, AnotherRoutesNameOrNoRoutesName) {
  Table table(/*with_default=*/false);
  const Route& a = table.route("a.test");
  EXPECT_FALSE(misdirected(table, a, "a.test", "a.test"));
  EXPECT_FALSE(misdirected(table, a, "a.test", "A.Test:443"));
  EXPECT_TRUE(misdirected(table, a, "a.test", "b.test"));
  EXPECT_TRUE(misdirected(table, a, "a.test", "nowhere.test"));
  EXPECT_FALSE(misdirected(table, a, "a.test", ""));  // HTTP/1.0 without Host: nothing to compare
  const Route& wildcard = table.route("*.w.test");
  EXPECT_FALSE(misdirected(table, wildcard, "x.w.test", "y.w.test"));
}

TEST(Misdirected, TheDefaultRouteServesEveryNameNoOtherRouteTakes) {
  Table table(/*with_default=*/true);
  const Route& fallback = table.route("(default)");
  EXPECT_FALSE(misdirected(table, fallback, "", "127.0.0.1:8443"));  // no SNI, an address
  EXPECT_FALSE(misdirected(table, fallback, "", "nowhere.test"));
  EXPECT_TRUE(misdirected(table, fallback, "", "a.test"));
  EXPECT_TRUE(misdirected(table, fallback, "unknown.test", "a.test"));
}

}  // namespace
}  // namespace mcproxy::router

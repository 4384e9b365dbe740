#pragma once

// A compiled route for tests that need one without compiling a config: "a.test" on listener
// "edge", backend 127.0.0.1:9000, no TLS contexts, its stats in `stats`.
#include <memory>
#include <string>

#include "source/common/router/route.h"
#include "source/common/stats/stats.h"

namespace mcproxy::test {

inline std::unique_ptr<router::Route> makeRoute(stats::Store& stats,
                                                router::RouteMode mode = router::RouteMode::kL7) {
  std::string error;
  auto route = std::make_unique<router::Route>(router::Route{
      "a.test", "127.0.0.1:9000", *network::Address::parseIpPort("127.0.0.1:9000", error), mode,
      false, false, 2,
      router::makeRouteStats(stats, "edge", "a.test", false, mode == router::RouteMode::kL7),
      nullptr, nullptr});
  if (mode == router::RouteMode::kL7) route->l7 = std::make_unique<router::L7Route>();
  return route;
}

}  // namespace mcproxy::test

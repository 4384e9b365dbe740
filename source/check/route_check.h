#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "api/mcproxy/check/v1/check.pb.h"
#include "api/mcproxy/config/v1/bootstrap.pb.h"
#include "source/common/http/headers.h"
#include "source/common/router/route.h"
#include "source/common/stats/stats.h"
#include "source/snapshot/snapshot.h"

namespace mcproxy::worker {
class StandaloneResources;
}

namespace mcproxy::check {

// What one route test met: the verdict and everything its expectations can name.
struct Outcome {
  bool allowed = false;
  std::string deny_reason;  // a close reason, "misdirected", "local_reply"
  std::string detail;       // why, in words
  const snapshot::CompiledListener* listener = nullptr;
  const router::Route* route = nullptr;           // null when no route was chosen
  const router::HttpRoute* http_route = nullptr;  // L7: the http_routes entry, if one matched
  std::string backend;                            // as configured
  http::HeaderMap request_headers;                // L7: as they leave for the backend
  int status = 0;                                 // L7: the proxy's own answer
  std::vector<std::string> firewall_rules;        // the rules that refused the connection
};

// One expectation that did not hold.
struct Mismatch {
  std::string field;
  std::string expected;
  std::string actual;
};

struct TestResult {
  std::string name;
  std::string error;  // the test could not run (its input names no listener, ...)
  std::vector<Mismatch> mismatches;
  Outcome outcome;
  bool passed() const { return error.empty() && mismatches.empty(); }
};

// Routes, http_routes and firewall rules exercised by the tests, out of all of them.
struct Coverage {
  std::vector<std::string> all;
  std::set<std::string> exercised;
  double percent() const {
    return all.empty() ? 100.0 : 100.0 * static_cast<double>(exercised.size()) / all.size();
  }
};

// Runs route tests against a config offline: compiles it as the proxy does (certificates and
// modules are loaded; GeoIP databases are not: each test names its client's country), then
// runs each test's connection through the listener's network filters before the terminal one
// (PROXY protocol, firewall, SNI, routing, modules), fed the bytes a client would send (a PROXY
// v2 header, a ClientHello from OpenSSL), on a clock that only the test moves. On an L7 route
// the request then runs through the connection manager's checks and the route's HTTP filters up
// to the router. No socket is opened; nothing is implemented twice.
class RouteChecker {
 public:
  // Throws config::ConfigError for a config that does not compile.
  explicit RouteChecker(const mcproxy::config::v1::Bootstrap& config);
  ~RouteChecker();

  TestResult run(const mcproxy::check::v1::Test& test);
  const Coverage& coverage() const { return coverage_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  class GivenCountry;
  // A test's client, made once for all of its connections.
  struct Client {
    size_t listener_index;  // the same in the snapshot and its config
    network::Address address;
    std::string bytes;  // the PROXY header (when the listener reads one) and a ClientHello
    std::vector<network::FilterFactoryCb> chain;
  };

  Outcome evaluate(const mcproxy::check::v1::Input& input, std::string& error);
  void connect(const mcproxy::check::v1::Input& input, const Client& client, Outcome& outcome);
  void request(const mcproxy::check::v1::Input& input, const network::StreamInfo& connection,
               Outcome& outcome);
  void attributeFirewallRule(const network::Address& client, const std::string& country,
                             size_t listener_index, Outcome& outcome);
  void buildCoverage();
  void recordCoverage(const Outcome& outcome);

  // The config under test, parsed once (the snapshot keeps only its bytes).
  mcproxy::config::v1::Bootstrap config_;
  std::unique_ptr<worker::StandaloneResources> worker_;
  std::shared_ptr<GivenCountry> country_;
  stats::Store stats_;
  std::shared_ptr<snapshot::Snapshot> snapshot_;
  std::vector<std::string> warnings_;
  Coverage coverage_;
  uint64_t tests_run_ = 0;
};

// The expectations of `expect` that `outcome` does not meet (only fields set are compared).
std::vector<Mismatch> compare(const mcproxy::check::v1::Expect& expect, const Outcome& outcome);

// JUnit XML for CI systems.
std::string junitXml(const std::vector<TestResult>& results, const Coverage& coverage);

}  // namespace mcproxy::check

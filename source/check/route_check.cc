#include "source/check/route_check.h"

#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_replace.h>

#include <chrono>

#include "extensions/filters/http/router/router.h"
#include "source/common/config/config_error.h"
#include "source/common/config/shared_objects.h"
#include "source/common/http/filter_manager.h"
#include "source/common/network/cidr.h"
#include "source/common/network/country_lookup.h"
#include "source/common/network/filter_manager.h"
#include "source/common/proxy_protocol/proxy_protocol.h"
#include "source/common/tls/client_hello_writer.h"
#include "source/common/worker/standalone_resources.h"

namespace mcproxy::check {
namespace {

using mcproxy::check::v1::Expect;
using mcproxy::check::v1::Input;

// The client port tests do not name.
constexpr uint16_t kClientPort = 40000;

std::optional<network::Address> parseIp(const std::string& ip, std::string& error) {
  const std::string text = ip.find(':') != std::string::npos
                               ? absl::StrCat("[", ip, "]:", kClientPort)
                               : absl::StrCat(ip, ":", kClientPort);
  auto address = network::Address::parseIpPort(text, error);
  if (!address) error = "\"" + ip + "\" is not an IP address";
  return address;
}

// A client connection as a listener's filters see one, without a socket.
class DryRunConnection : public network::Connection, public network::FilterManagerConnection {
 public:
  DryRunConnection(worker::Resources& worker, uint64_t id) : worker_(worker) {
    info_.connection_id = id;
  }

  // network::Connection
  uint64_t id() const override { return info_.connection_id; }
  int fd() const override { return -1; }
  event::Dispatcher& dispatcher() override { return worker_.dispatcher(); }
  worker::Resources& worker() override { return worker_; }
  network::StreamInfo& streamInfo() override { return info_; }
  const access_log::AccessLog* accessLog() const override { return nullptr; }
  void close(network::CloseReason reason) override {
    if (closed_) return;
    closed_ = true;
    info_.close_reason = reason;
    if (manager != nullptr) manager->onClose();
  }
  bool closed() const override { return closed_; }

  // network::FilterManagerConnection
  network::Connection& connection() override { return *this; }
  buffer::Buffer& readBuffer() override { return read_buffer; }
  bool readEnded() const override { return false; }
  void onFiltersReady() override {}
  void onTransportTaken() override {}

  network::FilterManager* manager = nullptr;
  buffer::Buffer read_buffer;

 private:
  worker::Resources& worker_;
  network::StreamInfo info_;
  bool closed_ = false;
};

// Takes the place of the router at the end of a route's HTTP filter chain: keeps the request
// as the filters before it left it.
class RequestCapture : public http::StreamFilter {
 public:
  explicit RequestCapture(std::optional<http::HeaderMap>& captured) : captured_(captured) {}
  http::FilterStatus onRequestHeaders(http::HeaderMap& headers, bool) override {
    captured_ = headers;
    return http::FilterStatus::kStopIteration;
  }

 private:
  std::optional<http::HeaderMap>& captured_;
};

// One request's stream as its filter chain sees it, without a client or a backend.
class DryRunStream : public http::FilterManagerCallbacks, public http::Upstreams {
 public:
  explicit DryRunStream(worker::Resources& worker)
      : worker_(worker), timeouts_(worker.dispatcher()) {}

  void encodeHeaders(http::HeaderMap& headers, bool) override { status = headers.status(); }
  void encodeData(buffer::Buffer&, bool) override {}
  void encodeTrailers(http::HeaderMap&) override {}
  void resetStream() override { reset = true; }
  void releaseRequestBody(size_t) override {}
  bool streamEnded() const override { return false; }
  event::Dispatcher& dispatcher() override { return worker_.dispatcher(); }
  event::TimeoutQueue& timeoutQueue() override { return timeouts_; }
  http::Upstreams& upstreams() override { return *this; }

  upstream::StreamPool& pool(bool) override { return worker_.httpPool(); }
  const upstream::PoolSettings& settings() const override { return settings_; }
  std::chrono::milliseconds responseTimeout() const override { return settings_.connect_timeout; }

  int status = 0;
  bool reset = false;

 private:
  worker::Resources& worker_;
  event::TimeoutQueue timeouts_;
  upstream::PoolSettings settings_;
};

std::string routeName(const router::Route& route) {
  return route.hostname.empty() ? "(default)" : route.hostname;
}

std::string routeItem(const snapshot::CompiledListener& listener, const router::Route& route) {
  return absl::StrCat("route ", listener.name, " ", routeName(route));
}

std::string httpRouteItem(const snapshot::CompiledListener& listener, const router::Route& route,
                          size_t index) {
  return absl::StrCat("http_route ", listener.name, " ", routeName(route), " [", index, "] ",
                      route.l7->http_routes[index].describe());
}

// A firewall rule as coverage lists it: "firewall listener edge blocked_cidrs 10.0.0.0/8".
std::string ruleItem(const std::string& scope, const char* kind, const std::string& value) {
  return absl::StrCat("firewall ", scope, " ", kind, " ", value);
}

std::string rateLimitItem(const mcproxy::config::v1::Firewall& firewall, const std::string& scope) {
  return absl::StrCat("firewall ", scope, " rate_limit ", firewall.rate_limit().connections(),
                      " per ", firewall.rate_limit().per_seconds(), " s");
}

// "firewall_blocked_cidr" and "firewall_cidr" name the same reason.
std::string canonicalReason(std::string_view reason) {
  return absl::StrReplaceAll(absl::string_view(reason.data(), reason.size()),
                             {{"firewall_blocked_", "firewall_"}});
}

}  // namespace

// Every client's country is the one the running test names.
class RouteChecker::GivenCountry : public network::CountryLookup {
 public:
  std::string country(const network::Address&) const override { return current; }
  std::string current;
};

RouteChecker::RouteChecker(const mcproxy::config::v1::Bootstrap& config)
    : config_(config),
      worker_(std::make_unique<worker::StandaloneResources>()),
      country_(std::make_shared<GivenCountry>()) {
  config::SharedObjects shared;
  shared.setCountryOverride(country_);
  auto compiled = snapshot::compile(config, stats_, 1, shared);
  snapshot_ = std::move(compiled.snapshot);
  warnings_ = std::move(compiled.warnings);
  buildCoverage();
}

RouteChecker::~RouteChecker() {
  snapshot_.reset();  // its filters' state before the worker they may point into
  worker_->dispatcher().runDeferredDeletes();
}

void RouteChecker::buildCoverage() {
  const auto& config = config_;
  auto firewallItems = [&](const mcproxy::config::v1::Firewall& firewall,
                           const std::string& scope) {
    for (const auto& ip : firewall.blocked_ips()) {
      coverage_.all.push_back(ruleItem(scope, "blocked_ips", ip));
    }
    for (const auto& cidr : firewall.blocked_cidrs()) {
      coverage_.all.push_back(ruleItem(scope, "blocked_cidrs", cidr));
    }
    for (const auto& country : firewall.blocked_countries()) {
      coverage_.all.push_back(ruleItem(scope, "blocked_countries", country));
    }
    if (firewall.rate_limit().connections() > 0)
      coverage_.all.push_back(rateLimitItem(firewall, scope));
  };
  firewallItems(config.firewall(), "(all listeners)");
  for (size_t i = 0; i < snapshot_->listeners.size(); ++i) {
    const auto& listener = *snapshot_->listeners[i];
    firewallItems(config.listeners(static_cast<int>(i)).firewall(), "listener " + listener.name);
    for (const auto& route : listener.routes) {
      coverage_.all.push_back(routeItem(listener, *route));
      for (size_t j = 0; route->l7 && j < route->l7->http_routes.size(); ++j) {
        coverage_.all.push_back(httpRouteItem(listener, *route, j));
      }
    }
  }
}

void RouteChecker::recordCoverage(const Outcome& outcome) {
  for (const auto& rule : outcome.firewall_rules) coverage_.exercised.insert(rule);
  if (outcome.route == nullptr || outcome.listener == nullptr) return;
  coverage_.exercised.insert(routeItem(*outcome.listener, *outcome.route));
  if (outcome.http_route != nullptr) {
    const size_t index =
        static_cast<size_t>(outcome.http_route - outcome.route->l7->http_routes.data());
    coverage_.exercised.insert(httpRouteItem(*outcome.listener, *outcome.route, index));
  }
}

TestResult RouteChecker::run(const mcproxy::check::v1::Test& test) {
  TestResult result;
  result.name = test.name();
  result.outcome = evaluate(test.input(), result.error);
  if (!result.error.empty()) return result;
  recordCoverage(result.outcome);
  result.mismatches = compare(test.expect(), result.outcome);
  return result;
}

Outcome RouteChecker::evaluate(const Input& input, std::string& error) {
  Outcome outcome;
  const snapshot::CompiledListener* listener = nullptr;
  size_t listener_index = 0;
  for (size_t i = 0; i < snapshot_->listeners.size(); ++i) {
    const auto& candidate = *snapshot_->listeners[i];
    if (input.listener().empty()
            ? snapshot_->listeners.size() == 1
            : candidate.name == input.listener() || candidate.address_text == input.listener()) {
      listener = &candidate;
      listener_index = i;
    }
  }
  if (listener == nullptr) {
    std::vector<std::string> names;
    for (const auto& candidate : snapshot_->listeners) names.push_back(candidate->name);
    error = input.listener().empty()
                ? "input.listener: the config has " + std::to_string(names.size()) +
                      " listeners; name one of: " + absl::StrJoin(names, ", ")
                : "input.listener: no listener \"" + input.listener() +
                      "\"; the config has: " + absl::StrJoin(names, ", ");
    return outcome;
  }
  if (input.source_ip().empty()) {
    error = "input.source_ip: required";
    return outcome;
  }
  if (listener->proxy_protocol && input.proxy_source_ip().empty()) {
    error = "input.proxy_source_ip: listener " + listener->name +
            " reads a PROXY header first; name the client it reports";
    return outcome;
  }
  if (!listener->proxy_protocol && !input.proxy_source_ip().empty()) {
    error = "input.proxy_source_ip: listener " + listener->name + " reads no PROXY header";
    return outcome;
  }
  const auto source = parseIp(input.source_ip(), error);
  if (!source) {
    error = "input.source_ip: " + error;
    return outcome;
  }
  // The filters before the terminal one: those that take the connection over are not run.
  Client client{
      listener_index,
      *source,
      "",
      {listener->filter_factories.begin(),
       listener->filter_factories.begin() + static_cast<long>(listener->filters_before_terminal)}};
  if (listener->proxy_protocol) {
    const auto reported = parseIp(input.proxy_source_ip(), error);
    if (!reported) {
      error = "input.proxy_source_ip: " + error;
      return outcome;
    }
    client.bytes = proxy_protocol::encodeV2(*reported, listener->address, "");
  }
  client.bytes += tls::writeClientHello(input.sni(), {"h2", "http/1.1"});
  outcome.listener = listener;
  // A clock of the test's own: far enough from the last test's that every rate limit bucket
  // (at most a day long) is full again.
  ++tests_run_;
  const auto now = std::chrono::steady_clock::time_point(std::chrono::hours(48 * tests_run_));
  worker_->dispatcher().freezeTime(now);
  country_->current = input.country();
  for (uint32_t i = 0; i < input.earlier_connections(); ++i) {
    Outcome earlier;
    earlier.listener = listener;
    connect(input, client, earlier);
  }
  connect(input, client, outcome);
  return outcome;
}

void RouteChecker::connect(const Input& input, const Client& client, Outcome& outcome) {
  const snapshot::CompiledListener& listener = *snapshot_->listeners[client.listener_index];
  DryRunConnection connection(*worker_, tests_run_);
  network::StreamInfo& info = connection.streamInfo();
  info.listener_name = listener.name;
  info.downstream_remote = client.address;
  info.downstream_local = listener.address;
  info.real_client = info.downstream_remote;
  info.start_time = worker_->dispatcher().now();

  {
    network::FilterManager filters(connection, client.chain);
    connection.manager = &filters;
    filters.start();
    if (!connection.closed()) {
      connection.read_buffer.append(client.bytes);
      filters.onData();
    }
    connection.manager = nullptr;
  }
  worker_->dispatcher().runDeferredDeletes();

  // The chain ran to its end: the filters that take the connection over are not run here.
  const bool through =
      connection.closed() && info.close_reason == network::CloseReason::kNoTerminalFilter;
  if (connection.closed() && !through) {
    outcome.deny_reason =
        info.close_reason == network::CloseReason::kModule && !info.close_detail.empty()
            ? info.close_detail
            : network::closeReasonName(info.close_reason);
    outcome.detail = "the connection is closed: " + outcome.deny_reason;
    attributeFirewallRule(info.real_client, input.country(), client.listener_index, outcome);
    return;
  }
  if (info.route == nullptr) {
    outcome.deny_reason = "held";
    outcome.detail =
        "a filter before the terminal one holds the connection, waiting for more "
        "than a PROXY header and a ClientHello";
    return;
  }
  outcome.route = info.route;
  outcome.backend = info.route->backend_text;
  if (info.route->mode == router::RouteMode::kL7) {
    request(input, info, outcome);
    return;
  }
  outcome.allowed = true;
}

void RouteChecker::request(const Input& input, const network::StreamInfo& connection,
                           Outcome& outcome) {
  const router::Route& route = *connection.route;
  http::HeaderMap headers;
  headers.push_back({":method", input.method().empty() ? "GET" : input.method()});
  headers.push_back({":scheme", "https"});
  headers.push_back({":path", input.path().empty() ? "/" : input.path()});
  const std::string& authority = input.authority().empty() ? input.sni() : input.authority();
  if (!authority.empty()) headers.push_back({":authority", authority});
  for (const auto& header : input.headers()) {
    headers.push_back({absl::AsciiStrToLower(header.name()), header.value()});
  }

  // The connection manager's own check, then the route's filters up to the router.
  if (connection.route_table != nullptr &&
      router::misdirected(*connection.route_table, route, connection.requested_server_name,
                          headers.authority())) {
    outcome.deny_reason = "misdirected";
    outcome.status = 421;
    outcome.detail = "the authority " + authority + " is not served on a connection for \"" +
                     connection.requested_server_name + "\"";
    return;
  }
  std::vector<http::FilterFactory> chain(route.l7->http_filters.begin(),
                                         route.l7->http_filters.end() - 1);
  std::optional<http::HeaderMap> captured;
  chain.push_back(http::FilterFactory::of<RequestCapture>(
      "route test capture",
      [&captured](http::FilterCallbacks&) { return std::make_unique<RequestCapture>(captured); }));
  DryRunStream stream(*worker_);
  http::StreamInfo info(connection);
  info.start_time = worker_->dispatcher().now();
  {
    http::FilterManager filters(stream, info, chain);
    filters.decodeHeaders(std::move(headers), /*end_stream=*/true);
  }
  worker_->dispatcher().runDeferredDeletes();
  if (stream.status != 0 || info.local_reply) {
    outcome.deny_reason = "local_reply";
    outcome.status = stream.status;
    outcome.detail = "answered by the proxy: " + info.response_detail;
    return;
  }
  if (!captured) {
    outcome.deny_reason = stream.reset ? "reset" : "held";
    outcome.detail = stream.reset ? "a filter reset the request"
                                  : "a filter holds the request (a delay or an outside call)";
    return;
  }
  extensions::http_router::prepareUpstreamHeaders(*captured, route.backend_tls);
  outcome.http_route = route.matchHttpRoute(*captured);
  outcome.backend =
      outcome.http_route != nullptr ? outcome.http_route->backend_text : route.backend_text;
  outcome.request_headers = std::move(*captured);
  outcome.allowed = true;
}

// Which configured rules refused the client: each entry of the refusing kind that holds it,
// tested with the firewall's own CidrSet.
void RouteChecker::attributeFirewallRule(const network::Address& client, const std::string& country,
                                         size_t listener_index, Outcome& outcome) {
  const std::string reason = canonicalReason(outcome.deny_reason);
  const auto& config = config_;
  const auto& local = config.listeners(static_cast<int>(listener_index)).firewall();
  const std::string local_scope = "listener " + snapshot_->listeners[listener_index]->name;
  auto attribute = [&](const mcproxy::config::v1::Firewall& firewall, const std::string& scope) {
    auto matching = [&](const google::protobuf::RepeatedPtrField<std::string>& entries,
                        const char* kind) {
      for (const auto& entry : entries) {
        network::CidrSet one;
        std::string error;
        if (!one.add(entry, error)) continue;
        one.build();
        if (one.contains(client)) outcome.firewall_rules.push_back(ruleItem(scope, kind, entry));
      }
    };
    if (reason == "firewall_ip") matching(firewall.blocked_ips(), "blocked_ips");
    if (reason == "firewall_cidr") matching(firewall.blocked_cidrs(), "blocked_cidrs");
    if (reason == "firewall_rate_limited" && firewall.rate_limit().connections() > 0) {
      outcome.firewall_rules.push_back(rateLimitItem(firewall, scope));
    }
    if (reason == "firewall_country") {
      for (const auto& code : firewall.blocked_countries()) {
        if (code == country) {
          outcome.firewall_rules.push_back(ruleItem(scope, "blocked_countries", code));
        }
      }
    }
  };
  // A listener's own rate limit replaces the global one.
  if (reason == "firewall_rate_limited" && local.rate_limit().connections() > 0) {
    outcome.firewall_rules.push_back(rateLimitItem(local, local_scope));
    return;
  }
  attribute(config.firewall(), "(all listeners)");
  attribute(local, local_scope);
}

std::vector<Mismatch> compare(const Expect& expect, const Outcome& outcome) {
  std::vector<Mismatch> mismatches;
  auto check = [&](const char* field, const std::string& expected, const std::string& actual) {
    if (expected != actual) mismatches.push_back({field, expected, actual});
  };
  const std::string verdict = outcome.allowed ? "ALLOW" : "DENY";
  if (expect.verdict() != Expect::VERDICT_UNSPECIFIED) {
    check("verdict", Expect::Verdict_Name(expect.verdict()), verdict);
  }
  if (!expect.deny_reason().empty() &&
      canonicalReason(expect.deny_reason()) != canonicalReason(outcome.deny_reason)) {
    mismatches.push_back({"deny_reason", expect.deny_reason(),
                          outcome.deny_reason.empty() ? "(allowed)" : outcome.deny_reason});
  }
  const router::Route* route = outcome.route;
  if (!expect.route().empty()) {
    check("route", expect.route(), route != nullptr ? routeName(*route) : "(no route)");
  }
  if (expect.mode() != Expect::MODE_UNSPECIFIED) {
    check("mode", Expect::Mode_Name(expect.mode()),
          route == nullptr                        ? "(no route)"
          : route->mode == router::RouteMode::kL7 ? "L7"
                                                  : "L4");
  }
  if (!expect.backend().empty()) {
    check("backend", expect.backend(), outcome.backend.empty() ? "(none)" : outcome.backend);
  }
  auto boolean = [](bool value) { return std::string(value ? "true" : "false"); };
  if (expect.has_backend_tls()) {
    check("backend_tls", boolean(expect.backend_tls()),
          route != nullptr ? boolean(route->backend_tls) : "(no route)");
  }
  if (expect.has_sends_proxy_protocol()) {
    check("sends_proxy_protocol", boolean(expect.sends_proxy_protocol()),
          route != nullptr ? boolean(route->send_proxy_protocol) : "(no route)");
  }
  const bool l7 = route != nullptr && route->mode == router::RouteMode::kL7 && outcome.allowed;
  for (const auto& header : expect.request_headers()) {
    const std::string name = absl::AsciiStrToLower(header.name());
    std::vector<std::string> values;
    for (const http::Header& field : outcome.request_headers) {
      if (field.name == name) values.push_back(field.value);
    }
    const std::string actual = !l7              ? "(no request reaches a backend)"
                               : values.empty() ? "(absent)"
                                                : absl::StrJoin(values, ", ");
    check(("request_headers[" + name + "]").c_str(), header.value(), actual);
  }
  for (const auto& name : expect.absent_request_headers()) {
    const std::string* value = outcome.request_headers.get(absl::AsciiStrToLower(name));
    if (value != nullptr) {
      mismatches.push_back({"absent_request_headers[" + name + "]", "(absent)", *value});
    }
  }
  if (expect.status() != 0) {
    check("status", std::to_string(expect.status()),
          outcome.status != 0 ? std::to_string(outcome.status) : "(none: not answered locally)");
  }
  return mismatches;
}

namespace {

std::string xmlEscape(std::string_view text) {
  return absl::StrReplaceAll(
      absl::string_view(text.data(), text.size()),
      {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}, {"'", "&apos;"}});
}

}  // namespace

std::string junitXml(const std::vector<TestResult>& results, const Coverage& coverage) {
  size_t failures = 0;
  size_t errors = 0;
  for (const auto& result : results) {
    if (!result.error.empty()) {
      ++errors;
    } else if (!result.mismatches.empty()) {
      ++failures;
    }
  }
  std::string xml = absl::StrCat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"mcproxyctl "
      "check\" tests=\"",
      results.size(), "\" failures=\"", failures, "\" errors=\"", errors, "\">\n");
  absl::StrAppend(&xml, "    <properties><property name=\"coverage\" value=\"",
                  absl::StrFormat("%.1f", coverage.percent()), "\"/></properties>\n");
  for (const auto& result : results) {
    absl::StrAppend(&xml, "    <testcase classname=\"mcproxyctl.check\" name=\"",
                    xmlEscape(result.name), "\"");
    if (result.passed()) {
      absl::StrAppend(&xml, "/>\n");
      continue;
    }
    absl::StrAppend(&xml, ">\n");
    if (!result.error.empty()) {
      absl::StrAppend(&xml, "      <error message=\"", xmlEscape(result.error), "\"/>\n");
    } else {
      std::string text;
      for (const auto& m : result.mismatches) {
        absl::StrAppend(&text, "expected: [", m.expected, "], actual: [", m.actual,
                        "], field: ", m.field, "\n");
      }
      absl::StrAppend(&xml, "      <failure message=\"",
                      xmlEscape(absl::StrCat(result.mismatches.size(), " expectation(s) failed")),
                      "\">", xmlEscape(text), "</failure>\n");
    }
    absl::StrAppend(&xml, "    </testcase>\n");
  }
  absl::StrAppend(&xml, "  </testsuite>\n</testsuites>\n");
  return xml;
}

}  // namespace mcproxy::check

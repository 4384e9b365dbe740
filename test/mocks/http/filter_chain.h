#pragma once

// A test harness for one HTTP filter: its registered factory compiles a typed config from
// protobuf text, and a chain [the filter, a scripted terminal filter] runs over fake stream
// callbacks, without sockets.
#include <google/protobuf/text_format.h>

#include <memory>
#include <string>
#include <vector>

#include "source/common/config/config_error.h"
#include "source/common/http/filter_factory.h"
#include "source/common/http/filter_manager.h"
#include "source/common/stats/stats.h"
#include "test/mocks/http/filter.h"
#include "test/mocks/router/route.h"

namespace mcproxy::test {

class FilterChainHarness {
 public:
  FilterChainHarness() {
    std::string error;
    connection.real_client = *network::Address::parseIpPort("192.0.2.7:4242", error);
    connection.downstream_remote = *network::Address::parseIpPort("10.0.0.1:5555", error);
    connection.requested_server_name = "a.test";
    connection.listener_name = "edge";
    route = test::makeRoute(stats);
    connection.route = route.get();
  }

  // Compiles `config_text` (the filter's typed config, in text format) with the factory
  // registered as `name`. Throws config::ConfigError as the snapshot compiler would.
  http::FilterFactory compile(const std::string& name, const std::string& config_text) {
    const auto* factory = http::HttpFilterRegistry::find(name);
    if (factory == nullptr) throw std::logic_error("not linked: " + name);
    auto config = factory->createEmptyConfigProto();
    if (!google::protobuf::TextFormat::ParseFromString(config_text, config.get())) {
      throw std::logic_error("bad text: " + config_text);
    }
    http::FilterFactoryContext context{"listeners[0].routes[0].http_filters[0]",
                                       "listeners[0].routes[0]",
                                       "a.test",
                                       stats,
                                       warnings,
                                       watched_files};
    return factory->createFilterFactory(*config, context);
  }
  // The chain [`name` with `config_text`, terminal]; the terminal filter answers 200 with
  // `backend_body` at the end of the request unless a test scripts it otherwise.
  void start(const std::string& name, const std::string& config_text,
             std::string backend_body = "backend") {
    chain_.push_back(compile(name, config_text));
    chain_.push_back(http::FilterFactory::of<ScriptedFilter>(
        "terminal", [this, backend_body](http::FilterCallbacks& callbacks) {
          auto filter = std::make_unique<ScriptedFilter>("terminal", callbacks_.log, callbacks);
          terminal = filter.get();
          filter->request_headers = [this, backend_body](ScriptedFilter& self) {
            request_seen = *self.current_headers;
            self.callbacks.encodeResponseHeaders({{":status", "200"}, {"x-backend", "yes"}}, false);
            buffer::Buffer body;
            body.append(backend_body);
            self.callbacks.encodeResponseBody(body, true);
            return http::FilterStatus::kContinue;
          };
          return filter;
        }));
    manager = std::make_unique<http::FilterManager>(callbacks_, info, chain_);
  }
  void request(http::HeaderMap headers) { manager->decodeHeaders(std::move(headers), true); }
  static http::HeaderMap get(const std::string& path) {
    return {{":method", "GET"}, {":scheme", "https"}, {":path", path}, {":authority", "a.test"}};
  }

  FakeManagerCallbacks& callbacks() { return callbacks_; }
  const http::HeaderMap& response() const { return callbacks_.response_headers; }
  const std::string& responseBody() const { return callbacks_.response_body; }
  // The request headers as the terminal filter (the router) got them; empty if it got none.
  http::HeaderMap request_seen;

  stats::Store stats;
  std::unique_ptr<router::Route> route;  // the connection's (a.test)
  std::vector<std::string> warnings;
  std::vector<std::string> watched_files;
  network::StreamInfo connection;
  http::StreamInfo info{connection};
  ScriptedFilter* terminal = nullptr;
  std::unique_ptr<http::FilterManager> manager;

 private:
  FakeManagerCallbacks callbacks_;
  std::vector<http::FilterFactory> chain_;
};

// The message of the ConfigError that compiling `config_text` throws ("" if none).
inline std::string configError(const std::string& name, const std::string& config_text) {
  FilterChainHarness harness;
  try {
    harness.compile(name, config_text);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace mcproxy::test

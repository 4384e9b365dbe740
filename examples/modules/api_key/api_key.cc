// api_key: an mc-proxy HTTP filter module in C++ (with the SDK, mcproxy/module.hpp). Requests
// must carry one of the configured keys in X-Api-Key, or get 401 from the proxy. A known key is
// "verified" asynchronously: the filter stops the request and resumes it from a timer (standing
// in for a call to a key service), then tags the response with X-Api-Key-Verified.
//
// Config: "keys=alpha,beta delay_ms=5" (delay_ms optional, default 0: the next turn of the loop).
//
//   modules { name: "api_key" path: "/usr/lib/mc-proxy/modules/libapi_key.so" }
//   routes { hostname: "api.test" mode: L7 ...
//     http_filters { name: "mcproxy.filters.http.module"
//       typed_config { [type.googleapis.com/mcproxy.extensions.modules.v1.ModuleFilter] {
//         module: "api_key" filter_name: "check" config: "keys=alpha,beta delay_ms=5" } } }
//     http_filters { name: "mcproxy.filters.http.router" } }
//
// Build out of tree: c++ -std=c++17 -shared -fPIC -O2 -I include api_key.cc -o libapi_key.so
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "mcproxy/module.hpp"

namespace {

using mcproxy::sdk::ConfigContext;

class ApiKeyConfig {
 public:
  static std::unique_ptr<ApiKeyConfig> create(ConfigContext& context, std::string_view,
                                              std::string_view text) {
    auto config = std::make_unique<ApiKeyConfig>();
    while (!text.empty()) {
      const size_t space = text.find(' ');
      const std::string_view item = text.substr(0, space);
      text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
      if (item.empty()) continue;
      const size_t eq = item.find('=');
      const std::string_view key = item.substr(0, eq);
      const std::string_view value = eq == std::string_view::npos ? "" : item.substr(eq + 1);
      if (key == "keys") {
        for (std::string_view rest = value; !rest.empty();) {
          const size_t comma = rest.find(',');
          if (comma != 0) config->keys.emplace(rest.substr(0, comma));
          rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        }
      } else if (key == "delay_ms") {
        config->delay_ms = std::strtoull(std::string(value).c_str(), nullptr, 10);
      } else {
        context.fail("unknown setting \"" + std::string(key) + "\" (keys=..., delay_ms=...)");
        return nullptr;
      }
    }
    if (config->keys.empty()) {
      context.fail("no keys: config is \"keys=k1,k2 [delay_ms=N]\"");
      return nullptr;
    }
    config->accepted = context.counter("accepted_total");
    config->rejected = context.counter("rejected_total");
    return config;
  }

  std::set<std::string, std::less<>> keys;
  uint64_t delay_ms = 0;
  mcproxy_counter accepted = nullptr;
  mcproxy_counter rejected = nullptr;
};

class ApiKeyFilter : public mcproxy::sdk::HttpFilter {
 public:
  ApiKeyFilter(const ApiKeyConfig& config, mcproxy_http_filter handle)
      : HttpFilter(handle), config_(config) {}

  mcproxy_status onRequestHeaders(bool) override {
    const auto key = header(MCPROXY_REQUEST_HEADERS, "x-api-key");
    if (!key || config_.keys.find(*key) == config_.keys.end()) {
      mcproxy_counter_add(config_.rejected, 1);
      sendLocalReply(401, key ? "unknown API key\n" : "X-Api-Key required\n", "api_key: rejected");
      return MCPROXY_STOP;
    }
    key_ = std::string(*key);
    // The asynchronous path: hold the request, resume it from a timer.
    setTimer(config_.delay_ms, 1);
    return MCPROXY_STOP;
  }

  void onTimer(uint64_t) override {
    mcproxy_counter_add(config_.accepted, 1);
    continueRequest();
  }

  mcproxy_status onResponseHeaders(bool) override {
    if (!key_.empty()) setHeader(MCPROXY_RESPONSE_HEADERS, "x-api-key-verified", key_);
    return MCPROXY_CONTINUE;
  }

 private:
  const ApiKeyConfig& config_;
  std::string key_;
};

}  // namespace

MCPROXY_MODULE()
MCPROXY_HTTP_FILTER(ApiKeyConfig, ApiKeyFilter)

#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "mcproxy/module_abi.h"
#include "source/common/network/fd.h"
#include "source/common/stats/stats.h"

namespace mcproxy::module {

// The network filter hooks a module exports (null: absent).
struct NetworkHooks {
  void* (*config_new)(mcproxy_config_context, mcproxy_str, mcproxy_str) = nullptr;
  void (*config_destroy)(void*) = nullptr;
  void* (*create)(void*, mcproxy_network_filter) = nullptr;
  mcproxy_status (*on_new_connection)(void*, mcproxy_network_filter) = nullptr;
  mcproxy_status (*on_data)(void*, mcproxy_network_filter, size_t, int) = nullptr;
  void (*on_close)(void*, mcproxy_network_filter, mcproxy_str) = nullptr;
  void (*on_timer)(void*, mcproxy_network_filter, uint64_t) = nullptr;
  void (*destroy)(void*) = nullptr;
};

// The HTTP filter hooks a module exports (null: absent).
struct HttpHooks {
  void* (*config_new)(mcproxy_config_context, mcproxy_str, mcproxy_str) = nullptr;
  void (*config_destroy)(void*) = nullptr;
  void* (*create)(void*, mcproxy_http_filter) = nullptr;
  mcproxy_status (*on_request_headers)(void*, mcproxy_http_filter, int) = nullptr;
  mcproxy_status (*on_request_body)(void*, mcproxy_http_filter, int) = nullptr;
  mcproxy_status (*on_request_trailers)(void*, mcproxy_http_filter) = nullptr;
  mcproxy_status (*on_response_headers)(void*, mcproxy_http_filter, int) = nullptr;
  mcproxy_status (*on_response_body)(void*, mcproxy_http_filter, int) = nullptr;
  mcproxy_status (*on_response_trailers)(void*, mcproxy_http_filter) = nullptr;
  void (*on_log)(void*, mcproxy_http_filter) = nullptr;
  void (*on_timer)(void*, mcproxy_http_filter, uint64_t) = nullptr;
  void (*destroy)(void*) = nullptr;
};

// Whether a module built for ABI `module_version` runs in a proxy of `proxy_version`: the same
// major, a minor at most the proxy's (module_abi.h). `why` says what does not fit.
bool abiCompatible(std::string_view module_version, std::string_view proxy_version,
                   std::string& why);

// A loaded plugin module: its own copy of the file (so that replacing the file on disk loads the
// new one beside the old, and the bytes checked are the bytes run), the dlopen handle, and its
// hooks. Shared by the snapshots and filter configs that use it; unloaded with the last.
class Module {
 public:
  // Reads `path`, checks it against `sha256` (hex; skipped when empty), loads it and checks its
  // ABI version. Errors say which: the file, the digest (both values), the dynamic loader (an
  // unresolved callback names its symbol), a missing mcproxy_module_init, the two versions.
  static absl::StatusOr<std::shared_ptr<Module>> load(const std::string& name,
                                                      const std::string& path,
                                                      const std::string& sha256);
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  const std::string& abiVersion() const { return abi_version_; }
  const NetworkHooks& network() const { return network_; }
  const HttpHooks& http() const { return http_; }
  // The first required hook of that filter kind the module lacks ("" when it has them all).
  std::string missingNetworkHook() const;
  std::string missingHttpHook() const;

 private:
  Module(std::string name, std::string path) : name_(std::move(name)), path_(std::move(path)) {}

  std::string name_;
  std::string path_;
  std::string abi_version_;
  network::UniqueFd copy_;  // the memfd the library was loaded from
  void* library_ = nullptr;
  NetworkHooks network_;
  HttpHooks http_;
};

// The modules a config loaded, by name (for the module filters' factories).
class ModuleSet {
 public:
  void add(std::shared_ptr<Module> module) { by_name_[module->name()] = std::move(module); }
  // Null when there is none of that name.
  std::shared_ptr<Module> find(const std::string& name) const {
    auto found = by_name_.find(name);
    return found == by_name_.end() ? nullptr : found->second;
  }
  bool empty() const { return by_name_.empty(); }

 private:
  absl::flat_hash_map<std::string, std::shared_ptr<Module>> by_name_;
};

// What config_new may use (mcproxy_config_context points at one): the module, where its
// metrics go, and why it refused.
struct ConfigContext {
  const Module& module;
  stats::Store& stats;
  std::string failure;
};

// A filter config a module made, given back to its config_destroy; keeps the module loaded as
// long as a filter may still use it.
class FilterConfig {
 public:
  FilterConfig(std::shared_ptr<const Module> module, void* config, void (*destroy)(void*))
      : module_(std::move(module)), config_(config), destroy_(destroy) {}
  ~FilterConfig() {
    if (destroy_ != nullptr) destroy_(config_);
  }
  FilterConfig(const FilterConfig&) = delete;
  FilterConfig& operator=(const FilterConfig&) = delete;

  void* get() const { return config_; }
  const Module& module() const { return *module_; }

 private:
  std::shared_ptr<const Module> module_;  // declared first: unloaded after config_destroy
  void* config_;
  void (*destroy_)(void*);
};

// Handle kinds in event::HandleSlots.
constexpr uint8_t kNetworkFilterHandle = 1;
constexpr uint8_t kHttpFilterHandle = 2;

// What a network filter handle resolves to: the proxy's side of one module filter instance.
class NetworkFilterTarget {
 public:
  virtual ~NetworkFilterTarget() = default;
  virtual mcproxy_result getAttribute(mcproxy_attribute attribute, mcproxy_str* value) = 0;
  virtual mcproxy_result getReadData(mcproxy_str* data) = 0;
  virtual mcproxy_result continueChain() = 0;
  virtual mcproxy_result close(std::string_view reason) = 0;
  virtual mcproxy_result setTimer(uint64_t delay_ms, uint64_t token) = 0;
};

// What an HTTP filter handle resolves to.
class HttpFilterTarget {
 public:
  virtual ~HttpFilterTarget() = default;
  virtual mcproxy_result getAttribute(mcproxy_attribute attribute, mcproxy_str* value) = 0;
  virtual mcproxy_result getHeader(mcproxy_header_map map, std::string_view name, size_t index,
                                   mcproxy_str* value) = 0;
  virtual mcproxy_result headerCount(mcproxy_header_map map, size_t* count) = 0;
  virtual mcproxy_result headerAt(mcproxy_header_map map, size_t index, mcproxy_str* name,
                                  mcproxy_str* value) = 0;
  virtual mcproxy_result setHeader(mcproxy_header_map map, std::string_view name,
                                   std::string_view value, bool append) = 0;
  virtual mcproxy_result removeHeader(mcproxy_header_map map, std::string_view name) = 0;
  virtual mcproxy_result getBody(mcproxy_str* chunk) = 0;
  virtual mcproxy_result setBody(std::string_view chunk) = 0;
  virtual mcproxy_result sendLocalReply(uint32_t status, std::string_view body,
                                        std::string_view detail) = 0;
  virtual mcproxy_result continueRequest() = 0;
  virtual mcproxy_result continueResponse() = 0;
  virtual mcproxy_result setTimer(uint64_t delay_ms, uint64_t token) = 0;
};

// A view of `text` as the ABI passes strings.
inline mcproxy_str toAbi(std::string_view text) { return {text.data(), text.size()}; }
inline std::string_view fromAbi(mcproxy_str text) {
  return text.data == nullptr ? std::string_view() : std::string_view(text.data, text.length);
}

}  // namespace mcproxy::module

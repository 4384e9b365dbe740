// mc-proxy module SDK for C++: a header-only layer over the C ABI (mcproxy/module_abi.h). It adds
// nothing the ABI does not have; it gives the handles methods, strings std::string_view, and
// turns a config class and a filter class into the exported hooks:
//
//   class MyConfig {
//    public:
//     // Returns null after context.fail("why") to refuse the config.
//     static std::unique_ptr<MyConfig> create(mcproxy::sdk::ConfigContext& context,
//                                             std::string_view filter_name,
//                                             std::string_view config);
//   };
//   class MyFilter : public mcproxy::sdk::HttpFilter {
//    public:
//     MyFilter(const MyConfig& config, mcproxy_http_filter handle);
//     mcproxy_status onRequestHeaders(bool end_of_stream) override;   // any of the on* below
//   };
//   MCPROXY_MODULE();
//   MCPROXY_HTTP_FILTER(MyConfig, MyFilter);
//
// Every on* hook is exported (the proxy then calls each phase); a filter that needs only a few
// costs a virtual call per phase it leaves alone. Lifetimes are the ABI's: views returned here
// are valid until the hook returns or the next call on the same handle.
#ifndef MCPROXY_MODULE_HPP
#define MCPROXY_MODULE_HPP

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mcproxy/module_abi.h"

#define MCPROXY_EXPORT extern "C" __attribute__((visibility("default")))

namespace mcproxy::sdk {

inline mcproxy_str str(std::string_view text) { return {text.data(), text.size()}; }
inline std::string_view view(mcproxy_str text) {
  return text.data == nullptr ? std::string_view() : std::string_view(text.data, text.length);
}

inline void log(mcproxy_log_level level, std::string_view message) {
  mcproxy_log(level, str(message));
}

// What config_new may do: refuse, and define metrics.
class ConfigContext {
 public:
  explicit ConfigContext(mcproxy_config_context context) : context_(context) {}
  void fail(std::string_view why) { mcproxy_config_fail(context_, str(why)); }
  mcproxy_counter counter(std::string_view name) {
    return mcproxy_define_counter(context_, str(name));
  }
  mcproxy_gauge gauge(std::string_view name) { return mcproxy_define_gauge(context_, str(name)); }
  mcproxy_histogram histogram(std::string_view name) {
    return mcproxy_define_histogram(context_, str(name));
  }

 private:
  mcproxy_config_context context_;
};

// Base of an HTTP filter class: the handle's callbacks as methods, the hooks as virtuals.
class HttpFilter {
 public:
  explicit HttpFilter(mcproxy_http_filter handle) : handle_(handle) {}
  virtual ~HttpFilter() = default;
  HttpFilter(const HttpFilter&) = delete;
  HttpFilter& operator=(const HttpFilter&) = delete;

  virtual mcproxy_status onRequestHeaders(bool /*end_of_stream*/) { return MCPROXY_CONTINUE; }
  virtual mcproxy_status onRequestBody(bool /*end_of_stream*/) { return MCPROXY_CONTINUE; }
  virtual mcproxy_status onRequestTrailers() { return MCPROXY_CONTINUE; }
  virtual mcproxy_status onResponseHeaders(bool /*end_of_stream*/) { return MCPROXY_CONTINUE; }
  virtual mcproxy_status onResponseBody(bool /*end_of_stream*/) { return MCPROXY_CONTINUE; }
  virtual mcproxy_status onResponseTrailers() { return MCPROXY_CONTINUE; }
  virtual void onLog() {}
  virtual void onTimer(uint64_t /*token*/) {}

  mcproxy_http_filter handle() const { return handle_; }
  std::optional<std::string_view> attribute(mcproxy_attribute attribute) {
    mcproxy_str value{};
    if (mcproxy_http_filter_get_attribute(handle_, attribute, &value) != MCPROXY_OK) return {};
    return view(value);
  }
  std::optional<std::string_view> header(mcproxy_header_map map, std::string_view name,
                                         size_t index = 0) {
    mcproxy_str value{};
    if (mcproxy_http_filter_get_header(handle_, map, str(name), index, &value) != MCPROXY_OK) {
      return {};
    }
    return view(value);
  }
  mcproxy_result setHeader(mcproxy_header_map map, std::string_view name, std::string_view value) {
    return mcproxy_http_filter_set_header(handle_, map, str(name), str(value));
  }
  mcproxy_result addHeader(mcproxy_header_map map, std::string_view name, std::string_view value) {
    return mcproxy_http_filter_add_header(handle_, map, str(name), str(value));
  }
  mcproxy_result removeHeader(mcproxy_header_map map, std::string_view name) {
    return mcproxy_http_filter_remove_header(handle_, map, str(name));
  }
  std::optional<std::string_view> body() {
    mcproxy_str chunk{};
    if (mcproxy_http_filter_get_body(handle_, &chunk) != MCPROXY_OK) return {};
    return view(chunk);
  }
  mcproxy_result setBody(std::string_view chunk) {
    return mcproxy_http_filter_set_body(handle_, str(chunk));
  }
  mcproxy_result sendLocalReply(uint32_t status, std::string_view body, std::string_view detail) {
    return mcproxy_http_filter_send_local_reply(handle_, status, str(body), str(detail));
  }
  mcproxy_result continueRequest() { return mcproxy_http_filter_continue_request(handle_); }
  mcproxy_result continueResponse() { return mcproxy_http_filter_continue_response(handle_); }
  mcproxy_result setTimer(uint64_t delay_ms, uint64_t token) {
    return mcproxy_http_filter_set_timer(handle_, delay_ms, token);
  }

 private:
  mcproxy_http_filter handle_;
};

namespace detail {

template <class Config>
void* newConfig(mcproxy_config_context context, mcproxy_str name, mcproxy_str config) {
  ConfigContext wrapped(context);
  try {
    return Config::create(wrapped, view(name), view(config)).release();
  } catch (const std::exception& e) {  // an exception must not cross the C boundary
    wrapped.fail(e.what());
    return nullptr;
  }
}

template <class Filter>
Filter* filter(void* instance) {
  return static_cast<Filter*>(instance);
}

}  // namespace detail
}  // namespace mcproxy::sdk

// Defines mcproxy_module_init(): the ABI version this module is built against.
#define MCPROXY_MODULE() \
  MCPROXY_EXPORT const char* mcproxy_module_init(void) { return MCPROXY_MODULE_ABI_VERSION; }

// Exports the HTTP filter hooks for CONFIG and FILTER (see the top of this file).
#define MCPROXY_HTTP_FILTER(CONFIG, FILTER)                                                     \
  MCPROXY_EXPORT void* mcproxy_http_filter_config_new(mcproxy_config_context context,           \
                                                      mcproxy_str name, mcproxy_str config) {   \
    return ::mcproxy::sdk::detail::newConfig<CONFIG>(context, name, config);                    \
  }                                                                                             \
  MCPROXY_EXPORT void mcproxy_http_filter_config_destroy(void* config) {                        \
    std::unique_ptr<CONFIG>(static_cast<CONFIG*>(config));                                      \
  }                                                                                             \
  MCPROXY_EXPORT void* mcproxy_http_filter_new(void* config, mcproxy_http_filter handle) {      \
    return std::make_unique<FILTER>(*static_cast<const CONFIG*>(config), handle).release();     \
  }                                                                                             \
  MCPROXY_EXPORT void mcproxy_http_filter_destroy(void* instance) {                             \
    std::unique_ptr<FILTER>(static_cast<FILTER*>(instance));                                    \
  }                                                                                             \
  MCPROXY_EXPORT mcproxy_status mcproxy_http_filter_on_request_headers(                         \
      void* instance, mcproxy_http_filter, int end) {                                           \
    return ::mcproxy::sdk::detail::filter<FILTER>(instance)->onRequestHeaders(end != 0);        \
  }                                                                                             \
  MCPROXY_EXPORT mcproxy_status mcproxy_http_filter_on_request_body(                            \
      void* instance, mcproxy_http_filter, int end) {                                           \
    return ::mcproxy::sdk::detail::filter<FILTER>(instance)->onRequestBody(end != 0);           \
  }                                                                                             \
  MCPROXY_EXPORT mcproxy_status mcproxy_http_filter_on_request_trailers(void* instance,         \
                                                                        mcproxy_http_filter) {  \
    return ::mcproxy::sdk::detail::filter<FILTER>(instance)->onRequestTrailers();               \
  }                                                                                             \
  MCPROXY_EXPORT mcproxy_status mcproxy_http_filter_on_response_headers(                        \
      void* instance, mcproxy_http_filter, int end) {                                           \
    return ::mcproxy::sdk::detail::filter<FILTER>(instance)->onResponseHeaders(end != 0);       \
  }                                                                                             \
  MCPROXY_EXPORT mcproxy_status mcproxy_http_filter_on_response_body(                           \
      void* instance, mcproxy_http_filter, int end) {                                           \
    return ::mcproxy::sdk::detail::filter<FILTER>(instance)->onResponseBody(end != 0);          \
  }                                                                                             \
  MCPROXY_EXPORT mcproxy_status mcproxy_http_filter_on_response_trailers(void* instance,        \
                                                                         mcproxy_http_filter) { \
    return ::mcproxy::sdk::detail::filter<FILTER>(instance)->onResponseTrailers();              \
  }                                                                                             \
  MCPROXY_EXPORT void mcproxy_http_filter_on_log(void* instance, mcproxy_http_filter) {         \
    ::mcproxy::sdk::detail::filter<FILTER>(instance)->onLog();                                  \
  }                                                                                             \
  MCPROXY_EXPORT void mcproxy_http_filter_on_timer(void* instance, mcproxy_http_filter,         \
                                                   uint64_t token) {                            \
    ::mcproxy::sdk::detail::filter<FILTER>(instance)->onTimer(token);                           \
  }

#endif  // MCPROXY_MODULE_HPP

#pragma once

#include <memory>
#include <optional>
#include <string>

#include "source/common/event/dispatcher.h"
#include "source/common/http/filter.h"
#include "source/common/module/filter_timer.h"
#include "source/common/module/module.h"

namespace mcproxy::extensions::http_module_filter {

// mcproxy.filters.http.module: one instance of a plugin module's HTTP filter on one request.
// Runs the module's hooks (only those it exports: the others cost nothing), and is what the
// module's handle resolves to until the instance is destroyed. Header maps and the body chunk are
// reachable only while the hook that has them runs (the request headers, read-only, until the
// end); the stream's end makes every change MCPROXY_ERR_ENDED.
class HttpModuleFilter : public http::StreamFilter, public module::HttpFilterTarget {
 public:
  HttpModuleFilter(std::shared_ptr<const module::FilterConfig> config,
                   http::FilterCallbacks& callbacks);
  ~HttpModuleFilter() override;

  // The phases a module's exported hooks cover.
  static uint32_t phases(const module::HttpHooks& hooks);

  // http::StreamFilter
  http::FilterStatus onRequestHeaders(http::HeaderMap& headers, bool end_stream) override;
  http::FilterStatus onRequestBody(buffer::Buffer& body, bool end_stream) override;
  http::FilterStatus onRequestTrailers(http::HeaderMap& trailers) override;
  http::FilterStatus onResponseHeaders(http::HeaderMap& headers, bool end_stream) override;
  http::FilterStatus onResponseBody(buffer::Buffer& body, bool end_stream) override;
  http::FilterStatus onResponseTrailers(http::HeaderMap& trailers) override;
  void onLog(const http::StreamInfo& info) override;

  // module::HttpFilterTarget
  mcproxy_result getAttribute(mcproxy_attribute attribute, mcproxy_str* value) override;
  mcproxy_result getHeader(mcproxy_header_map map, std::string_view name, size_t index,
                           mcproxy_str* value) override;
  mcproxy_result headerCount(mcproxy_header_map map, size_t* count) override;
  mcproxy_result headerAt(mcproxy_header_map map, size_t index, mcproxy_str* name,
                          mcproxy_str* value) override;
  mcproxy_result setHeader(mcproxy_header_map map, std::string_view name, std::string_view value,
                           bool append) override;
  mcproxy_result removeHeader(mcproxy_header_map map, std::string_view name) override;
  mcproxy_result getBody(mcproxy_str* chunk) override;
  mcproxy_result setBody(std::string_view chunk) override;
  mcproxy_result sendLocalReply(uint32_t status, std::string_view body,
                                std::string_view detail) override;
  mcproxy_result continueRequest() override;
  mcproxy_result continueResponse() override;
  mcproxy_result setTimer(uint64_t delay_ms, uint64_t token) override;

 private:
  const module::HttpHooks& hooks() const { return config_->module().http(); }
  mcproxy_http_filter handle() const { return reinterpret_cast<mcproxy_http_filter>(handle_); }
  // Runs a hook with `map` (or `body`) reachable while it does.
  template <class Hook>
  http::FilterStatus run(mcproxy_header_map map, http::HeaderMap* headers, buffer::Buffer* body,
                         Hook hook);
  // The map `which` names, if the current hook has it (or, for the request headers, ever).
  const http::HeaderMap* readable(mcproxy_header_map which) const;
  http::HeaderMap* writable(mcproxy_header_map which) const;

  std::shared_ptr<const module::FilterConfig> config_;
  http::FilterCallbacks& callbacks_;
  uintptr_t handle_ = 0;
  void* instance_ = nullptr;
  // What the running hook has.
  mcproxy_header_map current_map_ = MCPROXY_REQUEST_HEADERS;
  http::HeaderMap* current_headers_ = nullptr;
  buffer::Buffer* current_body_ = nullptr;
  std::string scratch_;
  std::optional<module::FilterTimer> timer_;
  bool logged_ = false;  // on_log ran: nothing can change any more
};

}  // namespace mcproxy::extensions::http_module_filter

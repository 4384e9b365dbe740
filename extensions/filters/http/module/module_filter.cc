#include "extensions/filters/http/module/module_filter.h"

#include "source/common/http/headers.h"
#include "source/common/module/attributes.h"

namespace mcproxy::extensions::http_module_filter {
namespace {

http::FilterStatus toStatus(mcproxy_status status) {
  return status == MCPROXY_STOP ? http::FilterStatus::kStopIteration
                                : http::FilterStatus::kContinue;
}

// A name a module may set or remove: a lower-case token that is not hop-by-hop, or the request
// pseudo-headers a rewrite needs.
bool settableName(mcproxy_header_map map, std::string_view name) {
  if (map == MCPROXY_REQUEST_HEADERS && (name == ":path" || name == ":authority")) return true;
  return http::validHeaderName(name) && !http::isHopByHop(name, "");
}

}  // namespace

HttpModuleFilter::HttpModuleFilter(std::shared_ptr<const module::FilterConfig> config,
                                   http::FilterCallbacks& callbacks)
    : config_(std::move(config)), callbacks_(callbacks) {
  handle_ = callbacks_.dispatcher().handles().acquire(static_cast<module::HttpFilterTarget*>(this),
                                                      module::kHttpFilterHandle);
  instance_ = hooks().create(config_->get(), handle());
}

HttpModuleFilter::~HttpModuleFilter() {
  timer_.reset();
  if (instance_ != nullptr) hooks().destroy(instance_);
  // After destroy: the module's handle no longer resolves, whatever it keeps.
  callbacks_.dispatcher().handles().release(handle_);
}

uint32_t HttpModuleFilter::phases(const module::HttpHooks& hooks) {
  uint32_t phases = 0;
  if (hooks.on_request_headers != nullptr) phases |= http::kRequestHeadersPhase;
  if (hooks.on_request_body != nullptr) phases |= http::kRequestBodyPhase;
  if (hooks.on_request_trailers != nullptr) phases |= http::kRequestTrailersPhase;
  if (hooks.on_response_headers != nullptr) phases |= http::kResponseHeadersPhase;
  if (hooks.on_response_body != nullptr) phases |= http::kResponseBodyPhase;
  if (hooks.on_response_trailers != nullptr) phases |= http::kResponseTrailersPhase;
  if (hooks.on_log != nullptr) phases |= http::kLogPhase;
  return phases;
}

template <class Hook>
http::FilterStatus HttpModuleFilter::run(mcproxy_header_map map, http::HeaderMap* headers,
                                         buffer::Buffer* body, Hook hook) {
  if (instance_ == nullptr) return http::FilterStatus::kContinue;
  current_map_ = map;
  current_headers_ = headers;
  current_body_ = body;
  const http::FilterStatus status = toStatus(hook());
  current_headers_ = nullptr;
  current_body_ = nullptr;
  return status;
}

http::FilterStatus HttpModuleFilter::onRequestHeaders(http::HeaderMap& headers, bool end_stream) {
  return run(MCPROXY_REQUEST_HEADERS, &headers, nullptr,
             [&] { return hooks().on_request_headers(instance_, handle(), end_stream ? 1 : 0); });
}

http::FilterStatus HttpModuleFilter::onRequestBody(buffer::Buffer& body, bool end_stream) {
  return run(MCPROXY_REQUEST_HEADERS, nullptr, &body,
             [&] { return hooks().on_request_body(instance_, handle(), end_stream ? 1 : 0); });
}

http::FilterStatus HttpModuleFilter::onRequestTrailers(http::HeaderMap& trailers) {
  return run(MCPROXY_REQUEST_TRAILERS, &trailers, nullptr,
             [&] { return hooks().on_request_trailers(instance_, handle()); });
}

http::FilterStatus HttpModuleFilter::onResponseHeaders(http::HeaderMap& headers, bool end_stream) {
  return run(MCPROXY_RESPONSE_HEADERS, &headers, nullptr,
             [&] { return hooks().on_response_headers(instance_, handle(), end_stream ? 1 : 0); });
}

http::FilterStatus HttpModuleFilter::onResponseBody(buffer::Buffer& body, bool end_stream) {
  return run(MCPROXY_RESPONSE_HEADERS, nullptr, &body,
             [&] { return hooks().on_response_body(instance_, handle(), end_stream ? 1 : 0); });
}

http::FilterStatus HttpModuleFilter::onResponseTrailers(http::HeaderMap& trailers) {
  return run(MCPROXY_RESPONSE_TRAILERS, &trailers, nullptr,
             [&] { return hooks().on_response_trailers(instance_, handle()); });
}

void HttpModuleFilter::onLog(const http::StreamInfo&) {
  logged_ = true;
  if (timer_) timer_->cancel();
  if (instance_ != nullptr) hooks().on_log(instance_, handle());
}

mcproxy_result HttpModuleFilter::getAttribute(mcproxy_attribute attribute, mcproxy_str* value) {
  const http::StreamInfo& info = callbacks_.streamInfo();
  if (attribute == MCPROXY_ATTR_REQUEST_ID) {
    if (info.request_id.empty()) return MCPROXY_ERR_NOT_FOUND;
    *value = module::toAbi(info.request_id);
    return MCPROXY_OK;
  }
  if (attribute == MCPROXY_ATTR_PROTOCOL) {
    *value = module::toAbi(info.protocol);
    return MCPROXY_OK;
  }
  return module::connectionAttribute(info.connection, attribute, scratch_, value);
}

const http::HeaderMap* HttpModuleFilter::readable(mcproxy_header_map which) const {
  if (current_headers_ != nullptr && current_map_ == which) return current_headers_;
  if (which == MCPROXY_REQUEST_HEADERS) return callbacks_.requestHeaders();
  return nullptr;
}

http::HeaderMap* HttpModuleFilter::writable(mcproxy_header_map which) const {
  return current_headers_ != nullptr && current_map_ == which ? current_headers_ : nullptr;
}

mcproxy_result HttpModuleFilter::getHeader(mcproxy_header_map map, std::string_view name,
                                           size_t index, mcproxy_str* value) {
  const http::HeaderMap* headers = readable(map);
  if (headers == nullptr) return MCPROXY_ERR_NOT_NOW;
  for (const http::Header& header : *headers) {
    if (header.name == name && index-- == 0) {
      *value = module::toAbi(header.value);
      return MCPROXY_OK;
    }
  }
  return MCPROXY_ERR_NOT_FOUND;
}

mcproxy_result HttpModuleFilter::headerCount(mcproxy_header_map map, size_t* count) {
  const http::HeaderMap* headers = readable(map);
  if (headers == nullptr) return MCPROXY_ERR_NOT_NOW;
  *count = headers->size();
  return MCPROXY_OK;
}

mcproxy_result HttpModuleFilter::headerAt(mcproxy_header_map map, size_t index, mcproxy_str* name,
                                          mcproxy_str* value) {
  const http::HeaderMap* headers = readable(map);
  if (headers == nullptr) return MCPROXY_ERR_NOT_NOW;
  if (index >= headers->size()) return MCPROXY_ERR_NOT_FOUND;
  *name = module::toAbi((*headers)[index].name);
  *value = module::toAbi((*headers)[index].value);
  return MCPROXY_OK;
}

mcproxy_result HttpModuleFilter::setHeader(mcproxy_header_map map, std::string_view name,
                                           std::string_view value, bool append) {
  if (logged_ || callbacks_.ended()) return MCPROXY_ERR_ENDED;
  http::HeaderMap* headers = writable(map);
  if (headers == nullptr) return MCPROXY_ERR_NOT_NOW;
  if (!settableName(map, name) || !http::validHeaderValue(value)) return MCPROXY_ERR_INVALID;
  if (append) {
    headers->add(name, std::string(value));
  } else {
    headers->set(name, std::string(value));
  }
  return MCPROXY_OK;
}

mcproxy_result HttpModuleFilter::removeHeader(mcproxy_header_map map, std::string_view name) {
  if (logged_ || callbacks_.ended()) return MCPROXY_ERR_ENDED;
  http::HeaderMap* headers = writable(map);
  if (headers == nullptr) return MCPROXY_ERR_NOT_NOW;
  if (!settableName(map, name) || name.starts_with(':')) return MCPROXY_ERR_INVALID;
  return headers->remove(name) > 0 ? MCPROXY_OK : MCPROXY_ERR_NOT_FOUND;
}

mcproxy_result HttpModuleFilter::getBody(mcproxy_str* chunk) {
  if (current_body_ == nullptr) return MCPROXY_ERR_NOT_NOW;
  *chunk = module::toAbi(current_body_->view());
  return MCPROXY_OK;
}

mcproxy_result HttpModuleFilter::setBody(std::string_view chunk) {
  if (logged_ || callbacks_.ended()) return MCPROXY_ERR_ENDED;
  if (current_body_ == nullptr) return MCPROXY_ERR_NOT_NOW;
  current_body_->clear();
  current_body_->append(chunk);
  return MCPROXY_OK;
}

mcproxy_result HttpModuleFilter::sendLocalReply(uint32_t status, std::string_view body,
                                                std::string_view detail) {
  if (logged_ || callbacks_.ended()) return MCPROXY_ERR_ENDED;
  callbacks_.sendLocalReply(static_cast<int>(status), body, {},
                            detail.empty() ? std::string_view("module reply") : detail);
  return MCPROXY_OK;
}

mcproxy_result HttpModuleFilter::continueRequest() {
  if (logged_ || callbacks_.ended()) return MCPROXY_ERR_ENDED;
  callbacks_.continueRequest();
  return MCPROXY_OK;
}

mcproxy_result HttpModuleFilter::continueResponse() {
  if (logged_ || callbacks_.ended()) return MCPROXY_ERR_ENDED;
  callbacks_.continueResponse();
  return MCPROXY_OK;
}

mcproxy_result HttpModuleFilter::setTimer(uint64_t delay_ms, uint64_t token) {
  if (logged_ || callbacks_.ended()) return MCPROXY_ERR_ENDED;
  if (hooks().on_timer == nullptr) return MCPROXY_ERR_INVALID;  // nothing to call back
  if (!timer_) {
    timer_.emplace(callbacks_.dispatcher(), [this](uint64_t fired) {
      if (!logged_ && !callbacks_.ended()) hooks().on_timer(instance_, handle(), fired);
    });
  }
  timer_->set(delay_ms, token);
  return MCPROXY_OK;
}

}  // namespace mcproxy::extensions::http_module_filter

// The callbacks of the module ABI (include/mcproxy/module_abi.h), exported by the executable
// (linked with -Wl,--export-dynamic-symbol=mcproxy_*) so that a module's references to them
// resolve when it is loaded. Each one checks its handle before touching anything.
#include <absl/strings/ascii.h>

#include "mcproxy/module_abi.h"
#include "source/common/event/handle_slots.h"
#include "source/common/logging/logger.h"
#include "source/common/module/module.h"

using mcproxy::event::HandleSlots;
using mcproxy::module::ConfigContext;
using mcproxy::module::fromAbi;
using mcproxy::module::HttpFilterTarget;
using mcproxy::module::NetworkFilterTarget;

namespace {

mcproxy_result problemResult(HandleSlots::Problem problem) {
  return problem == HandleSlots::Problem::kWrongThread ? MCPROXY_ERR_WRONG_THREAD
                                                       : MCPROXY_ERR_ENDED;
}

template <class Target>
Target* resolve(const void* handle, uint8_t kind, mcproxy_result& error) {
  HandleSlots::Problem problem;
  void* owner = HandleSlots::resolve(reinterpret_cast<uintptr_t>(handle), kind, problem);
  if (owner == nullptr) error = problemResult(problem);
  return static_cast<Target*>(owner);
}

NetworkFilterTarget* network(mcproxy_network_filter filter, mcproxy_result& error) {
  return resolve<NetworkFilterTarget>(filter, mcproxy::module::kNetworkFilterHandle, error);
}

HttpFilterTarget* http(mcproxy_http_filter filter, mcproxy_result& error) {
  return resolve<HttpFilterTarget>(filter, mcproxy::module::kHttpFilterHandle, error);
}

ConfigContext* config(mcproxy_config_context context) {
  return reinterpret_cast<ConfigContext*>(context);
}

// [a-z0-9_]+: a metric or close reason name a module chose.
bool validName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

mcproxy::stats::MetricId metricId(const ConfigContext& context, std::string_view name) {
  return {"mcproxy_module_" + std::string(name),
          {{"module", context.module.name()}},
          "Defined by the plugin module named in the label."};
}

std::string statName(const ConfigContext& context, std::string_view name) {
  return "module." + context.module.name() + "." + std::string(name);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void mcproxy_log(mcproxy_log_level level,
                                                        mcproxy_str message) {
  const std::string_view text = fromAbi(message);
  switch (level) {
    case MCPROXY_LOG_DEBUG:
      LOG_DEBUG << "module: " << text;
      break;
    case MCPROXY_LOG_INFO:
      LOG_INFO << "module: " << text;
      break;
    case MCPROXY_LOG_WARN:
      LOG_WARN << "module: " << text;
      break;
    default:
      LOG_ERROR << "module: " << text;
      break;
  }
}

__attribute__((visibility("default"))) void mcproxy_config_fail(mcproxy_config_context context,
                                                                mcproxy_str message) {
  if (context != nullptr) config(context)->failure = std::string(fromAbi(message));
}

__attribute__((visibility("default"))) mcproxy_counter mcproxy_define_counter(
    mcproxy_config_context context, mcproxy_str name) {
  if (context == nullptr || !validName(fromAbi(name))) return nullptr;
  ConfigContext& c = *config(context);
  return reinterpret_cast<mcproxy_counter>(
      &c.stats.counter(statName(c, fromAbi(name)), metricId(c, fromAbi(name))));
}

__attribute__((visibility("default"))) mcproxy_gauge mcproxy_define_gauge(
    mcproxy_config_context context, mcproxy_str name) {
  if (context == nullptr || !validName(fromAbi(name))) return nullptr;
  ConfigContext& c = *config(context);
  return reinterpret_cast<mcproxy_gauge>(
      &c.stats.gauge(statName(c, fromAbi(name)), metricId(c, fromAbi(name))));
}

__attribute__((visibility("default"))) mcproxy_histogram mcproxy_define_histogram(
    mcproxy_config_context context, mcproxy_str name) {
  if (context == nullptr || !validName(fromAbi(name))) return nullptr;
  ConfigContext& c = *config(context);
  return reinterpret_cast<mcproxy_histogram>(
      &c.stats.latencyHistogram(statName(c, fromAbi(name)), metricId(c, fromAbi(name))));
}

__attribute__((visibility("default"))) void mcproxy_counter_add(mcproxy_counter counter,
                                                                uint64_t value) {
  if (counter != nullptr) reinterpret_cast<mcproxy::stats::Counter*>(counter)->inc(value);
}

__attribute__((visibility("default"))) void mcproxy_gauge_add(mcproxy_gauge gauge, int64_t delta) {
  if (gauge != nullptr) reinterpret_cast<mcproxy::stats::Gauge*>(gauge)->add(delta);
}

__attribute__((visibility("default"))) void mcproxy_gauge_set(mcproxy_gauge gauge, int64_t value) {
  if (gauge != nullptr) reinterpret_cast<mcproxy::stats::Gauge*>(gauge)->set(value);
}

__attribute__((visibility("default"))) void mcproxy_histogram_observe(mcproxy_histogram histogram,
                                                                      double value) {
  if (histogram != nullptr) {
    reinterpret_cast<mcproxy::stats::Histogram*>(histogram)->observe(value);
  }
}

// ---- network filters ----

__attribute__((visibility("default"))) mcproxy_result mcproxy_network_filter_get_attribute(
    mcproxy_network_filter filter, mcproxy_attribute attribute, mcproxy_str* value) {
  mcproxy_result error = MCPROXY_OK;
  NetworkFilterTarget* target = network(filter, error);
  if (target == nullptr) return error;
  if (value == nullptr) return MCPROXY_ERR_INVALID;
  return target->getAttribute(attribute, value);
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_network_filter_get_read_data(
    mcproxy_network_filter filter, mcproxy_str* data) {
  mcproxy_result error = MCPROXY_OK;
  NetworkFilterTarget* target = network(filter, error);
  if (target == nullptr) return error;
  if (data == nullptr) return MCPROXY_ERR_INVALID;
  return target->getReadData(data);
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_network_filter_continue(
    mcproxy_network_filter filter) {
  mcproxy_result error = MCPROXY_OK;
  NetworkFilterTarget* target = network(filter, error);
  return target == nullptr ? error : target->continueChain();
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_network_filter_close(
    mcproxy_network_filter filter, mcproxy_str reason) {
  mcproxy_result error = MCPROXY_OK;
  NetworkFilterTarget* target = network(filter, error);
  if (target == nullptr) return error;
  if (!validName(fromAbi(reason))) return MCPROXY_ERR_INVALID;
  return target->close(fromAbi(reason));
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_network_filter_set_timer(
    mcproxy_network_filter filter, uint64_t delay_ms, uint64_t token) {
  mcproxy_result error = MCPROXY_OK;
  NetworkFilterTarget* target = network(filter, error);
  return target == nullptr ? error : target->setTimer(delay_ms, token);
}

// ---- HTTP filters ----

__attribute__((visibility("default"))) mcproxy_result mcproxy_http_filter_get_attribute(
    mcproxy_http_filter filter, mcproxy_attribute attribute, mcproxy_str* value) {
  mcproxy_result error = MCPROXY_OK;
  HttpFilterTarget* target = http(filter, error);
  if (target == nullptr) return error;
  if (value == nullptr) return MCPROXY_ERR_INVALID;
  return target->getAttribute(attribute, value);
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_http_filter_get_header(
    mcproxy_http_filter filter, mcproxy_header_map map, mcproxy_str name, size_t index,
    mcproxy_str* value) {
  mcproxy_result error = MCPROXY_OK;
  HttpFilterTarget* target = http(filter, error);
  if (target == nullptr) return error;
  if (value == nullptr) return MCPROXY_ERR_INVALID;
  return target->getHeader(map, fromAbi(name), index, value);
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_http_filter_header_count(
    mcproxy_http_filter filter, mcproxy_header_map map, size_t* count) {
  mcproxy_result error = MCPROXY_OK;
  HttpFilterTarget* target = http(filter, error);
  if (target == nullptr) return error;
  if (count == nullptr) return MCPROXY_ERR_INVALID;
  return target->headerCount(map, count);
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_http_filter_header_at(
    mcproxy_http_filter filter, mcproxy_header_map map, size_t index, mcproxy_str* name,
    mcproxy_str* value) {
  mcproxy_result error = MCPROXY_OK;
  HttpFilterTarget* target = http(filter, error);
  if (target == nullptr) return error;
  if (name == nullptr || value == nullptr) return MCPROXY_ERR_INVALID;
  return target->headerAt(map, index, name, value);
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_http_filter_set_header(
    mcproxy_http_filter filter, mcproxy_header_map map, mcproxy_str name, mcproxy_str value) {
  mcproxy_result error = MCPROXY_OK;
  HttpFilterTarget* target = http(filter, error);
  return target == nullptr ? error : target->setHeader(map, fromAbi(name), fromAbi(value), false);
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_http_filter_add_header(
    mcproxy_http_filter filter, mcproxy_header_map map, mcproxy_str name, mcproxy_str value) {
  mcproxy_result error = MCPROXY_OK;
  HttpFilterTarget* target = http(filter, error);
  return target == nullptr ? error : target->setHeader(map, fromAbi(name), fromAbi(value), true);
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_http_filter_remove_header(
    mcproxy_http_filter filter, mcproxy_header_map map, mcproxy_str name) {
  mcproxy_result error = MCPROXY_OK;
  HttpFilterTarget* target = http(filter, error);
  return target == nullptr ? error : target->removeHeader(map, fromAbi(name));
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_http_filter_get_body(
    mcproxy_http_filter filter, mcproxy_str* chunk) {
  mcproxy_result error = MCPROXY_OK;
  HttpFilterTarget* target = http(filter, error);
  if (target == nullptr) return error;
  if (chunk == nullptr) return MCPROXY_ERR_INVALID;
  return target->getBody(chunk);
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_http_filter_set_body(
    mcproxy_http_filter filter, mcproxy_str chunk) {
  mcproxy_result error = MCPROXY_OK;
  HttpFilterTarget* target = http(filter, error);
  return target == nullptr ? error : target->setBody(fromAbi(chunk));
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_http_filter_send_local_reply(
    mcproxy_http_filter filter, uint32_t status, mcproxy_str body, mcproxy_str detail) {
  mcproxy_result error = MCPROXY_OK;
  HttpFilterTarget* target = http(filter, error);
  if (target == nullptr) return error;
  if (status < 200 || status > 599) return MCPROXY_ERR_INVALID;
  return target->sendLocalReply(status, fromAbi(body), fromAbi(detail));
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_http_filter_continue_request(
    mcproxy_http_filter filter) {
  mcproxy_result error = MCPROXY_OK;
  HttpFilterTarget* target = http(filter, error);
  return target == nullptr ? error : target->continueRequest();
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_http_filter_continue_response(
    mcproxy_http_filter filter) {
  mcproxy_result error = MCPROXY_OK;
  HttpFilterTarget* target = http(filter, error);
  return target == nullptr ? error : target->continueResponse();
}

__attribute__((visibility("default"))) mcproxy_result mcproxy_http_filter_set_timer(
    mcproxy_http_filter filter, uint64_t delay_ms, uint64_t token) {
  mcproxy_result error = MCPROXY_OK;
  HttpFilterTarget* target = http(filter, error);
  return target == nullptr ? error : target->setTimer(delay_ms, token);
}

}  // extern "C"

/* A module that exports every hook and does nothing in any: what a module costs by itself. */
#include <stdlib.h>

#include "mcproxy/module_abi.h"

static int g_config;

const char* mcproxy_module_init(void) { return MCPROXY_MODULE_ABI_VERSION; }

void* mcproxy_network_filter_config_new(mcproxy_config_context c, mcproxy_str n, mcproxy_str s) {
  (void)c, (void)n, (void)s;
  return &g_config;
}
void mcproxy_network_filter_config_destroy(void* config) { (void)config; }
void* mcproxy_network_filter_new(void* config, mcproxy_network_filter f) {
  (void)f;
  return config;
}
mcproxy_status mcproxy_network_filter_on_new_connection(void* i, mcproxy_network_filter f) {
  (void)i, (void)f;
  return MCPROXY_CONTINUE;
}
mcproxy_status mcproxy_network_filter_on_data(void* i, mcproxy_network_filter f, size_t n, int e) {
  (void)i, (void)f, (void)n, (void)e;
  return MCPROXY_CONTINUE;
}
void mcproxy_network_filter_on_close(void* i, mcproxy_network_filter f, mcproxy_str r) {
  (void)i, (void)f, (void)r;
}
void mcproxy_network_filter_on_timer(void* i, mcproxy_network_filter f, uint64_t t) {
  (void)i, (void)f, (void)t;
}
void mcproxy_network_filter_destroy(void* instance) { (void)instance; }

void* mcproxy_http_filter_config_new(mcproxy_config_context c, mcproxy_str n, mcproxy_str s) {
  (void)c, (void)n, (void)s;
  return &g_config;
}
void mcproxy_http_filter_config_destroy(void* config) { (void)config; }
void* mcproxy_http_filter_new(void* config, mcproxy_http_filter f) {
  (void)f;
  return config;
}
mcproxy_status mcproxy_http_filter_on_request_headers(void* i, mcproxy_http_filter f, int e) {
  (void)i, (void)f, (void)e;
  return MCPROXY_CONTINUE;
}
mcproxy_status mcproxy_http_filter_on_request_body(void* i, mcproxy_http_filter f, int e) {
  (void)i, (void)f, (void)e;
  return MCPROXY_CONTINUE;
}
mcproxy_status mcproxy_http_filter_on_request_trailers(void* i, mcproxy_http_filter f) {
  (void)i, (void)f;
  return MCPROXY_CONTINUE;
}
mcproxy_status mcproxy_http_filter_on_response_headers(void* i, mcproxy_http_filter f, int e) {
  (void)i, (void)f, (void)e;
  return MCPROXY_CONTINUE;
}
mcproxy_status mcproxy_http_filter_on_response_body(void* i, mcproxy_http_filter f, int e) {
  (void)i, (void)f, (void)e;
  return MCPROXY_CONTINUE;
}
mcproxy_status mcproxy_http_filter_on_response_trailers(void* i, mcproxy_http_filter f) {
  (void)i, (void)f;
  return MCPROXY_CONTINUE;
}
void mcproxy_http_filter_on_log(void* i, mcproxy_http_filter f) { (void)i, (void)f; }
void mcproxy_http_filter_on_timer(void* i, mcproxy_http_filter f, uint64_t t) {
  (void)i, (void)f, (void)t;
}
void mcproxy_http_filter_destroy(void* instance) { (void)instance; }

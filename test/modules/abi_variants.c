/*
 * Modules the proxy must refuse, chosen when compiled: -DVERSION="2.0.0" (another major),
 * -DVERSION="1.99.0" (a newer minor), -DUSE_UNKNOWN_CALLBACK (calls a callback no proxy has).
 */
#include "mcproxy/module_abi.h"

#ifdef USE_UNKNOWN_CALLBACK
void mcproxy_callback_from_the_future(void);
void* mcproxy_http_filter_config_new(mcproxy_config_context context, mcproxy_str name,
                                     mcproxy_str config) {
  (void)context;
  (void)name;
  (void)config;
  mcproxy_callback_from_the_future();
  return 0;
}
#endif

const char* mcproxy_module_init(void) { return VERSION; }

/*
 * A test module that probes the proxy's side of the ABI: it links every callback (a module that
 * loads proves the executable exports them all), and each filter tries the handle of the one
 * before it, which has ended, and a callback from another thread, and counts what came back:
 * MCPROXY_ERR_ENDED and MCPROXY_ERR_WRONG_THREAD, never a crash (the tests run under ASan).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mcproxy/module_abi.h"

static mcproxy_str literal(const char* text) {
  mcproxy_str s = {text, strlen(text)};
  return s;
}

/* Every callback, referenced. */
static void* const kCallbacks[] = {
    (void*)mcproxy_log,
    (void*)mcproxy_config_fail,
    (void*)mcproxy_define_counter,
    (void*)mcproxy_define_gauge,
    (void*)mcproxy_define_histogram,
    (void*)mcproxy_counter_add,
    (void*)mcproxy_gauge_add,
    (void*)mcproxy_gauge_set,
    (void*)mcproxy_histogram_observe,
    (void*)mcproxy_network_filter_get_attribute,
    (void*)mcproxy_network_filter_get_read_data,
    (void*)mcproxy_network_filter_continue,
    (void*)mcproxy_network_filter_close,
    (void*)mcproxy_network_filter_set_timer,
    (void*)mcproxy_http_filter_get_attribute,
    (void*)mcproxy_http_filter_get_header,
    (void*)mcproxy_http_filter_header_count,
    (void*)mcproxy_http_filter_header_at,
    (void*)mcproxy_http_filter_set_header,
    (void*)mcproxy_http_filter_add_header,
    (void*)mcproxy_http_filter_remove_header,
    (void*)mcproxy_http_filter_get_body,
    (void*)mcproxy_http_filter_set_body,
    (void*)mcproxy_http_filter_send_local_reply,
    (void*)mcproxy_http_filter_continue_request,
    (void*)mcproxy_http_filter_continue_response,
    (void*)mcproxy_http_filter_set_timer,
};

typedef struct {
  mcproxy_counter ended;
  mcproxy_counter wrong_thread;
  mcproxy_counter other;
  mcproxy_gauge live;
  mcproxy_histogram seen;
} probe_config;

/* The handle of the last filter made (a test-only shortcut: one worker is enough to probe). */
static mcproxy_http_filter g_previous_http;
static mcproxy_network_filter g_previous_network;

static void count(const probe_config* config, mcproxy_result result) {
  if (result == MCPROXY_ERR_ENDED) {
    mcproxy_counter_add(config->ended, 1);
  } else if (result == MCPROXY_ERR_WRONG_THREAD) {
    mcproxy_counter_add(config->wrong_thread, 1);
  } else {
    mcproxy_counter_add(config->other, 1);
  }
}

const char* mcproxy_module_init(void) {
  return kCallbacks[0] != NULL ? MCPROXY_MODULE_ABI_VERSION : "0.0.0";
}

static void* newConfig(mcproxy_config_context context) {
  probe_config* config = calloc(1, sizeof(probe_config));
  config->ended = mcproxy_define_counter(context, literal("stale_handle_ended_total"));
  config->wrong_thread = mcproxy_define_counter(context, literal("wrong_thread_total"));
  config->other = mcproxy_define_counter(context, literal("unexpected_total"));
  config->live = mcproxy_define_gauge(context, literal("live_filters"));
  config->seen = mcproxy_define_histogram(context, literal("probe_seconds"));
  if (mcproxy_define_counter(context, literal("Bad Name")) != NULL) {
    mcproxy_config_fail(context, literal("a metric name with spaces was accepted"));
    free(config);
    return NULL;
  }
  return config;
}

typedef struct {
  const probe_config* config;
  mcproxy_http_filter http;
  mcproxy_network_filter network;
} probe_filter;

static void* fromOtherThread(void* arg) {
  probe_filter* self = arg;
  mcproxy_str value;
  if (self->http != NULL) {
    count(self->config, mcproxy_http_filter_get_attribute(self->http, MCPROXY_ATTR_SNI, &value));
  } else {
    count(self->config,
          mcproxy_network_filter_get_attribute(self->network, MCPROXY_ATTR_SNI, &value));
  }
  return NULL;
}

static void probe(probe_filter* self) {
  pthread_t thread;
  pthread_create(&thread, NULL, fromOtherThread, self);
  pthread_join(thread, NULL);
}

/* ---- HTTP ---- */

void* mcproxy_http_filter_config_new(mcproxy_config_context context, mcproxy_str name,
                                     mcproxy_str config) {
  (void)name;
  (void)config;
  return newConfig(context);
}

void mcproxy_http_filter_config_destroy(void* config) { free(config); }

void* mcproxy_http_filter_new(void* config, mcproxy_http_filter filter) {
  probe_filter* self = calloc(1, sizeof(probe_filter));
  self->config = config;
  self->http = filter;
  mcproxy_gauge_add(self->config->live, 1);
  return self;
}

mcproxy_status mcproxy_http_filter_on_request_headers(void* instance, mcproxy_http_filter filter,
                                                      int end_of_stream) {
  (void)end_of_stream;
  probe_filter* self = instance;
  if (g_previous_http != NULL) {
    count(self->config, mcproxy_http_filter_set_header(g_previous_http, MCPROXY_REQUEST_HEADERS,
                                                       literal("x-stale"), literal("1")));
  }
  g_previous_http = filter;
  probe(self);
  /* Outside its hook a response map is not there; a body is not there outside a body hook. */
  if (mcproxy_http_filter_set_header(filter, MCPROXY_RESPONSE_HEADERS, literal("x-a"),
                                     literal("b")) != MCPROXY_ERR_NOT_NOW) {
    mcproxy_counter_add(self->config->other, 1);
  }
  mcproxy_str body;
  if (mcproxy_http_filter_get_body(filter, &body) != MCPROXY_ERR_NOT_NOW) {
    mcproxy_counter_add(self->config->other, 1);
  }
  mcproxy_histogram_observe(self->config->seen, 0.001);
  return MCPROXY_CONTINUE;
}

void mcproxy_http_filter_on_log(void* instance, mcproxy_http_filter filter) {
  probe_filter* self = instance;
  /* After the end, nothing changes. */
  if (mcproxy_http_filter_set_header(filter, MCPROXY_REQUEST_HEADERS, literal("x-late"),
                                     literal("1")) != MCPROXY_ERR_ENDED) {
    mcproxy_counter_add(self->config->other, 1);
  }
}

void mcproxy_http_filter_destroy(void* instance) {
  probe_filter* self = instance;
  mcproxy_gauge_add(self->config->live, -1);
  free(instance);
}

/* ---- network ---- */

void* mcproxy_network_filter_config_new(mcproxy_config_context context, mcproxy_str name,
                                        mcproxy_str config) {
  (void)name;
  (void)config;
  return newConfig(context);
}

void mcproxy_network_filter_config_destroy(void* config) { free(config); }

void* mcproxy_network_filter_new(void* config, mcproxy_network_filter filter) {
  probe_filter* self = calloc(1, sizeof(probe_filter));
  self->config = config;
  self->network = filter;
  return self;
}

mcproxy_status mcproxy_network_filter_on_new_connection(void* instance,
                                                        mcproxy_network_filter filter) {
  probe_filter* self = instance;
  if (g_previous_network != NULL) {
    mcproxy_str data;
    count(self->config, mcproxy_network_filter_get_read_data(g_previous_network, &data));
  }
  g_previous_network = filter;
  probe(self);
  return MCPROXY_CONTINUE;
}

void mcproxy_network_filter_destroy(void* instance) { free(instance); }

/*
 * mc-proxy module ABI: network and HTTP filters in a shared object, loaded by path from the
 * proxy's config (docs/filter-authors.md, "Plugin modules").
 *
 * Pure C; no mc-proxy, protobuf or C++ types. Two directions:
 *   - hooks:     functions the module exports, named mcproxy_*_on_* and mcproxy_*_new/destroy;
 *                the proxy calls them.
 *   - callbacks: functions the proxy exports, named mcproxy_* without "on"; the module calls
 *                them (resolved when the module is loaded, from the mc-proxy executable).
 *
 * VERSIONING. MCPROXY_MODULE_ABI_VERSION is "MAJOR.MINOR.PATCH" (semver). mcproxy_module_init()
 * returns the version the module was built against. A module loads when its MAJOR equals the
 * proxy's and its MINOR is at most the proxy's: minor versions only add callbacks and optional
 * hooks, never change or remove one. Anything else is refused with a config error that names
 * both versions. A module that calls a callback the proxy does not have is refused at load
 * (naming the symbol), as is one missing a required hook.
 *
 * THREADS. The proxy runs each connection (and its requests) on one worker thread. Every hook of
 * a filter runs on that thread, and its callbacks must be made from there, from inside a hook
 * or on_timer (anything else returns MCPROXY_ERR_WRONG_THREAD). config_new runs when a config is
 * compiled (the proxy's main thread, or mcproxyctl validating); config_destroy runs on whichever
 * thread lets go of the config last (the main thread, or a worker whose last connection on an
 * old config ended), after every instance made from it was destroyed. A config object is shared
 * by every worker: treat it as read-only after config_new (or synchronize it yourself).
 * mcproxy_log and the metric callbacks may be called from any thread.
 *
 * HANDLES AND LIFETIMES. mcproxy_network_filter and mcproxy_http_filter are handles the proxy
 * gives to a filter instance in *_new. A handle is never a pointer the module may dereference:
 * each callback checks it, and a handle whose connection or stream is gone (after the
 * instance's destroy hook) returns MCPROXY_ERR_ENDED instead of touching freed memory.
 * Strings the proxy hands out (mcproxy_str values filled by a callback) belong to the proxy and
 * stay valid until the hook that made the call returns, or until the next callback on the same
 * handle, whichever comes first: copy what you keep. Strings the module passes in are read
 * during the call only. Pointers returned by config_new and *_new belong to the module and are
 * handed back to config_destroy and destroy exactly once.
 *
 * ERRORS. Callbacks return mcproxy_result: MCPROXY_OK (0) or a negative MCPROXY_ERR_*. A hook
 * never needs to check a callback that cannot fail in its phase, but checking is cheap.
 */
#ifndef MCPROXY_MODULE_ABI_H
#define MCPROXY_MODULE_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MCPROXY_MODULE_ABI_VERSION "1.0.0"

/* ---- common types ---------------------------------------------------------------------- */

/* A string that is not NUL-terminated. `data` may be NULL when `length` is 0. */
typedef struct {
  const char* data;
  size_t length;
} mcproxy_str;

typedef enum {
  MCPROXY_OK = 0,
  MCPROXY_ERR_ENDED = -1,       /* the connection or stream is over (or the handle is stale) */
  MCPROXY_ERR_NOT_FOUND = -2,   /* no such header, attribute or index */
  MCPROXY_ERR_INVALID = -3,     /* a bad argument: header name or value, status, metric name */
  MCPROXY_ERR_NOT_NOW = -4,     /* not available in this hook (a body outside a body hook) */
  MCPROXY_ERR_WRONG_THREAD = -5 /* not the filter's worker thread */
} mcproxy_result;

/* What a hook tells the chain: go on to the next filter, or hold here until the filter calls
 * mcproxy_*_continue (from a later hook or on_timer), closes, or answers. */
typedef enum { MCPROXY_CONTINUE = 0, MCPROXY_STOP = 1 } mcproxy_status;

typedef enum {
  MCPROXY_ATTR_CLIENT_IP = 0,   /* the real client's address (after a PROXY header) */
  MCPROXY_ATTR_CLIENT_PORT = 1, /* decimal */
  MCPROXY_ATTR_PEER_IP = 2,     /* the TCP peer's address */
  MCPROXY_ATTR_SNI = 3,         /* the ClientHello's server name, lower case ("" before or none) */
  MCPROXY_ATTR_ALPN = 4,     /* L7: negotiated; before: what the client offered, comma-separated */
  MCPROXY_ATTR_LISTENER = 5, /* the listener's name */
  MCPROXY_ATTR_ROUTE = 6,    /* the route's hostname ("default"); NOT_FOUND before routing */
  MCPROXY_ATTR_TLS_VERSION = 7, /* L7: "TLSv1.3", ... */
  MCPROXY_ATTR_REQUEST_ID = 8,  /* HTTP: x-request-id as forwarded (after forwarding_headers) */
  MCPROXY_ATTR_PROTOCOL = 9     /* HTTP: "HTTP/2" or "HTTP/1.1" */
} mcproxy_attribute;

typedef enum {
  MCPROXY_LOG_DEBUG = 0,
  MCPROXY_LOG_INFO = 1,
  MCPROXY_LOG_WARN = 2,
  MCPROXY_LOG_ERROR = 3
} mcproxy_log_level;

/* Opaque handles (never dereferenced by the module). */
typedef struct mcproxy_config_context_s* mcproxy_config_context; /* during config_new only */
typedef struct mcproxy_network_filter_s* mcproxy_network_filter; /* one filter on one connection */
typedef struct mcproxy_http_filter_s* mcproxy_http_filter;       /* one filter on one request */
typedef struct mcproxy_counter_s* mcproxy_counter;               /* valid for the process' life */
typedef struct mcproxy_gauge_s* mcproxy_gauge;
typedef struct mcproxy_histogram_s* mcproxy_histogram;

/* ---- hooks the module exports ----------------------------------------------------------- */

/* Required. Returns MCPROXY_MODULE_ABI_VERSION as the module was compiled. Called once, when the
 * module is loaded, before any other hook. */
const char* mcproxy_module_init(void);

/* Network filter (filters { name: "mcproxy.filters.network.module" }). config_new, config_destroy,
 * new and destroy are required when the module serves as a network filter; the on_* hooks are
 * optional (an absent one costs nothing and counts as CONTINUE).
 *
 * config_new: `filter_name` and `config` come from the filter's typed_config (the module may offer
 * several filters). Returns the module's config object, or NULL after calling
 * mcproxy_config_fail() to refuse the config (the proxy then refuses the whole change and keeps
 * running the old one). Metrics are defined here. */
void* mcproxy_network_filter_config_new(mcproxy_config_context context, mcproxy_str filter_name,
                                        mcproxy_str config);
void mcproxy_network_filter_config_destroy(void* config);
/* One instance per connection; `filter` is its handle for callbacks (until destroy). */
void* mcproxy_network_filter_new(void* config, mcproxy_network_filter filter);
mcproxy_status mcproxy_network_filter_on_new_connection(void* instance,
                                                        mcproxy_network_filter filter);
/* Bytes arrived before a terminal filter took the connection (mcproxy_network_filter_get_read_data
 * shows them all); `end_of_stream` when the client closed its side. After tls_inspector, the SNI
 * and ALPN attributes are known here. */
mcproxy_status mcproxy_network_filter_on_data(void* instance, mcproxy_network_filter filter,
                                              size_t buffered_bytes, int end_of_stream);
/* The connection closed, for any reason (`reason` as in the access log). Callbacks other than
 * get_attribute return MCPROXY_ERR_ENDED from here on. */
void mcproxy_network_filter_on_close(void* instance, mcproxy_network_filter filter,
                                     mcproxy_str reason);
void mcproxy_network_filter_on_timer(void* instance, mcproxy_network_filter filter, uint64_t token);
void mcproxy_network_filter_destroy(void* instance);

/* HTTP filter (http_filters { name: "mcproxy.filters.http.module" }). config_new,
 * config_destroy, new and destroy are required when the module serves as an HTTP filter; the
 * on_* hooks are optional. Request hooks run in chain order, response hooks in reverse. */
void* mcproxy_http_filter_config_new(mcproxy_config_context context, mcproxy_str filter_name,
                                     mcproxy_str config);
void mcproxy_http_filter_config_destroy(void* config);
void* mcproxy_http_filter_new(void* config, mcproxy_http_filter filter);
mcproxy_status mcproxy_http_filter_on_request_headers(void* instance, mcproxy_http_filter filter,
                                                      int end_of_stream);
/* One chunk of the body at a time (mcproxy_http_filter_get_body). */
mcproxy_status mcproxy_http_filter_on_request_body(void* instance, mcproxy_http_filter filter,
                                                   int end_of_stream);
mcproxy_status mcproxy_http_filter_on_request_trailers(void* instance, mcproxy_http_filter filter);
mcproxy_status mcproxy_http_filter_on_response_headers(void* instance, mcproxy_http_filter filter,
                                                       int end_of_stream);
mcproxy_status mcproxy_http_filter_on_response_body(void* instance, mcproxy_http_filter filter,
                                                    int end_of_stream);
mcproxy_status mcproxy_http_filter_on_response_trailers(void* instance, mcproxy_http_filter filter);
/* The stream ended (completed, reset, or the connection closed): headers and attributes can be
 * read; nothing can be changed. */
void mcproxy_http_filter_on_log(void* instance, mcproxy_http_filter filter);
void mcproxy_http_filter_on_timer(void* instance, mcproxy_http_filter filter, uint64_t token);
void mcproxy_http_filter_destroy(void* instance);

/* ---- callbacks the proxy exports ------------------------------------------------------- */

/* Any thread. Goes to the proxy's log as "module: <message>" (say which module in it). */
void mcproxy_log(mcproxy_log_level level, mcproxy_str message);

/* config_new only: why the config is refused (the proxy's error names the filter's field path). */
void mcproxy_config_fail(mcproxy_config_context context, mcproxy_str message);
/* config_new only: metrics, exported in /metrics as mcproxy_module_<name>{module="<module>"}.
 * `name` is [a-z0-9_]+; defining the same name again returns the same metric (a reload keeps its
 * counts). NULL on a bad name. Counter names end in "_total" by convention. */
mcproxy_counter mcproxy_define_counter(mcproxy_config_context context, mcproxy_str name);
mcproxy_gauge mcproxy_define_gauge(mcproxy_config_context context, mcproxy_str name);
/* Buckets for durations in seconds, 1 ms to 30 s. */
mcproxy_histogram mcproxy_define_histogram(mcproxy_config_context context, mcproxy_str name);
/* Any thread; metrics live as long as the process. */
void mcproxy_counter_add(mcproxy_counter counter, uint64_t value);
void mcproxy_gauge_add(mcproxy_gauge gauge, int64_t delta);
void mcproxy_gauge_set(mcproxy_gauge gauge, int64_t value);
void mcproxy_histogram_observe(mcproxy_histogram histogram, double value);

/* Network filter callbacks. */
mcproxy_result mcproxy_network_filter_get_attribute(mcproxy_network_filter filter,
                                                    mcproxy_attribute attribute,
                                                    mcproxy_str* value);
/* What the connection read so far and no filter took (before a terminal filter takes over). */
mcproxy_result mcproxy_network_filter_get_read_data(mcproxy_network_filter filter,
                                                    mcproxy_str* data);
/* Resumes the chain after a hook returned MCPROXY_STOP. */
mcproxy_result mcproxy_network_filter_continue(mcproxy_network_filter filter);
/* Closes the connection now. `reason` ([a-z0-9_]+) is the module's own: the close counts as
 * listener.<name>.close.module and the access log's close_reason reads "module:<module>:<reason>".
 */
mcproxy_result mcproxy_network_filter_close(mcproxy_network_filter filter, mcproxy_str reason);
/* Calls on_timer(token) once after `delay_ms` (0: at the next turn of the loop). One timer per
 * filter: setting it again replaces the pending one. Cancelled when the connection ends. */
mcproxy_result mcproxy_network_filter_set_timer(mcproxy_network_filter filter, uint64_t delay_ms,
                                                uint64_t token);

/* HTTP filter callbacks. */
typedef enum {
  MCPROXY_REQUEST_HEADERS = 0,  /* readable from on_request_headers on; changeable there only */
  MCPROXY_REQUEST_TRAILERS = 1, /* in on_request_trailers */
  MCPROXY_RESPONSE_HEADERS = 2, /* in on_response_headers (readable after it, to on_log) */
  MCPROXY_RESPONSE_TRAILERS = 3 /* in on_response_trailers */
} mcproxy_header_map;

mcproxy_result mcproxy_http_filter_get_attribute(mcproxy_http_filter filter,
                                                 mcproxy_attribute attribute, mcproxy_str* value);
/* The `index`-th field named `name` (lower case; ":path", ":method", ":authority", ":status" are
 * pseudo-headers). */
mcproxy_result mcproxy_http_filter_get_header(mcproxy_http_filter filter, mcproxy_header_map map,
                                              mcproxy_str name, size_t index, mcproxy_str* value);
mcproxy_result mcproxy_http_filter_header_count(mcproxy_http_filter filter, mcproxy_header_map map,
                                                size_t* count);
mcproxy_result mcproxy_http_filter_header_at(mcproxy_http_filter filter, mcproxy_header_map map,
                                             size_t index, mcproxy_str* name, mcproxy_str* value);
/* Replaces every field named `name` with one (appends when there was none). */
mcproxy_result mcproxy_http_filter_set_header(mcproxy_http_filter filter, mcproxy_header_map map,
                                              mcproxy_str name, mcproxy_str value);
mcproxy_result mcproxy_http_filter_add_header(mcproxy_http_filter filter, mcproxy_header_map map,
                                              mcproxy_str name, mcproxy_str value);
mcproxy_result mcproxy_http_filter_remove_header(mcproxy_http_filter filter, mcproxy_header_map map,
                                                 mcproxy_str name);
/* The body chunk of the current on_*_body hook; set_body replaces it. */
mcproxy_result mcproxy_http_filter_get_body(mcproxy_http_filter filter, mcproxy_str* chunk);
mcproxy_result mcproxy_http_filter_set_body(mcproxy_http_filter filter, mcproxy_str chunk);
/* Answers the request here with `status` (200-599) and `body` (text/plain); `detail` says why,
 * for the access log. Works from any hook and from on_timer; later hooks of this filter see the
 * reply in their response phases as the HTTP filter chain describes. */
mcproxy_result mcproxy_http_filter_send_local_reply(mcproxy_http_filter filter, uint32_t status,
                                                    mcproxy_str body, mcproxy_str detail);
/* Resume what a hook stopped (MCPROXY_STOP): the request, or the response. */
mcproxy_result mcproxy_http_filter_continue_request(mcproxy_http_filter filter);
mcproxy_result mcproxy_http_filter_continue_response(mcproxy_http_filter filter);
/* As for network filters: one timer, on_timer(token) after `delay_ms`, cancelled at the end. */
mcproxy_result mcproxy_http_filter_set_timer(mcproxy_http_filter filter, uint64_t delay_ms,
                                             uint64_t token);

#ifdef __cplusplus
}
#endif

#endif /* MCPROXY_MODULE_ABI_H */

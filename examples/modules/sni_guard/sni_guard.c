/*
 * sni_guard: an mc-proxy network filter module in C. Closes connections whose TLS server name
 * (SNI) matches one of the patterns in its config, with its own close reason ("blocked_sni") and
 * counter (mcproxy_module_blocked_total{module="..."}).
 *
 * Config: patterns separated by commas; "*.example.test" matches any name under example.test,
 * anything else matches exactly (case-insensitive, as SNI is lower-cased by the proxy).
 * Put the filter after tls_inspector, which reads the SNI:
 *
 *   modules { name: "sni_guard" path: "/usr/lib/mc-proxy/modules/libsni_guard.so" }
 *   listeners { ...
 *     filters { name: "mcproxy.filters.network.tls_inspector" }
 *     filters { name: "mcproxy.filters.network.module"
 *       typed_config { [type.googleapis.com/mcproxy.extensions.modules.v1.ModuleFilter] {
 *         module: "sni_guard" filter_name: "guard" config: "*.evil.test,blocked.test" } } }
 *     filters { name: "mcproxy.filters.network.router" }
 *     filters { name: "mcproxy.filters.network.tcp_proxy" } }
 *
 * Build out of tree: cc -shared -fPIC -O2 -I include sni_guard.c -o libsni_guard.so
 */
#include <stdlib.h>
#include <string.h>

#include "mcproxy/module_abi.h"

#define MAX_PATTERNS 64
#define MAX_PATTERN 253

typedef struct {
  char patterns[MAX_PATTERNS][MAX_PATTERN + 1];
  size_t count;
  mcproxy_counter blocked;
  mcproxy_counter allowed;
} guard_config;

typedef struct {
  const guard_config* config;
  int decided;
} guard_filter;

static mcproxy_str literal(const char* text) {
  mcproxy_str s = {text, strlen(text)};
  return s;
}

static int matches(const char* pattern, const char* name, size_t length) {
  size_t plen = strlen(pattern);
  if (plen > 2 && pattern[0] == '*' && pattern[1] == '.') {
    /* "*.a.test": at least one label before ".a.test" */
    size_t suffix = plen - 1; /* ".a.test" */
    return length > suffix && memcmp(name + length - suffix, pattern + 1, suffix) == 0;
  }
  return plen == length && memcmp(pattern, name, length) == 0;
}

const char* mcproxy_module_init(void) { return MCPROXY_MODULE_ABI_VERSION; }

void* mcproxy_network_filter_config_new(mcproxy_config_context context, mcproxy_str filter_name,
                                        mcproxy_str config) {
  (void)filter_name;
  guard_config* out = calloc(1, sizeof(guard_config));
  if (out == NULL) return NULL;
  size_t start = 0;
  for (size_t i = 0; i <= config.length; ++i) {
    if (i < config.length && config.data[i] != ',') continue;
    size_t length = i - start;
    if (length > 0) {
      if (out->count == MAX_PATTERNS || length > MAX_PATTERN) {
        mcproxy_config_fail(context, literal("too many patterns, or one longer than 253"));
        free(out);
        return NULL;
      }
      for (size_t k = 0; k < length; ++k) {
        char c = config.data[start + k];
        out->patterns[out->count][k] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      }
      out->patterns[out->count][length] = '\0';
      out->count++;
    }
    start = i + 1;
  }
  if (out->count == 0) {
    mcproxy_config_fail(context, literal("no SNI patterns: config is \"name,*.suffix,...\""));
    free(out);
    return NULL;
  }
  out->blocked = mcproxy_define_counter(context, literal("blocked_total"));
  out->allowed = mcproxy_define_counter(context, literal("allowed_total"));
  return out;
}

void mcproxy_network_filter_config_destroy(void* config) { free(config); }

void* mcproxy_network_filter_new(void* config, mcproxy_network_filter filter) {
  (void)filter;
  guard_filter* out = calloc(1, sizeof(guard_filter));
  if (out != NULL) out->config = config;
  return out;
}

mcproxy_status mcproxy_network_filter_on_data(void* instance, mcproxy_network_filter filter,
                                              size_t buffered_bytes, int end_of_stream) {
  (void)buffered_bytes;
  (void)end_of_stream;
  guard_filter* self = instance;
  if (self->decided) return MCPROXY_CONTINUE;
  self->decided = 1;
  mcproxy_str sni = {NULL, 0};
  mcproxy_network_filter_get_attribute(filter, MCPROXY_ATTR_SNI, &sni);
  for (size_t i = 0; i < self->config->count; ++i) {
    if (matches(self->config->patterns[i], sni.data, sni.length)) {
      mcproxy_counter_add(self->config->blocked, 1);
      mcproxy_network_filter_close(filter, literal("blocked_sni"));
      return MCPROXY_STOP;
    }
  }
  mcproxy_counter_add(self->config->allowed, 1);
  return MCPROXY_CONTINUE;
}

void mcproxy_network_filter_destroy(void* instance) { free(instance); }

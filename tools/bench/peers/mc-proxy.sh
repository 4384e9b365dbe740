#!/bin/bash
# Bench adapter for mc-proxy (contract: tools/bench/README.md, the same as peerbench's).
#   l4: TLS passthrough, SNI routing (tls_inspector -> router -> tcp_proxy with splice)
#   l7: TLS termination (ALPN h2, http/1.1) -> h2c upstream (http_connection_manager)
set -euo pipefail

MC_PROXY_BIN=${MC_PROXY_BIN:-mc-proxy}

case "${1:-}" in
version)
    command -v "$MC_PROXY_BIN" >/dev/null || { echo "$MC_PROXY_BIN not found" >&2; exit 1; }
    "$MC_PROXY_BIN" --version 2>&1 | head -n1
    ;;
modes)
    echo "l4 l7"
    ;;
notes)
    echo "l4 relays with splice(2) through 64 KiB pipes a worker lends a connection while bytes are in flight (MC_PROXY_DISABLE_SPLICE=1 copies through user space)."
    ;;
describe)
    case "${2:-}" in
    l4) echo "TLS passthrough, SNI route (tls_inspector, router, tcp_proxy) -> TLS nginx" ;;
    l7) echo "TLS terminate (h2+h1) -> pooled h2c upstream (http_connection_manager) -> nghttpd" ;;
    esac
    ;;
start)
    cfg="$PB_WORKDIR/mc-proxy.textproto"
    # MC_PROXY_CLUSTER=1 (the bench's mc-proxy-cluster): the same routes, each to a cluster of
    # its one backend, so the pick and the health bookkeeping are measured.
    target_h2c="backend: \"${PB_BACKEND_H2C}\""
    target_a="backend: \"${PB_BACKEND_TLS_A}\""
    target_b="backend: \"${PB_BACKEND_TLS_B}\""
    clusters=""
    if [ -n "${MC_PROXY_CLUSTER:-}" ]; then
        target_h2c='cluster: "h2c"'; target_a='cluster: "a"'; target_b='cluster: "b"'
        outlier='lb_policy: LEAST_REQUEST outlier_detection { consecutive_failures: 5 }'
        clusters="clusters { name: \"h2c\" endpoints { address: \"${PB_BACKEND_H2C}\" } ${outlier}
  health_check { interval_ms: 1000 http { path: \"/small.html\" } } }
clusters { name: \"a\" endpoints { address: \"${PB_BACKEND_TLS_A}\" } ${outlier} health_check { interval_ms: 1000 tcp {} } }
clusters { name: \"b\" endpoints { address: \"${PB_BACKEND_TLS_B}\" } ${outlier} health_check { interval_ms: 1000 tcp {} } }"
    fi
    if [ "$PB_MODE" = l7 ]; then
        cat >"$cfg" <<CFG
${clusters}
listeners {
  name: "bench"
  address: "${PB_LISTEN_ADDR}:${PB_LISTEN_PORT}"
  routes { hostname: "${PB_SNI_A}" ${target_h2c} mode: L7 tls_cert: "${PB_CERT}" tls_key: "${PB_KEY}" }
  routes { hostname: "${PB_SNI_B}" ${target_h2c} mode: L7 tls_cert: "${PB_CERT}" tls_key: "${PB_KEY}" }
}
CFG
    else
        splice=""
        if [ -n "${MC_PROXY_DISABLE_SPLICE:-}" ]; then splice="disable_splice: true"; fi
        cat >"$cfg" <<CFG
${clusters}
listeners {
  name: "bench"
  address: "${PB_LISTEN_ADDR}:${PB_LISTEN_PORT}"
  routes { hostname: "${PB_SNI_A}" ${target_a} mode: L4 }
  routes { hostname: "${PB_SNI_B}" ${target_b} mode: L4 }
  filters { name: "mcproxy.filters.network.tls_inspector" }
  filters { name: "mcproxy.filters.network.router" }
  filters { name: "mcproxy.filters.network.tcp_proxy"
    typed_config { [type.googleapis.com/mcproxy.extensions.filters.network.tcp_proxy.v1.TcpProxy] { ${splice} } } }
}
CFG
    fi
    exec "$MC_PROXY_BIN" --config "$cfg" --workers "${PB_THREADS:-1}" --log-level warn
    ;;
*)
    echo "usage: $0 version|modes|notes|describe MODE|start" >&2
    exit 2
    ;;
esac

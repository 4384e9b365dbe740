#!/bin/bash
# Bench adapter: HAProxy (Debian package). From ../shared/peerbench/peers/haproxy.sh; contract:
# tools/bench/README.md. maxconn raised for the 10,000 idle connections (HAPROXY_MAXCONN).
#   l4: TLS passthrough, SNI routing (mode tcp + inspect-delay + req.ssl_sni)
#   l7: TLS termination (alpn h2,http/1.1) -> HTTP/2 cleartext upstream (proto h2)
set -euo pipefail

case "${1:-}" in
version)
    haproxy -v | head -n1
    ;;
modes)
    echo "l4 l7"
    ;;
notes)
    if [ -n "${HAPROXY_SPLICE:-}" ]; then
        echo "l4 relays with splice(2) where haproxy sees fit (option splice-auto, HAPROXY_SPLICE=1)."
    else
        echo "l4 copies through user space (haproxy's default). HAPROXY_SPLICE=1 adds 'option splice-auto'; in trial runs here it made no difference to the L4 stream (about 1.2 GB/s either way). With splicing haproxy also reserves descriptors for pipes, so HAPROXY_MAXCONN=7000 is needed under a 20,000 limit."
    fi
    echo "l7 sets 'http-reuse always' (HAPROXY_HTTP_REUSE): the default 'safe' opens a new upstream connection for each client's first request."
    echo "l7 keeps haproxy 2.6's 64 KiB HTTP/2 window (tune.h2.initial-window-size, which also applies to the h2c upstream), and that limits the 1 MiB test; HAPROXY_H2_WINDOW=1048576 raises it (about +60 % MB/s in a trial run)."
    ;;
describe)
    case "${2:-}" in
    l4) echo "TLS passthrough, SNI route (mode tcp, req.ssl_sni) -> TLS nginx" ;;
    l7) echo "TLS terminate (h2+h1) -> h2c upstream (server proto h2) -> nghttpd" ;;
    esac
    ;;
start)
    cfg="$PB_WORKDIR/haproxy.cfg"
    cat >"$cfg" <<EOF
global
    nbthread ${PB_THREADS:-1}
    maxconn ${HAPROXY_MAXCONN:-30000}
$( [ -n "${HAPROXY_H2_WINDOW:-}" ] && echo "    tune.h2.initial-window-size ${HAPROXY_H2_WINDOW}" )
    # no logging: only the data path is measured

defaults
    timeout connect 5s
    timeout client  30s
    timeout server  30s
EOF
    if [ "$PB_MODE" = l4 ]; then
        cat >>"$cfg" <<EOF
    mode tcp
$( [ -n "${HAPROXY_SPLICE:-}" ] && echo "    option splice-auto" )

frontend fe_l4
    bind ${PB_LISTEN_ADDR}:${PB_LISTEN_PORT}
    tcp-request inspect-delay 5s
    tcp-request content reject if { req.ssl_hello_type 1 } !{ req.ssl_sni -i ${PB_SNI_A} ${PB_SNI_B} }
    tcp-request content accept if { req.ssl_hello_type 1 }
    use_backend be_a if { req.ssl_sni -i ${PB_SNI_A} }
    use_backend be_b if { req.ssl_sni -i ${PB_SNI_B} }

backend be_a
    server a ${PB_BACKEND_TLS_A}

backend be_b
    server b ${PB_BACKEND_TLS_B}
EOF
    else
        cat >>"$cfg" <<EOF
    mode http
    timeout http-keep-alive 30s

frontend fe_l7
    bind ${PB_LISTEN_ADDR}:${PB_LISTEN_PORT} ssl crt ${PB_CERT_KEY_PEM} alpn h2,http/1.1
    http-request deny deny_status 421 unless { ssl_fc_sni -i ${PB_SNI_A} ${PB_SNI_B} }
    default_backend be_h2c

backend be_h2c
    # 'always' lets a client's first request share an idle upstream h2 connection
    # (like nginx's upstream keepalive pool); haproxy's default 'safe' opens a new
    # upstream connection for it, which dominates the new-connection test.
    http-reuse ${HAPROXY_HTTP_REUSE:-always}
    server h2c ${PB_BACKEND_H2C} proto h2
EOF
    fi
    haproxy -c -q -f "$cfg"
    exec haproxy -db -f "$cfg"
    ;;
*)
    echo "usage: $0 version|modes|notes|describe MODE|start" >&2
    exit 2
    ;;
esac

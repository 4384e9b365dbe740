#!/bin/bash
# Bench adapter: sniproxy (Debian package), an L4 SNI proxy in C (libev). Contract:
# tools/bench/README.md.
#   l4: TLS passthrough, SNI routing (a table of hostnames)
set -euo pipefail

case "${1:-}" in
version)
    sniproxy -V 2>&1 | head -n1
    ;;
modes)
    echo "l4"
    ;;
notes)
    echo "sniproxy has one thread whatever PB_THREADS says; it has no L7 mode."
    ;;
describe)
    case "${2:-}" in
    l4) echo "TLS passthrough, SNI route (table) -> TLS nginx" ;;
    esac
    ;;
start)
    W="$PB_WORKDIR"
    conf="$W/sniproxy.conf"
    cat >"$conf" <<CONF
user root
pidfile $W/sniproxy.pid
error_log {
    filename $W/error.log
    priority warning
}
listener ${PB_LISTEN_ADDR}:${PB_LISTEN_PORT} {
    protocol tls
    table pb
}
table pb {
    ^${PB_SNI_A//./\\.}\$ ${PB_BACKEND_TLS_A}
    ^${PB_SNI_B//./\\.}\$ ${PB_BACKEND_TLS_B}
}
CONF
    exec sniproxy -f -c "$conf"
    ;;
*)
    echo "usage: $0 version|modes|notes|describe MODE|start" >&2
    exit 2
    ;;
esac

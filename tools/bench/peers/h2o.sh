#!/bin/bash
# Bench adapter: h2o (Debian package, 2.2), an HTTP/2 server and reverse proxy in C. Contract:
# tools/bench/README.md.
#   l7: TLS termination (h2 + http/1.1) -> HTTP/1.1 keep-alive upstream. h2o 2.2 has no HTTP/2
#       upstream, so, like nginx, it proxies to the HTTP/1.1 backend.
set -euo pipefail

case "${1:-}" in
version)
    h2o --version 2>&1 | head -n1
    ;;
modes)
    echo "l7"
    ;;
notes)
    echo "l7 proxies to the HTTP/1.1 backend: h2o 2.2 has no HTTP/2 upstream. Upstream keep-alive is on (proxy.timeout.keepalive 30 s)."
    ;;
describe)
    case "${2:-}" in
    l7) echo "TLS terminate (h2+h1) -> HTTP/1.1 keepalive upstream -> nginx (no h2c upstream in h2o 2.2)" ;;
    esac
    ;;
start)
    W="$PB_WORKDIR"
    conf="$W/h2o.conf"
    cat >"$conf" <<CONF
user: root
num-threads: ${PB_THREADS:-1}
pid-file: $W/h2o.pid
error-log: $W/error.log
max-connections: 30000
proxy.timeout.keepalive: 30000
http2-idle-timeout: 600
listen:
  host: ${PB_LISTEN_ADDR}
  port: ${PB_LISTEN_PORT}
  ssl:
    certificate-file: ${PB_CERT}
    key-file: ${PB_KEY}
    minimum-version: TLSv1.2
hosts:
  "${PB_SNI_A}":
    paths:
      "/":
        proxy.reverse.url: "http://${PB_BACKEND_H1}/"
  "${PB_SNI_B}":
    paths:
      "/":
        proxy.reverse.url: "http://${PB_BACKEND_H1}/"
CONF
    exec h2o -c "$conf"
    ;;
*)
    echo "usage: $0 version|modes|notes|describe MODE|start" >&2
    exit 2
    ;;
esac

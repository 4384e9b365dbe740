#!/bin/bash
# Bench adapter: nginx (Debian nginx-light + libnginx-mod-stream). From
# ../shared/peerbench/peers/nginx.sh; contract: tools/bench/README.md. worker_connections raised
# for the 10,000 idle connections.
#   l4: TLS passthrough, SNI routing (stream + ssl_preread + map $ssl_preread_server_name)
#   l7: TLS termination (listen ... ssl http2) -> HTTP/1.1 upstream with keepalive.
#       nginx cannot speak HTTP/2 (h2c or h2) to an upstream, so it uses the
#       HTTP/1.1 backend instead of the h2c one.
set -euo pipefail

STREAM_MODULE=${NGINX_STREAM_MODULE:-/usr/lib/nginx/modules/ngx_stream_module.so}

case "${1:-}" in
version)
    nginx -v 2>&1 | head -n1
    ;;
modes)
    if [ -f "$STREAM_MODULE" ]; then echo "l4 l7"; else echo "l7"; fi
    ;;
notes)
    echo "l7 proxies to the HTTP/1.1 backend: nginx has no HTTP/2 (h2c or h2) upstream support. It uses an upstream keepalive pool of 1024 and the default proxy_buffering."
    echo "nginx 1.22 defaults to ssl_protocols without TLSv1.3; the configs here enable TLSv1.2 and TLSv1.3."
    ;;
describe)
    case "${2:-}" in
    l4) echo "TLS passthrough, SNI route (stream ssl_preread + map) -> TLS nginx" ;;
    l7) echo "TLS terminate (h2+h1) -> HTTP/1.1 keepalive upstream -> nginx (no h2c upstream in nginx)" ;;
    esac
    ;;
start)
    W="$PB_WORKDIR"
    conf="$W/nginx.conf"
    mkdir -p "$W/tmp"
    {
        [ "$PB_MODE" = l4 ] && echo "load_module $STREAM_MODULE;"
        cat <<EOF
user root;
daemon off;
master_process on;
worker_processes ${PB_THREADS:-1};
worker_rlimit_nofile 200000;
pid $W/nginx.pid;
error_log $W/error.log warn;
events { worker_connections 32768; }
EOF
        if [ "$PB_MODE" = l4 ]; then
            cat <<EOF
stream {
    map \$ssl_preread_server_name \$pb_upstream {
        ${PB_SNI_A}  ${PB_BACKEND_TLS_A};
        ${PB_SNI_B}  ${PB_BACKEND_TLS_B};
        default      127.0.0.1:1;   # unknown SNI: refused upstream -> client closed
    }
    server {
        listen ${PB_LISTEN_ADDR}:${PB_LISTEN_PORT};
        ssl_preread on;
        proxy_pass \$pb_upstream;
    }
}
EOF
        else
            cat <<EOF
http {
    access_log off;
    client_body_temp_path $W/tmp/body;
    proxy_temp_path       $W/tmp/proxy;
    fastcgi_temp_path     $W/tmp/fastcgi;
    uwsgi_temp_path       $W/tmp/uwsgi;
    scgi_temp_path        $W/tmp/scgi;
    keepalive_requests 1000000;

    upstream be_h1 {
        server ${PB_BACKEND_H1};
        keepalive 1024;   # >= in-flight requests, else upstream connections churn
    }
    server {
        listen ${PB_LISTEN_ADDR}:${PB_LISTEN_PORT} ssl http2;
        server_name ${PB_SNI_A} ${PB_SNI_B};
        ssl_protocols TLSv1.2 TLSv1.3;   # nginx 1.22 default lacks TLSv1.3
        ssl_certificate     ${PB_CERT};
        ssl_certificate_key ${PB_KEY};
        location / {
            proxy_pass http://be_h1;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
        fi
    } >"$conf"
    nginx -q -t -p "$W" -c "$conf"
    exec nginx -p "$W" -c "$conf"
    ;;
*)
    echo "usage: $0 version|modes|notes|describe MODE|start" >&2
    exit 2
    ;;
esac

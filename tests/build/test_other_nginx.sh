#!/usr/bin/env bash
# Builds the module with CMake against another nginx source tree (mainline,
# nginx.org's, one built --with-http_v3_module...) and, when the tree holds
# the full sources, builds that nginx too and proves the module loads into it
# and serves a bill and the health check.
#
#   test_other_nginx.sh REPO_DIR
#
# Runs only when DSS_OTHER_NGINX_SRC names such a tree (a release tarball, or
# a git checkout: its auto/configure is used); DSS_OTHER_NGINX_ARGS gives the
# configure arguments (default: --with-compat --with-threads
# --with-http_ssl_module --with-http_v2_module). Otherwise exits 77, which
# ctest reports as skipped.
set -euo pipefail

repo=$1
src=${DSS_OTHER_NGINX_SRC:-}
args=${DSS_OTHER_NGINX_ARGS:---with-compat --with-threads --with-http_ssl_module --with-http_v2_module}

if [ -z "$src" ]; then
    echo "SKIP: set DSS_OTHER_NGINX_SRC to an nginx source tree (and"
    echo "      DSS_OTHER_NGINX_ARGS to its configure arguments) to run this"
    exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/dss-bill-other-XXXXXX")
nginx_pid=""
cleanup() {
    if [ -n "$nginx_pid" ]; then
        kill "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    rm -rf -- "$work"
}
trap cleanup EXIT

# a git checkout has auto/configure only; a release tree has ./configure
mkdir -p "$work/src"
cp -r "$src"/. "$work/src"/
if [ ! -f "$work/src/configure" ] && [ -f "$work/src/auto/configure" ]; then
    cp "$work/src/auto/configure" "$work/src/configure"
fi

echo "== CMake build against $src ($args)"
cmake -S "$repo" -B "$work/build" -DDSS_BILL_TESTS=OFF \
    -DNGINX_SRC_DIR="$work/src" -DNGINX_CONFIGURE_ARGS="$args" >"$work/cmake.log" 2>&1 ||
    { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/build" -j2 >"$work/build.log" 2>&1 ||
    { tail -n 60 "$work/build.log"; exit 1; }
module=$work/build/ngx_http_dss_bill_module.so
echo "ok: built $module"

if [ ! -f "$work/src/src/core/nginx.c" ]; then
    echo "ok: headers-only tree: nothing to load the module into"
    echo "1 passed, 0 failed"
    exit 0
fi

echo "== nginx itself, from the tree CMake configured"
make -C "$work/build/nginx" -f objs/Makefile -j2 binary >"$work/nginx.log" 2>&1 ||
    { tail -n 60 "$work/nginx.log"; exit 1; }
nginx=$work/build/nginx/objs/nginx

prefix=$work/prefix
mkdir -p "$prefix/logs" "$prefix/temp" "$prefix/bills"
cmake --build "$work/build" --target dss-make-bill >/dev/null
"$work/build/dss-make-bill" "$prefix/bills/123456789012.pdf" 123456789012 20000
chmod -R a+rX "$work"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$prefix/nginx.conf" <<CONF
load_module $module;
user nobody nogroup;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log info;
events {}
http {
    access_log off;
    client_body_temp_path $prefix/temp/body;
    proxy_temp_path $prefix/temp/proxy;
    fastcgi_temp_path $prefix/temp/fastcgi;
    uwsgi_temp_path $prefix/temp/uwsgi;
    scgi_temp_path $prefix/temp/scgi;
    server {
        listen 127.0.0.1:$port;
        location /dss/bill/ { dss_bill; dss_bill_root $prefix/bills; }
    }
}
CONF
"$nginx" -p "$prefix" -c "$prefix/nginx.conf" -t
"$nginx" -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;' &
nginx_pid=$!

for _ in $(seq 1 250); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.02
done

curl -sf -o "$work/bill.pdf" "http://127.0.0.1:$port/dss/bill/download/123456789012"
cmp "$work/bill.pdf" "$prefix/bills/123456789012.pdf"
echo "ok: a bill, byte for byte, from $("$nginx" -v 2>&1)"
health=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' \
    "http://127.0.0.1:$port/dss/bill/healthcheck")
[ "$health" = "200 0" ] || { echo "FAIL: health answered $health"; exit 1; }
echo "ok: the health check"
if grep -E '\[(alert|emerg)\]' "$prefix/logs/error.log"; then
    echo "FAIL: alerts in the error log"
    exit 1
fi
echo "3 passed, 0 failed"

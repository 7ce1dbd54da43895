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

# the deployment tests' helpers: folders, free ports, nginx, cleanup
# shellcheck source=../deploy/lib.sh
. "$repo/tests/deploy/lib.sh"

work=$(new_dir)

# a git checkout has auto/configure only; a release tree has ./configure
mkdir -p "$work/src"
cp -r "$src"/. "$work/src"/
if [ ! -f "$work/src/configure" ] && [ -f "$work/src/auto/configure" ]; then
    cp "$work/src/auto/configure" "$work/src/configure"
fi

cmake -S "$repo" -B "$work/build" -DDSS_BILL_TESTS=OFF \
    -DNGINX_SRC_DIR="$work/src" -DNGINX_CONFIGURE_ARGS="$args" \
    >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; fail "cmake"; }
cmake --build "$work/build" -j2 >"$work/build.log" 2>&1 ||
    { tail -n 60 "$work/build.log"; fail "the module does not build"; }
module=$work/build/ngx_http_dss_bill_module.so
ok "the module builds against $src ($args)"

if [ ! -f "$work/src/src/core/nginx.c" ]; then
    ok "a headers-only tree: nothing to load the module into"
    echo "1 passed, 0 failed"
    exit 0
fi

# nginx itself, from the tree CMake configured
make -C "$work/build/nginx" -f objs/Makefile -j2 binary >"$work/nginx.log" 2>&1 ||
    { tail -n 60 "$work/nginx.log"; fail "nginx does not build"; }
NGINX_BIN=$work/build/nginx/objs/nginx

prefix=$(new_dir)
mkdir -p "$prefix/bills"
"$work/build/dss-make-bill" "$prefix/bills/123456789012.pdf" 123456789012 20000
chmod 644 "$prefix/bills/123456789012.pdf"

write_conf() {
    cat >"$prefix/bill.conf" <<CONF
server {
    listen 127.0.0.1:$1;
    location /dss/bill/ { dss_bill; dss_bill_root $prefix/bills; }
}
CONF
    main_conf "$prefix" "$module" "$prefix/bill.conf"
}
nginx_start "$prefix" write_conf

curl -sf -o "$prefix/got.pdf" \
    "http://127.0.0.1:$NGINX_PORT/dss/bill/download/123456789012"
cmp "$prefix/got.pdf" "$prefix/bills/123456789012.pdf" ||
    fail "the bill is not byte for byte the file"
ok "a bill, byte for byte, from $("$NGINX_BIN" -v 2>&1)"
health=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' \
    "http://127.0.0.1:$NGINX_PORT/dss/bill/healthcheck")
[ "$health" = "200 0" ] || fail "health answered $health"
ok "the health check"
! grep -E '\[(alert|emerg)\]' "$prefix/logs/error.log" ||
    fail "alerts in the error log"
echo "3 passed, 0 failed"

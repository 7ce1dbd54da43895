#!/usr/bin/env bash
# Proves the module builds with nginx's own build system as well as with CMake,
# and that both resulting .so files load into the nginx binary ("nginx -t").
# The CMake build is the developers' build; nginx's configure + make is how
# packagers (dh_nginx) and users build dynamic modules, so both must work.
#
#   test_both_builds_load.sh NGINX_SRC_DIR MODULE_DIR CMAKE_BUILT_SO NGINX_BINARY
#
# NGINX_SRC_DIR: an nginx tree with configure (Debian's nginx-dev tree holds
# headers only, which is why only the "modules" target is built).
# MODULE_DIR: the folder holding the module's nginx "config" file.
set -euo pipefail

if [ $# -ne 4 ]; then
    echo "usage: $0 NGINX_SRC_DIR MODULE_DIR CMAKE_BUILT_SO NGINX_BINARY" >&2
    exit 2
fi

# configure runs in a copy and changes directory: make every path absolute
# first, so relative arguments given by hand still work.
absolute() {
    case $1 in
    /*) echo "$1" ;;
    *) echo "$PWD/$1" ;;
    esac
}

src_dir=$(absolute "$1")
module_dir=$(absolute "$2")
cmake_so=$(absolute "$3")
nginx_bin=$4

work=$(mktemp -d "${TMPDIR:-/tmp}/dss-bill-build-XXXXXX")
# One trap removes everything the test created, whatever way it ends.
trap 'rm -rf -- "$work"' EXIT

passed=0
failed=0

# ---- 1. nginx's own build system --------------------------------------------

# configure writes objs/ and a Makefile into the tree it runs in: never in the
# shared source tree, always in a private copy.
# It runs as an "if" condition, where bash ignores set -e: every step checks
# its own status.
build_with_nginx() {
    local tree=$work/nginx
    mkdir -p "$tree" && cp -r "$src_dir"/. "$tree"/ && cd "$tree" || return 1

    local flags=(--with-compat)
    if [ -f conf_flags ]; then
        # Debian's tree names the flags its nginx was built with; the same
        # flags give the same module ABI signature, so load_module accepts
        # the result.
        # shellcheck disable=SC1091
        source ./conf_flags
        flags=("${NGX_CONF_FLAGS[@]}")
    fi

    if ! ./configure "${flags[@]}" --add-dynamic-module="$module_dir" \
        >"$work/configure.log" 2>&1; then
        echo "FAIL: nginx's configure failed with this module:" >&2
        tail -n 40 "$work/configure.log" >&2
        return 1
    fi

    # only "modules": the nginx-dev tree has no .c files for the nginx binary
    if ! make -f objs/Makefile -j2 modules >"$work/make.log" 2>&1; then
        echo "FAIL: make -f objs/Makefile modules failed:" >&2
        tail -n 60 "$work/make.log" >&2
        return 1
    fi
}

nginx_so=$work/nginx/objs/ngx_http_dss_bill_module.so
# a subshell: build_with_nginx changes directory
if ! (build_with_nginx); then
    nginx_so=""
fi

# ---- 2. both .so files load --------------------------------------------------

# Runs "nginx -t" with a minimal configuration that loads the .so and uses its
# main directives. Every path nginx writes to or creates during "-t" (pid,
# logs, temp folders) is inside the test folder, so the test neither needs
# nor touches the system's /var/log/nginx or /var/lib/nginx.
# Like build_with_nginx, it runs as an "if" condition: no set -e inside.
check_loads() {
    local label=$1 so=$2
    local prefix=$work/$label
    mkdir -p "$prefix/logs" "$prefix/temp" || return 1

    if [ -z "$so" ]; then
        echo "FAIL: $label: no module was built (see the build error above)" >&2
        return 1
    fi
    if [ ! -f "$so" ]; then
        echo "FAIL: $label: $so does not exist" >&2
        return 1
    fi

    cat >"$prefix/nginx.conf" <<EOF || return 1
load_module $so;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $prefix/temp/body;
    proxy_temp_path $prefix/temp/proxy;
    fastcgi_temp_path $prefix/temp/fastcgi;
    uwsgi_temp_path $prefix/temp/uwsgi;
    scgi_temp_path $prefix/temp/scgi;
    server {
        listen 127.0.0.1:1;
        location /dss/bill/ { dss_bill; dss_bill_root /tmp; }
    }
}
EOF

    # -e: the compiled-in error log is used until the configuration is read
    local output
    if ! output=$("$nginx_bin" -t -p "$prefix" -e "$prefix/logs/error.log" \
        -c "$prefix/nginx.conf" 2>&1); then
        echo "FAIL: $label: $nginx_bin -t does not accept $so:" >&2
        echo "$output" >&2
        return 1
    fi
    echo "ok: $label: $so loads into $nginx_bin"

    # only what nginx's dlopen() looks up is exported (module/exports.map):
    # nothing of ours can clash with another module's symbols
    local exported
    exported=$(nm -D --defined-only "$so" | awk '{print $3}' | sort | tr '\n' ' ')
    if [ "$exported" != "ngx_module_names ngx_module_order ngx_modules " ]; then
        echo "FAIL: $label: $so exports more than nginx needs: $exported" >&2
        return 1
    fi
    echo "ok: $label: exports only ngx_modules, ngx_module_names, ngx_module_order"
}

# counts instead of stopping at the first failure: both verdicts are shown
record() {
    if check_loads "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
}

record nginx-build "$nginx_so"
record cmake-build "$cmake_so"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

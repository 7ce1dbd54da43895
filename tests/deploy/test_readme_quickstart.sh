#!/usr/bin/env bash
# README.md's quick start, followed word for word, so that it cannot drift:
# the blocks marked <!-- quickstart:NAME --> ... <!-- /quickstart --> are
# taken from the README and run as they are, with only paths and the port
# replaced (and, when not root, the "--group www-data" that needs root):
#
#   install            copies the module and writes its load_module snippet
#   setup              make-cert, add-user, the bills folder
#   dss-bill.conf      the server, included by a main nginx.conf laid out
#                      like Debian's (modules-enabled/*.conf at the top,
#                      conf.d/*.conf inside http, "user www-data" as root)
#   curl               the download and the health check
#   nginx-build        nginx's own build system on a copy of nginx-dev's
#                      tree; the .so it makes passes nginx -t
#   unknown-directive  the message nginx -t prints without the module
#
# and the "already loaded" message the README quotes for a second
# load_module. Fails when a block is missing, a replaced path is no longer
# in it, or a step stops working.
#
#   test_readme_quickstart.sh MODULE_SO MAKE_BILL
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"

[ $# -eq 2 ] || {
    echo "usage: $0 MODULE_SO MAKE_BILL" >&2
    exit 2
}
module=$(absolute "$1")
make_bill=$(absolute "$2")
readme=$REPO/README.md
bill_id=123456789012

dir=$(new_dir)
work=$dir/readme
mkdir -p "$work" "$dir/client" "$dir/modules" "$dir/modules-enabled" "$dir/conf.d"

# block NAME: the fenced code between <!-- quickstart:NAME --> and the next
# <!-- /quickstart -->, fences left out; fails unless there is exactly one
# such block, closed, with at least one line.
block() {
    local out
    out=$(awk -v start="<!-- quickstart:$1 -->" '
        $0 == start { seen++; inside = 1; next }
        inside && $0 == "<!-- /quickstart -->" { inside = 0; closed++; next }
        inside && /^```/ { fence = !fence; next }
        inside && fence { print; lines++ }
        END { exit !(seen == 1 && closed == 1 && !inside && !fence && lines > 0) }
    ' "$readme") || fail "README.md: no single, closed <!-- quickstart:$1 --> block with code"
    printf '%s\n' "$out"
}

# from_readme NAME DST FROM TO...: block NAME written to DST with each FROM
# replaced by TO (render fails if a FROM is no longer in the block).
from_readme() {
    local name=$1 dst=$2
    shift 2
    block "$name" >"$work/$name.orig"
    render "$work/$name.orig" "$dst" "$@"
}

# run_block NAME CWD FROM TO...: runs block NAME with bash in CWD (errexit,
# pipefail), paths replaced; its standard output is kept in
# $work/NAME.out.
run_block() {
    local name=$1 cwd=$2
    shift 2
    from_readme "$name" "$work/$name.sh" "$@"
    echo "---- README $name, as run:"
    sed 's/^/    /' "$work/$name.sh"
    (cd "$cwd" && bash -e -o pipefail "$work/$name.sh") >"$work/$name.out" 2>"$work/$name.err" || {
        cat "$work/$name.out" "$work/$name.err" >&2
        fail "README $name block failed"
    }
}

# ---- 1. build: the module the README names --------------------------------------
# The quick start's build gives build/ngx_http_dss_bill_module.so: ctest's
# module is that file (in whatever build folder ctest runs).
[ "$(basename "$module")" = ngx_http_dss_bill_module.so ] ||
    fail "the module is $module, the README says build/ngx_http_dss_bill_module.so"

# ---- 2. install and enable -------------------------------------------------------
run_block install "$REPO" \
    "build/ngx_http_dss_bill_module.so" "$module" \
    "/usr/lib/nginx/modules/" "$dir/modules/" \
    "/etc/nginx/modules-enabled/" "$dir/modules-enabled/"
snippet=$dir/modules-enabled/50-mod-http-dss-bill.conf
cmp -s "$module" "$dir/modules/ngx_http_dss_bill_module.so" || fail "install: module not copied"
[ "$(cat "$snippet")" = "load_module $dir/modules/ngx_http_dss_bill_module.so;" ] ||
    fail "install: $snippet holds: $(cat "$snippet")"
ok "README install: the module copied, its load_module snippet in modules-enabled/"

# ---- 3. certificate, user, bills --------------------------------------------------
setup_subst=(
    "scripts/make-cert" "$REPO/scripts/make-cert"
    "scripts/add-user" "$REPO/scripts/add-user"
    "/etc/nginx/dss" "$dir/dss"
    "/srv/dss/bills" "$dir/bills"
)
main_user=""
if [ "$(id -u)" -eq 0 ]; then
    # As in Debian's nginx.conf: workers run as www-data, who must read the
    # htpasswd file (--group www-data) and the bills.
    main_user="user www-data;"
else
    # chgrp to www-data needs root; the workers run as this user anyway.
    setup_subst+=("--group www-data " "")
fi
run_block setup "$dir" "${setup_subst[@]}"
for file in dss/cert.pem dss/key.pem dss/htpasswd; do
    [ -s "$dir/$file" ] || fail "setup: no $dir/$file"
done
[ -d "$dir/bills" ] || fail "setup: no $dir/bills"
# add-user --random prints the password (24 characters) on standard output.
password=$(grep -E '^[A-Za-z0-9_-]{24}$' "$work/setup.out") ||
    fail "setup: add-user printed no password: $(cat "$work/setup.out")"
[ "$(wc -l <<<"$password")" -eq 1 ] || fail "setup: more than one password-like line"
# A bill, world-readable as the README says.
"$make_bill" "$dir/bills/$bill_id.pdf" "$bill_id" 70000 >/dev/null
chmod 644 "$dir/bills/$bill_id.pdf"
ok "README setup: make-cert and add-user wrote cert.pem, key.pem, htpasswd; bills folder made"

# ---- 4, 5. configure, nginx -t, start ------------------------------------------------
# The README's server as /etc/nginx/conf.d/dss-bill.conf, in a main
# configuration laid out like Debian's /etc/nginx/nginx.conf.
render_quickstart() {
    from_readme dss-bill.conf "$dir/conf.d/dss-bill.conf" \
        "listen 443 ssl;" "listen 127.0.0.1:$1 ssl;" \
        "/etc/nginx/dss/" "$dir/dss/" \
        "/srv/dss/bills" "$dir/bills"
    main_conf "$dir" "" "$dir/conf.d/*.conf"
    sed -i "1i include $dir/modules-enabled/*.conf;" "$dir/nginx.conf"
    [ -z "$main_user" ] || sed -i "1i $main_user" "$dir/nginx.conf"
}
nginx_start "$dir" render_quickstart
ok "README dss-bill.conf: nginx -t passes, nginx started on 127.0.0.1:$NGINX_PORT"

run_block curl "$dir/client" \
    "/etc/nginx/dss/" "$dir/dss/" \
    "dss:PASSWORD" "dss:$password" \
    "https://127.0.0.1/" "https://127.0.0.1:$NGINX_PORT/" \
    "$bill_id" "$bill_id"
cmp -s "$dir/client/bill.pdf" "$dir/bills/$bill_id.pdf" ||
    fail "README curl: bill.pdf is not the bill's bytes"
grep -q $'^HTTP/1.1 200 OK\r$' "$work/curl.out" ||
    fail "README curl: the health check did not print HTTP/1.1 200 OK: $(cat "$work/curl.out")"
grep -qi $'^content-length: 0\r$' "$work/curl.out" ||
    fail "README curl: the health check did not print Content-Length: 0"
ok "README curl: the download wrote the bill's exact bytes; health 200, Content-Length 0"
stop_nginx "$NGINX_PID"

# ---- a second load_module: the message the README quotes --------------------------
quoted='module "ngx_http_dss_bill_module" is already loaded'
grep -qF "$quoted" "$readme" || fail "README.md no longer quotes: $quoted"
cp "$snippet" "$dir/modules-enabled/60-again.conf"
# shellcheck disable=SC2046  # nginx_args: words, no spaces in the paths
if out=$("$NGINX_BIN" $(nginx_args "$dir") -t 2>&1); then
    fail "nginx -t passes with the module loaded twice"
fi
grep -qF "nginx: [emerg] $quoted in $dir/modules-enabled/60-again.conf:1" <<<"$out" ||
    fail "module loaded twice: $out"
rm -f "$dir/modules-enabled/60-again.conf"
ok "a second load_module: nginx -t fails with the README's \"$quoted\""

# ---- nginx's own build system --------------------------------------------------------
run_block nginx-build "$dir" \
    "/tmp/nginx-src" "$dir/nginx-src" \
    "/path/to/this/repo/module" "$REPO/module"
objs_so=$dir/nginx-src/objs/ngx_http_dss_bill_module.so
[ -f "$objs_so" ] || fail "README nginx-build: no $objs_so"
echo "load_module $objs_so;" >"$snippet"
nginx_test "$dir" || fail "nginx -t rejects the module of the README's nginx build"
ok "README nginx-build: make -f objs/Makefile modules in a copy of nginx-dev's tree; nginx -t loads the result"

# ---- without the module: the README's quoted nginx -t output ---------------------------
rm -f "$snippet"
from_readme unknown-directive "$work/unknown.expected" \
    "/etc/nginx/conf.d/" "$dir/conf.d/" \
    "/etc/nginx/nginx.conf" "$dir/nginx.conf"
# shellcheck disable=SC2046
if out=$("$NGINX_BIN" $(nginx_args "$dir") -t 2>&1); then
    fail "nginx -t passes without the module"
fi
[ "$out" = "$(cat "$work/unknown.expected")" ] || {
    echo "nginx -t printed:" >&2
    echo "$out" >&2
    echo "README.md quotes (paths replaced):" >&2
    cat "$work/unknown.expected" >&2
    fail "README unknown-directive: not what nginx -t prints"
}
ok "README unknown-directive: exactly what nginx -t prints without the module"
echo "passed"

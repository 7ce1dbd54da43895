#!/usr/bin/env bash
# The Debian package, for real: builds it with scripts/package, checks its
# metadata (nginx ABI and shared-library dependencies, files), installs it
# into the machine's stock nginx with apt-get, runs "nginx -t" on the stock
# configuration, serves a bill and the health check through the installed
# module from a separate nginx (its own configuration, including
# /etc/nginx/modules-enabled/*.conf like Debian's nginx.conf, and the
# package's own example conf, with the certificate and user made by the
# package's dss-bill-make-cert and dss-bill-add-user), then removes it
# (module disabled), installs it again (enabled again), purges it, and shows
# nginx still starts without it. The second binary package, dss-bill-check,
# is checked (files, dependencies), installed, run against the installed
# module (every check passes) and purged with it.
#
# Changes the system, so it runs only when asked: with DSS_TEST_PACKAGE=1,
# or CI=true (set by CI); skipped (77) otherwise, when not root, or when the
# package is installed already (an administrator's install is left alone).
# A running system nginx is reloaded by the package's dpkg trigger, as on any
# install.
#
#   test_package.sh MAKE_BILL OUT_DIR
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"

[ $# -eq 2 ] || {
    echo "usage: $0 MAKE_BILL OUT_DIR" >&2
    exit 2
}
make_bill=$(absolute "$1")
out_dir=$(absolute "$2")
pkg=libnginx-mod-http-dss-bill
check_pkg=dss-bill-check # the go-live checker, from the same source
checker=/usr/bin/dss-bill-check
so=/usr/lib/nginx/modules/ngx_http_dss_bill_module.so
available=/usr/share/nginx/modules-available/mod-http-dss-bill.conf
enabled=/etc/nginx/modules-enabled/50-mod-http-dss-bill.conf
make_cert=/usr/sbin/dss-bill-make-cert
add_user=/usr/sbin/dss-bill-add-user

if [ "${DSS_TEST_PACKAGE:-0}" != 1 ] && [ "${CI:-}" != true ]; then
    echo "skipped: this test installs $pkg into this machine's nginx with apt-get"
    echo "(reloading a running nginx), then purges it; to run it, as root:"
    echo "  DSS_TEST_PACKAGE=1 ctest --test-dir build -L package -V"
    echo "  DSS_TEST_PACKAGE=1 scripts/test"
    exit 77
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "skipped: installing a package needs root"
    exit 77
fi
for p in "$pkg" "$check_pkg"; do
    if dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep ' installed$' >/dev/null; then
        echo "skipped: $p is installed on this machine already; not touching it"
        exit 77
    fi
done

export DEBIAN_FRONTEND=noninteractive
# Wait for a dpkg lock held by someone else instead of failing at once.
apt=(apt-get -y -q -o DPkg::Lock::Timeout=120)

installed=0
purge_if_installed() {
    if [ "$installed" -eq 1 ]; then
        "${apt[@]}" purge "$pkg" "$check_pkg" >/dev/null 2>&1 || true
        installed=0
    fi
}
on_exit purge_if_installed

# ---- build ---------------------------------------------------------------------
started=$SECONDS
"$REPO/scripts/package" --no-bootstrap --out-dir "$out_dir" >"$out_dir.log" 2>&1 || {
    cat "$out_dir.log" >&2
    fail "scripts/package failed"
}
version=$(dpkg-parsechangelog -l "$REPO/packaging/debian/changelog" -S Version)
deb=$out_dir/${pkg}_${version}_$(dpkg --print-architecture).deb
[ -f "$deb" ] || fail "scripts/package made no $deb"
check_deb=$out_dir/${check_pkg}_${version}_$(dpkg --print-architecture).deb
[ -f "$check_deb" ] || fail "scripts/package made no $check_deb"
ok "scripts/package built $(basename "$deb") ($(stat -c %s "$deb") bytes) and" \
    "$(basename "$check_deb") ($(stat -c %s "$check_deb") bytes) in $((SECONDS - started))s"

# ---- metadata --------------------------------------------------------------------
depends=$(dpkg-deb -f "$deb" Depends)
abi=$(sed -n 's/^nginx:abi=//p' /usr/share/nginx/src/debian/libnginx-mod.abisubstvars)
[ -n "$abi" ] || fail "no nginx:abi in nginx-dev's substvars"
[[ ", $depends," == *", $abi,"* ]] || fail "Depends lacks $abi: $depends"
ok "Depends names the nginx ABI it was built against: $abi"
# dss-bill-make-cert and dss-bill-add-user run openssl.
[[ ", $depends," == *", openssl,"* ]] || fail "Depends lacks openssl: $depends"

# Every library the module links comes with a dependency on its package
# (dpkg-shlibdeps): libcurl, OpenSSL, libstdc++ ...
files=$(dpkg-deb -c "$deb" | awk '{print $6}')
work=$(new_dir)
dpkg-deb -x "$deb" "$work/root"
depends_names=$(sed 's/([^)]*)//g; s/ //g' <<<"$depends" | tr ',|' '\n')
for lib in $(objdump -p "$work/root$so" | awk '$1 == "NEEDED" {print $2}'); do
    # awk reads to the end: an early exit would make ldconfig die of SIGPIPE,
    # and pipefail would end the test without a word
    path=$(ldconfig -p | awk -v lib="$lib" '$1 == lib && !found {print $NF; found = 1}')
    [ -n "$path" ] || fail "$lib, needed by the module, is not on this machine"
    # dpkg knows the file by one of its names (merged /usr: /lib or /usr/lib).
    owner=""
    for name in "$path" "$(readlink -f "$path")" "/usr$path" "${path#/usr}"; do
        owner=$(dpkg -S "$name" 2>/dev/null | head -n1 | cut -d: -f1) || true
        [ -z "$owner" ] || break
    done
    [ -n "$owner" ] || fail "no package owns $path"
    grep -qxF "$owner" <<<"$depends_names" ||
        fail "the module needs $lib ($owner) but Depends does not say so: $depends"
done
ok "Depends: $depends"

for want in ".$so" ".$available" ".$make_cert" ".$add_user" \
    ./usr/share/doc/$pkg/copyright ./usr/share/doc/$pkg/changelog.gz \
    ./usr/share/doc/$pkg/README.md.gz \
    ./usr/share/doc/$pkg/examples/dss-bill.conf \
    ./usr/share/doc/$pkg/examples/dss-bill-lb.conf \
    ./usr/share/doc/$pkg/examples/dss-bill-alerts.yml; do
    grep -qxF "$want" <<<"$files" || fail "$want is not in the package"
done
grep -qx 'load_module modules/ngx_http_dss_bill_module.so;' "$work/root$available" ||
    fail "$available: $(cat "$work/root$available")"
for script in "$make_cert" "$add_user"; do
    mode=$(dpkg-deb -c "$deb" | awk -v f=".$script" '$6 == f {print $1}')
    [ "$mode" = -rwxr-xr-x ] || fail "$script in the package: mode $mode, not 755"
done
ok "files: the module, its load_module snippet, dss-bill-make-cert, dss-bill-add-user," \
    "README, changelog, copyright, examples"

# dss-bill-check: its binary and man page, every library it links named in
# Depends, nothing of nginx
check_files=$(dpkg-deb -c "$check_deb" | awk '{print $6}')
for want in ".$checker" ./usr/share/man/man1/dss-bill-check.1.gz \
    ./usr/share/doc/$check_pkg/copyright; do
    grep -qxF "$want" <<<"$check_files" || fail "$want is not in $check_pkg"
done
check_depends=$(dpkg-deb -f "$check_deb" Depends)
dpkg-deb -x "$check_deb" "$work/check"
check_names=$(sed 's/([^)]*)//g; s/ //g' <<<"$check_depends" | tr ',|' '\n')
for lib in $(objdump -p "$work/check$checker" | awk '$1 == "NEEDED" {print $2}'); do
    path=$(ldconfig -p | awk -v lib="$lib" '$1 == lib && !found {print $NF; found = 1}')
    owner=""
    for name in "$path" "$(readlink -f "$path")" "/usr$path" "${path#/usr}"; do
        owner=$(dpkg -S "$name" 2>/dev/null | head -n1 | cut -d: -f1) || true
        [ -z "$owner" ] || break
    done
    grep -qxF "$owner" <<<"$check_names" ||
        fail "dss-bill-check needs $lib ($owner) but Depends does not say so: $check_depends"
done
if grep -q nginx <<<"$check_depends"; then
    fail "$check_pkg depends on nginx: $check_depends"
fi
ok "$check_pkg: $checker and its man page; Depends: $check_depends"

# ---- install -------------------------------------------------------------------
chmod 644 "$deb"
installed=1
"${apt[@]}" install "$deb" >"$work/install.log" 2>&1 || {
    cat "$work/install.log" >&2
    fail "apt-get install $deb failed"
}
[ -f "$so" ] || fail "$so not installed"
[ "$(readlink "$enabled")" = "$available" ] || fail "$enabled is not a link to $available"
"$NGINX_BIN" -t -q || fail "nginx -t fails with the package installed"
dump=$("$NGINX_BIN" -T 2>/dev/null) || fail "nginx -T fails"
grep -qx 'load_module modules/ngx_http_dss_bill_module.so;' <<<"$dump" ||
    fail "nginx -T does not show the module's load_module line"
ok "apt-get install: $so, $enabled enabled; the stock nginx -t passes and loads it"

# The scripts, installed: on the PATH, named as installed in their help.
for script in "$make_cert" "$add_user"; do
    name=$(basename "$script")
    [ "$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$name")" = "$script" ] ||
        fail "$name is not on the PATH as $script"
    help=$("$name" --help) || fail "$name --help failed"
    grep -q "^usage: $name " <<<"$help" || fail "$name --help: $(head -n1 <<<"$help")"
    if grep -q 'scripts/' <<<"$help"; then
        fail "$name --help names the repository's scripts/"
    fi
done
ok "$make_cert, $add_user installed, on the PATH, their help naming them"

"${apt[@]}" install "$check_deb" >"$work/install-check.log" 2>&1 || {
    cat "$work/install-check.log" >&2
    fail "apt-get install $check_deb failed"
}
[ "$(PATH=/usr/bin:/bin command -v dss-bill-check)" = "$checker" ] ||
    fail "dss-bill-check is not on the PATH as $checker"
# Captured first: its help is over 4 KiB, so "| grep -q" under pipefail
# would fail whenever grep exits before the second write (SIGPIPE).
help=$(dss-bill-check --help) || fail "dss-bill-check --help exited non-zero"
grep -qx '  D3 range-ignored' <<<"$help" || fail "dss-bill-check --help lacks the D3 check: $help"
ok "apt-get install $(basename "$check_deb"): $checker on the PATH"

# ---- serve through the installed module ---------------------------------------
# A separate nginx: the stock binary and prefix (so "modules/" in the
# package's snippet resolves as for the system nginx), its own
# configuration, logs and port; the module comes from modules-enabled/ and
# the server from the package's own example, placeholders replaced.
dir=$(new_dir)
mkdir -p "$dir/bills"
"$make_bill" "$dir/bills/300000000001.pdf" 300000000001 50000 >/dev/null
chmod 644 "$dir/bills/300000000001.pdf"
# The certificate and the user from the installed scripts (not the
# repository's): they work, and nginx accepts what they write.
"$make_cert" --bits 2048 "$dir" >/dev/null || fail "$make_cert failed"
if [ ! -s "$dir/cert.pem" ] || [ ! -s "$dir/key.pem" ]; then
    fail "$make_cert wrote no cert.pem and key.pem"
fi
# shellcheck disable=SC2046
password=$("$add_user" --random $(worker_group_args) \
    "$dir/htpasswd" dss 2>/dev/null) || fail "$add_user failed"
[ -n "$password" ] || fail "$add_user --random printed no password"

nginx_args() {
    echo "-c $1/nginx.conf -e $1/logs/error.log"
}
render_installed() {
    render "/usr/share/doc/$pkg/examples/dss-bill.conf" "$dir/dss-bill.conf" \
        "listen 443 ssl;" "listen 127.0.0.1:$1 ssl;" \
        "/etc/nginx/dss/" "$dir/" \
        "/var/log/nginx/" "$dir/logs/" \
        "/srv/dss/bills" "$dir/bills" \
        "203.0.113.0/24" "127.0.0.1"
    main_conf "$dir" "" "$dir/dss-bill.conf"
    sed -i '1i include /etc/nginx/modules-enabled/*.conf;' "$dir/nginx.conf"
}
nginx_start "$dir" render_installed
base=https://127.0.0.1:$NGINX_PORT
tls=(--cacert "$dir/cert.pem")
expect_status 200 "$base/dss/bill/healthcheck" "${tls[@]}"
curl -sS -o "$dir/got.pdf" "${tls[@]}" -u "dss:$password" \
    "$base/dss/bill/download/300000000001" || fail "download failed"
cmp -s "$dir/got.pdf" "$dir/bills/300000000001.pdf" || fail "downloaded bill differs"
ok "the installed module serves a bill and the health check (nginx on port $NGINX_PORT)," \
    "with the certificate and user of the installed scripts"

# The installed checker finds nothing wrong with the installed module
# serving the package's example configuration.
report=$(DSS_TEST_PASSWORD=$password dss-bill-check "$base" --bill 300000000001 \
    --missing 300000000404 "${tls[@]}" --user dss --password-env DSS_TEST_PASSWORD) || {
    echo "$report" >&2
    fail "dss-bill-check failed against the installed module"
}
grep -qx '24 passed, 0 failed, 0 skipped' <<<"$report" || {
    echo "$report" >&2
    fail "dss-bill-check: not every check passed"
}
if grep -qF "$password" <<<"$report"; then
    fail "dss-bill-check printed the password"
fi
ok "dss-bill-check: all 24 checks pass against the installed module"
stop_nginx "$NGINX_PID"

# ---- remove (disabled), install again (enabled again) ---------------------------
"${apt[@]}" remove "$pkg" >"$work/remove.log" 2>&1 || {
    cat "$work/remove.log" >&2
    fail "apt-get remove failed"
}
if [ -e "$so" ] || [ -e "$enabled" ]; then
    fail "remove left the module enabled"
fi
"$NGINX_BIN" -t -q || fail "nginx -t fails after apt-get remove"
"${apt[@]}" install "$deb" >"$work/install.log" 2>&1 || {
    cat "$work/install.log" >&2
    fail "apt-get install (again) failed"
}
[ "$(readlink "$enabled")" = "$available" ] || fail "install after remove did not enable it again"
ok "apt-get remove disables it (nginx -t passes), install enables it again"

# ---- purge ---------------------------------------------------------------------
"${apt[@]}" purge "$pkg" "$check_pkg" >"$work/purge.log" 2>&1 || {
    cat "$work/purge.log" >&2
    fail "apt-get purge failed"
}
installed=0
for gone in "$so" "$available" "$enabled" "$enabled.removed" "$make_cert" "$add_user" \
    "$checker"; do
    if [ -e "$gone" ] || [ -L "$gone" ]; then
        fail "$gone is still there after purge"
    fi
done
"$NGINX_BIN" -t -q || fail "the stock nginx -t fails after the purge"
# shellcheck disable=SC2046  # nginx_args: words, no spaces in the paths
if out=$("$NGINX_BIN" $(nginx_args "$dir") -t 2>&1); then
    fail "a configuration using dss_bill still passes nginx -t after the purge"
fi
grep -q 'unknown directive "dss_bill' <<<"$out" || fail "unexpected: $out"
ok "apt-get purge: module, snippet, link and scripts gone; the stock nginx -t passes, dss_bill is unknown again"
echo "passed"

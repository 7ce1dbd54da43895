#!/usr/bin/env bash
# The go-live checker against scripts/demo, as the README's "Before
# go-live" shows it: every check passes (the demo's 30-day certificate may
# be a warning, never a failure), and the password is never printed.
#
#   test_demo_check.sh DSS_BILL_CHECK BUILD_DIR
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"

[ $# -eq 2 ] || {
    echo "usage: $0 DSS_BILL_CHECK BUILD_DIR" >&2
    exit 2
}
checker=$(absolute "$1")
build_dir=$(absolute "$2")

dir=$(new_dir)
port=$(free_port)
password=demo-$RANDOM-$RANDOM-Wombat
demo_pid=""
# The demo stops its nginx on SIGTERM (a background job ignores SIGINT);
# should it not, its nginx is stopped through the pid file.
stop_demo() {
    [ -n "$demo_pid" ] || return 0
    kill -TERM "$demo_pid" 2>/dev/null || true
    wait_until 20 eval "! kill -0 $demo_pid 2>/dev/null" || kill -KILL "$demo_pid" 2>/dev/null
    wait "$demo_pid" 2>/dev/null || true
    if [ -s "$dir/nginx.pid" ] && kill -0 "$(cat "$dir/nginx.pid")" 2>/dev/null; then
        echo "the demo left its nginx running: stopping it" >&2
        kill -TERM "$(cat "$dir/nginx.pid")" 2>/dev/null || true
    fi
    demo_pid=""
}
on_exit stop_demo

# The build folder is the one ctest runs from: the demo's build is a no-op.
DSS_DEMO_DIR=$dir DSS_DEMO_PORT=$port DSS_DEMO_PASSWORD=$password BUILD_DIR=$build_dir \
    setsid "$REPO/scripts/demo" >"$dir/demo.out" 2>&1 </dev/null &
demo_pid=$!
wait_until 300 grep -q 'Press Ctrl-C' "$dir/demo.out" || {
    cat "$dir/demo.out" >&2
    fail "the demo did not start"
}
ok "scripts/demo serves on https://127.0.0.1:$port"

report=$(DSS_DEMO_PASSWORD_FOR_CHECK=$password "$checker" "https://127.0.0.1:$port" \
    --bill 100000000001 --bill 100000000002 --bill 100000000003 --missing 100000000404 \
    --insecure --user dss --password-env DSS_DEMO_PASSWORD_FOR_CHECK) || {
    echo "$report" >&2
    fail "dss-bill-check failed against the demo"
}
echo "$report"
# The demo's certificate is valid for 30 days: right at the warning's edge.
grep -qxE '24 passed, 0 failed, 0 skipped( \(1 warning\))?' <<<"$report" ||
    fail "not every check passed"
other_warnings=$(grep '^WARN ' <<<"$report" | grep -v '^WARN T1 certificate: ' || true)
if [ -n "$other_warnings" ]; then
    fail "a warning other than the demo's 30-day certificate"
fi
if grep -qF "$password" <<<"$report"; then
    fail "the password was printed"
fi
ok "dss-bill-check passes against scripts/demo (--insecure --user dss)"

stop_demo
grep -q 'demo: nginx stopped' "$dir/demo.out" || fail "the demo did not stop its nginx"
echo "passed"

#!/usr/bin/env bash
# conf/dss-bill.conf, loaded as shipped with only its placeholders replaced
# (port, paths, allow-list), with a certificate from scripts/make-cert and a
# user from scripts/add-user: proves T1 (HTTPS, self-signed certificate
# verified), T2 (Basic auth on downloads), T3 (allow-list on both routes),
# H1/H2 (health outside Basic auth), the client limits and the access-log
# format.
#
#   test_conf_instance.sh MODULE_SO MAKE_BILL
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"

[ $# -eq 2 ] || {
    echo "usage: $0 MODULE_SO MAKE_BILL" >&2
    exit 2
}
module=$(absolute "$1")
make_bill=$(absolute "$2")

dir=$(new_dir)
mkdir -p "$dir/bills"
"$make_bill" "$dir/bills/100000000001.pdf" 100000000001 >/dev/null
"$make_bill" "$dir/bills/100000000002.pdf" 100000000002 200000 >/dev/null
chmod 644 "$dir"/bills/*.pdf

"$REPO/scripts/make-cert" --bits 2048 "$dir" >/dev/null
# shellcheck disable=SC2046
password=$("$REPO/scripts/add-user" --random $(worker_group_args) \
    "$dir/htpasswd" dss 2>/dev/null)
[ -n "$password" ] || fail "add-user --random printed no password"

# allow: the address DSS comes from in this test, or (second instance) the
# example's own 203.0.113.0/24, which excludes the loopback client.
render_instance() {
    local port=$1 allow=$2
    render "$REPO/conf/dss-bill.conf" "$dir/dss-bill.conf" \
        "listen 443 ssl;" "listen 127.0.0.1:$port ssl;" \
        "/etc/nginx/dss/" "$dir/" \
        "/var/log/nginx/" "$dir/logs/" \
        "/srv/dss/bills" "$dir/bills" \
        "203.0.113.0/24" "$allow" \
        "192.0.2.10" "$allow"
    main_conf "$dir" "$module" "$dir/dss-bill.conf"
}
render_allowed() { render_instance "$1" 127.0.0.1; }
render_denied() { render_instance "$1" 203.0.113.0/24; }

nginx_start "$dir" render_allowed
ok "nginx -t accepts conf/dss-bill.conf; nginx started on port $NGINX_PORT"
base=https://127.0.0.1:$NGINX_PORT
tls=(--cacert "$dir/cert.pem")

# T1: the certificate from make-cert verifies for 127.0.0.1 (no -k).
out=$(curl -sS -o /dev/null -w '%{http_code} %{ssl_verify_result}' \
    "${tls[@]}" "$base/dss/bill/healthcheck") || fail "TLS handshake failed"
[ "$out" = "200 0" ] || fail "health over verified TLS: $out"
ok "T1: HTTPS with the make-cert certificate verified by the client"
expect_status 400 "http://127.0.0.1:$NGINX_PORT/dss/bill/download/100000000001" \
    -u "dss:$password"
ok "T1: plain HTTP on the port gets nginx's 400, never a bill"

# H1/H2: health without credentials, 200 with Content-Length 0.
headers=$(curl -sS -D - -o "$dir/health.body" "${tls[@]}" "$base/dss/bill/healthcheck")
grep -qi '^content-length: 0' <<<"$headers" || fail "health: no Content-Length: 0"
[ ! -s "$dir/health.body" ] || fail "health: has a body"
ok "H1, H2: health 200, Content-Length 0, without credentials"

# T2: downloads need the add-user password.
url=$base/dss/bill/download/100000000002
expect_status 401 "$url" "${tls[@]}"
expect_status 401 "$url" "${tls[@]}" -u "dss:wrong$password"
ok "T2: download without or with a wrong password: 401"
headers=$(curl -sS -D - -o "$dir/got.pdf" "${tls[@]}" -u "dss:$password" \
    -H 'Accept: application/pdf' "$url")
grep -q '^HTTP/1.1 200' <<<"$headers" || fail "download: $headers"
grep -qi '^content-type: application/pdf' <<<"$headers" || fail "download: type"
grep -qi "^content-length: 200000" <<<"$headers" || fail "download: length"
cmp -s "$dir/got.pdf" "$dir/bills/100000000002.pdf" || fail "download: body differs"
ok "T2, D3: download with the add-user password: 200, the bill's exact bytes"

expect_status 404 "$base/dss/bill/download/999999999999" "${tls[@]}" -u "dss:$password"
expect_status 404 "$base/dss/bill/other" "${tls[@]}" -u "dss:$password"
expect_status 404 "$base/" "${tls[@]}"
ok "D5: unknown bill, other routes, other paths: 404"

# Client limits: DSS sends no body.
expect_status 413 "$base/dss/bill/download/100000000001" "${tls[@]}" \
    -u "dss:$password" -H 'Content-Type: application/octet-stream' \
    --data-binary "@$dir/bills/100000000002.pdf" -X GET
ok "client_max_body_size: a request with a body is refused (413)"

# The access-log format: bill id, status, time taken.
log=$dir/logs/dss-bill.access.log
wait_until 5 grep -q ' 200 200000 bill=100000000002 time=[0-9.]* outcome=ok source=root size=200000 archive_status=- archive_time=-$' "$log" ||
    fail "access log has no line with bill id, status and time: $(cat "$log")"
ok "access log: $(grep -m1 'bill=100000000002' "$log")"
grep -q ' 404 [0-9]* bill=999999999999 time=[0-9.]* outcome=not_found source=root size=- archive_status=- archive_time=-$' "$log" ||
    fail "access log has no not_found line: $(cat "$log")"
ok "access log: the outcome of a 404"

# The metrics location: shared counters of everything above, in
# Prometheus' text format.
metrics=$(curl -sS -D - "${tls[@]}" "$base/dss/metrics") || fail "metrics"
grep -qi '^content-type: text/plain; version=0.0.4; charset=utf-8' <<<"$metrics" ||
    fail "metrics: content type: $metrics"
for line in 'dss_bill_requests_total{route="download",status="200",outcome="ok"} 1' \
    'dss_bill_requests_total{route="download",status="404",outcome="not_found"} 1' \
    'dss_bill_requests_total{route="other",status="404",outcome="no_route"} 1' \
    'dss_bill_response_bytes_total{source="root"} 200000'; do
    grep -qxF "$line" <<<"${metrics//$'\r'/}" || fail "metrics: no \"$line\": $metrics"
done
# 401 and 413 are nginx's own answers, before the module: not counted
! grep -q 'status="40[13]"' <<<"$metrics" || fail "metrics count nginx's 401/413"
ok "metrics: the requests above counted by outcome, the bill bytes by source"

stop_nginx "$NGINX_PID"

# T3: the example's allow-list as shipped lets nobody from loopback in.
nginx_start "$dir" render_denied
base=https://127.0.0.1:$NGINX_PORT
expect_status 403 "$base/dss/bill/healthcheck" "${tls[@]}"
expect_status 403 "$base/dss/bill/download/100000000001" "${tls[@]}" -u "dss:$password"
expect_status 403 "$base/dss/metrics" "${tls[@]}"
ok "T3: an address outside the allow-list gets 403 on both routes and metrics"

echo "passed"

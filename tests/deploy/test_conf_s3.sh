#!/usr/bin/env bash
# conf/dss-bill-s3.conf, loaded as shipped with only its EDIT lines
# replaced, in front of @20minutes/s3rver (an S3-compatible server that
# verifies SigV4; tests/s3rver, installed by scripts/bootstrap): a bill from
# the bucket with its exact bytes, a missing key as 404, the signed health
# probe, and, after a reload with a wrong secret, 500 and 503 with S3's
# reason in the log, never the secret (nor in nginx -T).
#
#   test_conf_s3.sh MODULE_SO MAKE_BILL
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"

[ $# -eq 2 ] || {
    echo "usage: $0 MODULE_SO MAKE_BILL" >&2
    exit 2
}
module=$(absolute "$1")
make_bill=$(absolute "$2")
s3rver=$REPO/tests/s3rver
[ -f "$s3rver/node_modules/@20minutes/s3rver/package.json" ] ||
    fail "the S3 test server is not installed: run scripts/bootstrap"

key=AKIADEPLOYTEST
secret='deployS3cret/Zq+8xW'
wrong='deployWr0ngS3cret/+Q'

# ---- the bucket: s3rver on loopback -----------------------------------------
store=$(new_dir)
"$make_bill" "$store/100000000001.pdf" 100000000001 300000 >/dev/null
s3_pid=
stop_s3rver() {
    [ -n "$s3_pid" ] || return 0
    kill "$s3_pid" 2>/dev/null
    wait "$s3_pid" 2>/dev/null
    s3_pid=
}
on_exit stop_s3rver
for try in 1 2 3; do
    s3_port=$(free_port)
    node "$s3rver/s3rver.js" "$s3_port" "$store/data" "$key" "$secret" \
        dss-bills "$store/ready" \
        "bills/100000000001.pdf=$store/100000000001.pdf" \
        >>"$store/s3rver.log" 2>&1 &
    s3_pid=$!
    wait_until 30 sh -c "[ -e '$store/ready' ] || ! kill -0 $s3_pid" || true
    [ -e "$store/ready" ] && break
    stop_s3rver
    echo "s3rver did not start on port $s3_port, try $try" >&2
done
[ -e "$store/ready" ] || fail "s3rver did not start: $(cat "$store/s3rver.log")"
ok "s3rver (SigV4 checked) on port $s3_port, bucket dss-bills"

# ---- the instance, from conf/dss-bill-s3.conf -----------------------------------
dir=$(new_dir)
"$REPO/scripts/make-cert" --bits 2048 "$dir" >/dev/null
# shellcheck disable=SC2046
password=$("$REPO/scripts/add-user" --random $(worker_group_args) \
    "$dir/htpasswd" dss 2>/dev/null)
write_credentials() {
    install -m 600 /dev/null "$dir/aws-credentials"
    printf '[default]\naws_access_key_id = AKIANOTTHISONE\naws_secret_access_key = x\n\n[dss-bill]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
        "$key" "$1" >"$dir/aws-credentials"
}
write_credentials "$secret"
render_instance() {
    render "$REPO/conf/dss-bill-s3.conf" "$dir/dss-bill.conf" \
        "listen 443 ssl;" "listen 127.0.0.1:$1 ssl;" \
        "/etc/nginx/dss/" "$dir/" \
        "/var/log/nginx/" "$dir/logs/" \
        "https://dss-bills.s3.eu-west-1.amazonaws.com/bills/" \
        "http://127.0.0.1:$s3_port/dss-bills/bills/" \
        "203.0.113.0/24" "127.0.0.1"
    main_conf "$dir" "$module" "$dir/dss-bill.conf"
}
nginx_start "$dir" render_instance
pid=$NGINX_PID
ok "nginx -t accepts conf/dss-bill-s3.conf; nginx started on port $NGINX_PORT"
base=https://127.0.0.1:$NGINX_PORT
tls=(--cacert "$dir/cert.pem")
auth=(-u "dss:$password")
health() {
    [ "$(http_status "$base/dss/bill/healthcheck" "${tls[@]}")" = "$1" ]
}

headers=$(curl -sS -D - -o "$dir/got.pdf" "${tls[@]}" "${auth[@]}" \
    "$base/dss/bill/download/100000000001")
grep -q '^HTTP/1.1 200' <<<"$headers" || fail "download: $headers"
grep -qi '^content-length: 300000' <<<"$headers" || fail "download: length"
cmp -s "$dir/got.pdf" "$store/100000000001.pdf" || fail "download: body"
ok "D3: a bill from the bucket, signed: 200, exact bytes"

expect_status 404 "$base/dss/bill/download/100000000009" "${tls[@]}" "${auth[@]}"
grep -q 'NoSuchKey' "$dir/logs/dss-bill.error.log" || fail "no NoSuchKey logged"
ok "D5: a missing key (NoSuchKey) is DSS's 404"

wait_until 20 health 200 || fail "health not 200"
ok "H2: the signed probe of the bucket passes"

# A wrong secret, as after a botched rotation: a reload picks it up.
write_credentials "$wrong"
kill -HUP "$pid"
wait_until 20 health 503 || fail "health did not turn 503 with a wrong secret"
expect_status 500 "$base/dss/bill/download/100000000001" "${tls[@]}" "${auth[@]}"
grep -q '403 SignatureDoesNotMatch' "$dir/logs/dss-bill.error.log" ||
    fail "no SignatureDoesNotMatch in the error log"
ok "D6, H3: wrong secret after a reload: download 500, health 503, S3's code logged"

# shellcheck disable=SC2046
"$NGINX_BIN" $(nginx_args "$dir") -T >"$dir/dump.txt" 2>&1 || fail "nginx -T"
grep -q 'dss_bill_upstream_s3_credentials' "$dir/dump.txt" || fail "nginx -T: no conf"
for s in "$secret" "$wrong"; do
    if grep -rqF -- "$s" "$dir/dump.txt" "$dir/logs"; then
        fail "\"$s\" in nginx -T or a log"
    fi
done
ok "D9: no secret in nginx -T or any log"

chmod 644 "$dir/aws-credentials"
# shellcheck disable=SC2046
out=$("$NGINX_BIN" $(nginx_args "$dir") -t 2>&1) && fail "nginx -t accepted a 644 file"
grep -q 'may be read or changed by others than its owner (mode 0644)' <<<"$out" ||
    fail "nginx -t: $out"
ok "nginx -t refuses a credentials file others may read"

echo "passed"

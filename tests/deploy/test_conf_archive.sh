#!/usr/bin/env bash
# conf/dss-bill-archive.conf, loaded as shipped with only its placeholders
# replaced, in front of a stock nginx standing in for the archive (HTTPS with
# its own certificate, an API key required): proves the root-then-archive
# order, the archive's certificate verified with the configured CA, the API
# key sent, the archive's 404 as DSS's 404, and the health check following
# the archive (H3), and the archive cache: a bill fetched once is served
# from the cache while the archive is down (issue 9).
#
#   test_conf_archive.sh MODULE_SO MAKE_BILL
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"

[ $# -eq 2 ] || {
    echo "usage: $0 MODULE_SO MAKE_BILL" >&2
    exit 2
}
module=$(absolute "$1")
make_bill=$(absolute "$2")

# ---- the archive: stock nginx, HTTPS, API key, /api/bills/<id>/pdf ----------
archive=$(new_dir)
mkdir -p "$archive/bills"
"$make_bill" "$archive/bills/100000000001.pdf" 100000000001 300000 >/dev/null
"$make_bill" "$archive/bills/100000000003.pdf" 100000000003 >/dev/null
chmod 644 "$archive"/bills/*.pdf
"$REPO/scripts/make-cert" --only --ip 127.0.0.1 --bits 2048 "$archive" >/dev/null
render_archive() {
    cat >"$archive/archive.conf" <<CONF
server {
    listen 127.0.0.1:$1 ssl;
    ssl_certificate $archive/cert.pem;
    ssl_certificate_key $archive/key.pem;
    location = /api/health { return 204; }
    location /api/bills/ {
        if (\$http_x_api_key != "change-me") { return 403; }
        rewrite ^/api/bills/([^/]+)/pdf\$ /\$1.pdf break;
        root $archive/bills;
    }
}
CONF
    main_conf "$archive" "" "$archive/archive.conf"
}
nginx_start "$archive" render_archive
archive_pid=$NGINX_PID
archive_port=$NGINX_PORT
ok "archive (stock nginx, HTTPS) on port $archive_port"

# ---- the instance, from conf/dss-bill-archive.conf ------------------------------
dir=$(new_dir)
mkdir -p "$dir/bills"
"$make_bill" "$dir/bills/100000000002.pdf" 100000000002 >/dev/null
chmod 644 "$dir"/bills/*.pdf
"$REPO/scripts/make-cert" --bits 2048 "$dir" >/dev/null
# shellcheck disable=SC2046
password=$("$REPO/scripts/add-user" --random $(worker_group_args) \
    "$dir/htpasswd" dss 2>/dev/null)
render_instance() {
    render "$REPO/conf/dss-bill-archive.conf" "$dir/dss-bill.conf" \
        "listen 443 ssl;" "listen 127.0.0.1:$1 ssl;" \
        "/etc/nginx/dss/archive-ca.pem" "$archive/cert.pem" \
        "/etc/nginx/dss/" "$dir/" \
        "/var/log/nginx/" "$dir/logs/" \
        "/srv/dss/bills" "$dir/bills" \
        "/var/lib/nginx/dss-bill-cache" "$dir/cache" \
        "https://archive.internal" "https://127.0.0.1:$archive_port" \
        "203.0.113.0/24" "127.0.0.1"
    main_conf "$dir" "$module" "$dir/dss-bill.conf"
}
nginx_start "$dir" render_instance
ok "nginx -t accepts conf/dss-bill-archive.conf; nginx started on port $NGINX_PORT"
base=https://127.0.0.1:$NGINX_PORT
tls=(--cacert "$dir/cert.pem")
auth=(-u "dss:$password")

expect_status 200 "$base/dss/bill/healthcheck" "${tls[@]}"
ok "H2: health 200 while the archive answers its probe"

# From the archive (not in the local folder): exact bytes and length.
headers=$(curl -sS -D - -o "$dir/got.pdf" "${tls[@]}" "${auth[@]}" \
    "$base/dss/bill/download/100000000001")
grep -q '^HTTP/1.1 200' <<<"$headers" || fail "archive download: $headers"
grep -qi '^content-length: 300000' <<<"$headers" || fail "archive download: length"
cmp -s "$dir/got.pdf" "$archive/bills/100000000001.pdf" || fail "archive download: body"
ok "D3: a bill from the archive (TLS verified, API key sent): 200, exact bytes"

# From the local folder first.
curl -sS -o "$dir/local.pdf" "${tls[@]}" "${auth[@]}" \
    "$base/dss/bill/download/100000000002" || fail "local download"
cmp -s "$dir/local.pdf" "$dir/bills/100000000002.pdf" || fail "local download: body"
ok "a bill in the local folder is served from there"

expect_status 404 "$base/dss/bill/download/100000000009" "${tls[@]}" "${auth[@]}"
ok "D5: in neither place: the archive's 404 is DSS's 404"

# The archive goes away: cached bills are still served, the others are 500,
# the health check 503 (dss_bill_health_archive required).
stop_nginx "$archive_pid"
curl -sS -o "$dir/cached.pdf" "${tls[@]}" "${auth[@]}" \
    "$base/dss/bill/download/100000000001" || fail "cached download"
cmp -s "$dir/cached.pdf" "$archive/bills/100000000001.pdf" ||
    fail "cached download: body"
ok "a bill fetched before is served from the cache with the archive down"
expect_status 500 "$base/dss/bill/download/100000000003" "${tls[@]}" "${auth[@]}"
wait_until 20 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' \
    --cacert '$dir/cert.pem' '$base/dss/bill/healthcheck')\" = 503 ]" ||
    fail "health did not turn 503 with the archive down"
grep -q 'cannot connect to the archive' "$dir/logs/dss-bill.error.log" ||
    fail "no reason in the error log"
ok "D6, H3: archive down: download 500 (reason logged), health 503"

echo "passed"

#!/usr/bin/env bash
# A real Prometheus (Debian's prometheus package) scrapes the metrics
# location of conf/dss-bill.conf over HTTPS, with conf/dss-bill-alerts.yml
# loaded: its HTTP API shows the counters of the requests this test sent,
# the alert rules load without error, and a document root that goes
# unreadable turns dss_bill_source_up to 0 and DssBillHealthDown pending.
#
#   test_prometheus.sh MODULE_SO MAKE_BILL
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"

[ $# -eq 2 ] || {
    echo "usage: $0 MODULE_SO MAKE_BILL" >&2
    exit 2
}
module=$(absolute "$1")
make_bill=$(absolute "$2")
PROMETHEUS=${PROMETHEUS:-prometheus}
command -v "$PROMETHEUS" >/dev/null ||
    fail "no prometheus: scripts/bootstrap installs Debian's prometheus package"

dir=$(new_dir)
mkdir -p "$dir/bills" "$dir/prometheus"
"$make_bill" "$dir/bills/100000000001.pdf" 100000000001 30000 >/dev/null
chmod 644 "$dir"/bills/*.pdf
"$REPO/scripts/make-cert" --bits 2048 "$dir" >/dev/null
# shellcheck disable=SC2046
password=$("$REPO/scripts/add-user" --random $(worker_group_args) \
    "$dir/htpasswd" dss 2>/dev/null)

render_instance() {
    render "$REPO/conf/dss-bill.conf" "$dir/dss-bill.conf" \
        "listen 443 ssl;" "listen 127.0.0.1:$1 ssl;" \
        "/etc/nginx/dss/" "$dir/" \
        "/var/log/nginx/" "$dir/logs/" \
        "/srv/dss/bills" "$dir/bills" \
        "203.0.113.0/24" "127.0.0.1" \
        "192.0.2.10" "127.0.0.1"
    # the health probe every second, so that the test waits less
    sed -i 's|^\(    dss_bill_root .*\)$|\1\n    dss_bill_health_interval 1s;|' \
        "$dir/dss-bill.conf"
    main_conf "$dir" "$module" "$dir/dss-bill.conf"
}
nginx_start "$dir" render_instance
base=https://127.0.0.1:$NGINX_PORT
tls=(--cacert "$dir/cert.pem")

# the known traffic: 3 bills, 2 unknown ids, 1 health check
for _ in 1 2 3; do
    expect_status 200 "$base/dss/bill/download/100000000001" "${tls[@]}" -u "dss:$password"
done
for id in 100000000008 100000000009; do
    expect_status 404 "$base/dss/bill/download/$id" "${tls[@]}" -u "dss:$password"
done
expect_status 200 "$base/dss/bill/healthcheck" "${tls[@]}"
ok "sent 3 downloads, 2 unknown ids, 1 health check"

# ---- Prometheus on loopback, its own storage, a 1 s scrape -------------------
prom_port=$(free_port)
cat >"$dir/prometheus/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $REPO/conf/dss-bill-alerts.yml
scrape_configs:
  - job_name: dss-bill
    scheme: https
    metrics_path: /dss/metrics
    tls_config:
      ca_file: $dir/cert.pem
    static_configs:
      - targets: ['127.0.0.1:$NGINX_PORT']
EOF
setsid "$PROMETHEUS" --config.file="$dir/prometheus/prometheus.yml" \
    --storage.tsdb.path="$dir/prometheus/data" \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn \
    >"$dir/logs/prometheus.log" 2>&1 </dev/null &
_dss_pids+=("$!")
prom=http://127.0.0.1:$prom_port

ready() { [ "$(http_status "$prom/-/ready")" = 200 ]; }
wait_until 60 ready || {
    cat "$dir/logs/prometheus.log" >&2
    fail "prometheus did not become ready"
}
version=$("$PROMETHEUS" --version 2>&1) || true
ok "prometheus $(sed -n '1s/^[^ ]* [^ ]* \([^ ]*\).*/\1/p' <<<"$version") ready on port $prom_port"

# value QUERY: the value of the query's only series ("" when none).
value() {
    # Whole answer first: no early-exiting reader in a pipe (pipefail).
    local answer
    answer=$(curl -s --max-time 5 "$prom/api/v1/query" --data-urlencode "query=$1") || return 0
    grep -o '"value":\[[^]]*\]' <<<"$answer" | sed -n '1s/.*,"\(.*\)"\]$/\1/p' || true
}
# expect_value QUERY WANT: polls (the first scrapes take a moment).
expect_value() {
    local query=$1 want=$2
    wait_until 30 eval '[ "$(value "$query")" = "$want" ]' ||
        fail "prometheus: $query = \"$(value "$query")\", expected $want"
    ok "prometheus: $query = $want"
}

expect_value 'up{job="dss-bill"}' 1
expect_value 'dss_bill_requests_total{route="download",status="200",outcome="ok"}' 3
expect_value 'dss_bill_requests_total{route="download",status="404",outcome="not_found"}' 2
expect_value 'dss_bill_requests_total{route="health",status="200",outcome="healthy"}' 1
expect_value 'dss_bill_response_bytes_total{source="root"}' 90000
expect_value 'sum(dss_bill_requests_total{status="500"})' 0
expect_value 'dss_bill_source_up{location="/dss/bill/",source="root"}' 1
expect_value 'count(dss_bill_build_info{version!="",nginx!=""})' 1

# the alert rules loaded and evaluate without error
rules=$(curl -s --max-time 5 "$prom/api/v1/rules")
for alert in DssBillHealthDown DssBillServerErrors DssBillArchiveSlow DssBillBadBills; do
    grep -q "\"name\":\"$alert\"" <<<"$rules" || fail "rule $alert not loaded: $rules"
done
! grep -q '"health":"err' <<<"$rules" || fail "a rule fails to evaluate: $rules"
ok "prometheus: the four alert rules loaded"

# H3: the bills become unreadable; the probe says so, the alert is pending
chmod 000 "$dir/bills"
on_exit chmod 755 "$dir/bills"
expect_value 'dss_bill_source_up{location="/dss/bill/",source="root"}' 0
pending() {
    # Whole answer first, as in value().
    local alerts
    alerts=$(curl -s --max-time 5 "$prom/api/v1/alerts") || return 1
    grep -q '"alertname":"DssBillHealthDown".*"state":"pending"' <<<"$alerts"
}
wait_until 30 pending || fail "DssBillHealthDown not pending: $(curl -s "$prom/api/v1/alerts")"
ok "H3: an unreadable root: source_up 0, DssBillHealthDown pending"

echo "passed"

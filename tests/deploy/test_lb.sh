#!/usr/bin/env bash
# The load-balancer tier of conf/dss-bill-lb.conf (T6): a stock nginx (no
# module) in front of two module instances running conf/dss-bill.conf, all
# three loaded as shipped with only their placeholders replaced. A stream
# of downloads goes through the load balancer while one instance
#   kill:   is killed (SIGKILL to master and workers: a crash);
#   reload: is reloaded with "nginx -s reload", three times.
# Every download must succeed: status 200 and the bill's exact size, curl
# reporting no transfer error. T6's "zero failed downloads".
#
#   test_lb.sh MODULE_SO MAKE_BILL kill|reload [DOWNLOADS]
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"

[ $# -ge 3 ] || {
    echo "usage: $0 MODULE_SO MAKE_BILL kill|reload [DOWNLOADS]" >&2
    exit 2
}
module=$(absolute "$1")
make_bill=$(absolute "$2")
mode=$3
downloads=${4:-3000}
case $mode in
kill | reload) ;;
*) fail "mode is kill or reload, not $mode" ;;
esac
[ "$downloads" -ge 2000 ] || fail "at least 2000 downloads, not $downloads"

# ---- shared bill storage: 20 bills --------------------------------------------
# reload: 10 kB to 200 kB, a reload lets every response under way finish.
# kill: 1.5 kB to 15 kB, each response (headers and bill) leaves the instance
# in one TLS record, one write: the crash hits a download either before its
# response started, which the load balancer retries on the other instance,
# or after it was sent. A crash in the middle of a larger response cuts it
# short after the load balancer has passed the 200 on; no proxy can retry
# that (measured with 10-200 kB bills: 1-2 of 3000 downloads cut in about a
# third of the runs; see README, "The load-balancer tier").
step=10000 first=10000
[ "$mode" = reload ] || step=710 first=1500
store=$(new_dir)
mkdir -p "$store/bills"
declare -A size_of=()
ids=()
for i in $(seq 1 20); do
    id=$(printf '2000000000%02d' "$i")
    size=$((first + (i - 1) * step))
    "$make_bill" "$store/bills/$id.pdf" "$id" "$size" >/dev/null
    ids+=("$id")
    size_of[$id]=$size
done
chmod 644 "$store"/bills/*.pdf

# ---- two instances, each from conf/dss-bill.conf ------------------------------
lb=$(new_dir)
# shellcheck disable=SC2046
password=$("$REPO/scripts/add-user" --random $(worker_group_args) \
    "$lb/htpasswd" dss 2>/dev/null)

render_instance() {
    local dir=$1 port=$2
    render "$REPO/conf/dss-bill.conf" "$dir/dss-bill.conf" \
        "listen 443 ssl;" "listen 127.0.0.1:$port ssl;" \
        "/etc/nginx/dss/" "$dir/" \
        "/var/log/nginx/" "$dir/logs/" \
        "/srv/dss/bills" "$store/bills" \
        "203.0.113.0/24" "127.0.0.1"
    main_conf "$dir" "$module" "$dir/dss-bill.conf"
}

declare -A inst_dir=() inst_pid=() inst_port=()
for name in a b; do
    dir=$(new_dir)
    inst_dir[$name]=$dir
    # One shared name in every instance certificate: the load balancer
    # checks it (proxy_ssl_name dss-bill-instance).
    "$REPO/scripts/make-cert" --only --dns dss-bill-instance --ip 127.0.0.1 \
        --bits 2048 "$dir" >/dev/null
    cp -p "$lb/htpasswd" "$dir/htpasswd"
    eval "render_$name() { render_instance '$dir' \"\$1\"; }"
    nginx_start "$dir" "render_$name"
    inst_pid[$name]=$NGINX_PID
    inst_port[$name]=$NGINX_PORT
done
cat "${inst_dir[a]}/cert.pem" "${inst_dir[b]}/cert.pem" >"$lb/instances.pem"
ok "instances a (port ${inst_port[a]}) and b (port ${inst_port[b]}) run conf/dss-bill.conf"

# ---- the load balancer, from conf/dss-bill-lb.conf, without the module -------
"$REPO/scripts/make-cert" --bits 2048 "$lb" >/dev/null
render_lb() {
    render "$REPO/conf/dss-bill-lb.conf" "$lb/dss-bill-lb.conf" \
        "listen 443 ssl;" "listen 127.0.0.1:$1 ssl;" \
        "server 10.0.0.11:443" "server 127.0.0.1:${inst_port[a]}" \
        "server 10.0.0.12:443" "server 127.0.0.1:${inst_port[b]}" \
        "/etc/nginx/dss/" "$lb/" \
        "/var/log/nginx/" "$lb/logs/" \
        "203.0.113.0/24" "127.0.0.1"
    main_conf "$lb" "" "$lb/dss-bill-lb.conf"
}
nginx_start "$lb" render_lb
base=https://127.0.0.1:$NGINX_PORT
ok "nginx -t accepts conf/dss-bill-lb.conf; stock nginx load balancer on port $NGINX_PORT"

tls=(--cacert "$lb/cert.pem")
expect_status 200 "$base/dss/bill/healthcheck" "${tls[@]}"
expect_status 401 "$base/dss/bill/download/${ids[0]}" "${tls[@]}"
expect_status 200 "$base/dss/bill/download/${ids[0]}" "${tls[@]}" -u "dss:$password"
expect_status 404 "$base/dss/bill/download/299999999999" "${tls[@]}" -u "dss:$password"
ok "through the load balancer: health 200, download 401 without and 200 with credentials, 404"

# ---- the stream ---------------------------------------------------------------
# One curl, 8 transfers at a time over kept-alive connections; one write-out
# line per download.
{
    echo "user = \"dss:$password\""
    echo "cacert = \"$lb/cert.pem\""
    for ((i = 0; i < downloads; i++)); do
        echo "url = \"$base/dss/bill/download/${ids[i % ${#ids[@]}]}\""
        echo "output = /dev/null"
    done
} >"$lb/stream.curl"
results=$lb/stream.results

start_stream() {
    curl -s --parallel --parallel-max 8 --max-time 60 -K "$lb/stream.curl" \
        -w '%{http_code} %{size_download} %{exitcode} %{url_effective}\n' \
        >"$results" 2>"$lb/stream.err" &
    stream_pid=$!
    on_exit "kill $stream_pid 2>/dev/null"
}

done_count() {
    wc -l <"$results"
}

# at_least N: true once N downloads have finished; fails if the stream ended
# before (then the event would not be "during" the stream).
at_least() {
    local n=$1
    if [ "$(done_count)" -ge "$n" ]; then
        return 0
    fi
    kill -0 "$stream_pid" 2>/dev/null || fail "the stream ended before $n downloads"
    return 1
}

workers_of() {
    pgrep -P "$1" | sort | tr '\n' ' '
}

# no_worker_left PIDS...: none of PIDS is alive any more.
no_worker_left() {
    local pid
    for pid in "$@"; do
        ! kill -0 "$pid" 2>/dev/null || return 1
    done
}

started=$SECONDS
start_stream
events=()
case $mode in
kill)
    wait_until 60 at_least $((downloads / 4)) || fail "stream too slow"
    at=$(done_count)
    kill -KILL -- "-${inst_pid[a]}"
    # Reaped here, quietly (bash would report "Killed" later).
    wait "${inst_pid[a]}" 2>/dev/null || true
    events+=("instance a killed (SIGKILL, master and workers) after $at downloads")
    ;;
reload)
    for part in 1 2 3; do
        wait_until 60 at_least $((downloads * part / 5)) || fail "stream too slow"
        at=$(done_count)
        old=$(workers_of "${inst_pid[a]}")
        # shellcheck disable=SC2046
        "$NGINX_BIN" $(nginx_args "${inst_dir[a]}") -s reload ||
            fail "nginx -s reload failed"
        # The reload is complete when every old worker has exited.
        # shellcheck disable=SC2086
        wait_until 30 no_worker_left $old ||
            fail "old workers of instance a still running 30 s after reload"
        events+=("instance a reloaded after $at downloads (workers $old-> $(workers_of "${inst_pid[a]}"))")
    done
    ;;
esac
stream_status=0
wait "$stream_pid" || stream_status=$?
elapsed=$((SECONDS - started))
for event in "${events[@]}"; do
    ok "$event"
done

# ---- every download succeeded, complete -------------------------------------
total=$(done_count)
[ "$total" -eq "$downloads" ] || fail "$total results for $downloads downloads"
failed=0
while read -r code size exitcode url; do
    id=${url##*/}
    if [ "$code" != 200 ] || [ "$exitcode" != 0 ] ||
        [ "$size" != "${size_of[$id]:-x}" ]; then
        failed=$((failed + 1))
        [ "$failed" -gt 5 ] || echo "failed download: $code $size $exitcode $url" >&2
    fi
done <"$results"
if [ "$failed" -ne 0 ] || [ "$stream_status" -ne 0 ]; then
    cat "$lb/stream.err" >&2
    for dir in "$lb" "${inst_dir[@]}"; do
        grep -h -v '\[notice\]' "$dir"/logs/*error.log >&2 || true
    done
    fail "$failed of $downloads downloads failed (curl exited with $stream_status)"
fi

# What the load balancer saw: attempts retried on the other instance.
lb_log=$lb/logs/dss-bill-lb.access.log
retried=$(grep -c 'upstream=[^ ]*, ' "$lb_log" || true)
# served_by PORT: downloads whose last attempt got a 200 from that instance.
served_by() {
    awk -v want="127.0.0.1:$1" '
        match($0, /upstream=.* upstream_status=/) {
            n = split(substr($0, RSTART + 9, RLENGTH - 26), addr, ", ")
            if (addr[n] == want && $0 ~ /download\/.* upstream_status=([0-9]+, )*200 /)
                count++
        }
        END { print count + 0 }' "$lb_log"
}
ok "$downloads downloads in ${elapsed}s: 0 failed; a served $(served_by "${inst_port[a]}"), b served $(served_by "${inst_port[b]}"), $retried retried on the other instance"

expect_status 200 "$base/dss/bill/healthcheck" "${tls[@]}"
ok "health through the load balancer: 200 after the $mode"
echo "passed"

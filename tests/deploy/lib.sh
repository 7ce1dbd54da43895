# shellcheck shell=bash
# shellcheck disable=SC2034  # REPO, NGINX_PID, NGINX_PORT: for the tests
# Shared by the deployment tests (sourced, not run): a temporary folder that
# nginx's workers can read, conf/ files with their placeholders replaced,
# nginx instances on free loopback ports, and one EXIT trap that stops every
# process a test started and removes its files.
#
# Set DSS_KEEP_PREFIX=1 to keep the temporary folders for inspection.

set -euo pipefail
# What the tests create must be readable by nginx's workers ("nobody")
# whatever the caller's umask (with 077 no bill could be served).
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}

_dss_pids=()
_dss_cleanups=()

# Every folder of a test lives in one root, created here in the test's own
# shell: new_dir runs in $(...) subshells, where registering a folder for
# the EXIT trap would be lost.
_dss_root=$(mktemp -d "${TMPDIR:-/tmp}/dss-deploy.XXXXXX")
chmod 755 "$_dss_root"

# Runs a command at exit, before the processes are stopped (last added first).
on_exit() {
    _dss_cleanups=("$*" "${_dss_cleanups[@]}")
}

# shellcheck disable=SC2317  # called from the EXIT trap
_dss_cleanup() {
    local status=$? cmd pid log
    set +e
    for cmd in "${_dss_cleanups[@]}"; do
        eval "$cmd"
    done
    for pid in "${_dss_pids[@]}"; do
        stop_nginx "$pid"
    done
    if [ "$status" -ne 0 ] && [ "${DSS_KEEP_PREFIX:-0}" = 0 ]; then
        # A failure shows the error logs before they are removed.
        for log in "$_dss_root"/*/logs/*error.log; do
            [ -s "$log" ] || continue
            echo "---- $log (last lines)" >&2
            tail -n 15 "$log" >&2
        done
    fi
    if [ "${DSS_KEEP_PREFIX:-0}" = 0 ]; then
        rm -rf -- "$_dss_root"
    else
        echo "kept $_dss_root" >&2
    fi
    exit "$status"
}
trap _dss_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# absolute PATH: PATH made absolute (nginx resolves relative paths against
# its prefix, not the current directory).
absolute() {
    case $1 in
    /*) echo "$1" ;;
    *) echo "$PWD/$1" ;;
    esac
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

ok() {
    echo "ok: $*"
}

# A new folder every user can traverse (nginx's workers run as "nobody"
# when the tests run as root), removed at exit.
new_dir() {
    local dir
    dir=$(mktemp -d "$_dss_root/dir.XXXXXX")
    chmod 755 "$dir"
    mkdir -p "$dir/logs" "$dir/temp"
    echo "$dir"
}

# Group for files the workers must read and nobody else (htpasswd).
worker_group_args() {
    if [ "$(id -u)" -eq 0 ]; then
        echo "--group nogroup"
    fi
}

# A loopback port nobody listens on now, below Linux's ephemeral range (so a
# client socket cannot take it meanwhile). nginx_start retries on a clash.
free_port() {
    local port
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    fail "no free port found"
}

# render SRC DST FROM TO [FROM TO]...: copies a conf/ file, replacing each
# literal FROM by TO, and fails if a FROM is missing (the example changed
# under the test) or still there afterwards.
render() {
    local src=$1 dst=$2 text from to
    shift 2
    text=$(<"$src")
    while [ $# -ge 2 ]; do
        from=$1 to=$2
        shift 2
        [[ "$text" == *"$from"* ]] || fail "$src no longer contains \"$from\""
        text=${text//"$from"/"$to"}
        [[ "$text" != *"$from"* ]] || [[ "$to" == *"$from"* ]] ||
            fail "\"$from\" still in $dst"
    done
    printf '%s\n' "$text" >"$dst"
}

# main_conf DIR [MODULE_SO] [INCLUDE...]: writes DIR/nginx.conf, a main
# configuration whose http block holds the temp paths and includes the
# rendered example(s). Every path is inside DIR (never /var/log/nginx or
# /run/nginx.pid, which belong to the system nginx).
main_conf() {
    local dir=$1 module=$2 inc includes=""
    shift 2
    for inc in "$@"; do
        includes="$includes    include $inc;"$'\n'
    done
    {
        [ -z "$module" ] || echo "load_module $module;"
        cat <<EOF
pid $dir/nginx.pid;
error_log $dir/logs/error.log;
worker_processes 2;
events {
    worker_connections 512;
}
http {
    access_log $dir/logs/access.log;
    client_body_temp_path $dir/temp/body;
    proxy_temp_path $dir/temp/proxy;
    fastcgi_temp_path $dir/temp/fastcgi;
    uwsgi_temp_path $dir/temp/uwsgi;
    scgi_temp_path $dir/temp/scgi;
$includes}
EOF
    } >"$dir/nginx.conf"
}

# nginx_args DIR: the command-line options for the nginx living in DIR.
nginx_args() {
    echo "-p $1/ -c $1/nginx.conf -e $1/logs/error.log"
}

# nginx_test DIR: "nginx -t" of DIR/nginx.conf; prints nginx's output on
# failure.
nginx_test() {
    local out
    # shellcheck disable=SC2046
    if ! out=$("$NGINX_BIN" $(nginx_args "$1") -t 2>&1); then
        echo "$out" >&2
        return 1
    fi
}

# nginx_start DIR RENDER_FN: picks a free port, calls "RENDER_FN PORT" to
# write DIR/nginx.conf for it, checks it with nginx -t, starts nginx in the
# foreground (own session: one signal reaches master and workers) and polls
# until the port answers. Retries with another port when the chosen one was
# taken meanwhile. Sets NGINX_PID and NGINX_PORT.
nginx_start() {
    local dir=$1 render_fn=$2 port pid try
    for try in 1 2 3 4 5; do
        port=$(free_port)
        "$render_fn" "$port"
        nginx_test "$dir" || fail "nginx -t rejected $dir/nginx.conf"
        : >"$dir/logs/nginx.out"
        # shellcheck disable=SC2046
        setsid "$NGINX_BIN" $(nginx_args "$dir") -g 'daemon off;' \
            >>"$dir/logs/nginx.out" 2>&1 </dev/null &
        pid=$!
        _dss_pids+=("$pid")
        if wait_port "$port" "$pid" "$dir/nginx.pid"; then
            NGINX_PID=$pid
            NGINX_PORT=$port
            return 0
        fi
        stop_nginx "$pid"
        if ! grep -q "Address already in use" "$dir/logs/nginx.out" \
            "$dir/logs/error.log" 2>/dev/null; then
            cat "$dir/logs/nginx.out" >&2
            fail "nginx in $dir did not start"
        fi
        echo "port $port was taken, try $try: another one" >&2
    done
    fail "nginx in $dir found no free port"
}

# wait_port PORT PID [PID_FILE]: polls until 127.0.0.1:PORT accepts a
# connection (at most 10 s), or PID has died. With PID_FILE (an nginx's
# "pid" file), also until it names PID: nginx writes it once every listening
# socket is bound, so a connection accepted before that may be another
# process's that took the port meanwhile (nginx then fails to bind, after
# retrying for 2 s).
wait_port() {
    local port=$1 pid=$2 pid_file=${3:-} named
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || return 1
        named=$pid
        [ -z "$pid_file" ] || named=$(cat "$pid_file" 2>/dev/null) || named=
        if [ "$named" = "$pid" ] &&
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# wait_until TIMEOUT_S COMMAND...: polls COMMAND every 50 ms until it
# succeeds; fails after TIMEOUT_S seconds.
wait_until() {
    local timeout=$1 end
    shift
    end=$((SECONDS + timeout))
    until "$@"; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.05
    done
}

# stop_nginx PID: fast shutdown of a master started by nginx_start, then the
# whole process group if it is still there after 10 s.
stop_nginx() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || {
        wait "$pid" 2>/dev/null || true
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    wait_until 10 eval "! kill -0 $pid 2>/dev/null" ||
        kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # Workers left behind by a killed master.
    kill -KILL -- "-$pid" 2>/dev/null || true
}

# http_status URL CURL_ARGS...: prints the status code (000: no answer).
http_status() {
    local url=$1
    shift
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" "$url" || true
}

# expect_status WANT URL CURL_ARGS...
expect_status() {
    local want=$1 url=$2 got
    shift 2
    got=$(http_status "$url" "$@")
    [ "$got" = "$want" ] || fail "$url: status $got, expected $want"
}

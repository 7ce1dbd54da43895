"""Measurements: /proc readings, one wrk round, and a latency probe that
times every request (not wrk's corrected percentiles)."""

import http.client
import json
import os
import re
import resource
import subprocess
import time

from common import CHECK_LUA, CLK_TCK, CONNECTIONS, SECONDS, die


# ---- /proc readings --------------------------------------------------------

def host_cpu():
    """(busy, steal, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    total = sum(fields)
    return total - idle - iowait - steal, steal, total


def task_cpu_ns(pid):
    """CPU time (ns) of every thread of pid: /proc/<pid>/task/*/schedstat."""
    ns = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return ns


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---- one round of wrk ------------------------------------------------------

class WrongBytes(Exception):
    """A measured round saw a response that is not the expected bill."""


def wrk_round(url, worker_pid, expect, options=()):
    """Runs wrk once, every response checked by bench/check.lua against
    `expect` (a file, or "-" for an empty body; with a fresh= option a
    file name pattern of the variants); `options` are check.lua's
    (header=NAME:VALUE, fresh=D:FIRST:K). Returns a dict of measurements.
    Raises WrongBytes when any response was not a 200 with exactly the
    expected bytes (and header)."""
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--timeout",
           "5s", "-s", CHECK_LUA, url, "--", expect, *options]
    fresh = any(o.startswith("fresh=") for o in options)
    env = dict(os.environ, BENCH_CHECK_FRESH="1") if fresh else None
    c0 = host_cpu()
    w0 = task_cpu_ns(worker_pid)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       env=env)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    w1 = task_cpu_ns(worker_pid)
    c1 = host_cpu()
    out = p.stdout
    if p.returncode != 0:
        die(f"wrk failed on {url}: {p.stderr.strip() or out}")
    m = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m or not rps:
        die(f"cannot read wrk's output for {url}:\n{out}")
    requests = int(m.group(1))
    checks = re.findall(r"^bench-check good=(\d+) bad=(\d+)$", out, re.M)
    if not checks:
        die(f"{url}: wrk printed no byte check (bench/check.lua):\n{out}"
            f"{p.stderr}")
    good = sum(int(g) for g, _ in checks)
    bad = sum(int(b) for _, b in checks)
    example = re.search(r"^bench-check example=(.*)$", out, re.M)
    if bad or good != requests:
        raise WrongBytes(
            f"{bad} of {requests} responses were not a 200 with the exact "
            f"bytes of {expect if expect != '-' else 'an empty body'}"
            + (f" ({good} checked good, {requests} counted by wrk)"
               if good + bad != requests else "")
            + (f"; first: {example.group(1)}" if example else ""))
    # A body cut short or a response that never completes is no response
    # to wrk: it shows up only here, as a read error or a timeout.
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                     r"timeout (\d+)", out)
    if sock and any(int(x) for x in sock.groups()):
        raise WrongBytes(f"{sock.group(0)} (a body cut short, a dropped "
                         f"connection or a response that never completed), "
                         f"besides {requests} checked responses")
    if requests == 0:
        die(f"{url}: no request completed in a round")
    fresh_next = None
    if fresh:
        f = re.search(r"^bench-check fresh next=(\d+) inflight=(\d+) "
                      r"wrongvariant=(\d+)$", out, re.M)
        if not f:
            die(f"{url}: wrk printed no fresh-id tally:\n{out}")
        fresh_next, inflight, wrong = (int(x) for x in f.groups())
        # A connection has at most one request in flight when wrk stops
        # (and wrk may have built the next one: at most two per
        # connection); any other difference between the variants asked
        # for and answered is a body that belongs to another bill id.
        if wrong or inflight > 2 * CONNECTIONS:
            raise WrongBytes(
                f"the bodies do not match the bill ids asked for: "
                f"{wrong} answered with a variant asked for less often, "
                f"{inflight} unanswered (at most {2 * CONNECTIONS} in flight)")
    worker_ns = w1 - w0
    wrk_ns = ((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)) * 1e9
    dtotal = max(c1[2] - c0[2], 1)
    ncpu = os.cpu_count() or 1
    busy_ns = (c1[0] - c0[0]) / CLK_TCK * 1e9
    other = max(busy_ns - worker_ns - wrk_ns, 0) / (wall * ncpu * 1e9)
    return {
        "rps": float(rps.group(1)),
        "requests": requests,
        "cpu_us": worker_ns / requests / 1000.0,
        "steal": 100.0 * (c1[1] - c0[1]) / dtotal,
        "other": 100.0 * other,
        "checked": good,
        "fresh_next": fresh_next,
    }


def read_json(path):
    try:
        with open(path) as f:
            return json.loads(f.read())
    except (FileNotFoundError, ValueError):
        return {}


def latency(url, count=1000, gap=0.002):
    """Every request timed, one keep-alive connection, sequential: p50/p99
    in ms and the status codes seen. Not wrk's corrected percentiles."""
    m = re.match(r"http://([\d.]+):(\d+)(/.*)", url)
    host, port, path = m.group(1), int(m.group(2)), m.group(3)
    samples, codes = [], {}
    conn = http.client.HTTPConnection(host, port, timeout=5)
    for _ in range(count):
        t0 = time.perf_counter()
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            code = r.status
        except (OSError, http.client.HTTPException):
            code = 0
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=5)
        samples.append((time.perf_counter() - t0) * 1000.0)
        codes[code] = codes.get(code, 0) + 1
        time.sleep(gap)
    conn.close()
    samples.sort()
    return {
        "p50": samples[len(samples) // 2],
        "p99": samples[int(len(samples) * 0.99) - 1],
        "max": samples[-1],
        "codes": codes,
        "count": count,
    }

"""Turns the measured rounds into the Markdown result: the machine, the
ratio table, the stalled-fetch table, the targets and the raw rounds."""

import datetime
import os
import platform
import statistics
import subprocess
import time

from common import (CONNECTIONS, HERE, MAX_REPEATS, MAX_STEAL, NGINX,
                    NOISE_BAND, ROWS_ENV, SECONDS, STALL_COUNT)


# ---- results -----------------------------------------------------------------

def summarize(row):
    """Per-round ratios, both oriented so that > 1 favours A (the module):
    req/s A/B, and CPU per request B/A."""
    rps = [a["rps"] / b["rps"] for a, b in row.rounds]
    cpu = [b["cpu_us"] / a["cpu_us"] for a, b in row.rounds]

    def mmm(v):
        return statistics.median(v), min(v), max(v)
    a_req = sum(a["requests"] for a, _ in row.rounds)
    b_req = sum(b["requests"] for _, b in row.rounds)
    a_ns = sum(a["cpu_us"] * a["requests"] for a, _ in row.rounds)
    b_ns = sum(b["cpu_us"] * b["requests"] for _, b in row.rounds)
    return {
        "pooled_rps": sum(a["rps"] for a, _ in row.rounds)
        / sum(b["rps"] for _, b in row.rounds),
        "pooled_cpu": (b_ns / b_req) / (a_ns / a_req),
        "rps": mmm(rps),
        "cpu": mmm(cpu),
        "a_rps": statistics.median(a["rps"] for a, _ in row.rounds),
        "b_rps": statistics.median(b["rps"] for _, b in row.rounds),
        "a_cpu": statistics.median(a["cpu_us"] for a, _ in row.rounds),
        "b_cpu": statistics.median(b["cpu_us"] for _, b in row.rounds),
        "steal": max(max(a["steal"], b["steal"]) for a, b in row.rounds),
        "other": statistics.median(max(a["other"], b["other"])
                                   for a, b in row.rounds),
        "rps_rounds": rps,
        "cpu_rounds": cpu,
    }


def noise(row, by):
    """How far a median may sit from the truth in this run, per metric:
    the size-matched stock-vs-stock row's distance from 1, at least the
    usual +-5 %."""
    ref = by.get(row.noise_ref)
    if ref is None or not ref.rounds:
        return NOISE_BAND, NOISE_BAND
    s = summarize(ref)
    return (max(NOISE_BAND, abs(s["rps"][0] - 1)),
            max(NOISE_BAND, abs(s["cpu"][0] - 1)))


def judge(row, s, by):
    """"met", "within noise" or "missed" for one row."""
    if s["rps"][0] >= row.target and s["cpu"][0] >= row.target:
        return "met"
    if row.target > 1.0:
        return "missed"         # a multiple, not parity: noise cannot excuse
    band = noise(row, by)
    if s["rps"][0] >= 1 - band[0] and s["cpu"][0] >= 1 - band[1]:
        return "within noise"
    return "missed"


def verdict(row, s, by):
    if row.reference:
        return (f"reference: medians {100 * (s['rps'][0] - 1):+.1f} % / "
                f"{100 * (s['cpu'][0] - 1):+.1f} % from 1")
    if row.cost:
        band = noise(row, by)
        return (f"no target: {cost_text(s)}, noise ±{100 * band[0]:.0f} % "
                f"/ ±{100 * band[1]:.0f} %")
    state = judge(row, s, by)
    if state == "met":
        return f"met (≥ {row.target:.2f})"
    band = noise(row, by)
    if state == "within noise":
        return (f"< {row.target:.2f}, within noise (±{100 * band[0]:.0f} % "
                f"/ ±{100 * band[1]:.0f} %)")
    return f"missed (< {row.target:.2f})"


def cost_text(s):
    """A cost row's medians as what A costs over B (positive: A slower)."""
    return (f"A's cost {100 * (1 - s['rps'][0]):+.1f} % req/s, "
            f"{100 * (1 / s['cpu'][0] - 1):+.1f} % CPU/req (negative: A "
            f"did better)")


def fmt(m):
    return f"{m[0]:.3f} ({m[1]:.2f}–{m[2]:.2f})"


def machine_lines(args, bench):
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1048576:.1f} GiB"
    nginx_v = subprocess.run([NGINX, "-v"], capture_output=True,
                             text=True).stderr.strip().replace(
                                 "nginx version: ", "")
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    wrk_v = (wrk_v.stdout + wrk_v.stderr).split()[1]
    la = os.getloadavg()
    return [
        "- date: " + datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"),
        f"- machine: {model}, {os.cpu_count()} CPUs, {mem}, Linux "
        f"{platform.release()}; load average {bench.load_at_start[0]:.2f} "
        f"at start, {la[0]:.2f} at the end (other developers' builds and "
        "tests share the machine)",
        f"- nginx: {nginx_v} (Debian, /usr/sbin/nginx), one worker; "
        f"wrk {wrk_v}, `-t1 -c{CONNECTIONS}`",
        f"- module: `{shown_path(args.module)}`, built from "
        f"{bench.source}",
        "- both sides in the same server blocks: `sendfile on; tcp_nopush "
        "on; keepalive_requests 1000000; access_log off;`, TLS with a "
        "self-signed RSA-2048 certificate and nginx's default protocols "
        "and ciphers; stock static is `alias` + `try_files $uri.pdf =404`, "
        "stock health `return 200;`, stock archive `proxy_pass` to an "
        "`upstream` with `keepalive 32` (HTTP/1.1), the archive origin a "
        "second stock nginx (one worker) serving the same files",
        cache_line(bench),
        f"- rounds: {bench.rounds} per row, {SECONDS} s per side, alternating "
        f"A B / B A; a pair is repeated (up to {MAX_REPEATS} times) when "
        f"steal exceeds {MAX_STEAL:g} %" + steal_remark(),
        f"- bytes: every response of every measured round checked by wrk "
        f"(`bench/check.lua`: status 200 and a body byte-identical to the "
        f"bill's file, or empty for health), both sides alike: "
        f"{bench.checked:,} responses, none wrong (a wrong one fails the "
        f"run); the check's client-side cost is the same on both sides of "
        f"a pair (README, \"Benchmark\")",
    ]


def cache_line(bench):
    """Where the cache rows' caches live: their first views' cost is the
    file system's (creating, writing and renaming a file per miss)."""
    fs = "?"
    try:
        r = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,OPTIONS",
                            "--target", bench.root], capture_output=True,
                           text=True)
        if r.returncode == 0 and r.stdout.strip():
            fs = " ".join(r.stdout.split())
    except OSError:
        pass
    return ("- cache rows: `dss_bill_cache_path` and `proxy_cache_path` "
            "(`levels=1:2`, `use_temp_path=off` for stock) in the run's "
            f"folder, the bills' file system ({fs}); first-view files kept "
            "until the run ends")


def steal_remark():
    with open("/proc/stat") as f:
        steal = int(f.readline().split()[8])
    if steal:
        return ""
    return (" (this machine's hypervisor reports no steal at all, 0 since "
            "boot: host contention cannot be seen, and shows up as noise)")


def shown_path(path):
    """A path inside the repository relative to it, others as they are."""
    rel = os.path.relpath(path, os.path.dirname(HERE))
    return path if rel.startswith("..") else rel


def module_source(module):
    """The commit the build folder's source tree is at (from CMakeCache),
    read when the run starts, just after scripts/bench built it."""
    src = None
    try:
        with open(os.path.join(os.path.dirname(module),
                               "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_HOME_DIRECTORY:"):
                    src = line.split("=", 1)[1].strip()
    except OSError:
        pass
    if not src:
        return "an unknown source tree"
    r = subprocess.run(["git", "-C", src, "describe", "--always", "--dirty"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"`{src}` (not a git checkout)"
    return f"commit {r.stdout.strip()}"


def render(args, bench, rows, stall):
    today = datetime.datetime.now(datetime.timezone.utc)
    L = [f"# ngx_http_dss_bill_module benchmark, {today:%Y-%m-%d}", ""]
    L += machine_lines(args, bench)
    if ROWS_ENV:
        L.append(f"- **focused run, not a full result**: only "
                 f"`BENCH_ROWS={','.join(ROWS_ENV)}`")
    L += ["",
          "Ratios are medians of per-round ratios, (min–max) over the rounds,"
          " oriented so that **above 1 favours the module** (A): "
          "req/s is A/B, CPU/req is B/A (the nginx worker's CPU time per "
          "request, from /proc/<pid>/task/*/schedstat). Absolute figures "
          "are medians and only give scale: they move with the machine's "
          "load, the ratios do not.",
          "",
          "| row (A vs B) | req/s A/B | CPU/req B/A | A req/s | B req/s | "
          "A µs/req | B µs/req | steal max | others' load | target |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    by = {r.key: r for r in rows}
    for row in rows:
        s = summarize(row)
        rep = f", {row.repeats} repeated" if row.repeats else ""
        L.append(f"| {row.title} | {fmt(s['rps'])} | {fmt(s['cpu'])} | "
                 f"{s['a_rps']:.0f} | {s['b_rps']:.0f} | {s['a_cpu']:.1f} | "
                 f"{s['b_cpu']:.1f} | {s['steal']:.1f} %{rep} | "
                 f"{s['other']:.0f} % | {verdict(row, s, by)} |")
    L += ["",
          "*others' load*: the median share of all CPUs busy with anything "
          "but the measured worker and wrk during a round (other builds "
          "and tests on the machine, the origin nginx in the archive rows)."
          " *steal*: the hypervisor's, from /proc/stat.", ""]
    if stall:
        L += stall_lines(stall) + [""]
    L += ["## Targets", ""]
    L += targets(rows, stall)
    L += ["", "## Per-round ratios", "",
          "req/s A/B and CPU/req B/A of every round, in order, then the "
          "same ratios over all rounds pooled (less sensitive to one "
          "disturbed round than a median of few).", ""]
    for row in rows:
        s = summarize(row)
        L.append(f"- {row.key}: req/s "
                 + " ".join(f"{x:.3f}" for x in s["rps_rounds"])
                 + "; CPU/req "
                 + " ".join(f"{x:.3f}" for x in s["cpu_rounds"])
                 + f"; pooled (all rounds summed) {s['pooled_rps']:.3f} / "
                 f"{s['pooled_cpu']:.3f}; {row.checked:,} responses checked")
    L.append("")
    L.append(f"Run time: {time.monotonic() - bench.t_start:.0f} s.")
    return "\n".join(L) + "\n"


def stall_lines(stall):
    L = []
    L.append("## Stalled archive fetches")
    L.append("")
    b = stall["baseline"]
    L.append(f"{STALL_COUNT} concurrent downloads whose archive origin "
             "sends the headers and the first 64 KiB of a 1 MiB bill, "
             "then stalls. Health latency: 1,000 sequential requests "
             "on one keep-alive connection to `/m/healthcheck`, each "
             "timed (python http.client, so ~0.1 ms of client overhead "
             "is included).")
    L.append("")
    L.append("| | fetches at origin | worker RSS before → during | "
             "growth | per fetch | health p50 | health p99 | health max | "
             "statuses | origin conns left 5 s after clients quit |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    L.append(f"| no stall (baseline) | – | – | – | – | {b['p50']:.2f} ms | "
             f"{b['p99']:.2f} ms | {b['max']:.2f} ms | "
             f"{codes(b['codes'])} | – |")
    for key, label in (("module", "`dss_bill_upstream`"),
                       ("proxy_pass", "`proxy_pass` (reference)")):
        r = stall[key]
        lat = r["latency"]
        grow = (r["rss_during_kib"] - r["rss_before_kib"]) / 1024
        L.append(f"| {label} | {r['reached_origin']} | "
                 f"{r['rss_before_kib'] / 1024:.1f} → "
                 f"{r['rss_during_kib'] / 1024:.1f} MiB | "
                 f"{grow:.1f} MiB | "
                 f"{grow * 1024 / max(r['reached_origin'], 1):.0f} KiB | "
                 f"{lat['p50']:.2f} ms | "
                 f"{lat['p99']:.2f} ms | {lat['max']:.2f} ms | "
                 f"{codes(lat['codes'])} | {r['origin_open_after']} |")
    return L


def codes(c):
    return ", ".join(f"{k}×{v}" for k, v in sorted(c.items()))


def targets(rows, stall):
    out = []
    by = {r.key: r for r in rows}

    def line(label, keys, target):
        parts, states = [], []
        keys = [k for k in keys if k in by]     # a focused run: some
        if not keys:
            return
        for k in keys:
            r = by[k]
            s = summarize(r)
            states.append(judge(r, s, by))
            parts.append(f"{k} {s['rps'][0]:.3f} / {s['cpu'][0]:.3f} "
                         f"({states[-1]})")
        state = next((x for x in ("missed", "within noise") if x in states),
                     "met")
        out.append(f"- {label} (req/s / CPU per request, ≥ {target:.2f}): "
                   f"**{state}**: " + ", ".join(parts))

    line("root rows vs stock static", ["root100k", "root1m", "root5m",
                                       "https100k"], 0.97)
    line("health vs `return 200;`", ["health", "httpshealth"], 0.97)
    line("archive rows vs `proxy_pass`", ["archive100k", "archive1m"], 1.0)
    line("loading the module costs nothing measurable", ["loaded"], 0.97)
    line("SigV4 signing costs at most 5 % (issue 10)", ["s3100k"], 0.95)
    line("cached bills (warm) vs `proxy_pass` + `proxy_cache`",
         ["cachepc100k", "cachepc1m"], 1.0)
    line("cached bills (warm) vs the document root",
         ["cacheroot100k", "cacheroot1m"], 0.95)
    line("cached bills (warm) vs plain `proxy_pass`",
         ["cachepp100k", "cachepp1m"], 3.0)
    line("first views with the cache vs today's uncached fetch",
         ["miss100k", "miss1m"], 0.95)
    for r in rows:
        if r.cost:
            s = summarize(r)
            out.append(f"- {r.key}, the cost of {r.cost} (no target of its "
                       f"own; {r.cost_note}): "
                       f"{cost_text(s)} (medians), pooled "
                       f"{s['pooled_rps']:.3f} / {s['pooled_cpu']:.3f}")
    if stall:
        r = stall["module"]
        grow = (r["rss_during_kib"] - r["rss_before_kib"]) / 1024
        p99 = r["latency"]["p99"]
        reached = r["reached_origin"]
        ok = grow < 64 and reached >= STALL_COUNT
        out.append(f"- memory growth for {STALL_COUNT} stalled fetches "
                   f"< 64 MB: **{'met' if ok else 'missed'}**: "
                   f"{grow:.1f} MiB ({reached} of {STALL_COUNT} fetches "
                   "reached the origin)")
        out.append(f"- health p99 during the stall < 10 ms: "
                   f"**{'met' if p99 < 10 else 'missed'}**: {p99:.2f} ms")
    parts = []
    for k in ("self100k", "self1m"):
        if k not in by:
            continue
        s = summarize(by[k])
        parts.append(f"{k} {fmt(s['rps'])} / {fmt(s['cpu'])}")
    if not parts:
        return out
    out.append("- noise in this run: stock against itself reads "
               + ", ".join(parts) + " (req/s / CPU per request). A row "
               "below its target is called *within noise* when both its "
               "medians are no further below 1 than the matching "
               "stock-vs-stock median is from 1 (at least ±5 %): such a "
               "row shows no cost the run can tell from noise, but it does "
               "not prove the target either")
    return out

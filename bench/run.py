#!/usr/bin/env python3
"""The benchmark behind scripts/bench (Python 3 standard library only).

Starts Debian's /usr/sbin/nginx with the module loaded (one worker) whose
locations serve the same bills through the module and through stock nginx,
drives each pair with wrk in alternating short rounds, and writes a Markdown
table of module/stock ratios. See README.md, "Benchmark".

Every response of every measured round is checked byte for byte against
the bill it should be (bench/check.lua, run by wrk); one wrong response, a
non-200 or a body cut short ends the run with exit status 1 and no result.

Usage: run.py --module SO --make-bill EXE --out FILE.md
Environment: BENCH_ROUNDS (auto: as many as BENCH_BUDGET allows, 8 to 16),
BENCH_BUDGET (450 s for the whole run), BENCH_SECONDS (1), BENCH_CONNECTIONS
(8), BENCH_MAX_STEAL (3, percent), BENCH_STALL (1000), BENCH_KEEP (keep the
runtime folder).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from common import (BILLS, BUDGET, CACHE_HEADER, FRESH_DIGIT,
                    FRESH_VARIANTS, HERE, MAX_REPEATS, MAX_ROUNDS,
                    MAX_STEAL, MIN_ROUNDS, ROUNDS_ENV, ROWS_ENV, SECONDS,
                    STALL_BILL,
                    STALL_COUNT, STALL_RESERVE, die, free_port, log)
from measure import WrongBytes, latency, read_json, rss_kib, wrk_round
from report import module_source, render, summarize
from servers import Nginx, fetch, main_conf, origin_conf


# ---- rows --------------------------------------------------------------------

class Row:
    def __init__(self, key, title, a, b, target, reference=False,
                 cost=None, noise_ref="self100k",
                 cost_note="it is inside the root rows above"):
        self.key = key
        self.title = title
        self.a = a                  # (instance name, url path, scheme
        self.b = b                  #  [, cache options: see side_options])
        self.target = target        # ratio both metrics must reach
        self.reference = reference  # self-comparison: no target
        self.cost = cost            # no target: the cost of `cost`, A vs B
        self.cost_note = cost_note  # how that cost relates to the targets
        self.noise_ref = noise_ref  # the self-comparison row to read with
        self.rounds = []            # (A result, B result)
        self.repeats = 0
        self.checked = 0            # responses checked byte for byte


def rows_all():
    i100, i1m, i5m = (BILLS[k][0] for k in ("100KB", "1MB", "5MB"))
    return [
        Row("self100k", "self-comparison: stock vs stock, root 100 KB",
            ("main", f"/t/download/{i100}", "http"),
            ("main", f"/s/download/{i100}", "http"), None, reference=True),
        Row("self1m", "self-comparison: stock vs stock, root 1 MB",
            ("main", f"/t/download/{i1m}", "http"),
            ("main", f"/s/download/{i1m}", "http"), None, reference=True),
        Row("health", "health: `dss_bill` vs `return 200;`",
            ("main", "/m/healthcheck", "http"),
            ("main", "/s/healthcheck", "http"), 0.97),
        Row("root100k", "root 100 KB: module vs `alias`+`try_files`",
            ("main", f"/m/download/{i100}", "http"),
            ("main", f"/s/download/{i100}", "http"), 0.97),
        Row("pdfcheck", "root 100 KB: `dss_bill_pdf_check complete` "
            "(default) vs `signature`",
            ("main", f"/m/download/{i100}", "http"),
            ("main", f"/c/download/{i100}", "http"), None,
            cost="the completeness check (reading the last 1,024 bytes)"),
        Row("root1m", "root 1 MB",
            ("main", f"/m/download/{i1m}", "http"),
            ("main", f"/s/download/{i1m}", "http"), 0.97,
            noise_ref="self1m"),
        Row("root5m", "root 5 MB",
            ("main", f"/m/download/{i5m}", "http"),
            ("main", f"/s/download/{i5m}", "http"), 0.97,
            noise_ref="self1m"),
        Row("archive100k", "archive 100 KB: `dss_bill_upstream` vs "
            "`proxy_pass` (keep-alive)",
            ("main", f"/a/download/{i100}", "http"),
            ("main", f"/p/download/{i100}", "http"), 1.0),
        Row("archive1m", "archive 1 MB",
            ("main", f"/a/download/{i1m}", "http"),
            ("main", f"/p/download/{i1m}", "http"), 1.0,
            noise_ref="self1m"),
        Row("s3100k", "object store 100 KB: SigV4-signed "
            "`dss_bill_upstream` vs the same unsigned (same origin)",
            ("main", f"/a3/download/{i100}", "http"),
            ("main", f"/a/download/{i100}", "http"), 0.95),
        Row("https100k", "HTTPS root 100 KB",
            ("main", f"/m/download/{i100}", "https"),
            ("main", f"/s/download/{i100}", "https"), 0.97),
        Row("httpshealth", "HTTPS health",
            ("main", "/m/healthcheck", "https"),
            ("main", "/s/healthcheck", "https"), 0.97),
        Row("metricshealth", "health: metrics on vs off",
            ("metered", "/m/healthcheck", "http"),
            ("main", "/m/healthcheck", "http"), 0.97),
        Row("metrics100k", "root 100 KB: metrics on vs off",
            ("metered", f"/m/download/{i100}", "http"),
            ("main", f"/m/download/{i100}", "http"), 0.97),
        Row("loaded", "module loaded vs not loaded: `return 200;` health",
            ("main", "/s/healthcheck", "http"),
            ("bare", "/s/healthcheck", "http"), 0.97),
    ] + rows_cache()


def rows_cache():
    """Issue 9's rows: the archive cache. Warm repeat views through the
    module's cache (/k/, every response checked to be a HIT) against stock
    proxy_cache (/q/, every response a HIT too), the document root (/r/)
    and plain proxy_pass (/p/); first views (/n/, every response a MISS for
    an id never requested before; the files stay until the run ends)
    against today's uncached fetch (/u/) of ids as fresh."""
    hit = {"header": "HIT"}
    rows = []
    for size, key, nref in (("100KB", "100k", "self100k"),
                            ("1MB", "1m", "self1m")):
        bid = BILLS[size][0]
        label = size.replace("KB", " KB").replace("MB", " MB")
        k = ("main", f"/k/download/{bid}", "http", hit)
        rows += [
            Row(f"cachepc{key}", f"cached {label} (warm): `dss_bill_cache` "
                "vs `proxy_pass` + `proxy_cache`, both HITs",
                k, ("main", f"/q/download/{bid}", "http", hit), 1.0,
                noise_ref=nref),
            Row(f"cacheroot{key}", f"cached {label} (warm): `dss_bill_cache` "
                "vs `dss_bill_root`",
                k, ("main", f"/r/download/{bid}", "http"), 0.95,
                noise_ref=nref),
            Row(f"cachepp{key}", f"cached {label} (warm): `dss_bill_cache` "
                "vs plain `proxy_pass` (keep-alive)",
                k, ("main", f"/p/download/{bid}", "http"), 3.0,
                noise_ref=nref),
        ]
    for size, key, nref in (("100KB", "100k", "self100k"),
                            ("1MB", "1m", "self1m")):
        label = size.replace("KB", " KB").replace("MB", " MB")
        rows.append(Row(
            f"miss{key}", f"first views {label} (misses, fresh ids): "
            "`dss_bill_cache` vs `dss_bill_upstream` uncached",
            ("main", "/n/download/", "http",
             {"header": "MISS", "fresh": size}),
            ("main", "/u/download/", "http", {"fresh": size}), 0.95,
            noise_ref=nref))
    # the stock peer's first views, for scale: what proxy_cache's write of
    # a new bill costs proxy_pass (no target; same ids, same origin)
    rows.append(Row(
        "misspc100k", "first views 100 KB: `proxy_pass` + `proxy_cache` vs "
        "plain `proxy_pass` (stock's own cost of a miss)",
        ("main", "/o/download/", "http",
         {"header": "MISS", "fresh": "100KB"}),
        ("main", "/p/download/", "http", {"fresh": "100KB"}), None,
        cost="writing a new bill into proxy_cache (stock nginx)",
        cost_note="the stock peer's price of a miss, to read the first-view "
        "rows with"))
    return rows


class Bench:
    def __init__(self, args):
        self.args = args
        self.instances = {}
        self.helpers = []
        self.ports = {}
        self.stall = None
        self.t_start = time.monotonic()

    # -- setup --
    def url(self, inst, path, scheme):
        port = self.ports[f"{inst}_{scheme}"]
        return f"{scheme}://127.0.0.1:{port}{path}"

    def setup(self):
        root = tempfile.mkdtemp(prefix="dss-bill-bench.")
        os.chmod(root, 0o755)
        self.root = root
        d = {"root": root, "bills": os.path.join(root, "bills")}
        self.d = d
        for sub in ("bills", "logs", "temp", "fresh", "cache"):
            os.mkdir(os.path.join(root, sub))
        os.chmod(os.path.join(root, "fresh"), 0o755)
        self.fresh_next = 0
        os.chmod(d["bills"], 0o755)
        for _, (bid, size) in BILLS.items():
            subprocess.run([self.args.make_bill,
                            os.path.join(d["bills"], bid + ".pdf"), bid,
                            str(size)], check=True)
        subprocess.run([self.args.make_bill,
                        os.path.join(d["bills"], STALL_BILL + ".pdf"),
                        STALL_BILL, str(1024 * 1024)], check=True)
        for f in os.listdir(d["bills"]):
            os.chmod(os.path.join(d["bills"], f), 0o644)
        # the signed archive's key (the origin does not check signatures:
        # the row measures what signing costs the module)
        creds = os.path.join(root, "aws-credentials")
        with open(os.open(creds, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("[default]\naws_access_key_id = AKIABENCHEXAMPLE\n"
                    "aws_secret_access_key = bench/secret+EXAMPLEKEY\n")
        # first views: FRESH_VARIANTS distinct bills per size (each made
        # for its own id, so no two are alike), served by the origin for
        # every fresh id that names them
        for size, digit in FRESH_DIGIT.items():
            for v in range(FRESH_VARIANTS):
                f = self.fresh_file(size, v)
                subprocess.run([self.args.make_bill, f,
                                f"{digit}{v:09d}{v:02d}",
                                str(BILLS[size][1])], check=True)
                os.chmod(f, 0o644)
        user_line = ""
        if os.geteuid() == 0:
            user_line = "user nobody nogroup;"
            # the caches' directories are made by nginx's master (root) and
            # handed to the workers' user; their parent must let it in
            os.chmod(os.path.join(root, "cache"), 0o755)
            ok = subprocess.run(["runuser", "-u", "nobody", "--", "test",
                                 "-r", os.path.join(d["bills"],
                                                    STALL_BILL + ".pdf")])
            if ok.returncode != 0:
                die(f"user nobody cannot read {d['bills']}: make every "
                    "folder above it world-traversable or set TMPDIR")
        self.make_cache_levels(("fresh", "stockfresh"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-sha256", "-days", "2", "-subj",
                        "/CN=127.0.0.1", "-addext",
                        "subjectAltName=IP:127.0.0.1",
                        "-keyout", f"{root}/key.pem", "-out",
                        f"{root}/cert.pem"], check=True,
                       capture_output=True)
        for k in ("main_http", "main_https", "bare_http", "bare_https",
                  "metered_http", "metered_https", "origin", "stall"):
            self.ports[k] = free_port()

        # Every row runs, the archive ones included: a configuration that
        # nginx -t refuses is a broken build or bench, never a reason to
        # leave rows out of the table.
        main = Nginx("main", root, main_conf(d, self.ports, user_line,
                                             self.args.module))
        ok, err = main.test()
        if not ok:
            die(f"nginx -t rejected the bench configuration {main.conf}:\n"
                f"{err}")
        self.instances["main"] = main
        self.instances["bare"] = Nginx("bare", root, main_conf(
            d, self.ports, user_line))
        metered = Nginx("metered", root, main_conf(
            d, self.ports, user_line, self.args.module, metrics=True))
        ok, err = metered.test()
        if not ok:
            die(f"nginx -t rejected the bench configuration {metered.conf}:"
                f"\n{err}")
        self.instances["metered"] = metered
        self.instances["origin"] = Nginx("origin", root, origin_conf(
            d, self.ports["origin"], user_line))
        self.instances["origin"].start(
            f"http://127.0.0.1:{self.ports['origin']}/bills/"
            f"{BILLS['100KB'][0]}")
        self.start_stall_origin()
        self.instances["bare"].start(self.url("bare", "/s/healthcheck",
                                              "http"))
        main.start(self.url("main", "/m/healthcheck", "http"))
        metered.start(self.url("metered", "/m/healthcheck", "http"))

    def start_stall_origin(self):
        status = os.path.join(self.root, "stall-origin.json")
        p = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "stall.py"), "origin",
             "--port", str(self.ports["stall"]), "--body",
             os.path.join(self.d["bills"], STALL_BILL + ".pdf"),
             "--send", "65536", "--match", STALL_BILL, "--status", status],
            start_new_session=True)
        self.helpers.append(p)
        self.stall = (p, status)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(status):
                return
            time.sleep(0.05)
        die("stall origin did not start")

    def cleanup(self):
        for p in self.helpers:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for inst in self.instances.values():
            inst.stop()
        if getattr(self, "root", None):
            if os.environ.get("BENCH_KEEP"):
                log(f"kept {self.root}")
            else:
                shutil.rmtree(self.root, ignore_errors=True)

    # -- checks --
    def fresh_file(self, size, v):
        return os.path.join(self.root, "fresh",
                            f"{FRESH_DIGIT[size]}-{v:02d}.pdf")

    def side_options(self, side):
        """check.lua's options for one side of a row: header=NAME:VALUE,
        fresh=D:FIRST:K (ids never asked for before: FIRST moves on past
        every id any earlier round asked for)."""
        opts = side[3] if len(side) > 3 else {}
        out = []
        if "header" in opts:
            out.append(f"header={CACHE_HEADER}:{opts['header']}")
        if "fresh" in opts:
            out.append(f"fresh={FRESH_DIGIT[opts['fresh']]}:"
                       f"{self.fresh_next}:{FRESH_VARIANTS}")
        return out

    def fresh_id(self, size):
        n = self.fresh_next
        self.fresh_next += 1
        return f"{FRESH_DIGIT[size]}{n:09d}{n % FRESH_VARIANTS:02d}"

    def make_cache_levels(self, names):
        """The first-view caches' level directories (levels=1:2: 16 x 256),
        made before the run, as a cache in service has them: otherwise
        nginx makes them one by one during the measured rounds (a new
        bill's directory does not exist yet in about half the requests of
        the first 4,000), a cost only a new, empty cache pays. Owned by
        the workers' user, mode 0700, as nginx makes them."""
        uid = gid = None
        if os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam("nobody")
            uid, gid = pw.pw_uid, pw.pw_gid
        for name in names:
            top = os.path.join(self.root, "cache", name)
            dirs = [top] + [os.path.join(top, f"{a:x}") for a in range(16)] \
                + [os.path.join(top, f"{a:x}", f"{b:02x}") for a in range(16)
                   for b in range(256)]
            for dpath in dirs:
                os.mkdir(dpath, 0o700)
                if uid is not None:
                    os.chown(dpath, uid, gid)

    def expect(self, path):
        """What a URL path must answer, byte for byte: the bill's file for a
        download, "-" (an empty body) for a health check; for a fresh id,
        the variant it names."""
        bid = path.rsplit("/", 1)[1]
        for size, digit in FRESH_DIGIT.items():
            if len(bid) == 12 and bid[0] == digit:
                return self.fresh_file(size, int(bid[-2:]))
        if "/download/" in path:
            return os.path.join(self.d["bills"],
                                path.rsplit("/", 1)[1] + ".pdf")
        return "-"

    def expected_bytes(self, path):
        f = self.expect(path)
        if f == "-":
            return b""
        with open(f, "rb") as fh:
            return fh.read()

    def check(self, row):
        """Before a row is timed, one request per side from an independent
        client (Python's http.client): 200, a Content-Length equal to the
        body's, and exactly the bytes of the bill. Every response of the
        measured rounds is then checked by bench/check.lua in wrk. A cache
        side is first warmed: asked until it answers HIT (at most 3 times;
        a first view must answer MISS at once)."""
        for side in (row.a, row.b):
            inst, path, scheme = side[:3]
            opts = side[3] if len(side) > 3 else {}
            if "fresh" in opts:
                path += self.fresh_id(opts["fresh"])
            url = self.url(inst, path, scheme)
            for _ in range(3):
                r = fetch(url)
                if r is None or r[0] != 200 or "header" not in opts or \
                        r[1].get(CACHE_HEADER.lower()) == opts["header"]:
                    break
            if r is not None and "header" in opts and \
                    r[1].get(CACHE_HEADER.lower()) != opts["header"]:
                die(f"{row.key}: {url}: {CACHE_HEADER} "
                    f"{r[1].get(CACHE_HEADER.lower())!r}, not "
                    f"{opts['header']!r}, after 3 requests")
            if r is None or r[0] != 200:
                die(f"{row.key}: {url} answered "
                    f"{r[0] if r else 'nothing'}, not 200")
            status, headers, body = r
            if headers.get("content-length") != str(len(body)):
                die(f"{row.key}: {url}: Content-Length "
                    f"{headers.get('content-length')} for {len(body)} bytes")
            want = self.expected_bytes(path)
            if body != want:
                die(f"{row.key}: {url}: {len(body)} bytes that are not the "
                    f"{len(want)} bytes of {self.expect(path)}")

    # -- rows --
    def plan(self, rows):
        """Rounds per row: BENCH_ROUNDS, or as many as fit the budget."""
        pair = 2 * (SECONDS + 0.15)
        todo = rows or [None]
        left = BUDGET - (time.monotonic() - self.t_start) - STALL_RESERVE
        if ROUNDS_ENV != "auto":
            self.rounds = int(ROUNDS_ENV)
        else:
            fit = int(left / (len(todo) * pair))
            self.rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, fit))
        # Repeating a stolen round may use what is left of the budget.
        self.deadline = (self.t_start + BUDGET - STALL_RESERVE)
        self.pair_time = pair
        log(f"{len(todo)} rows x {self.rounds} rounds x 2 x {SECONDS} s")

    def measure(self, row, side, i):
        """One checked wrk round of one side; any response that is not the
        expected bill ends the whole run."""
        s = row.a if side == "A" else row.b
        inst, path, scheme = s[:3]
        opts = s[3] if len(s) > 3 else {}
        url = self.url(inst, path, scheme)
        expect = self.expect(path)
        if "fresh" in opts:
            expect = self.fresh_file(opts["fresh"], 0).replace(
                "-00.pdf", "-%02d.pdf")
        try:
            r = wrk_round(url, self.instances[inst].worker, expect,
                          self.side_options(s))
            if r["fresh_next"] is not None:
                self.fresh_next = r["fresh_next"]
        except WrongBytes as e:
            die(f"FAILED: row {row.key}, side {side} ({url}), round {i + 1}: "
                f"{e}. A ratio measured on wrong bodies is no ratio: no "
                "result written.")
        row.checked += r["checked"]
        return r

    def run_row(self, row):
        self.check(row)
        for i in range(self.rounds):
            for attempt in range(MAX_REPEATS + 1):
                # A B in even rounds, B A in odd ones: drift during a pair
                # favours neither side.
                if i % 2 == 0:
                    ra = self.measure(row, "A", i)
                    rb = self.measure(row, "B", i)
                else:
                    rb = self.measure(row, "B", i)
                    ra = self.measure(row, "A", i)
                if max(ra["steal"], rb["steal"]) <= MAX_STEAL:
                    break
                pending = (self.rounds - i) + self.rows_left * self.rounds
                if attempt < MAX_REPEATS and time.monotonic() + \
                        pending * self.pair_time < self.deadline:
                    row.repeats += 1
                    log(f"{row.key} round {i + 1}: steal "
                        f"{max(ra['steal'], rb['steal']):.1f}% > "
                        f"{MAX_STEAL}%, repeating")
            row.rounds.append((ra, rb))
        s = summarize(row)
        log(f"{row.key:12s} req/s {s['rps'][0]:.3f} "
            f"[{s['rps'][1]:.3f}-{s['rps'][2]:.3f}]  CPU/req "
            f"{s['cpu'][0]:.3f} [{s['cpu'][1]:.3f}-{s['cpu'][2]:.3f}]  "
            f"{row.checked} responses checked  "
            f"({time.monotonic() - self.t_start:.0f}s)")

    def warm_up(self):
        for inst, path, scheme in (("main", "/m/healthcheck", "http"),
                                   ("main", "/s/healthcheck", "http"),
                                   ("metered", "/m/healthcheck", "http")):
            try:
                wrk_round(self.url(inst, path, scheme),
                          self.instances[inst].worker, "-")
            except WrongBytes as e:
                die(f"FAILED: warm-up {path}: {e}")

    # -- stalled archive fetches --
    def stall_test(self):
        """1,000 downloads whose archive fetch stalls mid-body: the worker's
        resident memory growth, and the health check's latency meanwhile."""
        res = {}
        main = self.instances["main"]
        health_url = self.url("main", "/m/healthcheck", "http")
        # Each measurement on a fresh worker: memory a worker has once
        # grown to stays resident, and would hide the next one's growth.
        main.restart(health_url)
        res["baseline"] = latency(health_url)
        res["module"] = self.stall_one(main, "/x", health_url)
        main.restart(health_url)
        res["proxy_pass"] = self.stall_one(main, "/y", health_url)
        log("stall: " + json.dumps({k: {kk: vv for kk, vv in v.items()
                                        if kk != "latency"}
                                    for k, v in res.items()
                                    if k != "baseline"}))
        return res

    def stall_one(self, main, prefix, health_url):
        origin_p, origin_status = self.stall
        before_origin = read_json(origin_status)
        # A few requests through the worker, then the resident size before.
        latency(health_url, count=50, gap=0)
        rss0 = rss_kib(main.worker)
        status = os.path.join(self.root, f"hold{prefix.strip('/')}.json")
        hold = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "stall.py"), "hold",
             "--port", str(self.ports["main_http"]), "--path",
             f"{prefix}/download/{STALL_BILL}", "--count", str(STALL_COUNT),
             "--status", status], start_new_session=True)
        self.helpers.append(hold)
        # Wait until every fetch has reached the origin and got its first
        # part, or nothing has moved for 3 s (bounded: 20 s).
        deadline = time.monotonic() + 20
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            o = read_json(origin_status)
            n = o.get("matched", 0) - before_origin.get("matched", 0)
            if n >= STALL_COUNT:
                break
            if n != last:
                last, last_change = n, time.monotonic()
            elif time.monotonic() - last_change > 3:
                break
            time.sleep(0.05)
        time.sleep(1.0)                 # let the partial bodies land
        rss1 = rss_kib(main.worker)
        lat = latency(health_url)
        rss2 = rss_kib(main.worker)
        o = read_json(origin_status)
        h = read_json(status)
        out = {
            "reached_origin": o.get("matched", 0) - before_origin.get(
                "matched", 0),
            "origin_open": o.get("open", 0),
            "clients_connected": h.get("connected", 0),
            "clients_open": h.get("open", 0),
            "client_bytes": h.get("bytes", 0),
            "rss_before_kib": rss0,
            "rss_during_kib": max(rss1, rss2),
            "latency": lat,
        }
        hold.terminate()
        hold.wait(timeout=10)
        # Clients gone: their fetches should be cancelled (bounded wait).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            o = read_json(origin_status)
            if o.get("open", 0) <= before_origin.get("open", 0):
                break
            time.sleep(0.1)
        out["origin_open_after"] = o.get("open", 0) - before_origin.get(
            "open", 0)
        out["rss_after_kib"] = rss_kib(main.worker)
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--module", required=True)
    ap.add_argument("--make-bill", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    args.module = os.path.abspath(args.module)

    bench = Bench(args)
    bench.load_at_start = os.getloadavg()
    bench.source = module_source(args.module)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        bench.setup()
        rows = rows_all()
        if ROWS_ENV:
            keys = [r.key for r in rows] + ["stall"]
            unknown = [k for k in ROWS_ENV if k not in keys]
            if unknown:
                die(f"BENCH_ROWS: unknown {', '.join(unknown)} (rows: "
                    f"{', '.join(keys)})")
            rows = [r for r in rows if r.key in ROWS_ENV]
        bench.plan(rows)
        bench.warm_up()
        for n, row in enumerate(rows):
            bench.rows_left = len(rows) - n - 1
            bench.run_row(row)
        stall = None
        if not ROWS_ENV or "stall" in ROWS_ENV:
            stall = bench.stall_test()
        bench.checked = sum(r.checked for r in rows)
        text = render(args, bench, rows, stall)
    finally:
        bench.cleanup()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Settings, bill sizes and small helpers shared by the bench's modules."""

import os
import socket
import sys

NGINX = "/usr/sbin/nginx"
HERE = os.path.dirname(os.path.abspath(__file__))

# Bill ids (12 digits, like CC&B's) and sizes. 5 MB is exactly the default
# dss_bill_max_size (5 x 1024 x 1024), the largest bill DSS accepts.
BILLS = {
    "100KB": ("100000000100", 100 * 1024),
    "1MB": ("100000001024", 1024 * 1024),
    "5MB": ("100000005120", 5 * 1024 * 1024),
}
STALL_BILL = "100000009999"          # the id the stalled downloads ask for

# First views (cache misses) need a bill id never requested before for
# every request: ids D + a 9-digit sequence number n + a variant vv (2
# digits, below FRESH_VARIANTS; bench/check.lua picks them). The origin
# serves, for any such id, the file fresh/D-<vv>.pdf: FRESH_VARIANTS
# distinct bills of each size, so a body is checked against the variant
# its id names (bench/check.lua, fresh=).
FRESH_DIGIT = {"100KB": "9", "1MB": "8"}
FRESH_VARIANTS = 16
CACHE_HEADER = "X-Cache-Status"

ROUNDS_ENV = os.environ.get("BENCH_ROUNDS", "auto")
# A focused run: only these rows (comma-separated keys), plus "stall" for the
# stalled-fetch measurement. Empty: everything (a result to commit).
ROWS_ENV = [k for k in os.environ.get("BENCH_ROWS", "").split(",") if k]
MIN_ROUNDS, MAX_ROUNDS = 8, 16
BUDGET = float(os.environ.get("BENCH_BUDGET", "450"))
STALL_RESERVE = 25.0                 # seconds the stall measurement takes
SECONDS = int(os.environ.get("BENCH_SECONDS", "1"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "8"))
MAX_STEAL = float(os.environ.get("BENCH_MAX_STEAL", "3"))
MAX_REPEATS = 3                      # per pair, when steal stays high
STALL_COUNT = int(os.environ.get("BENCH_STALL", "1000"))
NOISE_BAND = 0.05                    # a self-comparison varies by ~ +-5 %
CLK_TCK = os.sysconf("SC_CLK_TCK")

# wrk's script that checks every response of a measured round
CHECK_LUA = os.path.join(HERE, "check.lua")


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

"""The nginx instances of a bench run: their configurations, start and
stop, and a one-shot HTTP client for readiness and checks."""

import http.client
import os
import re
import signal
import ssl
import subprocess
import time

from common import NGINX, die


# ---- nginx instances -------------------------------------------------------

class Nginx:
    """One nginx master (foreground, our child) with exactly one worker."""

    def __init__(self, name, root, conf_text):
        self.name = name
        self.root = root
        self.conf = os.path.join(root, f"{name}.conf")
        with open(self.conf, "w") as f:
            f.write(conf_text)
        self.proc = None
        self.worker = None

    def args(self):
        return [NGINX, "-p", self.root + "/", "-c", self.conf,
                "-e", os.path.join(self.root, "logs", f"{self.name}.err")]

    def test(self):
        r = subprocess.run(self.args() + ["-t", "-q"], capture_output=True,
                           text=True)
        return r.returncode == 0, r.stderr.strip()

    def start(self, ready_url):
        with open(os.path.join(self.root, "logs", f"{self.name}.out"),
                  "ab") as out:
            self.proc = subprocess.Popen(self.args() + ["-g", "daemon off;"],
                                         stdout=out, stderr=out,
                                         stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if http_status(ready_url) == 200 and self.find_worker():
                return
            time.sleep(0.1)
        tail = ""
        for f in (f"{self.name}.out", f"{self.name}.err"):
            try:
                with open(os.path.join(self.root, "logs", f)) as fh:
                    tail += fh.read()[-2000:]
            except FileNotFoundError:
                pass
        die(f"nginx '{self.name}' did not become ready on {ready_url}:\n"
            f"{tail}")

    def find_worker(self):
        pid = self.proc.pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return False
        # The worker, not the cache manager and loader that a cache path
        # adds: exactly one child calls itself "worker process".
        workers = []
        for kid in kids:
            try:
                with open(f"/proc/{kid}/cmdline", "rb") as f:
                    if b"worker process" in f.read():
                        workers.append(kid)
            except (FileNotFoundError, ProcessLookupError):
                pass
        if len(workers) != 1:
            return False
        self.worker = workers[0]
        return True

    def restart(self, ready_url):
        self.stop()
        self.start(ready_url)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()          # nginx: fast shutdown
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def http_status(url, cafile=None):
    """Status of a GET, or 0; for readiness and checks."""
    r = fetch(url, cafile)
    return r[0] if r else 0


def fetch(url, cafile=None):
    """(status, headers dict lower-cased, body) of a GET, or None."""
    m = re.match(r"(https?)://([\d.]+):(\d+)(/.*)", url)
    scheme, host, port, path = m.group(1), m.group(2), int(m.group(3)), \
        m.group(4)
    try:
        if scheme == "https":
            ctx = ssl.create_default_context(cafile=cafile)
            ctx.check_hostname = False
            if cafile is None:
                ctx.verify_mode = ssl.CERT_NONE
            c = http.client.HTTPSConnection(host, port, timeout=5,
                                            context=ctx)
        else:
            c = http.client.HTTPConnection(host, port, timeout=5)
        c.request("GET", path, headers={"Accept": "application/pdf"})
        resp = c.getresponse()
        body = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        c.close()
        return resp.status, headers, body
    except (OSError, http.client.HTTPException):
        return None


# ---- configuration ---------------------------------------------------------

def main_conf(d, ports, user_line, module=None, metrics=False):
    """The measured nginx: module and stock locations side by side in the
    same server blocks, so sendfile, tcp_nopush, keep-alive and TLS settings
    are the same for both by construction. Without `module`, the same
    configuration minus load_module and the dss_bill locations: the
    "loaded vs not loaded" comparison. With `metrics`, the same plus a
    dss_bill_metrics location, which turns counting on for every dss_bill
    request: the "metrics on vs off" comparison."""
    bills = d["bills"]
    locations = f"""
        # stock nginx: what one would write by hand
        location = /s/healthcheck {{ return 200; }}
        location /s/download/ {{
            alias {bills}/;
            try_files $uri.pdf =404;
        }}
        # a second, identical stock location: the self-comparison rows
        location /t/download/ {{
            alias {bills}/;
            try_files $uri.pdf =404;
        }}
        # the archive (a second stock nginx) and the stalling origin through
        # proxy_pass, keep-alive upstream connections
        location /p/download/ {{
            proxy_pass http://bench_origin/bills/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location /y/download/ {{
            proxy_pass http://bench_stall/bills/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
"""
    if module:
        locations += f"""
        # the module, same bills (dss_bill_pdf_check complete, the default)
        location /m/ {{
            dss_bill;
            dss_bill_root {bills};
        }}
        # the same with only the %PDF- signature checked: the cost of the
        # completeness check (the bill's last 1,024 bytes read) on its own
        location /c/ {{
            dss_bill;
            dss_bill_root {bills};
            dss_bill_pdf_check signature;
        }}
        # the same two origins through the module's libcurl fetch; kept
        # connections, as proxy_pass has them here (keepalive 32)
        location /a/ {{
            dss_bill;
            dss_bill_upstream http://127.0.0.1:{ports['origin']}/bills/$dss_bill_id;
            dss_bill_upstream_keepalive on;
        }}
        # the same fetch signed with SigV4 (dss_bill_upstream_s3): what
        # signing costs; the origin ignores the signature, so no probe
        location /a3/ {{
            dss_bill;
            dss_bill_upstream http://127.0.0.1:{ports['origin']}/bills/$dss_bill_id;
            dss_bill_upstream_keepalive on;
            dss_bill_upstream_s3 region=eu-west-1;
            dss_bill_upstream_s3_credentials {d['root']}/aws-credentials;
            dss_bill_upstream_health_url off;
        }}
        # Stalled fetches must stay stalled while they are measured (the
        # default whole-fetch timeout is 4 s, T4); the health check measured
        # meanwhile is /m/'s, so this one probes nothing.
        location /x/ {{
            dss_bill;
            dss_bill_upstream http://127.0.0.1:{ports['stall']}/bills/$dss_bill_id;
            dss_bill_upstream_timeout 60s;
            dss_bill_upstream_health_url off;
        }}
{"" if metrics else cache_locations(d, ports)}"""
    if module and metrics:
        locations += """
        # metrics on: every dss_bill request above is counted
        location = /metrics {
            dss_bill_metrics;
        }
"""
    name = ("metered" if metrics else "main") if module else "bare"
    load = f"load_module {module};" if module else "# no load_module"
    caches = (cache_paths(d) if module and not metrics
              else "    # no cache rows here")
    return f"""# written by bench/run.py
{load}
{user_line}
worker_processes 1;
worker_rlimit_nofile 16384;
pid {d['root']}/{name}.pid;
events {{ worker_connections 8192; }}
http {{
{common_http(d)}
{caches}
    upstream bench_origin {{
        server 127.0.0.1:{ports['origin']};
        keepalive 32;
    }}
    upstream bench_stall {{
        server 127.0.0.1:{ports['stall']};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{ports[name + '_http']};
{locations}
    }}
    server {{
        listen 127.0.0.1:{ports[name + '_https']} ssl;
        ssl_certificate {d['root']}/cert.pem;
        ssl_certificate_key {d['root']}/key.pem;
{locations}
    }}
}}
"""


def cache_paths(d):
    """The archive cache rows' caches, in the same file system as the
    bills: the module's warm one, the module's first-view one (its files
    kept until the run ends; max_size and inactive far beyond the run, so
    the cache manager never evicts meanwhile), stock proxy_cache's
    warm and first-view ones (temporary files in the cache directory, as
    the module writes them)."""
    c = d["root"] + "/cache"
    return f"""    dss_bill_cache_path {c}/warm levels=1:2 keys_zone=bench_warm:1m
                        max_size=1g inactive=1d;
    dss_bill_cache_path {c}/fresh levels=1:2 keys_zone=bench_fresh:64m
                        max_size=100g inactive=1d;
    proxy_cache_path {c}/stock levels=1:2 keys_zone=bench_stock:1m
                     max_size=1g inactive=1d use_temp_path=off;
    proxy_cache_path {c}/stockfresh levels=1:2 keys_zone=bench_stockfresh:64m
                     max_size=100g inactive=1d use_temp_path=off;"""


def cache_locations(d, ports):
    """The archive cache rows (issue 9). Every location of these rows sets
    the same X-Cache-Status header, so each side pays for one add_header:
    HIT or MISS where a cache answers (checked in every measured response),
    nothing where none does (an empty value adds no header)."""
    h = "add_header X-Cache-Status"
    up = f"http://127.0.0.1:{ports['origin']}/bills/$dss_bill_id"
    return f"""
        # the module's archive path with the cache: warm repeat views (/k/),
        # first views (/n/, a cache of its own)
        location /k/ {{
            dss_bill;
            dss_bill_upstream {up};
            dss_bill_upstream_keepalive on;
            dss_bill_cache bench_warm;
            {h} $dss_bill_cache_status always;
        }}
        location /n/ {{
            dss_bill;
            dss_bill_upstream {up};
            dss_bill_upstream_keepalive on;
            dss_bill_cache bench_fresh;
            {h} $dss_bill_cache_status always;
        }}
        # today's uncached fetch (/a/ with the header) and the document
        # root (/m/ with the header), for the cache rows
        location /u/ {{
            dss_bill;
            dss_bill_upstream {up};
            dss_bill_upstream_keepalive on;
            {h} $dss_bill_cache_status always;
        }}
        location /r/ {{
            dss_bill;
            dss_bill_root {d['bills']};
            {h} $dss_bill_cache_status always;
        }}
        # stock nginx's answer: proxy_cache in front of proxy_pass
        location /q/download/ {{
            proxy_pass http://bench_origin/bills/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench_stock;
            proxy_cache_valid 200 30d;
            {h} $upstream_cache_status always;
        }}
        # the same for first views (a cache of its own)
        location /o/download/ {{
            proxy_pass http://bench_origin/bills/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench_stockfresh;
            proxy_cache_valid 200 30d;
            {h} $upstream_cache_status always;
        }}
"""


def common_http(d):
    t = d["root"] + "/temp"
    return f"""    access_log off;
    types {{ application/pdf pdf; }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    client_body_temp_path {t}/client;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;"""


def origin_conf(d, port, user_line):
    """The archive: a second stock nginx serving the same bills."""
    return f"""# written by bench/run.py
{user_line}
worker_processes 1;
pid {d['root']}/origin.pid;
events {{ worker_connections 1024; }}
http {{
{common_http(d)}
    server {{
        listen 127.0.0.1:{port};
        location /bills/ {{
            alias {d['bills']}/;
            try_files $uri.pdf =404;
        }}
        # first views: any id D nnnnnnnnn vv is the bill fresh/D-vv.pdf
        location ~ "^/bills/([89])[0-9]{{9}}([0-9][0-9])$" {{
            root {d['root']}/fresh;
            try_files /$1-$2.pdf =404;
        }}
    }}
}}
"""

/* Integration tests of the archive cache (issue 9: dss_bill_cache_path,
 * dss_bill_cache, dss_bill_health_archive, $dss_bill_cache_status), written
 * against the interface in the issue, as an attacker would: every answer's
 * bytes are compared with what the archive sent for that bill and that
 * tenant, and the archive (fault_origin) counts every request per path, so
 * "served from the cache" is proven by the archive not being asked.
 *
 * nginx runs with two workers and `listen ... reuseport`, so concurrent
 * requests land in both and the cache's locks are tested across processes.
 * Bills come from fault_origin's /g/<size>-<name> (bytes naming the origin's
 * tag, the id and each block's offset: a block of another bill, or of the
 * other tenant's bill, cannot match).
 *
 * The full-disk test needs a private mount namespace (root and unshare) to
 * mount a small tmpfs over the cache directory; without one it is skipped
 * with the reason. */

#define _GNU_SOURCE /* asprintf, memmem, unshare */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client_job.h"
#include "fault_origin.h"
#include "harness.h"

static dss_nginx nginx;
static fault_origin a; /* tenant A's archive (tag "A") */
static fault_origin b; /* tenant B's archive (tag "B") */

static struct {
    int ready; /* a private mount namespace: tmpfs mounts are ours */
    char reason[256];
    int mounted; /* the tmpfs is mounted over <prefix>/full */
} ns;

/*
 * The module's configuration; %1$d tenant A's archive port, %2$d tenant
 * B's. Every location with a cache adds $dss_bill_cache_status as X-Cache.
 * dss_bill_upstream_memory 0: bills above the 16k buffer arrive in a
 * temporary file, smaller ones in memory: the cache is written from both.
 */
static const char *const module_config =
    "dss_bill_upstream_temp_path @PREFIX@/temp;\n"
    "dss_bill_upstream_memory 0;\n"
    "dss_bill_cache_path @PREFIX@/cache levels=1:2 keys_zone=bills:1m "
    "max_size=64m;\n"
    "dss_bill_cache_path @PREFIX@/small levels=1:2 keys_zone=small:1m "
    "max_size=2m;\n"
    "dss_bill_cache_path @PREFIX@/brief levels=1:2 keys_zone=brief:1m "
    "inactive=2s;\n"
    "dss_bill_cache_path @PREFIX@/full/cache levels=1:2 keys_zone=full:1m;\n"
    "dss_bill_cache_path @PREFIX@/tiny keys_zone=tiny:16k;\n"
    "log_format cache '$pid $status [$dss_bill_cache_status] $dss_bill_id';\n"
    "server {\n"
    "    listen 127.0.0.1:@PORT@ reuseport;\n"
    "    access_log @PREFIX@/logs/cache.log cache;\n"
    "    add_header X-Cache $dss_bill_cache_status always;\n"
    "    gzip on; gzip_types *; gzip_min_length 0;\n"
    "    dss_bill_upstream_health_url off;\n"
    "    location = /status { stub_status; }\n"
    "    location = /metrics { dss_bill_metrics; }\n"
    "    location /c/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id;\n"
    "    }\n"
    "    location /tb/ {\n" /* tenant B: same path, another archive */
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%2$d/g/$dss_bill_id;\n"
    "    }\n"
    "    location /k1/ {\n" /* /c/'s URL as another archive client */
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id;\n"
    "        dss_bill_upstream_header X-Api-Key k1;\n"
    "    }\n"
    "    location /k1b/ {\n" /* the same client as /k1/ */
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id;\n"
    "        dss_bill_upstream_header X-Api-Key k1;\n"
    "    }\n"
    "    location /k2/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id;\n"
    "        dss_bill_upstream_header X-Api-Key k2;\n"
    "    }\n"
    "    location /u1/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id;\n"
    "        dss_bill_upstream_basic_auth u1:pw;\n"
    "    }\n"
    "    location /u2/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id;\n"
    "        dss_bill_upstream_basic_auth u2:pw;\n"
    "    }\n"
    "    location /ch/ {\n" /* parked at the archive while held */
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/gh/$dss_bill_id;\n"
    "        dss_bill_upstream_timeout 30s;\n"
    "    }\n"
    "    location /cs/ {\n" /* parked, then the status in the id */
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/gs/$dss_bill_id;\n"
    "        dss_bill_upstream_timeout 30s;\n"
    "    }\n"
    "    location /cmax/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_max_size 64k;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id?max;\n"
    "    }\n"
    "    location /climit/ {\n" /* /c/'s URL and zone, a lower limit */
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_max_size 64k;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id;\n"
    "    }\n"
    "    location /ct/ {\n" /* parked, with a short fetch timeout */
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/gh/$dss_bill_id?t;\n"
    "        dss_bill_upstream_timeout 2s;\n"
    "    }\n"
    "    location /raw/ {\n" /* fault_origin's fault routes */
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/$dss_bill_id;\n"
    "    }\n"
    "    location /rawsmall/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_max_size 1k;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/$dss_bill_id?small;\n"
    "    }\n"
    "    location /root/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "    }\n"
    "    location /e/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache small;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id?e;\n"
    "    }\n"
    "    location /i/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache brief;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id?i;\n"
    "    }\n"
    "    location /tiny/ {\n" /* a keys zone with room for few bills */
    "        dss_bill;\n"
    "        dss_bill_cache tiny;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id?tiny;\n"
    "    }\n"
    "    location /f/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache full;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id?f;\n"
    "    }\n"
    "    location /hreq/ {\n" /* same URL as /c/: shares its entries */
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id;\n"
    "        dss_bill_upstream_health_url http://127.0.0.1:%1$d/health;\n"
    "        dss_bill_health_interval 200ms;\n"
    "    }\n"
    "    location /hcache/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id;\n"
    "        dss_bill_upstream_health_url http://127.0.0.1:%1$d/health;\n"
    "        dss_bill_health_interval 200ms;\n"
    "        dss_bill_health_archive cache;\n"
    "    }\n"
    "}\n"
    /* a small send buffer: every bill larger than it leaves the worker in
     * several writes, as to a distant client */
    "server {\n"
    "    listen 127.0.0.1:@PORT2@ sndbuf=16k;\n"
    "    access_log @PREFIX@/logs/cache.log cache;\n"
    "    add_header X-Cache $dss_bill_cache_status always;\n"
    "    dss_bill_upstream_health_url off;\n"
    "    location /c/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id;\n"
    "    }\n"
    "    location /ch/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/gh/$dss_bill_id;\n"
    "        dss_bill_upstream_timeout 30s;\n"
    "    }\n"
    "}\n";

/* ---- fixtures ---------------------------------------------------------------
 */

static int setup(void **state) {
    (void)state;
    if (fault_origin_start(&a) != 0 || fault_origin_start(&b) != 0 ||
        dss_nginx_prepare(&nginx) != 0) {
        return -1;
    }
    fault_origin_set_tag(&a, "A");
    fault_origin_set_tag(&b, "B");
    nginx.workers = 2;
    return mkdir(dss_path(&nginx, "full"), 0755);
}

static int teardown(void **state) {
    (void)state;
    dss_nginx_stop(&nginx);
    if (ns.mounted) {
        umount2(dss_path(&nginx, "full"), MNT_DETACH);
        ns.mounted = 0;
    }
    dss_nginx_cleanup(&nginx);
    fault_origin_stop(&a);
    fault_origin_stop(&b);
    return 0;
}

static void start_nginx(void) {
    char *config = NULL;
    assert_true(asprintf(&config, module_config, a.port, b.port) > 0);
    int rc = dss_nginx_start(&nginx, config);
    free(config);
    assert_int_equal(rc, 0);
}

/* ---- requests and what they must carry -------------------------------------
 */

static dss_response get(const char *target) {
    dss_request_options o = {.plain_http = 1};
    return dss_request(&nginx, target, &o);
}

static dss_response get_with(const char *target, const char *const *headers,
                             const char *method) {
    dss_request_options o = {
        .plain_http = 1, .headers = headers, .method = method};
    return dss_request(&nginx, target, &o);
}

/* $dss_bill_cache_status as the response's X-Cache ("" when empty). */
static const char *cache_status(const dss_response *r) {
    const char *v = dss_header(r, "X-Cache");
    return v ? v : "";
}

/* The archive's path for a route and id, e.g. "/g/20000-x". */
static const char *origin_path(const char *route, const char *id,
                               const char *query) {
    static char out[4][256];
    static int next;
    char *p = out[next++ % 4];
    snprintf(p, sizeof(out[0]), "/%s/%s%s", route, id, query ? query : "");
    return p;
}

static int asked(fault_origin *o, const char *route, const char *id,
                 const char *query) {
    return fault_origin_path_requests(o, origin_path(route, id, query));
}

/* Checks that body (len bytes) is exactly what origin o sends for id; on a
 * difference says where and what was there instead (the tagged filler
 * names the bill and offset the stray bytes belong to). */
static void assert_bytes(const char *body, size_t len, fault_origin *o,
                         const char *id, const char *what) {
    size_t size = 0;
    char *bill = fault_origin_gen_bill(o, id, &size);
    assert_non_null(bill);
    if (len != size || memcmp(body, bill, size) != 0) {
        size_t at = 0;
        while (at < len && at < size && body[at] == bill[at]) {
            at++;
        }
        fail_msg("%s: %zu bytes, expected %zu of tenant %s's bill %s; first "
                 "difference at %zu: got \"%.40s\", expected \"%.40s\"",
                 what, len, size, o->tag, id, at, at < len ? body + at : "",
                 at < size ? bill + at : "");
    }
    free(bill);
}

/* A 200 with exactly tenant o's bill id, the contract's headers (D3) and
 * the cache status expected ("MISS", "HIT", or NULL: either). */
static void assert_bill(const dss_response *r, fault_origin *o,
                        const char *id, const char *status,
                        const char *what) {
    if (r->status != 200) {
        fail_msg("%s: status %ld (curl %d), expected 200 with bill %s", what,
                 r->status, r->curl_code, id);
    }
    assert_int_equal(r->curl_code, CURLE_OK);
    assert_bytes(r->body, r->body_len, o, id, what);
    char length[32];
    snprintf(length, sizeof(length), "%zu", r->body_len);
    const char *cl = dss_header(r, "Content-Length");
    if (cl == NULL || strcmp(cl, length) != 0) {
        fail_msg("%s: Content-Length %s, body %s", what, cl ? cl : "(none)",
                 length);
    }
    const char *ct = dss_header(r, "Content-Type");
    assert_non_null(ct);
    assert_string_equal(ct, "application/pdf");
    if (status && strcmp(cache_status(r), status) != 0) {
        fail_msg("%s: $dss_bill_cache_status \"%s\", expected \"%s\"", what,
                 cache_status(r), status);
    }
}

/* GET target and check it is tenant o's bill id. */
static void expect_bill(const char *target, fault_origin *o, const char *id,
                        const char *status) {
    dss_response r = get(target);
    assert_bill(&r, o, id, status, target);
    dss_response_free(&r);
}

static long expect_status(const char *target, long status) {
    dss_response r = get(target);
    if (r.status != status) {
        fail_msg("%s: status %ld, expected %ld (X-Cache \"%s\")", target,
                 r.status, status, cache_status(&r));
    }
    dss_response_free(&r);
    return r.status;
}

static const char *target(const char *location, const char *id) {
    static char out[4][256];
    static int next;
    char *p = out[next++ % 4];
    snprintf(p, sizeof(out[0]), "/%s/download/%s", location, id);
    return p;
}

/* "Writing" of stub_status: requests being answered now (itself too). */
static int requests_in_progress(void) {
    dss_response r = get("/status");
    const char *w = r.body ? strstr(r.body, "Writing: ") : NULL;
    int n = w ? atoi(w + 9) : -1;
    dss_response_free(&r);
    return n;
}

/* ---- the cache directory ----------------------------------------------------
 */

typedef struct {
    const char *needle; /* " <url>\n" (the key's end), or NULL */
    size_t needle_len;
    int matches;        /* files holding the needle */
    char path[PATH_MAX]; /* the last of them */
    long offset;        /* where its bill starts (the first byte after the
                           KEY line and the zeros up to a page boundary) */
    long size;          /* its size */
    long total;         /* bytes of all regular files */
    int files;          /* regular files */
    int bad_mode;       /* regular files not 0600 or not the workers' */
    int keyless;        /* regular files without a KEY line */
    uid_t owner;
} cache_scan;

static void scan_dir(const char *dir, cache_scan *s) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0) {
            continue; /* removed meanwhile (the cache manager) */
        }
        if (S_ISDIR(st.st_mode)) {
            scan_dir(path, s);
            continue;
        }
        s->files++;
        s->total += (long)st.st_size;
        if ((st.st_mode & 07777) != 0600 || !S_ISREG(st.st_mode) ||
            st.st_uid != s->owner) {
            s->bad_mode++;
        }
        size_t len = 0;
        char *text = dss_read_file(path, &len);
        if (text == NULL) {
            continue;
        }
        if (memmem(text, len, "\nKEY: ", 6) == NULL) {
            s->keyless++;
        }
        char *hit = s->needle ? memmem(text, len, s->needle, s->needle_len)
                              : NULL;
        if (hit) {
            s->matches++;
            snprintf(s->path, sizeof(s->path), "%s", path);
            /* the bill starts at the next page boundary (zeros between);
             * a bill starts with "%PDF-", never with a zero */
            size_t at = (size_t)(hit - text) + s->needle_len;
            while (at < len && text[at] == '\0') {
                at++;
            }
            s->offset = (long)at;
            s->size = (long)len;
        }
        free(text);
    }
    closedir(d);
}

static uid_t workers_uid(void) {
    struct passwd *pw = getpwnam("nobody");
    assert_non_null(pw);
    return pw->pw_uid;
}

static cache_scan scan(const char *rel, const char *url) {
    static char needle[600];
    cache_scan s;
    memset(&s, 0, sizeof(s));
    s.owner = workers_uid();
    if (url) {
        /* the key: 32 hex digits of who fetches how, a space, the URL */
        snprintf(needle, sizeof(needle), " %s\n", url);
        s.needle = needle;
        s.needle_len = strlen(needle);
    }
    scan_dir(dss_path(&nginx, rel), &s);
    return s;
}

static const char *url_of(fault_origin *o, const char *route, const char *id,
                          const char *query) {
    static char out[4][256];
    static int next;
    char *p = out[next++ % 4];
    snprintf(p, sizeof(out[0]), "http://127.0.0.1:%d%s", o->port,
             origin_path(route, id, query));
    return p;
}

/*
 * Polls (up to 10 s: the file may be written after the answer went out)
 * until the cache directory rel holds exactly one file for url whose bill
 * part is tenant o's bill id, byte for byte; returns the scan.
 */
static cache_scan await_entry(const char *rel, fault_origin *o,
                              const char *route, const char *id,
                              const char *query) {
    const char *url = url_of(o, route, id, query);
    size_t size = 0;
    char *bill = fault_origin_gen_bill(o, id, &size);
    assert_non_null(bill);
    long long deadline = dss_now_ms() + 10000;
    cache_scan s;
    for (;;) {
        s = scan(rel, url);
        if (s.matches == 1 && s.size - s.offset == (long)size) {
            size_t len = 0;
            char *text = dss_read_file(s.path, &len);
            int same = text && len == (size_t)s.size &&
                       memcmp(text + s.offset, bill, size) == 0;
            free(text);
            if (same) {
                break;
            }
        }
        if (dss_now_ms() > deadline) {
            fail_msg("no cache file in %s holding exactly the bill of %s "
                     "(files with its key: %d; the last: %s, %ld bytes, bill "
                     "at %ld, expected %zu bytes)",
                     rel, url, s.matches, s.path, s.size, s.offset, size);
        }
        dss_poll_pause();
    }
    free(bill);
    /* sendfile() from a page boundary: from anywhere else the bill's last
     * segment waits for the client's delayed ACK (tcp_nopush) */
    if (s.offset % 4096 != 0) {
        fail_msg("%s: the bill starts at %ld in its cache file, not on a "
                 "page boundary", s.path, s.offset);
    }
    return s;
}

/* ---- concurrent clients -----------------------------------------------------
 */

typedef dss_job job;

/* Starts n clients, each GET <target i>; join_jobs waits for them. */
static job *start_jobs_on(int port, long max_speed, int n,
                          const char *(*target_of)(int i, void *),
                          void *arg) {
    dss_response warm = get("/status"); /* curl_global_init, once */
    dss_response_free(&warm);
    job *jobs = calloc((size_t)n, sizeof(job));
    assert_non_null(jobs);
    for (int i = 0; i < n; i++) {
        snprintf(jobs[i].url, sizeof(jobs[i].url), "http://127.0.0.1:%d%s",
                 port, target_of(i, arg));
        jobs[i].max_speed = max_speed;
        jobs[i].timeout_ms = max_speed ? 15000 : 0;
        dss_job_start(&jobs[i]);
    }
    return jobs;
}

static job *start_jobs(int n, const char *(*target_of)(int i, void *),
                       void *arg) {
    return start_jobs_on(nginx.port, 0, n, target_of, arg);
}

static void join_jobs(job *jobs, int n) {
    for (int i = 0; i < n; i++) {
        dss_job_join(&jobs[i]);
    }
}

static void free_jobs(job *jobs, int n) {
    for (int i = 0; i < n; i++) {
        free(jobs[i].body);
    }
    free(jobs);
}

static const char *same_target(int i, void *arg) {
    (void)i;
    return arg;
}

/*
 * Polls until n clients' requests are inside nginx (stub_status "Writing",
 * which counts the status request too) and the one fetch is parked at the
 * archive; fails after 30 s.
 */
static void await_parked(fault_origin *o, int n) {
    long long deadline = dss_now_ms() + 30000;
    int writing = 0, held = 0;
    while ((writing = requests_in_progress()) < n + 1 ||
           (held = fault_origin_held(o)) < 1) {
        if (dss_now_ms() > deadline) {
            fail_msg("after 30 s: %d requests in nginx (expected %d), %d "
                     "parked at the archive",
                     writing - 1, n, held);
        }
        dss_poll_pause();
    }
}

/* The access log's lines for id: how many had each cache status, and how
 * many distinct workers answered. */
typedef struct {
    int lines, miss, hit, other, workers;
} log_tally;

static log_tally tally(const char *id) {
    log_tally t = {0};
    size_t len;
    char *text = dss_read_file(dss_path(&nginx, "logs/cache.log"), &len);
    long pids[16];
    int npids = 0;
    for (char *line = text; line && *line;) {
        char *end = strchr(line, '\n');
        if (end) {
            *end = '\0';
        }
        long pid;
        int status;
        char cache[32], bill[128];
        if (sscanf(line, "%ld %d [%31[^]]] %127s", &pid, &status, cache,
                   bill) == 4 ||
            (sscanf(line, "%ld %d [] %127s", &pid, &status, bill) == 3 &&
             (cache[0] = '\0', 1))) {
            if (strcmp(bill, id) == 0) {
                t.lines++;
                t.miss += strcmp(cache, "MISS") == 0;
                t.hit += strcmp(cache, "HIT") == 0;
                t.other += strcmp(cache, "MISS") != 0 &&
                           strcmp(cache, "HIT") != 0;
                int known = 0;
                for (int i = 0; i < npids; i++) {
                    known |= pids[i] == pid;
                }
                if (!known && npids < 16) {
                    pids[npids++] = pid;
                }
            }
        }
        line = end ? end + 1 : NULL;
    }
    free(text);
    t.workers = npids;
    return t;
}

/* ---- 1. a hit is the archive's bill, byte for byte, with the same headers --
 */

static int same_header(const dss_response *x, const dss_response *y,
                       const char *name) {
    char first[4096];
    const char *v = dss_header(x, name);
    snprintf(first, sizeof(first), "%s", v ? v : "(none)");
    v = dss_header(y, name);
    return strcmp(first, v ? v : "(none)") == 0;
}

/* The response's header names, lower case, sorted by appearance, without
 * Date and X-Cache. */
static void header_names(const dss_response *r, char *out, size_t cap) {
    out[0] = '\0';
    size_t used = 0;
    for (const char *line = strstr(r->headers, "\r\n"); line && line[2];
         line = strstr(line + 2, "\r\n")) {
        const char *colon = strchr(line + 2, ':');
        const char *eol = strstr(line + 2, "\r\n");
        if (colon == NULL || (eol && colon > eol)) {
            continue;
        }
        int n = (int)(colon - (line + 2));
        if ((n == 4 && strncasecmp(line + 2, "date", 4) == 0) ||
            (n == 7 && strncasecmp(line + 2, "x-cache", 7) == 0)) {
            continue;
        }
        used += (size_t)snprintf(out + used, cap - used, "%.*s,", n, line + 2);
        if (used >= cap) {
            break;
        }
    }
    for (char *p = out; *p; p++) {
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    }
}

static void test_D3_D9_hit_is_the_archives_bill_with_the_same_headers(
    void **state) {
    (void)state;
    /* 10000 bytes arrive in memory, the others in a temporary file; the
     * last is exactly dss_bill_max_size */
    static const char *const ids[] = {"10000-hit", "300000-hit",
                                      "5242880-hit"};
    for (size_t k = 0; k < 3; k++) {
        size_t size;
        char *bill = fault_origin_gen_bill(&a, ids[k], &size);
        char rel[128];
        snprintf(rel, sizeof(rel), "bills/%s.pdf", ids[k]);
        dss_write_file(dss_path(&nginx, rel), bill, size);
        free(bill);
    }
    start_nginx();

    /* a HEAD as the first view: the length, and no empty entry behind */
    const char *head_id = "20000-headfirst";
    dss_response h = get_with(target("c", head_id), NULL, "HEAD");
    assert_int_equal(h.status, 200);
    assert_int_equal(h.body_len, 0);
    assert_string_equal(dss_header(&h, "Content-Length"), "20000");
    dss_response_free(&h);
    expect_bill(target("c", head_id), &a, head_id, NULL);
    expect_bill(target("c", head_id), &a, head_id, "HIT");

    for (size_t k = 0; k < 3; k++) {
        const char *id = ids[k];
        dss_response miss = get(target("c", id));
        assert_bill(&miss, &a, id, "MISS", "first view");
        assert_int_equal(asked(&a, "g", id, NULL), 1);
        /* the file on disk holds exactly the bill, after nginx's header */
        await_entry("cache", &a, "g", id, NULL);

        dss_response hit = get(target("c", id));
        assert_bill(&hit, &a, id, "HIT", "second view");
        assert_int_equal(asked(&a, "g", id, NULL), 1);

        /* the document root's answer for the same bytes: the reference */
        dss_response root = get(target("root", id));
        assert_bill(&root, &a, id, "", "document root");

        static const char *const same[] = {
            "Content-Type",           "Content-Length", "Cache-Control",
            "X-Content-Type-Options", "Content-Disposition",
            "Content-Encoding",       "Accept-Ranges",  "Last-Modified",
            "ETag",                   "Expires"};
        for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
            if (!same_header(&hit, &root, same[i]) ||
                !same_header(&miss, &root, same[i])) {
                fail_msg("%s: header %s differs: document root \"%s\"", id,
                         same[i], dss_header(&root, same[i]));
            }
        }
        assert_string_equal(dss_header(&hit, "Cache-Control"),
                            "private, no-store");
        assert_string_equal(dss_header(&hit, "X-Content-Type-Options"),
                            "nosniff");
        char names_hit[2048], names_root[2048];
        header_names(&hit, names_hit, sizeof(names_hit));
        header_names(&root, names_root, sizeof(names_root));
        if (strcmp(names_hit, names_root) != 0) {
            fail_msg("%s: a hit's headers \"%s\", the document root's \"%s\"",
                     id, names_hit, names_root);
        }
        dss_response_free(&miss);
        dss_response_free(&hit);
        dss_response_free(&root);

        /* D3 on a hit: no range, no 304, no compression */
        static const char *const hostile[] = {
            "Range: bytes=0-99",
            "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT",
            "If-None-Match: *",
            "If-Range: *",
            "Accept-Encoding: gzip, deflate, br",
            NULL};
        dss_response r = get_with(target("c", id), hostile, NULL);
        assert_bill(&r, &a, id, "HIT", "hit with Range and conditionals");
        assert_null(dss_header(&r, "Content-Range"));
        assert_null(dss_header(&r, "Content-Encoding"));
        dss_response_free(&r);

        /* HEAD on a hit: the length, no body */
        r = get_with(target("c", id), NULL, "HEAD");
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body_len, 0);
        char length[32];
        snprintf(length, sizeof(length), "%d", atoi(id));
        assert_string_equal(dss_header(&r, "Content-Length"), length);
        dss_response_free(&r);
        assert_int_equal(asked(&a, "g", id, NULL), 1);
    }
}

/* ---- 2. 100 concurrent first views: one archive fetch, across workers ------
 */

static void test_cache_100_concurrent_first_views_fetch_once_across_workers(
    void **state) {
    (void)state;
    const char *id = "200000-crowd";
    start_nginx();
    expect_bill(target("c", "20000-bystander"), &a, "20000-bystander", NULL);
    await_entry("cache", &a, "g", "20000-bystander", NULL);
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 1);
    job *jobs = start_jobs(100, same_target, (void *)target("ch", id));
    await_parked(&a, 100);
    int during = asked(&a, "gh", id, NULL);
    int parked = fault_origin_held(&a);
    /* T5: 100 waiters delay nobody else: a cached bill and a new one */
    long long t0 = dss_now_ms();
    expect_bill(target("c", "20000-bystander"), &a, "20000-bystander", "HIT");
    long long hit_ms = dss_now_ms() - t0;
    t0 = dss_now_ms();
    expect_bill(target("c", "20000-passerby"), &a, "20000-passerby", "MISS");
    long long miss_ms = dss_now_ms() - t0;
    print_message("while 100 wait: another bill's hit %lld ms, miss %lld "
                  "ms\n",
                  hit_ms, miss_ms);
    assert_true(hit_ms < 2000 && miss_ms < 2000);
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 0);
    join_jobs(jobs, 100);

    int ok = 0;
    for (int i = 0; i < 100; i++) {
        if (jobs[i].status != 200) {
            fail_msg("client %d: status %ld (curl %d), X-Cache \"%s\"", i,
                     jobs[i].status, jobs[i].curl_code, jobs[i].cache);
        }
        assert_bytes(jobs[i].body, jobs[i].len, &a, id, "concurrent view");
        ok++;
    }
    free_jobs(jobs, 100);
    /* a worker writes the access log line after the response went out:
     * polled until the 100 lines are there (10 s) */
    log_tally t = tally(id);
    for (long long end = dss_now_ms() + 10000;
         t.lines < 100 && dss_now_ms() < end; t = tally(id)) {
        dss_poll_pause();
    }
    print_message("100 concurrent first views: %d archive requests (%d while "
                  "parked, %d parked at once), %d answered 200 with the "
                  "bill; access log: %d MISS, %d HIT, %d other, %d workers\n",
                  asked(&a, "gh", id, NULL), during, parked, ok, t.miss,
                  t.hit, t.other, t.workers);
    assert_int_equal(asked(&a, "gh", id, NULL), 1);
    assert_int_equal(t.lines, 100);
    assert_int_equal(t.miss, 1);
    assert_int_equal(t.hit, 99);
    /* the point of the test: the waiters were in both workers */
    assert_true(t.workers >= 2);
    /* and the bill is now served from the cache */
    expect_bill(target("ch", id), &a, id, "HIT");
    assert_int_equal(asked(&a, "gh", id, NULL), 1);
}

/* The client whose request is fetching goes away while 10 others wait for
 * that fetch: the waiters still get the bill. */
static void test_cache_waiters_served_when_the_fetching_client_goes_away(
    void **state) {
    (void)state;
    const char *id = "200000-gone";
    start_nginx();
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)nginx.port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    char request[256];
    snprintf(request, sizeof(request),
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
             target("ch", id));
    assert_int_equal(dss_send_all(fd, request, strlen(request)), 0);
    long long deadline = dss_now_ms() + 10000;
    while (fault_origin_held(&a) < 1) {
        assert_true(dss_now_ms() < deadline);
        dss_poll_pause();
    }
    job *jobs = start_jobs(10, same_target, (void *)target("ch", id));
    await_parked(&a, 11);
    close(fd); /* the fetching client is gone */

    /* a cancelled fetch is started again by a waiter (up to 3 s) */
    deadline = dss_now_ms() + 3000;
    while (asked(&a, "gh", id, NULL) < 2 && dss_now_ms() < deadline) {
        dss_poll_pause();
    }
    int before_release = asked(&a, "gh", id, NULL);
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 0);
    join_jobs(jobs, 10);
    for (int i = 0; i < 10; i++) {
        if (jobs[i].status != 200) {
            fail_msg("waiter %d: status %ld (curl %d, X-Cache \"%s\") after "
                     "the fetching client went away",
                     i, jobs[i].status, jobs[i].curl_code, jobs[i].cache);
        }
        assert_bytes(jobs[i].body, jobs[i].len, &a, id, "waiter");
    }
    free_jobs(jobs, 10);
    print_message("fetching client gone: %d archive requests before the "
                  "release, %d in all; 10 waiters served\n",
                  before_release, asked(&a, "gh", id, NULL));
    assert_true(asked(&a, "gh", id, NULL) <= 2);
    expect_bill(target("ch", id), &a, id, "HIT");
}

/* A client that reads slowly, behind a small send buffer (the second
 * server): the bill leaves the worker in many writes, from a hit, from a
 * miss and to the waiters of a collapsed fetch; each gets all of it. */
static void slow_views(const char *loc, const char *id, int n,
                       const char *status, const char *what) {
    job *jobs = start_jobs_on(nginx.port2, 1024 * 1024, n, same_target,
                              (void *)target(loc, id));
    if (strcmp(loc, "ch") == 0) {
        await_parked(&a, n);
        fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 0);
    }
    join_jobs(jobs, n);
    for (int i = 0; i < n; i++) {
        if (jobs[i].status != 200 || jobs[i].curl_code != CURLE_OK) {
            fail_msg("%s, client %d: status %ld, curl %d after %zu bytes "
                     "(X-Cache \"%s\")",
                     what, i, jobs[i].status, jobs[i].curl_code, jobs[i].len,
                     jobs[i].cache);
        }
        assert_bytes(jobs[i].body, jobs[i].len, &a, id, what);
        if (status && strcmp(jobs[i].cache, status) != 0 &&
            !(n > 1 && strcmp(jobs[i].cache, "MISS") == 0)) {
            fail_msg("%s: X-Cache \"%s\", expected %s", what, jobs[i].cache,
                     status);
        }
    }
    free_jobs(jobs, n);
}

static void test_D3_D8_slow_client_gets_the_whole_bill_from_the_cache(
    void **state) {
    (void)state;
    start_nginx();
    slow_views("c", "400000-slow", 1, "MISS", "slow client, miss");
    await_entry("cache", &a, "g", "400000-slow", NULL);
    slow_views("c", "400000-slow", 1, "HIT", "slow client, hit");
    slow_views("c", "400000-slow", 3, "HIT", "3 slow clients, hits");
    assert_int_equal(asked(&a, "g", "400000-slow", NULL), 1);
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 1);
    slow_views("ch", "400000-slowcrowd", 5, "HIT",
               "5 slow clients, one fetch");
    assert_int_equal(asked(&a, "gh", "400000-slowcrowd", NULL), 1);
}

/* Concurrent first views of 40 different bills (same size), then 40
 * concurrent hits: each client gets its own bill (D9). */
static const char *distinct_target(int i, void *arg) {
    (void)arg;
    static char out[64][64];
    snprintf(out[i % 64], sizeof(out[0]), "/c/download/30000-many%d", i);
    return out[i % 64];
}

static void test_D9_concurrent_views_of_different_bills_get_their_own(
    void **state) {
    (void)state;
    start_nginx();
    for (int round = 0; round < 2; round++) {
        job *jobs = start_jobs(40, distinct_target, NULL);
        join_jobs(jobs, 40);
        for (int i = 0; i < 40; i++) {
            char id[32];
            snprintf(id, sizeof(id), "30000-many%d", i);
            if (jobs[i].status != 200) {
                fail_msg("round %d, %s: status %ld (curl %d)", round, id,
                         jobs[i].status, jobs[i].curl_code);
            }
            assert_bytes(jobs[i].body, jobs[i].len, &a, id,
                         round ? "concurrent hit" : "concurrent miss");
            if (round == 0) {
                /* wait for the entry: the second round must be hits */
                await_entry("cache", &a, "g", id, NULL);
            } else {
                assert_string_equal(jobs[i].cache, "HIT");
                assert_int_equal(asked(&a, "g", id, NULL), 1);
            }
        }
        free_jobs(jobs, 40);
    }
}

/* ---- 3. collapsed failure: every waiter gets the archive's status ----------
 */

static void crowd_fails(int archive_status, long expected) {
    char id[32];
    snprintf(id, sizeof(id), "%d-crowd", archive_status);
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 1);
    job *jobs = start_jobs(20, same_target, (void *)target("cs", id));
    await_parked(&a, 20);
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 0);
    long long released = dss_now_ms();
    join_jobs(jobs, 20);
    long long took = dss_now_ms() - released;
    int fetches = asked(&a, "gs", id, NULL);
    int right = 0;
    for (int i = 0; i < 20; i++) {
        right += jobs[i].status == expected;
    }
    print_message("20 concurrent views, archive %d: %d answered %ld, %d "
                  "archive requests, all answered %lld ms after release\n",
                  archive_status, right, expected, fetches, took);
    for (int i = 0; i < 20; i++) {
        if (jobs[i].status != expected) {
            fail_msg("archive %d: client %d got %ld (curl %d, X-Cache "
                     "\"%s\"), expected %ld",
                     archive_status, i, jobs[i].status, jobs[i].curl_code,
                     jobs[i].cache, expected);
        }
    }
    free_jobs(jobs, 20);
    assert_int_equal(fetches, 1);
    /* a failed fetch never leaves a file */
    assert_int_equal(scan("cache", url_of(&a, "gs", id, NULL)).matches, 0);

    /* the failure is remembered briefly, not for ever: a later request
     * asks the archive again (bounded poll, 10 s) */
    long long from = dss_now_ms();
    while (asked(&a, "gs", id, NULL) < 2) {
        expect_status(target("cs", id), expected);
        if (dss_now_ms() - from > 10000) {
            fail_msg("archive %d: no new archive request within 10 s: the "
                     "failure is cached",
                     archive_status);
        }
        dss_poll_pause();
    }
    print_message("archive %d: asked again %lld ms after the failure\n",
                  archive_status, dss_now_ms() - from);
}

static void test_D5_D6_collapsed_failure_every_waiter_gets_the_status(
    void **state) {
    (void)state;
    start_nginx();
    crowd_fails(404, 404);
    crowd_fails(500, 500);
}

/* An archive error is not served from a cache: once the archive is back,
 * the bill is fetched again within seconds (bounded poll, 10 s). */
static void test_D6_archive_error_is_not_kept(void **state) {
    (void)state;
    const char *id = "30000-flaky";
    start_nginx();
    fault_origin_outage(&a, FAULT_ORIGIN_OUTAGE_500);
    expect_status(target("c", id), 500);
    fault_origin_outage(&a, FAULT_ORIGIN_OUTAGE_NONE);
    long long from = dss_now_ms();
    for (;;) {
        dss_response r = get(target("c", id));
        if (r.status == 200) {
            assert_bill(&r, &a, id, "MISS", "after the archive recovered");
            dss_response_free(&r);
            break;
        }
        assert_int_equal(r.status, 500);
        dss_response_free(&r);
        if (dss_now_ms() - from > 10000) {
            fail_msg("still 500 10 s after the archive recovered");
        }
        dss_poll_pause();
    }
    print_message("archive error remembered for %lld ms\n",
                  dss_now_ms() - from);
    expect_bill(target("c", id), &a, id, "HIT");
}

/* ---- 4. tenants: two archives, one zone, the same id -----------------------
 */

static void tenants_in_order(const char *id, fault_origin *first,
                             const char *first_loc, fault_origin *second,
                             const char *second_loc) {
    int files = scan("cache", NULL).files;
    expect_bill(target(first_loc, id), first, id, "MISS");
    /* the first tenant's entry is on disk (whatever its key) */
    long long deadline = dss_now_ms() + 10000;
    while (scan("cache", NULL).files < files + 1) {
        if (dss_now_ms() > deadline) {
            fail_msg("%s: no new cache file after the first view", id);
        }
        dss_poll_pause();
    }
    /* the other tenant's first view must get its own bill */
    expect_bill(target(second_loc, id), second, id, NULL);
    expect_bill(target(second_loc, id), second, id, NULL);
    for (int i = 0; i < 2; i++) {
        expect_bill(target(first_loc, id), first, id, NULL);
        expect_bill(target(second_loc, id), second, id, NULL);
    }
    /* and from its own archive, cached under its own key */
    assert_int_equal(asked(first, "g", id, NULL), 1);
    assert_int_equal(asked(second, "g", id, NULL), 1);
    await_entry("cache", first, "g", id, NULL);
    await_entry("cache", second, "g", id, NULL);
    expect_bill(target(first_loc, id), first, id, "HIT");
    expect_bill(target(second_loc, id), second, id, "HIT");
}

static void test_D9_tenants_with_different_archives_never_share_entries(
    void **state) {
    (void)state;
    start_nginx();
    tenants_in_order("40000-same", &a, "c", &b, "tb");
    tenants_in_order("40000-same2", &b, "tb", &a, "c");
    /* and concurrently, both tenants' first views of one more id */
    const char *id = "40000-same3";
    char ta[128], tb[128];
    snprintf(ta, sizeof(ta), "%s", target("c", id));
    snprintf(tb, sizeof(tb), "%s", target("tb", id));
    job *ja = start_jobs(10, same_target, ta);
    job *jb = start_jobs(10, same_target, tb);
    join_jobs(ja, 10);
    join_jobs(jb, 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(ja[i].status, 200);
        assert_int_equal(jb[i].status, 200);
        assert_bytes(ja[i].body, ja[i].len, &a, id, "tenant A, concurrent");
        assert_bytes(jb[i].body, jb[i].len, &b, id, "tenant B, concurrent");
    }
    free_jobs(ja, 10);
    free_jobs(jb, 10);
    expect_bill(target("c", id), &a, id, "HIT");
    expect_bill(target("tb", id), &b, id, "HIT");
    /* tenant A's file copied over tenant B's entry (same id, same size,
     * a key of the same length): B must not get A's bill */
    cache_scan fa = await_entry("cache", &a, "g", "40000-same", NULL);
    cache_scan fb = await_entry("cache", &b, "g", "40000-same", NULL);
    size_t len = 0;
    char *text = dss_read_file(fa.path, &len);
    assert_non_null(text);
    int fd = open(fb.path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    free(text);
    expect_bill(target("tb", "40000-same"), &b, "40000-same", NULL);
    expect_bill(target("c", "40000-same"), &a, "40000-same", "HIT");

    /* same URL, same zone (/hreq/ and /c/): one entry, shared */
    expect_bill(target("hreq", "40000-same"), &a, "40000-same", "HIT");
    assert_int_equal(asked(&a, "g", "40000-same", NULL), 1);
}

/* The same URL reached as different archive clients (an API key, a Basic
 * user): the archive may answer each with another bill, so they never
 * share an entry, in any order. */
static void assert_client_bill(const char *loc, const char *id,
                               const char *client, const char *what) {
    dss_response r = get(target(loc, id));
    size_t size = 0;
    char *bill = fault_origin_gen_bill_for(&a, id, client, &size);
    assert_non_null(bill);
    if (r.status != 200 || r.body_len != size ||
        memcmp(r.body, bill, size) != 0) {
        fail_msg("%s %s (%s): status %ld, %zu bytes, X-Cache \"%s\"; starts "
                 "\"%.60s\", expected \"%.60s\"",
                 loc, id, what, r.status, r.body_len, cache_status(&r),
                 r.body && r.body_len > 16 ? r.body + 16 : "", bill + 16);
    }
    free(bill);
    dss_response_free(&r);
}

static void test_D9_archive_clients_never_share_entries(void **state) {
    (void)state;
    static const struct {
        const char *loc, *client;
    } clients[] = {
        {"c", NULL},
        {"k1", "key=k1,auth="},
        {"k2", "key=k2,auth="},
        {"u1", "key=,auth=Basic dTE6cHc="}, /* u1:pw */
        {"u2", "key=,auth=Basic dTI6cHc="}, /* u2:pw */
    };
    const int n = (int)(sizeof(clients) / sizeof(clients[0]));
    start_nginx();
    /* round 1 in one order, round 2 in the reverse, each on a fresh id;
     * every view is checked twice (miss, then whatever is cached) */
    static const char *const ids[] = {"30000-client1", "30000-client2"};
    for (int round = 0; round < 2; round++) {
        for (int k = 0; k < n; k++) {
            int i = round == 0 ? k : n - 1 - k;
            int files = scan("cache", NULL).files;
            assert_client_bill(clients[i].loc, ids[round], clients[i].client,
                               "first view");
            long long deadline = dss_now_ms() + 10000;
            while (scan("cache", NULL).files < files + 1) {
                if (dss_now_ms() > deadline) {
                    fail_msg("%s: no new cache file", clients[i].loc);
                }
                dss_poll_pause();
            }
        }
        for (int i = 0; i < n; i++) {
            assert_client_bill(clients[i].loc, ids[round], clients[i].client,
                               "cached");
        }
        assert_int_equal(asked(&a, "g", ids[round], NULL), n);
    }
    /* the same client in another location: its own bill (shared or not) */
    dss_response r = get(target("k1b", ids[0]));
    const char *shared = cache_status(&r);
    print_message("same URL, same API key, another location: %s\n",
                  strcmp(shared, "HIT") == 0 ? "shares the entry (HIT)"
                                             : shared);
    dss_response_free(&r);
    assert_client_bill("k1b", ids[0], "key=k1,auth=", "same client");
}

/* ---- 5. a corrupt cache file is fetched again, never served ----------------
 */

typedef enum { CUT_TAIL, BAD_SIGNATURE, OVER_LIMIT, EMPTIED } corruption;

static void corrupt(const cache_scan *s, corruption how) {
    int fd = open(s->path, O_WRONLY);
    assert_true(fd >= 0);
    switch (how) {
    case CUT_TAIL: /* %%EOF gone */
        assert_int_equal(ftruncate(fd, s->size - 100), 0);
        break;
    case BAD_SIGNATURE:
        assert_int_equal(pwrite(fd, "%PDX-", 5, s->offset), 5);
        break;
    case OVER_LIMIT: { /* still a complete PDF, but 70,000+ bytes */
        char *more = malloc(10000);
        assert_non_null(more);
        memset(more, 'z', 10000);
        memcpy(more + 10000 - 7, "\n%%EOF\n", 7);
        assert_int_equal(pwrite(fd, more, 10000, s->size), 10000);
        free(more);
        break;
    }
    case EMPTIED:
        assert_int_equal(ftruncate(fd, s->offset), 0);
        break;
    }
    close(fd);
}

static void corrupt_and_refetch(const char *loc, const char *id,
                                const char *query, corruption how) {
    expect_bill(target(loc, id), &a, id, "MISS");
    cache_scan s = await_entry("cache", &a, "g", id, query);
    expect_bill(target(loc, id), &a, id, "HIT");
    assert_int_equal(asked(&a, "g", id, query), 1);

    corrupt(&s, how);
    /* whichever worker answers: the archive's bill, fetched again */
    expect_bill(target(loc, id), &a, id, "MISS");
    assert_int_equal(asked(&a, "g", id, query), 2);
    char quoted[PATH_MAX + 2];
    snprintf(quoted, sizeof(quoted), "\"%s\"", s.path);
    if (dss_error_log_count(&nginx, quoted) < 1) {
        fail_msg("%s: the error log does not name the corrupt file %s", id,
                 quoted);
    }
    /* a good entry replaces it, and it is a hit again */
    await_entry("cache", &a, "g", id, query);
    expect_bill(target(loc, id), &a, id, "HIT");
    assert_int_equal(asked(&a, "g", id, query), 2);
}

/* ---- metrics (issue 11 for the cache) -------------------------------------
 */

/* The value of one series (name with its labels, as exposed), or -1. */
static long long metric(const char *series) {
    dss_response r = get("/metrics");
    assert_int_equal(r.status, 200);
    long long value = -1;
    size_t n = strlen(series);
    const char *p = r.body;
    while (p && *p) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            value = strtoll(p + n + 1, NULL, 10);
            break;
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    dss_response_free(&r);
    return value;
}

/* Polls (10 s) until series reaches want; returns its last value. */
static long long await_metric(const char *series, long long want) {
    long long deadline = dss_now_ms() + 10000, value;
    while ((value = metric(series)) != want && dss_now_ms() < deadline) {
        dss_poll_pause();
    }
    return value;
}

/* Hits, misses, stores, unusable files and the bytes served from the cache
 * are counted exactly across both workers; each zone's size, max_size and
 * entries are there. */
static void test_cache_metrics_count_exactly(void **state) {
    (void)state;
    start_nginx();
    const char *id = "40000-counted";
    long long hits = metric("dss_bill_cache_hits_total");
    long long misses = metric("dss_bill_cache_misses_total");
    long long stores = metric("dss_bill_cache_stores_total");
    long long unusable = metric("dss_bill_cache_unusable_total");
    long long bytes = metric("dss_bill_response_bytes_total{source=\"cache\"}");
    assert_true(hits >= 0 && misses >= 0 && stores >= 0 && unusable >= 0 &&
                bytes >= 0);

    expect_bill(target("c", id), &a, id, "MISS");
    cache_scan s = await_entry("cache", &a, "g", id, NULL);
    for (int i = 0; i < 3; i++) {
        expect_bill(target("c", id), &a, id, "HIT");
    }
    corrupt(&s, CUT_TAIL);
    expect_bill(target("c", id), &a, id, "MISS");
    await_entry("cache", &a, "g", id, NULL);
    expect_bill(target("c", id), &a, id, "HIT");

    assert_int_equal(metric("dss_bill_cache_hits_total"), hits + 4);
    assert_int_equal(metric("dss_bill_cache_misses_total"), misses + 2);
    assert_int_equal(metric("dss_bill_cache_stores_total"), stores + 2);
    assert_int_equal(metric("dss_bill_cache_unusable_total"), unusable + 1);
    /* the bytes are counted in the log phase, after the response went out,
     * and the other worker may answer the scrape before it: polled */
    assert_int_equal(
        await_metric("dss_bill_response_bytes_total{source=\"cache\"}",
                     bytes + 4 * 40000),
        bytes + 4 * 40000);
    assert_true(metric("dss_bill_cache_entries{zone=\"bills\"}") >= 1);
    assert_true(metric("dss_bill_cache_size_bytes{zone=\"bills\"}") >= 40000);
    assert_int_equal(metric("dss_bill_cache_max_size_bytes{zone=\"small\"}"),
                     2 * 1024 * 1024);
    assert_int_equal(metric("dss_bill_cache_max_size_bytes{zone=\"brief\"}"),
                     0);
}

static void test_D8_corrupt_cache_file_is_fetched_again_never_served(
    void **state) {
    (void)state;
    start_nginx();
    corrupt_and_refetch("c", "50000-tail", NULL, CUT_TAIL);
    corrupt_and_refetch("c", "50000-signature", NULL, BAD_SIGNATURE);
    corrupt_and_refetch("cmax", "60000-grown", "?max", OVER_LIMIT);
    corrupt_and_refetch("c", "50000-emptied", NULL, EMPTIED);
    print_message("unusable cache file lines: %d\n",
                  dss_error_log_count(&nginx, "is unusable"));
}

/* D4 on a hit: a location with a lower dss_bill_max_size that shares the
 * URL and the zone never serves the larger cached bill. */
static void test_D4_hit_over_the_locations_limit_is_500(void **state) {
    (void)state;
    const char *id = "100000-limit";
    start_nginx();
    expect_bill(target("c", id), &a, id, "MISS");
    await_entry("cache", &a, "g", id, NULL);
    expect_bill(target("c", id), &a, id, "HIT");
    for (int i = 0; i < 2; i++) {
        dss_response r = get(target("climit", id));
        if (r.status != 500) {
            fail_msg("a 100000-byte cached bill through a 64k location: %ld, "
                     "%zu bytes (X-Cache \"%s\")",
                     r.status, r.body_len, cache_status(&r));
        }
        dss_response_free(&r);
    }
    /* the location with room still gets it. Observed: the 64k location's
     * hit check removed the shared entry and its refetch failed, and that
     * failure is remembered in the keys zone, so /c/ answers 500 for a
     * second or two (polled here, 10 s bound, and reported) */
    long long t0 = dss_now_ms();
    int asked_before = asked(&a, "g", id, NULL);
    for (;;) {
        dss_response r = get(target("c", id));
        if (r.status == 200) {
            assert_bill(&r, &a, id, NULL, "the location with room");
            dss_response_free(&r);
            break;
        }
        dss_response_free(&r);
        if (dss_now_ms() - t0 > 10000) {
            fail_msg("/c/ still cannot serve %s 10 s after /climit/ refused "
                     "it",
                     id);
        }
        dss_poll_pause();
    }
    print_message("after the 64k location refused the cached bill: the 5m "
                  "location answered 500 for %lld ms; archive requests %d "
                  "before, %d after\n",
                  dss_now_ms() - t0, asked_before, asked(&a, "g", id, NULL));
    await_entry("cache", &a, "g", id, NULL);
    expect_bill(target("c", id), &a, id, "HIT");
}

/* T4: requests waiting for another request's fetch never wait longer than
 * that fetch may take (dss_bill_upstream_timeout 2s here): they get 500. */
static void test_T4_waiters_wait_no_longer_than_the_fetch_timeout(
    void **state) {
    (void)state;
    const char *id = "20000-stuck";
    start_nginx();
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 1);
    long long t0 = dss_now_ms();
    job *jobs = start_jobs(10, same_target, (void *)target("ct", id));
    join_jobs(jobs, 10);
    long long took = dss_now_ms() - t0;
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 0);
    for (int i = 0; i < 10; i++) {
        if (jobs[i].status != 500) {
            fail_msg("client %d: %ld (curl %d), expected 500", i,
                     jobs[i].status, jobs[i].curl_code);
        }
    }
    free_jobs(jobs, 10);
    print_message("10 views of a bill the archive never sends (timeout 2 s): "
                  "all 500 within %lld ms, %d archive request(s)\n",
                  took, asked(&a, "gh", id, "?t"));
    /* 2 s for the fetch, the waiters' 500 ms polls, a busy machine; DSS
     * gives up at 5 s */
    assert_true(took < 4500);
    assert_int_equal(asked(&a, "gh", id, "?t"), 1);
    assert_int_equal(scan("cache", url_of(&a, "gh", id, "?t")).matches, 0);
}

/* ---- only complete, valid bills enter the cache (D8) -----------------------
 */

static void test_D8_only_complete_valid_bills_enter_the_cache(void **state) {
    (void)state;
    start_nginx();
    static const struct {
        const char *loc, *id, *query;
        long status;
    } cases[] = {
        {"raw", "html-v1", NULL, 500},        /* 200, not a PDF */
        {"raw", "cut-close-v2", NULL, 500},   /* 200, no %%EOF (close) */
        {"raw", "short-v3", NULL, 500},       /* fewer bytes than announced */
        {"raw", "status-404-v4", NULL, 404},  /* no bill */
        {"raw", "status-500-v5", NULL, 500},  /* archive error */
        {"raw", "status-503-v6", NULL, 500},  /* archive error */
        {"rawsmall", "ok-v7", "?small", 500}, /* over dss_bill_max_size */
        {"raw", "empty-v8", NULL, 500},       /* 200 with nothing */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "/%s%s", cases[i].id,
                 cases[i].query ? cases[i].query : "");
        for (int k = 0; k < 2; k++) {
            dss_response r = get(target(cases[i].loc, cases[i].id));
            if (r.status != cases[i].status) {
                fail_msg("%s: %ld, expected %ld (X-Cache \"%s\")",
                         cases[i].id, r.status, cases[i].status,
                         cache_status(&r));
            }
            dss_response_free(&r);
        }
        char url[256];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", a.port, path);
        assert_int_equal(scan("cache", url).matches, 0);
        assert_true(fault_origin_path_requests(&a, path) >= 1);
    }
    /* nothing at all entered: no entry, no temporary file left */
    cache_scan all = scan("cache", NULL);
    if (all.files != 0) {
        fail_msg("%d file(s) in the cache after failed fetches only",
                 all.files);
    }
    /* the control: a valid bill does enter */
    dss_response r = get(target("raw", "ok-v9"));
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, FAULT_ORIGIN_PDF_SIZE);
    assert_memory_equal(r.body, fault_origin_pdf(), FAULT_ORIGIN_PDF_SIZE);
    dss_response_free(&r);
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok-v9", a.port);
    long long deadline = dss_now_ms() + 10000;
    while (scan("cache", url).matches != 1) {
        if (dss_now_ms() > deadline) {
            fail_msg("the valid bill ok-v9 did not enter the cache");
        }
        dss_poll_pause();
    }
}

/* ---- 6. full disk: served anyway, logged rate-limited ----------------------
 */

static void test_cache_full_disk_still_serves_and_logs_rate_limited(
    void **state) {
    (void)state;
    if (!ns.ready) {
        fprintf(stderr,
                "SKIP: the full-disk test mounts a small tmpfs over the "
                "cache directory and needs a private mount namespace: %s\n",
                ns.reason);
        skip();
    }
    /* a copy: dss_path()'s buffers are reused by the calls below */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", dss_path(&nginx, "full"));
    if (mount("dss-cache-test", dir, "tmpfs", MS_NOSUID | MS_NODEV,
              "size=512k,mode=0755") != 0) {
        fprintf(stderr, "SKIP: cannot mount a tmpfs on %s: %s\n", dir,
                strerror(errno));
        skip();
    }
    ns.mounted = 1;
    start_nginx();

    /* fill it up to the last byte */
    char filler_path[PATH_MAX + 16];
    snprintf(filler_path, sizeof(filler_path), "%s/filler", dir);
    int fd = open(filler_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    static char block[65536];
    memset(block, 'f', sizeof(block));
    for (size_t chunk = sizeof(block); chunk > 0; chunk /= 2) {
        while (write(fd, block, chunk) == (ssize_t)chunk) {
        }
    }
    close(fd);

    const int n = 30;
    long long from = dss_now_ms();
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "20000-full%d", i);
        dss_response r = get(target("f", id));
        assert_bill(&r, &a, id, "MISS", "full disk");
        dss_response_free(&r);
    }
    long long took = dss_now_ms() - from;
    /* the error is logged by the worker after (or while) answering: poll */
    long long deadline = dss_now_ms() + 5000;
    while (dss_error_log_count(&nginx, "cannot cache bill") < 1 &&
           dss_now_ms() < deadline) {
        dss_poll_pause();
    }
    int lines = dss_error_log_count(&nginx, "cannot cache bill");
    print_message("full disk: %d downloads in %lld ms, all 200 with their "
                  "bill; \"cannot cache bill\" logged %d time(s)\n",
                  n, took, lines);
    assert_true(lines >= 1);
    /* at most one line per 10 s per worker: 2 workers, well under 20 s */
    assert_true(lines <= 4);

    /* nothing half-written left behind */
    cache_scan s = scan("full/cache", NULL);
    if (s.files != 0) {
        fail_msg("%d file(s) (%ld bytes) left in the full cache", s.files,
                 s.total);
    }

    /* space again: the next view is cached */
    unlink(filler_path);
    expect_bill(target("f", "20000-full0"), &a, "20000-full0", "MISS");
    await_entry("full/cache", &a, "g", "20000-full0", "?f");
    expect_bill(target("f", "20000-full0"), &a, "20000-full0", "HIT");
}

/* A keys zone too small for the bills streaming through (16k: a few dozen
 * entries): every download is still its own bill, and the newest are
 * cached. nginx itself logs "could not allocate node" when the zone is
 * full even after it dropped its oldest entries: that alert is nginx's. */
static void test_cache_full_keys_zone_still_serves_every_bill(void **state) {
    (void)state;
    static const char *const allowed[] = {"could not allocate node", NULL};
    nginx.allowed_alerts = allowed;
    start_nginx();
    const int n = 150;
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "5000-tiny%d", i);
        expect_bill(target("tiny", id), &a, id, NULL);
    }
    /* the last one is cached (after its write) and a hit */
    await_entry("tiny", &a, "g", "5000-tiny149", "?tiny");
    expect_bill(target("tiny", "5000-tiny149"), &a, "5000-tiny149", "HIT");
    /* and every one of them is its own bill again */
    int hits = 0;
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "5000-tiny%d", i);
        dss_response r = get(target("tiny", id));
        assert_bill(&r, &a, id, NULL, "second pass");
        hits += strcmp(cache_status(&r), "HIT") == 0;
        dss_response_free(&r);
    }
    cache_scan s = scan("tiny", NULL);
    print_message("16k keys zone, %d bills twice: %d hits on the second "
                  "pass, %d files on disk, %d \"could not allocate node\" "
                  "lines\n",
                  n, hits, s.files,
                  dss_error_log_count(&nginx, "could not allocate node"));
}

/* ---- 7. eviction: max_size and inactive ------------------------------------
 */

static void test_cache_eviction_keeps_max_size_and_drops_inactive_bills(
    void **state) {
    (void)state;
    start_nginx();
    const long max_size = 2 * 1024 * 1024;
    /* the inactive=2s zone: one bill, then not viewed */
    expect_bill(target("i", "30000-brief"), &a, "30000-brief", "MISS");
    await_entry("brief", &a, "g", "30000-brief", "?i");
    long long cached_at = dss_now_ms();

    /* twice max_size of distinct bills through the 2m zone */
    long peak = 0;
    for (int i = 0; i < 40; i++) {
        char id[32];
        snprintf(id, sizeof(id), "102400-ev%d", i);
        expect_bill(target("e", id), &a, id, "MISS");
        long total = scan("small", NULL).total;
        peak = total > peak ? total : peak;
    }
    await_entry("small", &a, "g", "102400-ev39", "?e");

    long long deadline = dss_now_ms() + 25000, trimmed = -1, dropped = -1;
    long total = 0;
    while (trimmed < 0 || dropped < 0) {
        total = scan("small", NULL).total;
        peak = total > peak ? total : peak;
        if (trimmed < 0 && total <= max_size + max_size / 10) {
            trimmed = dss_now_ms() - cached_at;
        }
        char url[256];
        snprintf(url, sizeof(url), "%s", url_of(&a, "g", "30000-brief", "?i"));
        if (dropped < 0 && scan("brief", url).matches == 0) {
            dropped = dss_now_ms() - cached_at;
        }
        if (dss_now_ms() > deadline) {
            fail_msg("after 25 s: %ld bytes in the 2m zone (bound %ld), "
                     "inactive bill %s",
                     total, max_size + max_size / 10,
                     dropped < 0 ? "still there" : "removed");
        }
        dss_poll_pause();
    }
    cache_scan s = scan("small", NULL);
    print_message("eviction: peak %ld bytes, %ld after trimming (%d files), "
                  "within bound after %lld ms; the inactive=2s bill removed "
                  "after %lld ms\n",
                  peak, s.total, s.files, trimmed, dropped);
    assert_true(s.total <= max_size + max_size / 10);
    /* not by emptying the zone: the newest bill is still a hit */
    assert_true(s.files >= 10);
    expect_bill(target("e", "102400-ev39"), &a, "102400-ev39", "HIT");
    assert_int_equal(asked(&a, "g", "102400-ev39", "?e"), 1);
    /* inactive means not viewed for 2 s, not sooner */
    assert_true(dropped >= 1000);
    /* and the removed bill is fetched again */
    expect_bill(target("i", "30000-brief"), &a, "30000-brief", "MISS");
    assert_int_equal(asked(&a, "g", "30000-brief", "?i"), 2);
}

/* ---- 8. reload, restart, a file deleted by hand ----------------------------
 */

/* The master's children now (workers, cache manager, cache loader). */
static int children_of(pid_t parent, pid_t *out, int cap) {
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') {
            continue;
        }
        char path[300], text[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        size_t got = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[got] = '\0';
        const char *close_paren = strrchr(text, ')');
        char st;
        int ppid;
        if (close_paren && sscanf(close_paren + 1, " %c %d", &st, &ppid) == 2 &&
            ppid == (int)parent && st != 'Z' && n < cap) {
            out[n++] = (pid_t)atoi(e->d_name);
        }
    }
    if (d) {
        closedir(d);
    }
    return n;
}

static void reload_and_wait(void) {
    pid_t old[16], now[16];
    int n_old = children_of(nginx.pid, old, 16);
    assert_true(n_old >= 2);
    assert_int_equal(dss_nginx_signal(&nginx, SIGHUP), 0);
    long long deadline = dss_now_ms() + 20000;
    for (;;) {
        int n_now = children_of(nginx.pid, now, 16), old_left = 0, fresh = 0;
        for (int i = 0; i < n_now; i++) {
            int was = 0;
            for (int k = 0; k < n_old; k++) {
                was |= now[i] == old[k];
            }
            old_left += was;
            fresh += !was;
        }
        if (old_left == 0 && fresh >= 2) {
            return;
        }
        if (dss_now_ms() > deadline) {
            fail_msg("reload: %d old processes left, %d new after 20 s",
                     old_left, fresh);
        }
        dss_poll_pause();
    }
}

static void test_cache_survives_reload_restart_and_a_deleted_file(
    void **state) {
    (void)state;
    static const char *const ids[] = {"25000-keep1", "300000-keep2"};
    start_nginx();
    for (int i = 0; i < 2; i++) {
        expect_bill(target("c", ids[i]), &a, ids[i], "MISS");
        await_entry("cache", &a, "g", ids[i], NULL);
    }

    reload_and_wait();
    for (int i = 0; i < 2; i++) {
        expect_bill(target("c", ids[i]), &a, ids[i], "HIT");
        assert_int_equal(asked(&a, "g", ids[i], NULL), 1);
    }

    /* a full stop and start on the same directory, the archive down:
     * only the files on disk can answer */
    dss_nginx_stop(&nginx);
    fault_origin_outage(&a, FAULT_ORIGIN_OUTAGE_RESET);
    start_nginx();
    for (int i = 0; i < 2; i++) {
        expect_bill(target("c", ids[i]), &a, ids[i], "HIT");
        assert_int_equal(asked(&a, "g", ids[i], NULL), 1);
    }
    expect_status(target("c", "25000-never"), 500); /* the archive is down */

    /* a file deleted by hand: a miss that fetches again */
    fault_origin_outage(&a, FAULT_ORIGIN_OUTAGE_NONE);
    cache_scan s = await_entry("cache", &a, "g", ids[0], NULL);
    assert_int_equal(unlink(s.path), 0);
    expect_bill(target("c", ids[0]), &a, ids[0], "MISS");
    assert_int_equal(asked(&a, "g", ids[0], NULL), 2);
    await_entry("cache", &a, "g", ids[0], NULL);
    expect_bill(target("c", ids[0]), &a, ids[0], "HIT");
    expect_bill(target("c", ids[1]), &a, ids[1], "HIT");
    assert_int_equal(asked(&a, "g", ids[0], NULL), 2);
    assert_int_equal(asked(&a, "g", ids[1], NULL), 1);
}

/* ---- 9. archive outage: the cache answers; health per the directive --------
 */

/* Polls a health route until it answers want (10 s). */
static void await_health(const char *route, long want) {
    long long deadline = dss_now_ms() + 10000;
    long got;
    for (;;) {
        dss_response r = get(route);
        got = r.status;
        dss_response_free(&r);
        if (got == want) {
            return;
        }
        if (dss_now_ms() > deadline) {
            fail_msg("%s: still %ld after 10 s, expected %ld", route, got,
                     want);
        }
        dss_poll_pause();
    }
}

/* For about a second (5 probe intervals), every answer of route is want. */
static void health_stays(const char *route, long want) {
    long long until = dss_now_ms() + 1000;
    int polls = 0;
    while (dss_now_ms() < until) {
        dss_response r = get(route);
        if (r.status != want) {
            fail_msg("%s: %ld after %d polls, expected %ld throughout", route,
                     r.status, polls, want);
        }
        if (want == 200) {
            assert_int_equal(r.body_len, 0);
        }
        dss_response_free(&r);
        polls++;
        dss_poll_pause();
    }
}

static void outage(int mode, const char *what) {
    fault_origin_outage(&a, mode);
    /* cached: from the cache, by every location with that URL */
    expect_bill(target("c", "25000-out1"), &a, "25000-out1", "HIT");
    expect_bill(target("hreq", "25000-out1"), &a, "25000-out1", "HIT");
    expect_bill(target("hcache", "25000-out1"), &a, "25000-out1", "HIT");
    assert_int_equal(asked(&a, "g", "25000-out1", NULL), 1);
    /* not cached: 500 as without a cache */
    expect_status(target("c", "25000-out2"), 500);
    await_health("/hreq/healthcheck", 503);
    health_stays("/hcache/healthcheck", 200);
    print_message("archive outage (%s): cached 200, uncached 500, health "
                  "503 with required, 200 with cache\n",
                  what);
}

static void test_cache_archive_outage_serves_cached_bills(void **state) {
    (void)state;
    start_nginx();
    expect_bill(target("c", "25000-out1"), &a, "25000-out1", "MISS");
    await_entry("cache", &a, "g", "25000-out1", NULL);
    await_health("/hreq/healthcheck", 200);
    await_health("/hcache/healthcheck", 200);

    outage(FAULT_ORIGIN_OUTAGE_500, "archive answers 500");
    fault_origin_outage(&a, FAULT_ORIGIN_OUTAGE_NONE);
    await_health("/hreq/healthcheck", 200);
    outage(FAULT_ORIGIN_OUTAGE_RESET, "connections reset");

    /* back: both healthy, the uncached bill fetched */
    fault_origin_outage(&a, FAULT_ORIGIN_OUTAGE_NONE);
    await_health("/hreq/healthcheck", 200);
    await_health("/hcache/healthcheck", 200);
    long long deadline = dss_now_ms() + 10000;
    for (;;) { /* a remembered failure lasts a second or two */
        dss_response r = get(target("c", "25000-out2"));
        if (r.status == 200) {
            assert_bill(&r, &a, "25000-out2", "MISS", "after the outage");
            dss_response_free(&r);
            break;
        }
        dss_response_free(&r);
        assert_true(dss_now_ms() < deadline);
        dss_poll_pause();
    }
}

/* ---- 10. nginx -t ----------------------------------------------------------
 */

static void refused(const char *config, const char *const *names) {
    char out[8192];
    int rc = dss_nginx_test_config(&nginx, config, out, sizeof(out));
    if (rc == 0) {
        fail_msg("nginx -t accepted:\n%s", config);
    }
    for (const char *const *n = names; *n; n++) {
        if (strstr(out, *n) == NULL) {
            fail_msg("nginx -t output does not name %s:\n%s", *n, out);
        }
    }
}

static void test_cache_nginx_t_refuses_what_cannot_work(void **state) {
    (void)state;
    /* the control: the whole test configuration is accepted */
    char *config = NULL;
    assert_true(asprintf(&config, module_config, a.port, b.port) > 0);
    nginx.port2 = 1; /* "nginx -t" binds nothing */
    char out[8192];
    int rc = dss_nginx_test_config(&nginx, config, out, sizeof(out));
    free(config);
    if (rc != 0) {
        fail_msg("nginx -t refused the test configuration:\n%s", out);
    }

    static const char *const unknown_zone[] = {"dss_bill_cache", "\"nosuch\"",
                                               NULL};
    refused("dss_bill_cache_path @PREFIX@/cache keys_zone=one:1m;\n"
            "server { listen 127.0.0.1:@PORT@;\n"
            "  location /x/ { dss_bill;\n"
            "    dss_bill_upstream http://127.0.0.1:1/$dss_bill_id;\n"
            "    dss_bill_cache nosuch; } }\n",
            unknown_zone);
    static const char *const no_zone[] = {"dss_bill_cache_path", "keys_zone",
                                          NULL};
    refused("dss_bill_cache_path @PREFIX@/cache levels=1:2 max_size=1m;\n"
            "server { listen 127.0.0.1:@PORT@;\n"
            "  location /x/ { dss_bill;\n"
            "    dss_bill_upstream http://127.0.0.1:1/$dss_bill_id; } }\n",
            no_zone);
    static const char *const no_cache[] = {"dss_bill_health_archive", NULL};
    refused("server { listen 127.0.0.1:@PORT@;\n"
            "  location /x/ { dss_bill;\n"
            "    dss_bill_upstream http://127.0.0.1:1/$dss_bill_id;\n"
            "    dss_bill_health_archive cache; } }\n",
            no_cache);
    /* with a zone defined but "off" in the location: still no cache */
    refused("dss_bill_cache_path @PREFIX@/cache keys_zone=one:1m;\n"
            "server { listen 127.0.0.1:@PORT@;\n"
            "  location /x/ { dss_bill;\n"
            "    dss_bill_upstream http://127.0.0.1:1/$dss_bill_id;\n"
            "    dss_bill_cache off;\n"
            "    dss_bill_health_archive cache; } }\n",
            no_cache);
}

/* ---- 11. cache files: 0600, the workers' ----------------------------------
 */

static void test_cache_files_are_0600_and_the_workers(void **state) {
    (void)state;
    start_nginx();
    expect_bill(target("c", "25000-mode"), &a, "25000-mode", "MISS");
    expect_bill(target("c", "300000-mode"), &a, "300000-mode", "MISS");
    cache_scan s = await_entry("cache", &a, "g", "25000-mode", NULL);
    struct stat st;
    assert_int_equal(stat(s.path, &st), 0);
    if ((st.st_mode & 07777) != 0600 || st.st_uid != workers_uid()) {
        fail_msg("%s: mode %o, owner %d (expected 0600, %d)", s.path,
                 (unsigned)(st.st_mode & 07777), (int)st.st_uid,
                 (int)workers_uid());
    }
    await_entry("cache", &a, "g", "300000-mode", NULL);
    s = scan("cache", NULL);
    if (s.bad_mode != 0 || s.keyless != 0 || s.files != 2) {
        fail_msg("cache directory: %d files, %d not 0600 or not the "
                 "workers', %d without a key",
                 s.files, s.bad_mode, s.keyless);
    }
    /* the directory itself: not readable by others */
    assert_int_equal(stat(dss_path(&nginx, "cache"), &st), 0);
    assert_int_equal(st.st_mode & 0007, 0);
}

/* ---- main -------------------------------------------------------------------
 */

/* Before any thread: a private mount namespace for the full-disk test. */
static void mount_namespace_setup(void) {
    if (geteuid() != 0) {
        snprintf(ns.reason, sizeof(ns.reason), "not running as root");
    } else if (unshare(CLONE_NEWNS) != 0) {
        snprintf(ns.reason, sizeof(ns.reason),
                 "unshare(CLONE_NEWNS) failed: %s", strerror(errno));
    } else if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        snprintf(ns.reason, sizeof(ns.reason), "cannot make / private: %s",
                 strerror(errno));
    } else {
        ns.ready = 1;
    }
}

int main(void) {
    mount_namespace_setup();
    curl_global_init(CURL_GLOBAL_DEFAULT);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_cache_nginx_t_refuses_what_cannot_work),
        T(test_D3_D9_hit_is_the_archives_bill_with_the_same_headers),
        T(test_D3_D8_slow_client_gets_the_whole_bill_from_the_cache),
        T(test_cache_files_are_0600_and_the_workers),
        T(test_D8_only_complete_valid_bills_enter_the_cache),
        T(test_cache_100_concurrent_first_views_fetch_once_across_workers),
        T(test_cache_waiters_served_when_the_fetching_client_goes_away),
        T(test_D9_concurrent_views_of_different_bills_get_their_own),
        T(test_D5_D6_collapsed_failure_every_waiter_gets_the_status),
        T(test_D6_archive_error_is_not_kept),
        T(test_D9_tenants_with_different_archives_never_share_entries),
        T(test_D9_archive_clients_never_share_entries),
        T(test_D8_corrupt_cache_file_is_fetched_again_never_served),
        T(test_cache_metrics_count_exactly),
        T(test_D4_hit_over_the_locations_limit_is_500),
        T(test_T4_waiters_wait_no_longer_than_the_fetch_timeout),
        T(test_cache_full_disk_still_serves_and_logs_rate_limited),
        T(test_cache_eviction_keeps_max_size_and_drops_inactive_bills),
        T(test_cache_full_keys_zone_still_serves_every_bill),
        T(test_cache_survives_reload_restart_and_a_deleted_file),
        T(test_cache_archive_outage_serves_cached_bills),
    };
#undef T
    /* DSS_TEST_FILTER=test_D9_* runs a subset */
    const char *filter = getenv("DSS_TEST_FILTER");
    if (filter && *filter) {
        cmocka_set_test_filter(filter);
    }
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}

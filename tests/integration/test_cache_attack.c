/* Hostile review of the archive cache (issue 9): attacks on the cache built
 * on nginx's file cache, each a test. A test that exposes a defect fails on
 * the code it was written against (the review's report names them); the
 * others are regression tests of attacks the module withstands.
 *
 * Every answer's bytes are compared with what the archive (fault_origin's
 * /g/<size>-<name>, bytes naming the origin, the archive client and the id)
 * sends for that bill and that client. nginx runs two workers (reuseport);
 * the second server speaks HTTP/2 over TLS. */

#define _GNU_SOURCE /* asprintf, memmem */

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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "client_job.h"
#include "fault_origin.h"
#include "harness.h"

static dss_nginx nginx;
static fault_origin a;

/* %1$d: the archive's port */
static const char *const module_config =
    "dss_bill_upstream_temp_path @PREFIX@/temp;\n"
    "dss_bill_upstream_memory 0;\n"
    "dss_bill_cache_path @PREFIX@/cache levels=1:2 keys_zone=bills:1m "
    "max_size=64m inactive=1d;\n"
    "log_format cache '$pid $status [$dss_bill_cache_status] $dss_bill_id';\n"
    "server {\n"
    "    listen 127.0.0.1:@PORT@ reuseport;\n"
    "    access_log @PREFIX@/logs/cache.log cache;\n"
    "    add_header X-Cache $dss_bill_cache_status always;\n"
    "    dss_bill_upstream_health_url off;\n"
    "    location = /status { stub_status; }\n"
    "    location = /metrics { dss_bill_metrics; }\n"
    "    location /c/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id;\n"
    "    }\n"
    /* a tenant's location: its archive client is an API key */
    "    location /acme/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream "
    "\"http://127.0.0.1:%1$d/g/$dss_bill_id?tenant=acme\";\n"
    "        dss_bill_upstream_header X-Api-Key acme-secret;\n"
    "    }\n"
    /* a location whose URL ends with a value the client sends */
    "    location /v/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream "
    "\"http://127.0.0.1:%1$d/g/$dss_bill_id?tenant=$http_x_tenant\";\n"
    "    }\n"
    /* the same URL and zone, two limits */
    "    location /lim1k/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_max_size 1k;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id?lim;\n"
    "    }\n"
    "    location /limbig/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id?lim;\n"
    "    }\n"
    /* parked at the archive while held; /chw/: the same URL, a shorter
     * fetch timeout (its wait for /ch/'s fetch ends first) */
    "    location /ch/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/gh/$dss_bill_id;\n"
    "        dss_bill_upstream_timeout 30s;\n"
    "    }\n"
    "    location /chw/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/gh/$dss_bill_id;\n"
    "        dss_bill_upstream_connect_timeout 500ms;\n"
    "        dss_bill_upstream_timeout 1s;\n"
    "    }\n"
    /* hits read by threads, O_DIRECT, without sendfile */
    "    location /aio/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id?aio;\n"
    "        aio threads; directio 4k; sendfile off; output_buffers 2 32k;\n"
    "    }\n"
    "    location /aioh/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/gh/$dss_bill_id?aio;\n"
    "        dss_bill_upstream_timeout 30s;\n"
    "        aio threads; directio 4k; sendfile off; output_buffers 2 32k;\n"
    "    }\n"
    /* descriptors of cache files kept open across requests */
    "    location /ofc/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id?ofc;\n"
    "        open_file_cache max=64 inactive=60s;\n"
    "        open_file_cache_valid 60s;\n"
    "        open_file_cache_errors on;\n"
    "    }\n"
    /* one archive over TLS (the second server, the test's self-signed
     * certificate): fetched unverified here, verified against the
     * system's CAs (which refuse it) there, one zone */
    "    location /noverify/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream "
    "https://127.0.0.1:@PORT2@/files/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_ssl_verify off;\n"
    "    }\n"
    "    location /verify/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream "
    "https://127.0.0.1:@PORT2@/files/$dss_bill_id.pdf;\n"
    "    }\n"
    /* a mirror subrequest into a cached location */
    "    location /mir/ {\n"
    "        mirror /ch/download/300000-mirror;\n"
    "        return 204;\n"
    "    }\n"
    /* the archive says 404: error_page sends the request to another
     * cached location */
    "    location /ep/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/status-404-$dss_bill_id;\n"
    "        error_page 404 = /fb/download/$dss_bill_id;\n"
    "    }\n"
    "    location /fb/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id?fb;\n"
    "    }\n"
    "}\n"
    "server {\n"
    "    listen 127.0.0.1:@PORT2@ ssl http2;\n"
    "    ssl_certificate @PREFIX@/cert.pem;\n"
    "    ssl_certificate_key @PREFIX@/key.pem;\n"
    "    location /files/ { root @PREFIX@/tls; }\n"
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
    if (fault_origin_start(&a) != 0 || dss_nginx_prepare(&nginx) != 0) {
        return -1;
    }
    fault_origin_set_tag(&a, "A");
    nginx.workers = 2;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    dss_nginx_stop(&nginx);
    dss_nginx_cleanup(&nginx);
    fault_origin_stop(&a);
    return 0;
}

static void start_nginx(void) {
    char *config = NULL;
    assert_true(asprintf(&config, module_config, a.port) > 0);
    int rc = dss_nginx_start(&nginx, config);
    free(config);
    assert_int_equal(rc, 0);
}

/* ---- requests ---------------------------------------------------------------
 */

static dss_response get_with(const char *target, const char *const *headers,
                             const char *method) {
    dss_request_options o = {
        .plain_http = 1, .headers = headers, .method = method};
    return dss_request(&nginx, target, &o);
}

static dss_response get(const char *target) {
    return get_with(target, NULL, NULL);
}

static const char *cache_status(const dss_response *r) {
    const char *v = dss_header(r, "X-Cache");
    return v ? v : "";
}

static const char *target(const char *location, const char *id) {
    static char out[8][256];
    static int next;
    char *p = out[next++ % 8];
    snprintf(p, sizeof(out[0]), "/%s/download/%s", location, id);
    return p;
}

static int asked(const char *path) {
    return fault_origin_path_requests(&a, path);
}

/* body is exactly the bill the archive sends to client (NULL: none) */
static int same_bill(const char *body, size_t len, const char *id,
                     const char *client) {
    size_t size = 0;
    char *bill = fault_origin_gen_bill_for(&a, id, client, &size);
    assert_non_null(bill);
    int same = len == size && memcmp(body, bill, size) == 0;
    free(bill);
    return same;
}

static void assert_bytes(const char *body, size_t len, const char *id,
                         const char *what) {
    if (!same_bill(body, len, id, NULL)) {
        size_t size = 0;
        char *bill = fault_origin_gen_bill(&a, id, &size);
        size_t at = 0;
        while (at < len && at < size && body[at] == bill[at]) {
            at++;
        }
        fail_msg("%s: %zu bytes, expected %zu of bill %s; first difference "
                 "at %zu: got \"%.40s\", expected \"%.40s\"",
                 what, len, size, id, at, at < len ? body + at : "",
                 at < size ? bill + at : "");
    }
}

static void assert_bill(const dss_response *r, const char *id,
                        const char *status, const char *what) {
    if (r->status != 200 || r->curl_code != CURLE_OK) {
        fail_msg("%s: status %ld (curl %d, X-Cache \"%s\"), expected 200 "
                 "with bill %s",
                 what, r->status, r->curl_code, cache_status(r), id);
    }
    assert_bytes(r->body, r->body_len, id, what);
    char length[32];
    snprintf(length, sizeof(length), "%zu", r->body_len);
    const char *cl = dss_header(r, "Content-Length");
    if (cl == NULL || strcmp(cl, length) != 0) {
        fail_msg("%s: Content-Length %s, body %s", what, cl ? cl : "(none)",
                 length);
    }
    if (status && strcmp(cache_status(r), status) != 0) {
        fail_msg("%s: X-Cache \"%s\", expected \"%s\"", what,
                 cache_status(r), status);
    }
}

static void expect_bill(const char *target, const char *id,
                        const char *status) {
    dss_response r = get(target);
    assert_bill(&r, id, status, target);
    dss_response_free(&r);
}

static int requests_in_progress(void) {
    dss_response r = get("/status");
    const char *w = r.body ? strstr(r.body, "Writing: ") : NULL;
    int n = w ? atoi(w + 9) : -1;
    dss_response_free(&r);
    return n;
}

/* ---- the cache directory ----------------------------------------------------
 */

/* Finds the cache file whose key's URL part starts with prefix (the KEY
 * line is "\nKEY: <32 hex digits of the client> <URL>"): its path, and the
 * rest of that line (up to LF) in rest. 0 or -1. */
static int find_key(const char *dir, const char *prefix, char *path,
                    size_t path_cap, char *rest, size_t rest_cap) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -1;
    }
    const char needle[] = "\nKEY: ";
    size_t nlen = sizeof(needle) - 1;
    size_t plen = strlen(prefix);
    int found = -1;
    struct dirent *e;
    while (found != 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0) {
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            found = find_key(p, prefix, path, path_cap, rest, rest_cap);
            continue;
        }
        /* an entry's name is its key's md5 in hex; a temporary file
         * (a number, in the top folder) is not an entry yet */
        if (!S_ISREG(st.st_mode) || strlen(e->d_name) != 32) {
            continue;
        }
        size_t len = 0;
        char *text = dss_read_file(p, &len);
        char *hit = text ? memmem(text, len, needle, nlen) : NULL;
        if (hit && (size_t)(hit - text) + nlen + 33 + plen <= len &&
            hit[nlen + 32] == ' ' &&
            memcmp(hit + nlen + 33, prefix, plen) == 0) {
            char *from = hit + nlen + 33 + plen;
            char *lf = memchr(from, '\n', len - (size_t)(from - text));
            if (lf) {
                snprintf(rest, rest_cap, "%.*s", (int)(lf - from), from);
                snprintf(path, path_cap, "%s", p);
                found = 0;
            }
        }
        free(text);
    }
    closedir(d);
    return found;
}

/* Polls (10 s) until the cache file of url (whole key, nothing after)
 * exists; its path in path. */
static void await_file(const char *url, char *path, size_t cap) {
    char rest[512];
    long long deadline = dss_now_ms() + 10000;
    while (find_key(dss_path(&nginx, "cache"), url, path, cap, rest,
                    sizeof(rest)) != 0 ||
           rest[0] != '\0') {
        if (dss_now_ms() > deadline) {
            fail_msg("no cache file for %s", url);
        }
        dss_poll_pause();
    }
}

static const char *url_of(const char *path) {
    static char out[4][512];
    static int next;
    char *p = out[next++ % 4];
    snprintf(p, sizeof(out[0]), "http://127.0.0.1:%d%s", a.port, path);
    return p;
}

/* ---- concurrent clients -----------------------------------------------------
 */

typedef dss_job job;

static void start_job(job *j, const char *target, int h2, long timeout_ms) {
    if (h2) {
        snprintf(j->url, sizeof(j->url), "https://127.0.0.1:%d%s",
                 nginx.port2, target);
        snprintf(j->cafile, sizeof(j->cafile), "%s",
                 dss_path(&nginx, "cert.pem"));
    } else {
        snprintf(j->url, sizeof(j->url), "http://127.0.0.1:%d%s", nginx.port,
                 target);
    }
    j->h2 = h2;
    j->timeout_ms = timeout_ms;
    dss_job_start(j);
}

/* Polls until n requests are inside nginx (besides the status request) and
 * at least held fetches are parked at the archive; 30 s. */
static void await_parked(int n, int held) {
    long long deadline = dss_now_ms() + 30000;
    while (requests_in_progress() < n + 1 || fault_origin_held(&a) < held) {
        if (dss_now_ms() > deadline) {
            fail_msg("after 30 s: fewer than %d requests in nginx or %d "
                     "parked at the archive",
                     n, held);
        }
        dss_poll_pause();
    }
}

/* A Prometheus sample's value, or -1. */
static double metric(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            return atof(p + n + 1);
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return -1;
}

/* ---- defects ----------------------------------------------------------------
 */

/*
 * D9 (a defect this test found, now fixed: the key starts with a
 * fixed-length digest of the archive client, then the URL). It was the
 * resolved URL followed by the location's archive client
 * (" client=<md5 of its credentials>"), with nothing between the parts that
 * a URL cannot hold. A location whose URL ends with a value the client sends
 * can name the key of another location's entry: URL "...?tenant=acme" plus
 * " client=<hex>" is the same key as URL "...?tenant=acme client=<hex>".
 * The client then reads the bill the archive gave another archive client
 * (here: the one with acme's API key) from the cache, without credentials.
 * The digest names the credentials' md5, not the credentials; the test
 * reads it from the entry's KEY line (an attacker computes it from a
 * non-secret header, or learns it from any cache file).
 */
static void test_D9_key_parts_run_together_client_chosen_url_reads_another_clients_bill(
    void **state) {
    (void)state;
    const char *id = "3000-acme";
    start_nginx();

    /* acme's location views the bill: the archive answers acme's bill */
    dss_response r = get(target("acme", id));
    assert_int_equal(r.status, 200);
    assert_true(same_bill(r.body, r.body_len, id, "key=acme-secret,auth="));
    dss_response_free(&r);

    char path[PATH_MAX], rest[512], prefix[512];
    snprintf(prefix, sizeof(prefix), "%s",
             url_of("/g/3000-acme?tenant=acme"));
    long long deadline = dss_now_ms() + 10000;
    while (find_key(dss_path(&nginx, "cache"), prefix, path, sizeof(path),
                    rest, sizeof(rest)) != 0) {
        assert_true(dss_now_ms() < deadline);
        dss_poll_pause();
    }
    print_message("acme's entry: KEY \"<client> %s%s\"\n", prefix, rest);
    /* the URL is the key's tail: nothing after it a URL could imitate */
    assert_true(rest[0] == '\0');

    /* a client of /v/ (no credentials at all) asks for acme's URL */
    char header[600];
    snprintf(header, sizeof(header), "X-Tenant: acme");
    const char *const headers[] = {header, NULL};
    r = get_with(target("v", id), headers, NULL);
    int leaked = r.status == 200 &&
                 same_bill(r.body, r.body_len, id, "key=acme-secret,auth=");
    print_message("/v/ with \"%s\": status %ld, X-Cache \"%s\", %zu bytes, "
                  "%s\n",
                  header, r.status, cache_status(&r), r.body_len,
                  leaked ? "acme's bill (fetched with acme's API key)"
                         : "not acme's bill");
    dss_response_free(&r);
    if (leaked) {
        fail_msg("a client without credentials read the bill the archive "
                 "gave acme's API key, from acme's cache entry (key parts "
                 "concatenated without a separator)");
    }
}

/*
 * D4, D6. /lim1k/ and /limbig/ fetch the same URL into the same zone; only
 * /lim1k/ refuses bills over 1k. /lim1k/'s refusal (500 too_large) is kept
 * as the entry's error for a second: /limbig/, which would serve the bill,
 * answers 500 for it meanwhile (and so do /limbig/'s requests that were
 * waiting for /lim1k/'s fetch). A location's own limit decides its answer.
 */
static void test_D4_D6_a_stricter_locations_refusal_is_not_another_locations_answer(
    void **state) {
    (void)state;
    const char *id = "3000-lim";
    start_nginx();
    dss_response r = get(target("lim1k", id));
    assert_int_equal(r.status, 500);
    dss_response_free(&r);

    r = get(target("limbig", id));
    print_message("/limbig/ right after /lim1k/'s 500: status %ld, X-Cache "
                  "\"%s\", %zu bytes; archive asked %d times\n",
                  r.status, cache_status(&r), r.body_len,
                  asked("/g/3000-lim?lim"));
    assert_bill(&r, id, NULL, "/limbig/ after /lim1k/ refused the bill");
    dss_response_free(&r);
}

/*
 * Metrics. A request that waited for another request's fetch until its own
 * wait ran out (NGX_HTTP_CACHE_SCARCE: 500) went through the cache but is
 * counted neither as a hit nor as a miss ($dss_bill_cache_status is empty,
 * dss_bill_cache_misses_total unchanged), while a waiter that got another
 * fetch's failure is a miss: hits + misses no longer add up to the
 * downloads of the cached locations.
 */
static void test_cache_a_waiter_whose_wait_ran_out_is_counted_a_miss(
    void **state) {
    (void)state;
    const char *id = "3000-scarce";
    start_nginx();
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 1);
    job holder = {0};
    start_job(&holder, target("ch", id), 0, 0);
    await_parked(1, 1);

    dss_response m0 = get("/metrics");
    double misses0 = metric(m0.body, "dss_bill_cache_misses_total");
    dss_response_free(&m0);

    long long t0 = dss_now_ms();
    dss_response r = get(target("chw", id));
    long long waited = dss_now_ms() - t0;
    char status[32];
    snprintf(status, sizeof(status), "%s", cache_status(&r));
    long code = r.status;
    dss_response_free(&r);

    dss_response m1 = get("/metrics");
    double misses1 = metric(m1.body, "dss_bill_cache_misses_total");
    dss_response_free(&m1);

    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 0);
    dss_job_join(&holder);
    assert_int_equal(holder.status, 200);
    assert_bytes(holder.body, holder.len, id, "the fetching request");
    free(holder.body);

    print_message("waiter with a 1 s fetch timeout: %ld after %lld ms, "
                  "X-Cache \"%s\", misses %g -> %g\n",
                  code, waited, status, misses0, misses1);
    assert_int_equal(code, 500);
    assert_true(waited < 10000);
    assert_string_equal(status, "MISS");
    assert_true(misses1 == misses0 + 1);
}

/*
 * D9 (the archive's origin and trust). /verify/ checks the archive's
 * certificate (dss_bill_upstream_ssl_verify on, the default) and refuses
 * this archive's; /noverify/ fetches the same URL without checking, into
 * the same zone. The key holds the URL and the archive client, not how far
 * the answer was trusted: once /noverify/ stored a bill (which a
 * man-in-the-middle could have written), /verify/ serves it as 200 though
 * its own policy refuses every answer of that archive. (The module already
 * keys pdf_check for the same reason: entries a stricter location would
 * refuse.)
 */
static void test_D9_an_unverified_fetch_is_served_by_a_verifying_location(
    void **state) {
    (void)state;
    assert_int_equal(mkdir(dss_path(&nginx, "tls"), 0755), 0);
    assert_int_equal(mkdir(dss_path(&nginx, "tls/files"), 0755), 0);
    dss_write_bill(dss_path(&nginx, "tls/files/111122223333.pdf"),
                   "111122223333", 20000);
    dss_write_bill(dss_path(&nginx, "tls/files/444455556666.pdf"),
                   "444455556666", 20000);
    start_nginx();

    /* /verify/ refuses this archive on its own */
    dss_response r = get(target("verify", "444455556666"));
    print_message("/verify/, an uncached bill: %ld\n", r.status);
    assert_int_equal(r.status, 500);
    dss_response_free(&r);

    r = get(target("noverify", "111122223333"));
    assert_int_equal(r.status, 200);
    dss_response_free(&r);
    long long deadline = dss_now_ms() + 10000;
    char path[PATH_MAX], rest[512], url[256];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/files/111122223333.pdf",
             nginx.port2);
    while (find_key(dss_path(&nginx, "cache"), url, path, sizeof(path), rest,
                    sizeof(rest)) != 0) {
        assert_true(dss_now_ms() < deadline);
        dss_poll_pause();
    }

    r = get(target("verify", "111122223333"));
    print_message("/verify/ after /noverify/ stored the bill: %ld, X-Cache "
                  "\"%s\", %zu bytes\n",
                  r.status, cache_status(&r), r.body_len);
    long status = r.status;
    dss_response_free(&r);
    if (status == 200) {
        fail_msg("a location that refuses the archive's certificate served "
                 "a bill fetched without verification (the key does not "
                 "hold the TLS policy)");
    }
}

/*
 * Collapsed forwarding (issue 9, item 5) after a cache file failed its
 * checks: the request that finds the entry unusable removes it and fetches
 * without taking the keys zone's lock (ngx_http_dss_bill_cache_hit ->
 * ngx_http_dss_bill_upstream_fetch), so the next request for the bill,
 * finding no file, takes the lock and fetches as well: a crowd arriving on
 * a corrupt entry costs the archive two fetches or more, not one.
 */
static void test_cache_a_crowd_on_a_corrupt_entry_fetches_once(void **state) {
    (void)state;
    const char *id = "200000-corrupt";
    start_nginx();
    expect_bill(target("ch", id), id, "MISS");
    char path[PATH_MAX];
    await_file(url_of("/gh/200000-corrupt"), path, sizeof(path));
    /* the bill's first bytes (at the page boundary) no longer a PDF */
    size_t len = 0;
    char *text = dss_read_file(path, &len);
    assert_non_null(text);
    char *pdf = memmem(text, len, "%PDF-", 5);
    assert_non_null(pdf);
    long at = (long)(pdf - text);
    free(text);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "XXXXX", 5, at), 5);
    close(fd);

    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 1);
    enum { N = 10 };
    job jobs[N];
    memset(jobs, 0, sizeof(jobs));
    for (int i = 0; i < N; i++) {
        start_job(&jobs[i], target("ch", id), 0, 0);
    }
    await_parked(N, 1);
    /* what is parked at the archive once every request is in */
    long long deadline = dss_now_ms() + 1500;
    while (dss_now_ms() < deadline && fault_origin_held(&a) < 2) {
        dss_poll_pause();
    }
    int parked = fault_origin_held(&a);
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 0);
    for (int i = 0; i < N; i++) {
        dss_job_join(&jobs[i]);
        assert_int_equal(jobs[i].status, 200);
        assert_bytes(jobs[i].body, jobs[i].len, id, "after a corrupt entry");
        free(jobs[i].body);
    }
    int fetches = asked("/gh/200000-corrupt") - 1;
    print_message("%d requests on a corrupt entry: %d archive fetches (%d "
                  "parked at once)\n",
                  N, fetches, parked);
    assert_int_equal(fetches, 1);
}

/* ---- attacks withstood (regression tests) ----------------------------------
 */

/* D3: Range, If-Range, If-None-Match, If-Modified-Since, If-Match and HEAD
 * on a hit: always the whole bill (200, never 206/304/412), HEAD without a
 * body and with the bill's length. */
static void test_D3_range_conditionals_and_head_on_a_hit_get_the_whole_bill(
    void **state) {
    (void)state;
    const char *id = "300000-cond";
    start_nginx();
    expect_bill(target("c", id), id, "MISS");
    char path[PATH_MAX];
    await_file(url_of("/g/300000-cond"), path, sizeof(path));
    static const char *const tries[][2] = {
        {"Range: bytes=0-9", NULL},
        {"Range: bytes=-100", NULL},
        {"Range: bytes=0-9,20-29", NULL},
        {"If-None-Match: *", NULL},
        {"If-None-Match: \"300000\"", NULL},
        {"If-Match: \"nope\"", NULL},
        {"If-Modified-Since: Tue, 01 Jan 2999 00:00:00 GMT", NULL},
        {"If-Unmodified-Since: Thu, 01 Jan 1970 00:00:01 GMT", NULL},
        {"If-Range: \"300000\"", "Range: bytes=0-9"},
    };
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        const char *const headers[] = {tries[i][0], tries[i][1], NULL};
        dss_response r = get_with(target("c", id), headers, NULL);
        assert_bill(&r, id, "HIT", tries[i][0]);
        dss_response_free(&r);
    }
    const char *const range[] = {"Range: bytes=0-9", NULL};
    dss_response r = get_with(target("c", id), range, "HEAD");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(dss_header(&r, "Content-Length"), "300000");
    assert_string_equal(cache_status(&r), "HIT");
    dss_response_free(&r);
    assert_int_equal(asked("/g/300000-cond"), 1);
}

/* D3, D8: a HEAD that misses fetches and stores the whole bill: the next
 * GET, with the archive down, is the complete bill from the cache. */
static void test_D3_D8_a_head_miss_stores_the_whole_bill(void **state) {
    (void)state;
    const char *id = "20000-head";
    start_nginx();
    dss_response r = get_with(target("c", id), NULL, "HEAD");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(dss_header(&r, "Content-Length"), "20000");
    dss_response_free(&r);
    char path[PATH_MAX];
    await_file(url_of("/g/20000-head"), path, sizeof(path));
    fault_origin_outage(&a, FAULT_ORIGIN_OUTAGE_RESET);
    expect_bill(target("c", id), id, "HIT");
    fault_origin_outage(&a, FAULT_ORIGIN_OUTAGE_NONE);
}

/* D9, T5 over HTTP/2: streams of one connection-less crowd wait for one
 * fetch, others are hits of other bills; each gets its own bill. */
static void test_D9_http2_waiters_and_hits_get_their_own_bills(void **state) {
    (void)state;
    start_nginx();
    expect_bill(target("c", "100000-h2hit"), "100000-h2hit", "MISS");
    char path[PATH_MAX];
    await_file(url_of("/g/100000-h2hit"), path, sizeof(path));

    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 1);
    enum { N = 8 };
    job jobs[N];
    memset(jobs, 0, sizeof(jobs));
    for (int i = 0; i < N; i++) {
        start_job(&jobs[i], target("ch", "200000-h2wait"), 1, 0);
    }
    await_parked(N, 1);
    job hits[4];
    memset(hits, 0, sizeof(hits));
    for (int i = 0; i < 4; i++) {
        start_job(&hits[i], target("c", "100000-h2hit"), 1, 0);
    }
    for (int i = 0; i < 4; i++) {
        dss_job_join(&hits[i]);
        assert_int_equal(hits[i].status, 200);
        assert_int_equal(hits[i].version, CURL_HTTP_VERSION_2_0);
        assert_bytes(hits[i].body, hits[i].len, "100000-h2hit", "h2 hit");
        free(hits[i].body);
    }
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 0);
    for (int i = 0; i < N; i++) {
        dss_job_join(&jobs[i]);
        if (jobs[i].status != 200) {
            fail_msg("h2 waiter %d: %ld (curl %d)", i, jobs[i].status,
                     jobs[i].curl_code);
        }
        assert_bytes(jobs[i].body, jobs[i].len, "200000-h2wait", "h2 waiter");
        free(jobs[i].body);
    }
    assert_int_equal(asked("/gh/200000-h2wait"), 1);
}

/* D8 with aio threads, directio and sendfile off on the cache location:
 * misses, hits and a crowd of waiters (their cache reads go to threads)
 * get whole bills. */
static void test_D8_aio_threads_directio_without_sendfile_hits_are_whole(
    void **state) {
    (void)state;
    start_nginx();
    static const char *const ids[] = {"10000-aio", "300000-aio",
                                      "5242880-aio"};
    char path[PATH_MAX];
    for (int k = 0; k < 3; k++) {
        expect_bill(target("aio", ids[k]), ids[k], "MISS");
        char url[256];
        snprintf(url, sizeof(url), "/g/%s?aio", ids[k]);
        await_file(url_of(url), path, sizeof(path));
        expect_bill(target("aio", ids[k]), ids[k], "HIT");
        const char *const range[] = {"Range: bytes=5-100", NULL};
        dss_response r = get_with(target("aio", ids[k]), range, NULL);
        assert_bill(&r, ids[k], "HIT", "aio hit with Range");
        dss_response_free(&r);
    }
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 1);
    enum { N = 10 };
    job jobs[N];
    memset(jobs, 0, sizeof(jobs));
    for (int i = 0; i < N; i++) {
        start_job(&jobs[i], target("aioh", "400000-aiow"), 0, 0);
    }
    await_parked(N, 1);
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 0);
    for (int i = 0; i < N; i++) {
        dss_job_join(&jobs[i]);
        assert_int_equal(jobs[i].status, 200);
        assert_bytes(jobs[i].body, jobs[i].len, "400000-aiow", "aio waiter");
        free(jobs[i].body);
    }
    assert_int_equal(asked("/gh/400000-aiow?aio"), 1);
}

/* D8, D9 with open_file_cache: a cache file replaced behind the open-file
 * cache's back by another bill's entry, then truncated in place while its
 * descriptor is cached: never another bill, never a short bill as 200. */
static void test_D9_open_file_cache_entry_swapped_or_truncated_behind_its_back(
    void **state) {
    (void)state;
    start_nginx();
    char p1[PATH_MAX], p2[PATH_MAX];
    expect_bill(target("ofc", "30000-of1"), "30000-of1", "MISS");
    expect_bill(target("ofc", "30000-of2"), "30000-of2", "MISS");
    await_file(url_of("/g/30000-of1?ofc"), p1, sizeof(p1));
    await_file(url_of("/g/30000-of2?ofc"), p2, sizeof(p2));
    /* both workers cache the descriptor */
    for (int i = 0; i < 6; i++) {
        expect_bill(target("ofc", "30000-of1"), "30000-of1", "HIT");
    }
    assert_int_equal(rename(p2, p1), 0); /* of1's name: of2's entry */
    for (int i = 0; i < 6; i++) {
        /* (the open-file cache still holds of1's unlinked file: its
         * inode is the one the keys zone knows) */
        expect_bill(target("ofc", "30000-of1"), "30000-of1", NULL);
    }
    expect_bill(target("ofc", "30000-of2"), "30000-of2", NULL);
    /* cut in place (same inode) while its descriptor and size are
     * cached */
    char p3[PATH_MAX];
    expect_bill(target("ofc", "30000-of3"), "30000-of3", "MISS");
    await_file(url_of("/g/30000-of3?ofc"), p3, sizeof(p3));
    for (int i = 0; i < 6; i++) {
        expect_bill(target("ofc", "30000-of3"), "30000-of3", "HIT");
    }
    struct stat st;
    assert_int_equal(stat(p3, &st), 0);
    assert_int_equal(truncate(p3, st.st_size - 20000), 0);
    int ok = 0;
    for (int i = 0; i < 6; i++) {
        dss_response r = get(target("ofc", "30000-of3"));
        if (r.status == 200 && r.curl_code == CURLE_OK) {
            assert_bytes(r.body, r.body_len, "30000-of3",
                         "after an in-place truncation");
            ok++;
        }
        dss_response_free(&r);
    }
    print_message("after the in-place cut: %d of 6 answers were the whole "
                  "bill (the others ended short); archive asked %d times\n",
                  ok, asked("/g/30000-of3?ofc"));
    assert_int_equal(ok, 6);
}

/* D8: the cache file replaced by a FIFO, a directory, a symlink to another
 * bill's entry: the request is answered at once with the right bill, and
 * the cache works again once the intruder is gone. */
static void test_D8_cache_file_replaced_by_fifo_directory_or_symlink(
    void **state) {
    (void)state;
    start_nginx();
    char other[PATH_MAX];
    expect_bill(target("c", "20000-other"), "20000-other", "MISS");
    await_file(url_of("/g/20000-other"), other, sizeof(other));
    static const char *const kinds[] = {"fifo", "dir", "symlink"};
    for (int k = 0; k < 3; k++) {
        char id[64], url[128], path[PATH_MAX];
        snprintf(id, sizeof(id), "20000-%s", kinds[k]);
        snprintf(url, sizeof(url), "/g/%s", id);
        expect_bill(target("c", id), id, "MISS");
        await_file(url_of(url), path, sizeof(path));
        expect_bill(target("c", id), id, "HIT");
        assert_int_equal(unlink(path), 0);
        if (k == 0) {
            assert_int_equal(mkfifo(path, 0666), 0);
            assert_int_equal(chmod(path, 0666), 0);
        } else if (k == 1) {
            assert_int_equal(mkdir(path, 0777), 0);
        } else {
            assert_int_equal(symlink(other, path), 0);
        }
        for (int i = 0; i < 4; i++) {
            long long t0 = dss_now_ms();
            dss_response r = get(target("c", id));
            long long ms = dss_now_ms() - t0;
            assert_bill(&r, id, NULL, kinds[k]);
            dss_response_free(&r);
            assert_true(ms < 5000);
        }
        if (k == 1) {
            struct stat st;
            if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
                assert_int_equal(rmdir(path), 0);
            }
        } else {
            struct stat st;
            if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
                assert_int_equal(unlink(path), 0);
            }
        }
        expect_bill(target("c", id), id, NULL);
        await_file(url_of(url), path, sizeof(path));
        expect_bill(target("c", id), id, "HIT");
        print_message("%s in place of the entry: archive asked %d times\n",
                      kinds[k], asked(url));
    }
}

/* T5, D9: of the requests waiting for one fetch, some clients give up while
 * they wait, and nginx is reloaded meanwhile (the old workers keep their
 * waiters): the others get the bill, nothing stalls or alerts. */
static void test_D9_waiters_that_leave_and_a_reload_during_the_wait(
    void **state) {
    (void)state;
    const char *id = "300000-reload";
    start_nginx();
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 1);
    enum { N = 8 };
    job jobs[N];
    memset(jobs, 0, sizeof(jobs));
    start_job(&jobs[0], target("ch", id), 0, 0);
    await_parked(1, 1);
    for (int i = 1; i < N; i++) {
        /* clients 1..3 give up after a second of waiting */
        start_job(&jobs[i], target("ch", id), 0, i <= 3 ? 1000 : 0);
    }
    await_parked(N, 1);
    for (int i = 1; i <= 3; i++) {
        dss_job_join(&jobs[i]);
        assert_int_equal(jobs[i].curl_code, CURLE_OPERATION_TIMEDOUT);
        free(jobs[i].body);
    }
    assert_int_equal(dss_nginx_signal(&nginx, SIGHUP), 0);
    /* the new workers answer a bystander */
    long long deadline = dss_now_ms() + 10000;
    for (;;) {
        dss_response r = get(target("c", "10000-bystander"));
        int ok = r.status == 200;
        dss_response_free(&r);
        if (ok) {
            break;
        }
        assert_true(dss_now_ms() < deadline);
        dss_poll_pause();
    }
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 0);
    for (int i = 0; i < N; i++) {
        if (i >= 1 && i <= 3) {
            continue;
        }
        dss_job_join(&jobs[i]);
        if (jobs[i].status != 200) {
            fail_msg("waiter %d: %ld (curl %d)", i, jobs[i].status,
                     jobs[i].curl_code);
        }
        assert_bytes(jobs[i].body, jobs[i].len, id, "waiter across reload");
        free(jobs[i].body);
    }
    assert_int_equal(asked("/gh/300000-reload"), 1);
    expect_bill(target("ch", id), id, "HIT");
}

/* T5, D9: HTTP/2 clients that give up (their streams reset) while they
 * wait for another request's fetch, and mirror subrequests waiting for it
 * too: the others get the bill, nothing stalls, leaks or alerts. */
static void test_D9_http2_resets_and_mirror_subrequests_while_waiting(
    void **state) {
    (void)state;
    const char *id = "300000-mirror";
    start_nginx();
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 1);
    enum { N = 9 };
    job jobs[N];
    memset(jobs, 0, sizeof(jobs));
    start_job(&jobs[0], target("ch", id), 0, 0);
    await_parked(1, 1);
    /* 5, 6: HTTP/2 clients that wait; 7, 8: mirror subrequests */
    for (int i = 5; i < N; i++) {
        start_job(&jobs[i], i <= 6 ? target("ch", id) : "/mir/download/x",
                  i <= 6, 0);
    }
    await_parked(3, 1);
    /* 1..4: HTTP/2 clients that give up after 3 s of waiting */
    for (int i = 1; i <= 4; i++) {
        start_job(&jobs[i], target("ch", id), 1, 3000);
    }
    await_parked(7, 1);
    for (int i = 1; i <= 4; i++) {
        dss_job_join(&jobs[i]);
        assert_int_equal(jobs[i].curl_code, CURLE_OPERATION_TIMEDOUT);
        free(jobs[i].body);
    }
    fault_origin_hold(&a, FAULT_ORIGIN_HOLD_BILLS, 0);
    for (int i = 0; i < N; i++) {
        if (i >= 1 && i <= 4) {
            continue;
        }
        dss_job_join(&jobs[i]);
        if (i >= 7) {
            assert_int_equal(jobs[i].status, 204);
        } else {
            assert_int_equal(jobs[i].status, 200);
            assert_bytes(jobs[i].body, jobs[i].len, id, "waiter");
        }
        free(jobs[i].body);
    }
    expect_bill(target("ch", id), id, "HIT");
    assert_int_equal(asked("/gh/300000-mirror"), 1);
}

/* D5, D9: the archive's 404 in a cached location, error_page to another
 * cached location (an internal redirect drops r->cache): the other
 * location's bill, first fetched, then from the cache, also while the
 * first location's 404 is kept as its entry's error. */
static void test_D9_error_page_from_one_cached_location_to_another(
    void **state) {
    (void)state;
    const char *id = "20000-ep";
    start_nginx();
    expect_bill(target("ep", id), id, NULL);
    char path[PATH_MAX];
    await_file(url_of("/g/20000-ep?fb"), path, sizeof(path));
    expect_bill(target("ep", id), id, "HIT");
    expect_bill(target("ep", id), id, "HIT");
    assert_int_equal(asked("/g/20000-ep?fb"), 1);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_D9_key_parts_run_together_client_chosen_url_reads_another_clients_bill),
        T(test_D4_D6_a_stricter_locations_refusal_is_not_another_locations_answer),
        T(test_cache_a_waiter_whose_wait_ran_out_is_counted_a_miss),
        T(test_D9_an_unverified_fetch_is_served_by_a_verifying_location),
        T(test_cache_a_crowd_on_a_corrupt_entry_fetches_once),
        T(test_D3_range_conditionals_and_head_on_a_hit_get_the_whole_bill),
        T(test_D3_D8_a_head_miss_stores_the_whole_bill),
        T(test_D9_http2_waiters_and_hits_get_their_own_bills),
        T(test_D8_aio_threads_directio_without_sendfile_hits_are_whole),
        T(test_D9_open_file_cache_entry_swapped_or_truncated_behind_its_back),
        T(test_D8_cache_file_replaced_by_fifo_directory_or_symlink),
        T(test_D9_waiters_that_leave_and_a_reload_during_the_wait),
        T(test_D9_error_page_from_one_cached_location_to_another),
        T(test_D9_http2_resets_and_mirror_subrequests_while_waiting),
    };
#undef T
    const char *filter = getenv("DSS_TEST_FILTER");
    if (filter && *filter) {
        cmocka_set_test_filter(filter);
    }
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}

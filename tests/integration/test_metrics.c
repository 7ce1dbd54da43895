/* Integration tests of observability (issue 11): the outcome variables in
 * the access log, the counters of dss_bill_metrics exact across two workers
 * and a reload, the exposition checked by Prometheus' own promtool, and the
 * endpoint behind nginx's access control. */

#define _GNU_SOURCE /* asprintf */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault_origin.h"
#include "exposition.h"
#include "harness.h"

static dss_nginx nginx;
static fault_origin origin;
static int dead_port; /* nothing listens there */
static int dead_fd = -1; /* keeps it so (dss_closed_port) */

/* %1$d: the fault origin's port, %2$d: a closed port */
static const char *const config =
    "log_format dss_bill '$remote_addr - $remote_user [$time_local] "
    "\"$request\" $status $body_bytes_sent outcome=$dss_bill_outcome "
    "source=$dss_bill_source archive_status=$dss_bill_archive_status "
    "archive_time=$dss_bill_archive_time size=$dss_bill_size';\n"
    "log_format worker '$pid';\n"
    "dss_bill_upstream_temp_path @PREFIX@/temp;\n"
    /* every archive body in a temporary file (see /dss/notemp/) */
    "dss_bill_upstream_memory 0;\n"
    "server {\n"
    /* reuseport: the kernel spreads connections over both workers */
    "    listen 127.0.0.1:@PORT@ reuseport;\n"
    "    access_log @PREFIX@/logs/bill.log dss_bill;\n"
    "    access_log @PREFIX@/logs/workers.log worker;\n"
    "    location /dss/bill/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "        dss_bill_max_size 20k;\n"
    "    }\n"
    "    location /dss/sym/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "        disable_symlinks on;\n"
    "    }\n"
    "    location /dss/dir/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "        dss_bill_path $arg_d/$dss_bill_id.pdf;\n"
    "    }\n"
    "    location /dss/down/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/locked;\n"
    "    }\n"
    /* generous timeouts where a fault must not turn into a timeout on a
     * busy machine; a short one where the timeout is the point */
    "    location /dss/arch/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/$dss_bill_id;\n"
    "        dss_bill_upstream_connect_timeout 10s;\n"
    "        dss_bill_upstream_timeout 20s;\n"
    "    }\n"
    /* a 300 KB body goes to a temporary file (dss_bill_upstream_memory 0:
     * nothing beyond the 16k buffer), here in a folder the workers may not
     * write: the fetch fails as temp_file_error */
    "    location /dss/notemp/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/g/$dss_bill_id;\n"
    "        dss_bill_upstream_temp_path @PREFIX@/notemp;\n"
    "        dss_bill_upstream_connect_timeout 10s;\n"
    "        dss_bill_upstream_timeout 20s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /dss/slow/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/$dss_bill_id;\n"
    "        dss_bill_upstream_connect_timeout 1s;\n"
    "        dss_bill_upstream_timeout 1s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /dss/dead/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%2$d/$dss_bill_id;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /dss/tls/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream https://127.0.0.1:@PORT2@/$dss_bill_id;\n"
    "        dss_bill_upstream_connect_timeout 10s;\n"
    "        dss_bill_upstream_timeout 20s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location = /metrics {\n"
    "        allow 127.0.0.1;\n"
    "        deny all;\n"
    "        dss_bill_metrics;\n"
    "    }\n"
    "    location = /metrics-denied {\n"
    "        deny all;\n"
    "        dss_bill_metrics;\n"
    "    }\n"
    "    location = /metrics-auth {\n"
    "        auth_basic \"metrics\";\n"
    "        auth_basic_user_file @PREFIX@/htpasswd;\n"
    "        dss_bill_metrics;\n"
    "    }\n"
    "}\n"
    /* an archive whose certificate nobody trusts: TLS fails */
    "server {\n"
    "    listen 127.0.0.1:@PORT2@ ssl;\n"
    "    ssl_certificate @PREFIX@/cert.pem;\n"
    "    ssl_certificate_key @PREFIX@/key.pem;\n"
    "    location / { return 404; }\n"
    "}\n";

/* One request of the mix and everything it must show. */
typedef struct {
    const char *method;
    const char *path; /* %s: the round ("r1", "r2") */
    long status;
    const char *route;
    const char *outcome;
    const char *source;         /* "-": none */
    const char *archive_status; /* "-": none */
    long client_timeout_ms;     /* 0: default; else the client leaves */
    const char *logged;         /* in the error log with the bill id */
} mix_entry;

#define ROOT_BILL_SIZE 10000

/* clang-format off */
static const mix_entry mix[] = {
    /* document root (D3-D7) */
    {"GET",  "/dss/bill/download/ok-%s",     200, "download", "ok",               "root", "-", 0, NULL},
    {"HEAD", "/dss/bill/download/ok-%s",     200, "download", "ok",               "root", "-", 0, NULL},
    {"GET",  "/dss/bill/download/nf-%s",     404, "download", "not_found",        "root", "-", 0, "nf-"},
    {"GET",  "/dss/bill/download/bad.%s",    404, "download", "invalid_id",       "-",    "-", 0, NULL},
    {"GET",  "/dss/bill/download/empty-%s",  500, "download", "empty",            "root", "-", 0, "empty-"},
    {"GET",  "/dss/bill/download/junk-%s",   500, "download", "not_pdf",          "root", "-", 0, "junk-"},
    {"GET",  "/dss/bill/download/big-%s",    500, "download", "too_large",        "root", "-", 0, "big-"},
    {"GET",  "/dss/bill/download/cut-%s",    500, "download", "incomplete_pdf",   "root", "-", 0, "cut-"},
    {"GET",  "/dss/bill/download/dir-%s",    404, "download", "not_regular_file", "root", "-", 0, "dir-"},
    {"GET",  "/dss/bill/download/locked-%s", 500, "download", "unreadable",       "root", "-", 0, "locked-"},
    {"GET",  "/dss/sym/download/link-%s",    404, "download", "symlink_refused",  "root", "-", 0, "link-"},
    {"GET",  "/dss/dir/download/ok-%s?d=..", 404, "download", "unsafe_path",      "root", "-", 0, "ok-"},
    {"POST", "/dss/bill/download/ok-%s",     405, "download", "method_not_allowed", "-",  "-", 0, NULL},
    {"POST", "/dss/bill/healthcheck?%s",     405, "health",   "method_not_allowed", "-",  "-", 0, NULL},
    {"GET",  "/dss/bill/other-%s",           404, "other",    "no_route",         "-",    "-", 0, NULL},
    /* health (H2, H3) */
    {"GET",  "/dss/bill/healthcheck?%s",     200, "health",   "healthy",          "-",    "-", 0, NULL},
    {"GET",  "/dss/down/healthcheck?%s",     503, "health",   "unhealthy",        "-",    "-", 0, NULL},
    /* the archive (D5, D6, D8) */
    {"GET",  "/dss/arch/download/ok-%s",              200, "download", "ok",                "archive", "200", 0, NULL},
    {"GET",  "/dss/arch/download/status-404-%s",      404, "download", "archive_not_found", "archive", "404", 0, "status-404-"},
    {"GET",  "/dss/arch/download/status-503-%s",      500, "download", "archive_status",    "archive", "503", 0, "status-503-"},
    {"GET",  "/dss/arch/download/short-%s",           500, "download", "archive_truncated", "archive", "200", 0, "short-"},
    {"GET",  "/dss/arch/download/html-%s",            500, "download", "not_pdf",           "archive", "200", 0, "html-"},
    {"GET",  "/dss/arch/download/empty-%s",           500, "download", "empty",             "archive", "200", 0, "empty-"},
    {"GET",  "/dss/arch/download/redirect-%s",        500, "download", "archive_redirect",  "archive", "302", 0, "redirect-"},
    {"GET",  "/dss/arch/download/dup-length-%s",      500, "download", "archive_framing",   "archive", "200", 0, "dup-length-"},
    {"GET",  "/dss/arch/download/huge-announced-%s",  500, "download", "too_large",         "archive", "200", 0, "huge-announced-"},
    {"GET",  "/dss/arch/download/cut-close-%s",       500, "download", "incomplete_pdf",    "archive", "200", 0, "cut-close-"},
    {"GET",  "/dss/notemp/download/300000-%s",        500, "download", "temp_file_error",   "archive", "200", 0, "300000-"},
    {"GET",  "/dss/slow/download/slow-first-byte-%s", 500, "download", "archive_timeout",   "archive", "-",   0, "slow-first-byte-"},
    {"GET",  "/dss/arch/download/stall-%s",           499, "download", "client_gone",       "archive", "-",   2000, "stall-"},
    {"GET",  "/dss/dead/download/x-%s",               500, "download", "archive_connect",   "archive", "-",   0, "x-"},
    {"GET",  "/dss/tls/download/t-%s",                500, "download", "archive_tls",       "archive", "-",   0, "t-"},
};
/* clang-format on */

#define MIX_COUNT (sizeof(mix) / sizeof(mix[0]))
/* archive fetches that reach a verdict in one round (not client_gone) */
#define ROUND_FETCHES 14

static char *path_of(const mix_entry *e, const char *round) {
    char *path;
    assert_true(asprintf(&path, e->path, round) > 0);
    return path;
}

static dss_response send_entry(const mix_entry *e, const char *round) {
    char *path = path_of(e, round);
    dss_request_options o = {0};
    o.plain_http = 1;
    o.method = e->method;
    o.timeout_ms = e->client_timeout_ms;
    dss_response r = dss_request(&nginx, path, &o);
    free(path);
    return r;
}

static int setup(void **state) {
    (void)state;
    assert_int_equal(fault_origin_start(&origin), 0);
    assert_int_equal(dss_nginx_prepare(&nginx), 0);
    nginx.workers = 2;
    /* the client leaving a fetch is logged at info ("cancelled"); the TLS
     * failure towards a plain-HTTP origin at error: nothing is an alert */

    for (int i = 1; i <= 2; i++) {
        char name[64], path[PATH_MAX];
        snprintf(name, sizeof(name), "bills/ok-r%d.pdf", i);
        dss_write_bill(dss_path(&nginx, name), name, ROOT_BILL_SIZE);
        snprintf(name, sizeof(name), "bills/empty-r%d.pdf", i);
        dss_write_file(dss_path(&nginx, name), "", 0);
        snprintf(name, sizeof(name), "bills/junk-r%d.pdf", i);
        dss_write_file(dss_path(&nginx, name), "<html>no</html>", 15);
        snprintf(name, sizeof(name), "bills/big-r%d.pdf", i);
        dss_write_bill(dss_path(&nginx, name), name, 30000);
        snprintf(name, sizeof(name), "bills/cut-r%d.pdf", i);
        dss_write_file(dss_path(&nginx, name), "%PDF-1.4\n1 0 obj\n", 17);
        snprintf(name, sizeof(name), "bills/dir-r%d.pdf", i);
        assert_int_equal(mkdir(dss_path(&nginx, name), 0755), 0);
        char target[64];
        snprintf(target, sizeof(target), "ok-r%d.pdf", i);
        snprintf(name, sizeof(name), "bills/link-r%d.pdf", i);
        assert_int_equal(symlink(target, dss_path(&nginx, name)), 0);
        snprintf(name, sizeof(name), "bills/locked-r%d.pdf", i);
        snprintf(path, sizeof(path), "%s", dss_path(&nginx, name));
        dss_write_bill(path, name, 0);
        assert_int_equal(chmod(path, 0), 0);
    }
    assert_int_equal(mkdir(dss_path(&nginx, "locked"), 0), 0);
    assert_int_equal(mkdir(dss_path(&nginx, "notemp"), 0), 0);

    /* a port nothing listens on, held so until the teardown */
    dead_port = dss_closed_port(&dead_fd);
    assert_true(dead_port > 0);

    char *conf;
    assert_true(asprintf(&conf, config, origin.port, dead_port) > 0);
    int rc = dss_nginx_start(&nginx, conf);
    free(conf);
    assert_int_equal(rc, 0);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    chmod(dss_path(&nginx, "locked"), 0755); /* for the prefix's removal */
    chmod(dss_path(&nginx, "notemp"), 0755);
    dss_nginx_cleanup(&nginx);
    fault_origin_stop(&origin);
    if (dead_fd >= 0) {
        close(dead_fd);
        dead_fd = -1;
    }
    return 0;
}

static char *scrape(void) {
    dss_request_options o = {0};
    o.plain_http = 1;
    dss_response r = dss_request(&nginx, "/metrics", &o);
    assert_int_equal(r.status, 200);
    assert_non_null(r.body);
    char *text = strndup(r.body, r.body_len);
    dss_response_free(&r);
    return text;
}

/* How many times the mix holds (route, status, outcome). */
static int mix_count(const char *route, long status, const char *outcome) {
    int count = 0;
    for (size_t i = 0; i < MIX_COUNT; i++) {
        count += strcmp(mix[i].route, route) == 0 && mix[i].status == status &&
                 strcmp(mix[i].outcome, outcome) == 0;
    }
    return count;
}

/* Every requests series equals rounds x the mix, and nothing else counts.
 * Returns NULL or a description of the first difference (malloc'd). */
static char *requests_differ(const char *text, int rounds) {
    char *diff = NULL;
    for (size_t i = 0; i < MIX_COUNT && !diff; i++) {
        char head[256];
        snprintf(head, sizeof(head),
                 "dss_bill_requests_total{route=\"%s\",status=\"%ld\","
                 "outcome=\"%s\"}",
                 mix[i].route, mix[i].status, mix[i].outcome);
        long long want =
            (long long)rounds * mix_count(mix[i].route, mix[i].status,
                                          mix[i].outcome);
        long long got = dss_series(text, head);
        if (got != want) {
            assert_true(asprintf(&diff, "%s: %lld, expected %lld", head, got,
                                 want) > 0);
        }
    }
    long long total = dss_requests_sum(text);
    if (!diff && total != (long long)rounds * (long long)MIX_COUNT) {
        assert_true(asprintf(&diff, "all requests: %lld, expected %lld", total,
                             (long long)rounds * (long long)MIX_COUNT) > 0);
    }
    return diff;
}

/* Polls the endpoint (either worker answers) until the counters match the
 * mix: a client that left is counted when nginx notices, not before. */
static char *await_counters(int rounds) {
    long long deadline = dss_now_ms() + 20000;
    for (;;) {
        char *text = scrape();
        char *diff = requests_differ(text, rounds);
        if (!diff && dss_series(text, "dss_bill_archive_fetches_in_flight") == 0) {
            return text;
        }
        if (dss_now_ms() > deadline) {
            fail_msg("counters after %d rounds: %s\n%s", rounds,
                     diff ? diff : "fetches still in flight", text);
        }
        free(diff);
        free(text);
        dss_poll_pause();
    }
}

static void send_mix(const char *round) {
    for (size_t i = 0; i < MIX_COUNT; i++) {
        dss_response r = send_entry(&mix[i], round);
        if (mix[i].client_timeout_ms) {
            /* the client gave up: no answer */
            assert_int_not_equal(r.curl_code, 0);
        } else {
            if (r.status != mix[i].status) {
                fail_msg("%s %s (%s): %ld, expected %ld", mix[i].method,
                         mix[i].path, round, r.status, mix[i].status);
            }
        }
        if (strcmp(mix[i].outcome, "ok") == 0 && strcmp(mix[i].method, "GET") == 0) {
            /* D3: the bill's bytes, not only its length */
            if (strcmp(mix[i].source, "root") == 0) {
                assert_int_equal(r.body_len, ROOT_BILL_SIZE);
                assert_memory_equal(r.body, "%PDF-", 5);
            } else {
                assert_int_equal(r.body_len, FAULT_ORIGIN_PDF_SIZE);
                assert_memory_equal(r.body, fault_origin_pdf(),
                                    FAULT_ORIGIN_PDF_SIZE);
            }
        }
        dss_response_free(&r);
    }
}

/* The other counters after rounds of the mix. */
static void check_other_counters(const char *text, int rounds) {
    /* D3: body bytes by source; HEAD sends none */
    assert_int_equal(dss_series(text, "dss_bill_response_bytes_total{source=\"root\"}"),
                     (long long)rounds * ROOT_BILL_SIZE);
    assert_int_equal(
        dss_series(text, "dss_bill_response_bytes_total{source=\"archive\"}"),
        (long long)rounds * FAULT_ORIGIN_PDF_SIZE);
    /* every fetch that reached a verdict, none still counted in flight */
    assert_int_equal(
        dss_series(text, "dss_bill_archive_fetch_duration_seconds_count"),
        rounds * ROUND_FETCHES);
    assert_int_equal(
        dss_series(text, "dss_bill_archive_fetch_duration_seconds_bucket{le=\"+Inf\"}"),
        rounds * ROUND_FETCHES);
    assert_int_equal(dss_series(text, "dss_bill_archive_fetches_in_flight"), 0);
    /* the timeouts alone took 1 s each; the fast ones are under 5 s */
    const char *sum = strstr(text, "\ndss_bill_archive_fetch_duration_seconds_sum ");
    assert_non_null(sum);
    double seconds = atof(strchr(sum + 1, ' ') + 1);
    assert_true(seconds >= 0.9 * rounds);
    assert_true(dss_series(text, "dss_bill_archive_fetch_duration_seconds_bucket{le=\"5\"}") >=
                rounds * (ROUND_FETCHES - 1));
    /* H3: the probes' verdicts */
    assert_int_equal(
        dss_series(text, "dss_bill_source_up{location=\"/dss/bill/\",source=\"root\"}"), 1);
    assert_int_equal(
        dss_series(text, "dss_bill_source_up{location=\"/dss/down/\",source=\"root\"}"), 0);
    assert_int_equal(
        dss_series(text, "dss_bill_source_up{location=\"/dss/arch/\",source=\"archive\"}"),
        1);
    assert_int_equal(
        dss_series(text, "dss_bill_source_up{location=\"/dss/dead/\",source=\"archive\"}"),
        -1); /* no probe: no verdict */
    assert_int_equal(dss_series(text, "dss_bill_build_info{version=\"0.1.0\",nginx=\"1.22.1\"}"),
                     1);
}

/* The access-log pattern of mix entry e in round (malloc'd). */
static char *line_pattern(const mix_entry *e, const char *round) {
    char *path = path_of(e, round), *want;
    assert_true(asprintf(&want,
                         "\"%s %s HTTP/1.1\" %ld [0-9]+ outcome=%s "
                         "source=%s archive_status=%s archive_time=%s "
                         "size=%s\n",
                         e->method, path, e->status, e->outcome, e->source,
                         e->archive_status,
                         strcmp(e->source, "archive") == 0
                             ? "[0-9]+\\.[0-9]{3}"
                             : "-",
                         strcmp(e->outcome, "ok") == 0
                             ? (strcmp(e->source, "root") == 0 ? "10000"
                                                               : "2000")
                             : "-") > 0);
    /* the path's dots and question marks are literal */
    char *pattern = malloc(2 * strlen(want) + 1);
    assert_non_null(pattern);
    size_t o = 0;
    for (const char *c = want; *c; c++) {
        if ((*c == '.' || *c == '?') &&
            c < want + strlen(e->method) + 2 + strlen(path) + 1) {
            pattern[o++] = '\\';
        }
        pattern[o++] = *c;
    }
    pattern[o] = '\0';
    free(want);
    free(path);
    return pattern;
}

/* The first mix entry of round without its line in the access log: its
 * pattern (malloc'd), or NULL; *log gets the log read (malloc'd). */
static char *missing_line(const char *round, char **log) {
    size_t len;
    *log = dss_read_file(dss_path(&nginx, "logs/bill.log"), &len);
    assert_non_null(*log);
    for (size_t i = 0; i < MIX_COUNT; i++) {
        char *pattern = line_pattern(&mix[i], round);
        regex_t re;
        assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
        int found = regexec(&re, *log, 0, NULL, 0) == 0;
        regfree(&re);
        if (!found) {
            return pattern;
        }
        free(pattern);
    }
    return NULL;
}

/* Each request's line in the access log shows its outcome through the
 * variables, and each failure has its reason in the error log (D6). A
 * worker writes its access log line after the response (the counters come
 * first, then the log): polled, 10 s. */
static void check_logs(const char *round) {
    char *log = NULL, *missing;
    for (long long end = dss_now_ms() + 10000;
         (missing = missing_line(round, &log)) != NULL &&
         dss_now_ms() < end;) {
        free(missing);
        free(log);
        dss_poll_pause();
    }
    if (missing) {
        fail_msg("no access log line matches %s\n--- log:\n%s", missing, log);
    }
    free(log);
    for (size_t i = 0; i < MIX_COUNT; i++) {
        const mix_entry *e = &mix[i];
        if (e->logged) {
            char needle[128];
            snprintf(needle, sizeof(needle), "bill id \"%s%s\"", e->logged,
                     round);
            if (dss_error_log_count(&nginx, needle) < 1) {
                fail_msg("no error log line with %s", needle);
            }
        }
    }
}

/* How many workers served requests so far (distinct pids in workers.log). */
static int workers_served(void) {
    size_t len;
    char *log = dss_read_file(dss_path(&nginx, "logs/workers.log"), &len);
    assert_non_null(log);
    long pids[64];
    int count = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        long pid = atol(line);
        int seen = 0;
        for (int i = 0; i < count; i++) {
            seen = seen || pids[i] == pid;
        }
        if (!seen && count < 64) {
            pids[count++] = pid;
        }
    }
    free(log);
    return count;
}

/* The whole mix, twice, with a reload between: every counter equals the
 * mix exactly, although two workers served it (and two more after the
 * reload), and the old workers' counts survive into the new ones' (D5, D6,
 * H2, H3). */
static void test_D6_counters_exact_across_workers_and_reload(void **state) {
    (void)state;
    char *text = scrape();
    /* from the first scrape: every outcome's series, at 0 */
    assert_null(requests_differ(text, 0));
    assert_int_equal(dss_series(text, "dss_bill_requests_total{route=\"download\","
                                  "status=\"500\",outcome=\"archive_tls\"}"),
                     0);
    free(text);

    send_mix("r1");
    /* each connection went to one of the two workers (reuseport): that
     * all 31 so far went to the same one has odds of 2^-30 */
    assert_int_equal(workers_served(), 2);
    text = await_counters(1);
    check_other_counters(text, 1);
    dss_promtool_check(&nginx, text, "exposition.txt");
    free(text);
    check_logs("r1");

    assert_int_equal(dss_nginx_reload(&nginx, 20000), 0);

    send_mix("r2");
    assert_int_equal(workers_served(), 4);
    text = await_counters(2);
    check_other_counters(text, 2);
    dss_promtool_check(&nginx, text, "exposition.txt");
    free(text);
    check_logs("r2");
}

typedef struct {
    char target[64];
    long timeout_ms;
    dss_response response;
} held_fetch;

static void *held_fetch_main(void *arg) {
    held_fetch *h = arg;
    dss_request_options o = {0};
    o.plain_http = 1;
    o.timeout_ms = h->timeout_ms ? h->timeout_ms : 60000;
    h->response = dss_request(&nginx, h->target, &o);
    return NULL;
}

/* Polls until the in-flight gauge reads want; returns the last scrape. */
static char *await_in_flight(long long want) {
    long long deadline = dss_now_ms() + 20000;
    for (;;) {
        char *text = scrape();
        if (dss_series(text, "dss_bill_archive_fetches_in_flight") == want) {
            return text;
        }
        if (dss_now_ms() > deadline) {
            fail_msg("fetches in flight: %lld, expected %lld\n%s",
                     dss_series(text, "dss_bill_archive_fetches_in_flight"), want,
                     text);
        }
        free(text);
        dss_poll_pause();
    }
}

/* Fetches in flight are counted while they last, and a worker killed in
 * the middle of them (SIGKILL, as a crash) takes its count with it: the
 * gauge goes back to 0 once nginx has replaced the worker, instead of
 * staying high for good (an alert that never clears); the replacement
 * counts its own fetches (D6). */
static void test_D6_in_flight_gauge_after_a_killed_worker(void **state) {
    (void)state;
    enum { HELD = 3 };
    held_fetch held[HELD];
    pthread_t threads[HELD];
    for (int i = 0; i < HELD; i++) {
        memset(&held[i], 0, sizeof(held[i]));
        /* headers and 1000 of 1 MB, then silence: in flight for 20 s */
        snprintf(held[i].target, sizeof(held[i].target),
                 "/dss/arch/download/stall-killed%d", i);
        assert_int_equal(
            pthread_create(&threads[i], NULL, held_fetch_main, &held[i]), 0);
    }
    free(await_in_flight(HELD));

    /* every worker killed; their "exited on signal 9" alerts expected */
    static char allowed_text[8][80];
    static const char *allowed[9];
    pid_t workers[8];
    int count = dss_nginx_worker_pids(&nginx, workers, 8);
    assert_true(count >= 1);
    for (int i = 0; i < count; i++) {
        snprintf(allowed_text[i], sizeof(allowed_text[i]),
                 "worker process %d exited on signal 9", (int)workers[i]);
        allowed[i] = allowed_text[i];
    }
    allowed[count] = NULL;
    nginx.allowed_alerts = allowed;
    for (int i = 0; i < count; i++) {
        assert_int_equal(kill(workers[i], SIGKILL), 0);
    }

    /* their clients lose the connection: no answer, certainly no 200 */
    for (int i = 0; i < HELD; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_not_equal(held[i].response.status, 200);
        dss_response_free(&held[i].response);
    }

    free(await_in_flight(0));

    /* the new workers count their own: one more held fetch shows as 1 */
    held_fetch again;
    pthread_t thread;
    memset(&again, 0, sizeof(again));
    snprintf(again.target, sizeof(again.target),
             "/dss/arch/download/stall-after-kill");
    again.timeout_ms = 4000;
    assert_int_equal(pthread_create(&thread, NULL, held_fetch_main, &again),
                     0);
    free(await_in_flight(1));
    /* the client gives up after 4 s (the archive timeout is 20 s): its
     * fetch is cancelled, and the gauge is 0 again */
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_not_equal(again.response.status, 200);
    dss_response_free(&again.response);
    free(await_in_flight(0));
}

/* The endpoint is an ordinary location: its type is Prometheus' text
 * format, and allow/deny and auth_basic guard it. */
static void test_T3_endpoint_format_and_access_control(void **state) {
    (void)state;
    dss_request_options o = {0};
    o.plain_http = 1;
    dss_response r = dss_request(&nginx, "/metrics", &o);
    assert_int_equal(r.status, 200);
    assert_string_equal(dss_header(&r, "Content-Type"),
                        "text/plain; version=0.0.4; charset=utf-8");
    char cl[32];
    snprintf(cl, sizeof(cl), "%zu", r.body_len);
    assert_string_equal(dss_header(&r, "Content-Length"), cl);
    assert_non_null(strstr(r.body, "# TYPE dss_bill_requests_total counter\n"));
    dss_response_free(&r);

    o.method = "HEAD";
    r = dss_request(&nginx, "/metrics", &o);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    dss_response_free(&r);

    o.method = "POST";
    r = dss_request(&nginx, "/metrics", &o);
    assert_int_equal(r.status, 405);
    dss_response_free(&r);
    o.method = NULL;

    r = dss_request(&nginx, "/metrics-denied", &o);
    assert_int_equal(r.status, 403);
    assert_null(r.body_len ? strstr(r.body, "dss_bill_") : NULL);
    dss_response_free(&r);

    r = dss_request(&nginx, "/metrics-auth", &o);
    assert_int_equal(r.status, 401);
    assert_null(r.body_len ? strstr(r.body, "dss_bill_") : NULL);
    dss_response_free(&r);

    o.userpwd = "dss:secret";
    r = dss_request(&nginx, "/metrics-auth", &o);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\ndss_bill_build_info{"));
    dss_response_free(&r);
}

/* nginx -t names the directive and the reason; a bigger zone works. */
static void test_config_errors_and_zone_size(void **state) {
    (void)state;
    static const struct {
        const char *block;
        const char *says;
    } bad[] = {
        {"dss_bill_metrics_zone 4k;\n"
         "server { listen 127.0.0.1:@PORT@; location /m { dss_bill_metrics; } }",
         "\"dss_bill_metrics_zone\" of 4k is too small"},
        {"dss_bill_metrics_zone lots;\n"
         "server { listen 127.0.0.1:@PORT@; location /m { dss_bill_metrics; } }",
         "\"dss_bill_metrics_zone\" has an invalid size \"lots\""},
        {"dss_bill_metrics_zone 1m; dss_bill_metrics_zone 2m;\n"
         "server { listen 127.0.0.1:@PORT@; location /m { dss_bill_metrics; } }",
         "\"dss_bill_metrics_zone\" directive is duplicate"},
        {"server { listen 127.0.0.1:@PORT@; location /d/ { dss_bill; "
         "dss_bill_root /tmp; dss_bill_metrics; } }",
         "\"dss_bill_metrics\" directive needs a location of its own"},
        {"server { listen 127.0.0.1:@PORT@; location /m { dss_bill_metrics; "
         "dss_bill_metrics; } }",
         "\"dss_bill_metrics\" directive is duplicate"},
        {"server { listen 127.0.0.1:@PORT@; dss_bill_metrics; }",
         "\"dss_bill_metrics\" directive is not allowed here"},
    };
    dss_nginx t;
    assert_int_equal(dss_nginx_prepare(&t), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char out[4096];
        assert_int_not_equal(dss_nginx_test_config(&t, bad[i].block, out,
                                                   sizeof(out)),
                             0);
        if (strstr(out, bad[i].says) == NULL) {
            fail_msg("nginx -t said: %s\nexpected: %s", out, bad[i].says);
        }
    }

    assert_int_equal(
        dss_nginx_start(&t, "dss_bill_metrics_zone 1m;\n"
                            "server { listen 127.0.0.1:@PORT@;\n"
                            "  location /d/ { dss_bill; dss_bill_root @PREFIX@/bills; }\n"
                            "  location = /m { dss_bill_metrics; } }"),
        0);
    dss_request_options o = {0};
    o.plain_http = 1;
    dss_response r = dss_request(&t, "/d/download/none", &o);
    assert_int_equal(r.status, 404);
    dss_response_free(&r);
    r = dss_request(&t, "/m", &o);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\ndss_bill_requests_total{route=\"download\","
                                   "status=\"404\",outcome=\"not_found\"} 1\n"));
    dss_response_free(&r);
    dss_nginx_cleanup(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_D6_counters_exact_across_workers_and_reload),
        cmocka_unit_test(test_T3_endpoint_format_and_access_control),
        cmocka_unit_test(test_config_errors_and_zone_size),
        cmocka_unit_test(test_D6_in_flight_gauge_after_a_killed_worker),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

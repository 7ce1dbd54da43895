/* Third hostile review: the outcomes no integration test provoked
 * (storage_error, internal_error, archive_resolve, archive_error, other),
 * each checked by its status, its error-log reason, its counter and
 * $dss_bill_outcome; and an archive that misbehaves every way a real one
 * can (lies in Content-Length, chunked garbage, gzip, HTML, redirect loops,
 * huge headers, 5 MB + 1, silence, a slow-loris body), where every answer
 * is checked byte for byte and the next bill must still be right.
 *
 * The resolve test runs in a private mount namespace whose nsswitch.conf
 * looks names up in /etc/hosts only, so "no such host" is immediate and
 * needs no DNS; without root it looks the .invalid name up as the machine
 * does (RFC 6761: never resolvable). */

#define _GNU_SOURCE /* asprintf, strndup, unshare */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "review3_origin.h"

static dss_nginx nginx;
static review3_origin origin;
static int unix_fd = -1;

static const char *const config =
    "log_format r3 '$request_uri $status outcome=$dss_bill_outcome "
    "source=$dss_bill_source size=$dss_bill_size';\n"
    "dss_bill_upstream_memory 1m;\n"
    "dss_bill_cache_path @PREFIX@/cache keys_zone=r3:1m;\n"
    "dss_bill_upstream_temp_path @PREFIX@/temp;\n"
    "server {\n"
    "    listen 127.0.0.1:@PORT@ ssl;\n"
    "    listen 127.0.0.1:@PORT2@;\n"
    "    ssl_certificate @PREFIX@/cert.pem;\n"
    "    ssl_certificate_key @PREFIX@/key.pem;\n"
    "    access_log @PREFIX@/logs/r3.log r3;\n"
    "    add_header X-Outcome $dss_bill_outcome always;\n"
    "    location /root/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "    }\n"
    "    location /evil/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/$dss_bill_id;\n"
    "        dss_bill_upstream_connect_timeout 2s;\n"
    "        dss_bill_upstream_timeout 2s;\n"
    "        dss_bill_upstream_redirects 3;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /evilslow/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/$dss_bill_id;\n"
    "        dss_bill_upstream_connect_timeout 10s;\n"
    "        dss_bill_upstream_timeout 30s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /nohost/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream "
    "http://dss-review3-no-such-host.invalid/$dss_bill_id;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    /* the bucket's host from the query: empty, nothing can be signed */
    "    location /s3var/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://$arg_h/bucket/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_s3 region=us-east-1;\n"
    "        dss_bill_upstream_s3_credentials @PREFIX@/aws/credentials;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    /* one bucket, one key, one cache; two readings of S3's 403 */
    "    location /s3missing/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/bucket/$dss_bill_id;\n"
    "        dss_bill_upstream_s3 region=us-east-1;\n"
    "        dss_bill_upstream_s3_credentials @PREFIX@/aws/credentials;\n"
    "        dss_bill_upstream_s3_access_denied missing;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        dss_bill_cache r3;\n"
    "    }\n"
    "    location /s3error/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/bucket/$dss_bill_id;\n"
    "        dss_bill_upstream_s3 region=us-east-1;\n"
    "        dss_bill_upstream_s3_credentials @PREFIX@/aws/credentials;\n"
    "        dss_bill_upstream_s3_access_denied error;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        dss_bill_cache r3;\n"
    "    }\n"
    /* one bucket, one key, one cache; signed for two regions: only
     * eu-west-1 is the bucket's */
    "    location /s3east/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/bucket/$dss_bill_id;\n"
    "        dss_bill_upstream_s3 region=us-east-1;\n"
    "        dss_bill_upstream_s3_credentials @PREFIX@/aws/credentials;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        dss_bill_cache r3;\n"
    "    }\n"
    "    location /s3west/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/bucket/$dss_bill_id;\n"
    "        dss_bill_upstream_s3 region=eu-west-1;\n"
    "        dss_bill_upstream_s3_credentials @PREFIX@/aws/credentials;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        dss_bill_cache r3;\n"
    "    }\n"
    /* one archive through one cache; one location cannot buffer a large
     * bill (its temporary folder is not writable: a local fault) */
    "    location /tmpbad/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/t/$dss_bill_id;\n"
    "        dss_bill_upstream_temp_path @PREFIX@/notemp;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        dss_bill_cache r3;\n"
    "    }\n"
    "    location /tmpgood/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/t/$dss_bill_id;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        dss_bill_cache r3;\n"
    "    }\n"
    /* one archive through one cache, with two patiences */
    "    location /hasty/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/w/$dss_bill_id;\n"
    "        dss_bill_upstream_connect_timeout 1s;\n"
    "        dss_bill_upstream_timeout 1s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        dss_bill_cache r3;\n"
    "    }\n"
    "    location /patient/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/w/$dss_bill_id;\n"
    "        dss_bill_upstream_connect_timeout 1s;\n"
    "        dss_bill_upstream_timeout 20s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        dss_bill_cache r3;\n"
    "    }\n"
    "    location /long/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "        dss_bill_id_length 12 200;\n"
    "    }\n"
    "    location = /metrics {\n"
    "        dss_bill_metrics;\n"
    "    }\n"
    "}\n";

static const char credentials[] =
    "[default]\naws_access_key_id = AKIAREVIEW3KEY\n"
    "aws_secret_access_key = review3Secret/Abc+Def=\n";

/* Only /etc/hosts answers names: a name it lacks fails at once. */
static int private_resolver = 0;

static int bind_text_over(const char *target, const char *text) {
    char tmpl[] = "/tmp/dss-review3-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) {
        return -1;
    }
    size_t len = strlen(text);
    int rc = write(fd, text, len) == (ssize_t)len ? 0 : -1;
    close(fd);
    chmod(tmpl, 0644);
    if (rc == 0) {
        rc = mount(tmpl, target, NULL, MS_BIND, NULL);
    }
    unlink(tmpl); /* the mount keeps the inode */
    return rc;
}

static void resolver_setup(void) {
    if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        return;
    }
    size_t len;
    char *text = dss_read_file("/etc/nsswitch.conf", &len);
    char *out = malloc((text ? len : 0) + 32);
    size_t used = 0;
    for (char *line = text; line && *line;) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line + 1) : strlen(line);
        if (strncmp(line, "hosts:", 6) != 0) {
            memcpy(out + used, line, n);
            used += n;
        }
        line += n;
    }
    strcpy(out + used, "hosts: files\n");
    private_resolver = bind_text_over("/etc/nsswitch.conf", out) == 0;
    free(out);
    free(text);
}

static int setup(void **state) {
    (void)state;
    if (dss_nginx_prepare(&nginx) != 0 || review3_origin_start(&origin) != 0) {
        return -1;
    }
    mkdir(dss_path(&nginx, "aws"), 0700);
    dss_write_file(dss_path(&nginx, "aws/credentials"), credentials,
                   strlen(credentials));
    chmod(dss_path(&nginx, "aws/credentials"), 0600);
    mkdir(dss_path(&nginx, "notemp"), 0555);
    chmod(dss_path(&nginx, "notemp"), 0555);
    dss_write_bill(dss_path(&nginx, "bills/100000000001.pdf"), "100000000001",
                   30000);

    /* a UNIX socket where a bill should be: open() fails with ENXIO, which
     * is neither "absent" nor "forbidden": the storage failed (D6) */
    unix_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {0};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s",
             dss_path(&nginx, "bills/100000000500.pdf"));
    if (unix_fd < 0 || bind(unix_fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("bind AF_UNIX");
        return -1;
    }
    chmod(a.sun_path, 0666);

    char *text = NULL;
    if (asprintf(&text, config, origin.port) < 0) {
        return -1;
    }
    int rc = dss_nginx_start(&nginx, text);
    free(text);
    return rc;
}

static int teardown(void **state) {
    (void)state;
    dss_nginx_cleanup(&nginx);
    review3_origin_stop(&origin);
    if (unix_fd >= 0) {
        close(unix_fd);
    }
    return 0;
}

/* ---- helpers -------------------------------------------------------------- */

static char *scrape(void) {
    dss_response r = dss_get(&nginx, "/metrics");
    assert_int_equal(r.status, 200);
    assert_non_null(r.body);
    char *text = strndup(r.body, r.body_len);
    dss_response_free(&r);
    return text;
}

static long long series(const char *text, const char *head) {
    size_t n = strlen(head);
    for (const char *p = text; (p = strstr(p, head)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ') {
            return atoll(p + n + 1);
        }
    }
    return -1;
}

static long long requests_of(const char *status, const char *outcome) {
    char head[160];
    snprintf(head, sizeof(head),
             "dss_bill_requests_total{route=\"download\",status=\"%s\","
             "outcome=\"%s\"}",
             status, outcome);
    char *text = scrape();
    long long v = series(text, head);
    free(text);
    return v < 0 ? 0 : v;
}

/* Counted in the log phase, after the answer: polls (bounded). */
static void await_requests(const char *status, const char *outcome,
                           long long want) {
    long long end = dss_now_ms() + 10000, got = -1;
    while ((got = requests_of(status, outcome)) < want && dss_now_ms() < end) {
        dss_poll_pause();
    }
    if (got != want) {
        fail_msg("dss_bill_requests_total{status=%s,outcome=%s} = %lld, "
                 "want %lld",
                 status, outcome, got, want);
    }
}

static int access_log_has(const char *needle) {
    size_t len;
    char *text = dss_read_file(dss_path(&nginx, "logs/r3.log"), &len);
    int found = text && strstr(text, needle) != NULL;
    free(text);
    return found;
}

static void await_access_log(const char *needle) {
    long long end = dss_now_ms() + 10000;
    while (!access_log_has(needle) && dss_now_ms() < end) {
        dss_poll_pause();
    }
    if (!access_log_has(needle)) {
        fail_msg("no access-log line with \"%s\"", needle);
    }
}

/* One outcome: status, header variable, counter, access log, error log. */
static void check_outcome(const char *target, long status,
                          const char *outcome, const char *reason) {
    char st[8];
    snprintf(st, sizeof(st), "%ld", status);
    long long before = requests_of(st, outcome);
    int logged = reason ? dss_error_log_count(&nginx, reason) : 0;

    dss_response r = dss_get(&nginx, target);
    if (r.status != status) {
        fail_msg("%s: status %ld, want %ld", target, r.status, status);
    }
    const char *h = dss_header(&r, "X-Outcome");
    if (h == NULL || strcmp(h, outcome) != 0) {
        fail_msg("%s: $dss_bill_outcome \"%s\", want \"%s\"", target,
                 h ? h : "(none)", outcome);
    }
    if (r.body_len >= 5) {
        assert_true(memcmp(r.body, "%PDF-", 5) != 0);
    }
    dss_response_free(&r);

    await_requests(st, outcome, before + 1);
    char line[256];
    snprintf(line, sizeof(line), "%s %ld outcome=%s ", target, status,
             outcome);
    await_access_log(line);
    if (reason && dss_error_log_count(&nginx, reason) <= logged) {
        fail_msg("%s: no error-log line with \"%s\"", target, reason);
    }
}

static void check_good_bill(const char *path_id, size_t size) {
    char target[256];
    snprintf(target, sizeof(target), "/evil/download/%s", path_id);
    dss_response r = dss_get(&nginx, target);
    if (r.status != 200) {
        fail_msg("%s after a bad answer: status %ld", target, r.status);
    }
    char *want = review3_bill(path_id, size);
    assert_int_equal(r.body_len, size);
    assert_memory_equal(r.body, want, size);
    free(want);
    dss_response_free(&r);
}

/* ---- the outcomes without an integration test ----------------------------- */

/* D6: open() fails for a reason that is neither "absent" nor "forbidden". */
static void test_D6_storage_error_outcome(void **state) {
    (void)state;
    check_outcome("/root/download/100000000500", 500, "storage_error",
                  "storage error while opening the bill");
    assert_true(dss_error_log_count(&nginx, "[crit]") >= 1);

    /* and the root still serves */
    dss_response r = dss_get(&nginx, "/root/download/100000000001");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 30000);
    dss_response_free(&r);
}

/* D6: the archive's host has no address. */
static void test_D6_archive_resolve_outcome(void **state) {
    (void)state;
    if (!private_resolver) {
        fprintf(stderr, "note: no private nsswitch.conf; the .invalid name "
                        "is looked up as this machine does\n");
    }
    long long t0 = dss_now_ms();
    check_outcome("/nohost/download/100000000002", 500, "archive_resolve",
                  "cannot resolve the archive's host");
    assert_true(dss_now_ms() - t0 < 9000);
}

/* D6: an answer that is not HTTP: another libcurl error. */
static void test_D6_archive_error_outcome(void **state) {
    (void)state;
    check_outcome("/evil/download/garbage-1", 500, "archive_error",
                  "archive fetch failed");
    check_good_bill("ok-2500-after-garbage", 2500);
}

/* D6: a fetch that cannot even start (no host to sign for) is the module's
 * own failure: 500, logged at crit, counted as internal_error. */
static void test_D6_internal_error_outcome(void **state) {
    (void)state;
    check_outcome("/s3var/download/100000000003?h=", 500, "internal_error",
                  "internal error (cannot start the fetch)");
}

/* A raw HTTP/1.1 exchange on the plain listener: the whole answer. */
static char *raw_exchange(const char *request) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)nginx.port2);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(dss_send_all(fd, request, strlen(request)), 0);
    size_t cap = 65536, got = 0;
    char *out = malloc(cap + 1);
    long long end = dss_now_ms() + 10000;
    while (got < cap && dss_now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0) {
            continue;
        }
        ssize_t n = recv(fd, out + got, cap - got, 0);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    out[got] = '\0';
    close(fd);
    return out;
}

/* D7: nginx ends the request itself (a request body it cannot read): the
 * counter and $dss_bill_outcome say "other", with nginx's status. */
static void test_D7_other_outcome(void **state) {
    (void)state;
    long long before = requests_of("400", "other");
    char *answer = raw_exchange("GET /root/download/100000000001 HTTP/1.1\r\n"
                                "Host: dss\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n"
                                "zz\r\ngarbage\r\n");
    if (strncmp(answer, "HTTP/1.1 400", 12) != 0) {
        fail_msg("a garbage request body: %.60s", answer);
    }
    assert_non_null(strcasestr(answer, "\r\nX-Outcome: other\r\n"));
    assert_null(strstr(answer, "%PDF-"));
    free(answer);
    await_requests("400", "other", before + 1);
    await_access_log("/root/download/100000000001 400 outcome=other ");
}

/* ---- a hostile archive ---------------------------------------------------- */

typedef struct {
    const char *id;
    long status;            /* 0: 200 with the exact bill, or 500 */
    const char *outcome;    /* NULL: any */
    size_t size;            /* of the bill when 200 is right */
} bad_case;

static void test_D8_hostile_archive_answers(void **state) {
    (void)state;
    static const bad_case cases[] = {
        {"lielong-1", 500, "archive_truncated", 0},
        {"chunkgarbage-1", 500, NULL, 0},
        {"gzip-1", 0, NULL, 2000},
        {"html-1", 500, "not_pdf", 0},
        {"hugeheaders-1", 0, NULL, 3000},
        {"loop-1", 500, "archive_redirect", 0},
        {"over-1", 500, "too_large", 0},
        {"overchunked-1", 500, "too_large", 0},
        {"never-1", 500, "archive_timeout", 0},
        {"slowloris-1", 500, "archive_timeout", 0},
        {"status-301-1", 500, "archive_redirect", 0},
        {"status-204-1", 500, NULL, 0},
        {"status-206-1", 500, NULL, 0},
        /* not a redirect: no conditional request was sent */
        {"status-304-1", 500, "archive_status", 0},
        {"status-429-1", 500, "archive_status", 0},
        {"cont-3000-1", 200, "ok", 3000},
        {"close-7000-1", 200, "ok", 7000},
        {"chunked-70000-1", 200, "ok", 70000},
        {"exact-1", 200, "ok", REVIEW3_MB5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const bad_case *c = &cases[i];
        char target[256];
        snprintf(target, sizeof(target), "/evil/download/%s", c->id);
        long long t0 = dss_now_ms();
        dss_response r = dss_get(&nginx, target);
        long long took = dss_now_ms() - t0;
        const char *outcome = dss_header(&r, "X-Outcome");
        fprintf(stderr, "  %-18s -> %ld %s (%zu bytes, %lld ms)\n", c->id,
                r.status, outcome ? outcome : "-", r.body_len, took);
        if (c->status && r.status != c->status) {
            fail_msg("%s: status %ld, want %ld", c->id, r.status, c->status);
        }
        if (r.status != 200 && r.status != 500) {
            fail_msg("%s: status %ld (D7)", c->id, r.status);
        }
        if (c->outcome && (outcome == NULL || strcmp(outcome, c->outcome))) {
            fail_msg("%s: outcome %s, want %s", c->id,
                     outcome ? outcome : "-", c->outcome);
        }
        if (r.status == 200) {
            /* D8: only the bill itself, exactly */
            char *want = review3_bill(c->id, c->size);
            if (r.body_len != c->size || memcmp(r.body, want, c->size) != 0) {
                fail_msg("%s: a 200 that is not the bill (%zu bytes)", c->id,
                         r.body_len);
            }
            free(want);
        } else if (r.body_len >= 5) {
            assert_true(memcmp(r.body, "%PDF-", 5) != 0);
        }
        assert_true(took < 9000);
        dss_response_free(&r);

        char good[64];
        snprintf(good, sizeof(good), "ok-%zu-after%zu", 1000 + i * 77, i);
        check_good_bill(good, 1000 + i * 77);
    }

    /* a client that leaves during a fetch that would never end: the
     * fetch is cancelled then, long before its 30 s timeout (no leak) */
    for (int k = 0; k < 8; k++) {
        int before = review3_origin_open(&origin);
        dss_request_options o = {0};
        o.timeout_ms = 300;
        char target[64];
        snprintf(target, sizeof(target), "/evilslow/download/never-gone%d",
                 k);
        long long t0 = dss_now_ms();
        dss_response r = dss_request(&nginx, target, &o);
        assert_int_not_equal(r.curl_code, 0);
        dss_response_free(&r);
        while (review3_origin_open(&origin) > before &&
               dss_now_ms() - t0 < 8000) {
            dss_poll_pause();
        }
        if (review3_origin_open(&origin) > before) {
            fail_msg("the archive connection outlived its client");
        }
        check_good_bill("ok-1500-aftergone", 1500);
    }

    /* no connection to the archive is left behind */
    long long end = dss_now_ms() + 10000;
    while (review3_origin_open(&origin) > 0 && dss_now_ms() < end) {
        dss_poll_pause();
    }
    assert_int_equal(review3_origin_open(&origin), 0);
}

/* D5, D6: a failure kept for a moment in the cache's keys zone answers
 * only requests that would have read the archive's answer the same way:
 * S3's 403 AccessDenied is a missing bill (404) for one location and an
 * error (500) for the other, whichever asks first. */
static void test_D5_D6_kept_failure_follows_the_location_s3_reading(
    void **state) {
    (void)state;
    static const char *const orders[2][2] = {
        {"/s3missing/download/s3denied-a", "/s3error/download/s3denied-a"},
        {"/s3error/download/s3denied-b", "/s3missing/download/s3denied-b"},
    };
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 2; k++) {
            const char *target = orders[i][k];
            long want = strstr(target, "missing") ? 404 : 500;
            dss_response r = dss_get(&nginx, target);
            if (r.status != want) {
                fail_msg("%s (asked %s): %ld, want %ld", target,
                         k ? "second" : "first", r.status, want);
            }
            dss_response_free(&r);
        }
    }
}

/* D6: a failure kept for a moment in the keys zone answers only requests
 * signed the same way: one location signs for the wrong region (the store's
 * 403, a 500), the other, asked right after for the same object through
 * the same cache, signs for the bucket's region and gets the bill. */
static void test_D6_kept_failure_follows_the_signing_region(void **state) {
    (void)state;
    const size_t size = 2048;
    dss_response r = dss_get(&nginx, "/s3east/download/s3region-2048-a");
    assert_int_equal(r.status, 500);
    dss_response_free(&r);

    r = dss_get(&nginx, "/s3west/download/s3region-2048-a");
    if (r.status != 200) {
        fail_msg("the location signing for the bucket's region answered %ld "
                 "(%s)", r.status,
                 dss_header(&r, "X-Outcome") ? dss_header(&r, "X-Outcome")
                                             : "-");
    }
    char *want = review3_bill("s3region-2048-a", size);
    assert_int_equal(r.body_len, size);
    assert_memory_equal(r.body, want, size);
    free(want);
    dss_response_free(&r);
}

/* D6, D9: a fault of one location's own (it cannot buffer the bill) is not
 * the archive's answer: it is not kept for the other location that reads
 * the same bill through the same cache, which fetches and serves it. */
static void test_D6_local_fault_is_not_kept_for_another_location(
    void **state) {
    (void)state;
    const size_t size = 3 * 1024 * 1024;
    dss_response r = dss_get(&nginx, "/tmpbad/download/ok-3145728-t1");
    assert_int_equal(r.status, 500);
    const char *h = dss_header(&r, "X-Outcome");
    assert_non_null(h);
    assert_string_equal(h, "temp_file_error");
    dss_response_free(&r);

    r = dss_get(&nginx, "/tmpgood/download/ok-3145728-t1");
    if (r.status != 200) {
        fail_msg("the other location answered %ld (%s) for a bill the "
                 "archive has", r.status,
                 dss_header(&r, "X-Outcome") ? dss_header(&r, "X-Outcome")
                                             : "-");
    }
    char *want = review3_bill("ok-3145728-t1", size);
    assert_int_equal(r.body_len, size);
    assert_memory_equal(r.body, want, size);
    free(want);
    dss_response_free(&r);
}

static char *id_of(size_t len, char c) {
    char *id = malloc(len + 1);
    memset(id, c, len);
    memcpy(id, "100000000001", len < 12 ? len : 12);
    id[len] = '\0';
    return id;
}

/* D2, D5: ids at the length limits, with a file for each: the last
 * allowed length is served byte-exact, one more is 404 even though the
 * file exists; a query string or an extra segment never changes the id. */
static void test_D2_D5_ids_at_the_length_limits(void **state) {
    (void)state;
    static const struct {
        const char *loc;
        size_t len;
        long status;
    } cases[] = {
        {"root", 1, 200},   {"root", 64, 200},  {"root", 65, 404},
        {"long", 11, 404},  {"long", 12, 200},  {"long", 200, 200},
        {"long", 201, 404}, {"root", 200, 404},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *id = id_of(cases[i].len, 'Z');
        char rel[300], target[400];
        snprintf(rel, sizeof(rel), "bills/%s.pdf", id);
        if (cases[i].len <= 250) {
            dss_write_bill(dss_path(&nginx, rel), id, 1000 + cases[i].len);
        }
        snprintf(target, sizeof(target), "/%s/download/%s", cases[i].loc, id);
        dss_response r = dss_get(&nginx, target);
        if (r.status != cases[i].status) {
            fail_msg("%s id of %zu: %ld, want %ld", cases[i].loc,
                     cases[i].len, r.status, cases[i].status);
        }
        if (r.status == 200) {
            size_t len;
            char *want = dss_read_file(dss_path(&nginx, rel), &len);
            assert_int_equal(r.body_len, len);
            assert_memory_equal(r.body, want, len);
            free(want);
        }
        dss_response_free(&r);
        free(id);
    }
    static const struct {
        const char *target;
        long status;
    } shapes[] = {
        {"/root/download/100000000001?id=100000000500", 200},
        {"/root/download/100000000001?", 200},
        {"/root/download/100000000001/", 404},
        {"/root/download/100000000001/x", 404},
        {"/root/download/100000000001.pdf", 404},
        {"/root/download//100000000001", 200}, /* merge_slashes */
        {"/root/download/%31%30%30%30%30%30%30%30%30%30%30%31", 200},
        {"/root/download/100000000001%3F", 404},
        {"/root/download/100000000001%2F", 404},
    };
    size_t len;
    char *want = dss_read_file(dss_path(&nginx, "bills/100000000001.pdf"), &len);
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        dss_response r = dss_get(&nginx, shapes[i].target);
        if (r.status != shapes[i].status) {
            fail_msg("%s: %ld, want %ld", shapes[i].target, r.status,
                     shapes[i].status);
        }
        if (r.status == 200) {
            assert_int_equal(r.body_len, len);
            assert_memory_equal(r.body, want, len);
        }
        dss_response_free(&r);
    }
    free(want);
}

/* D6, T4: a location's own timeout is its own: the hasty location's
 * timeout (1 s) against an archive that answers in 2.5 s is not kept for the
 * patient one (20 s), which reads the same bill through the same cache:
 * asked right after, it waits and serves the bill. */
static void test_D6_one_location_timeout_is_not_kept_for_another(
    void **state) {
    (void)state;
    const char *id = "slowfirst-2500-9000-w1";
    char target[128];
    snprintf(target, sizeof(target), "/hasty/download/%s", id);
    dss_response r = dss_get(&nginx, target);
    assert_int_equal(r.status, 500);
    const char *h = dss_header(&r, "X-Outcome");
    assert_non_null(h);
    assert_string_equal(h, "archive_timeout");
    dss_response_free(&r);

    snprintf(target, sizeof(target), "/patient/download/%s", id);
    r = dss_get(&nginx, target);
    if (r.status != 200) {
        fail_msg("the patient location answered %ld (%s): the hasty "
                 "location's timeout decided for it",
                 r.status, dss_header(&r, "X-Outcome")
                               ? dss_header(&r, "X-Outcome")
                               : "-");
    }
    char *want = review3_bill(id, 9000);
    assert_int_equal(r.body_len, 9000);
    assert_memory_equal(r.body, want, 9000);
    free(want);
    dss_response_free(&r);
}

/* ---- HTTP/1.1 pipelining --------------------------------------------------- */

typedef struct {
    const char *method;
    const char *target;
    long status;
    const char *bill; /* the bill id of a 200 (origin's or the root's) */
    size_t size;
} piped;

/* Reads one response off fd (already buffered bytes in buf): status,
 * Content-Length and body (not for HEAD). 0, or -1 when the stream ends. */
static int read_response(int fd, char *buf, size_t *have, size_t cap,
                         int head, long *status, char **body,
                         size_t *body_len) {
    long long end = dss_now_ms() + 15000;
    char *eoh;
    for (;;) {
        buf[*have] = '\0';
        if ((eoh = strstr(buf, "\r\n\r\n")) != NULL) {
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (dss_now_ms() > end || poll(&p, 1, 200) < 0) {
            return -1;
        }
        if (!(p.revents & POLLIN)) {
            continue;
        }
        ssize_t n = recv(fd, buf + *have, cap - 1 - *have, 0);
        if (n <= 0) {
            return -1;
        }
        *have += (size_t)n;
    }
    size_t hlen = (size_t)(eoh + 4 - buf);
    *status = strtol(buf + 9, NULL, 10);
    const char *cl = strcasestr(buf, "\r\nContent-Length: ");
    size_t len = 0;
    if (cl && cl < eoh) {
        len = strtoul(cl + 18, NULL, 10);
    } else if (strcasestr(buf, "Transfer-Encoding: chunked")) {
        return -1; /* never on this route */
    }
    if (head) {
        len = 0;
    }
    *body = malloc(len + 1);
    *body_len = len;
    size_t got = *have - hlen < len ? *have - hlen : len;
    memcpy(*body, buf + hlen, got);
    size_t rest = *have - hlen - got;
    memmove(buf, buf + hlen + got, rest);
    *have = rest;
    while (got < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (dss_now_ms() > end || poll(&p, 1, 200) < 0) {
            return -1;
        }
        if (!(p.revents & POLLIN)) {
            continue;
        }
        ssize_t n = recv(fd, *body + got, len - got, 0);
        if (n <= 0) {
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

/* D9, D3: requests pipelined on one HTTP/1.1 connection, archive fetches
 * among root files, errors and HEADs: each answer is its own request's, in
 * order, byte for byte. */
static void test_D9_pipelined_requests_each_get_their_own_bill(void **state) {
    (void)state;
    static const piped reqs[] = {
        {"GET", "/evil/download/ok-40000-p1", 200, "ok-40000-p1", 40000},
        {"GET", "/root/download/100000000001", 200, NULL, 30000},
        {"GET", "/evil/download/chunked-300000-p2", 200, "chunked-300000-p2",
         300000},
        {"HEAD", "/evil/download/ok-5000-p3", 200, NULL, 5000},
        {"GET", "/evil/download/status-404-p4", 404, NULL, 0},
        {"GET", "/evil/download/close-2500-p6", 200, "close-2500-p6", 2500},
        {"GET", "/root/download/100000000404", 404, NULL, 0},
        {"GET", "/evil/download/ok-9000-p7", 200, "ok-9000-p7", 9000},
        /* last: nginx closes a connection after a 500 */
        {"GET", "/evil/download/html-p5", 500, NULL, 0},
    };
    size_t count = sizeof(reqs) / sizeof(reqs[0]);
    char *all = NULL;
    size_t all_len = 0;
    FILE *m = open_memstream(&all, &all_len);
    for (size_t i = 0; i < count; i++) {
        fprintf(m, "%s %s HTTP/1.1\r\nHost: dss\r\nAccept: application/pdf"
                   "\r\n\r\n",
                reqs[i].method, reqs[i].target);
    }
    fclose(m);

    for (int round = 0; round < 3; round++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons((unsigned short)nginx.port2);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        if (round == 0) {
            assert_int_equal(dss_send_all(fd, all, all_len), 0);
        } else {
            /* in pieces: a request split across reads */
            for (size_t at = 0; at < all_len; at += 37) {
                size_t n = all_len - at < 37 ? all_len - at : 37;
                assert_int_equal(dss_send_all(fd, all + at, n), 0);
            }
        }
        static char buf[1 << 20];
        size_t have = 0;
        for (size_t i = 0; i < count; i++) {
            long status = 0;
            char *body = NULL;
            size_t len = 0;
            int head = strcmp(reqs[i].method, "HEAD") == 0;
            if (read_response(fd, buf, &have, sizeof(buf), head, &status,
                              &body, &len) != 0) {
                fail_msg("round %d: no answer %zu (%s)", round, i,
                         reqs[i].target);
            }
            if (status != reqs[i].status) {
                fail_msg("round %d: %s answered %ld, want %ld", round,
                         reqs[i].target, status, reqs[i].status);
            }
            if (status == 200 && !head) {
                char *want = reqs[i].bill
                                 ? review3_bill(reqs[i].bill, reqs[i].size)
                                 : dss_read_file(
                                       dss_path(&nginx,
                                                "bills/100000000001.pdf"),
                                       &len);
                assert_int_equal(len, reqs[i].size);
                if (memcmp(body, want, len) != 0) {
                    fail_msg("round %d: %s: the body of another request",
                             round, reqs[i].target);
                }
                free(want);
            }
            free(body);
        }
        close(fd);
    }
    free(all);
}

int main(void) {
    resolver_setup(); /* before any thread */
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_D6_storage_error_outcome),
        cmocka_unit_test(test_D6_archive_resolve_outcome),
        cmocka_unit_test(test_D6_archive_error_outcome),
        cmocka_unit_test(test_D6_internal_error_outcome),
        cmocka_unit_test(test_D7_other_outcome),
        cmocka_unit_test(test_D8_hostile_archive_answers),
        cmocka_unit_test(test_D9_pipelined_requests_each_get_their_own_bill),
        cmocka_unit_test(
            test_D5_D6_kept_failure_follows_the_location_s3_reading),
        cmocka_unit_test(test_D6_kept_failure_follows_the_signing_region),
        cmocka_unit_test(test_D6_local_fault_is_not_kept_for_another_location),
        cmocka_unit_test(test_D2_D5_ids_at_the_length_limits),
        cmocka_unit_test(test_D6_one_location_timeout_is_not_kept_for_another),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}

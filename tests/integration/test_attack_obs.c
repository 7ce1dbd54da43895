/* Hostile review of observability (issue 11) and of the object-store
 * archive's error handling and secrets (issue 10), against a real nginx:
 * the counters of dss_bill_metrics under error_page, HEAD, HTTP/2 and
 * other methods; the exposition with hostile location names and with the
 * same location in two servers; S3 error bodies that are huge, nested,
 * entity-laden, truncated, non-UTF-8 or carry a forged log line; and the
 * credentials against nginx's debug log. A hostile object store runs in a
 * thread of this process (it does not check signatures: what is tested is
 * what the module makes of its answers). */

#define _GNU_SOURCE /* asprintf, strndup */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "exposition.h"
#include "harness.h"

#define ACCESS_KEY "AKIAATTACKOBSKEY"
#define SECRET "atTackObsS3cret/Zq+Wv9="
#define TOKEN "IQoJattackObsT0ken+/sessionXYZ=="

static dss_nginx nginx;

/* ---- a hostile object store ------------------------------------------- */

static struct {
    int fd;
    int port;
    pthread_t thread;
    volatile int stopping;
    pthread_mutex_t lock;
    int requests;
    char last[16384]; /* the last request head */
} evil = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

static void send_text(int c, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = send(c, s, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

static void answer_head(int c, const char *status, long long length) {
    char head[256];
    int n;
    if (length >= 0) {
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\nContent-Type: application/xml\r\n"
                     "Content-Length: %lld\r\nConnection: close\r\n\r\n",
                     status, length);
    } else {
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\nContent-Type: application/xml\r\n"
                     "Connection: close\r\n\r\n",
                     status);
    }
    send_text(c, head, (size_t)n);
}

static void answer_body(int c, const char *status, const char *body,
                        size_t len) {
    answer_head(c, status, (long long)len);
    send_text(c, body, len);
}

/* 8 MB of an unterminated <Code>, announced: the module must stop reading
 * and log a bounded line. */
static void answer_huge(int c, int announced) {
    static const char start[] = "<?xml version=\"1.0\"?><Error><Code>";
    const long long total = 8LL * 1024 * 1024;
    answer_head(c, "403 Forbidden", announced ? total : -1);
    send_text(c, start, sizeof(start) - 1);
    char block[16384];
    memset(block, 'A', sizeof(block));
    long long sent = (long long)sizeof(start) - 1;
    while (sent < total && !evil.stopping) {
        size_t n = (size_t)(total - sent < (long long)sizeof(block)
                                ? total - sent
                                : (long long)sizeof(block));
        ssize_t w = send(c, block, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return; /* the module stopped reading: as it should */
        }
        sent += w;
    }
}

static void *evil_serve(void *arg) {
    (void)arg;
    while (!evil.stopping) {
        struct pollfd p = {.fd = evil.fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) {
            continue;
        }
        int c = accept(evil.fd, NULL, NULL);
        if (c < 0) {
            continue;
        }
        char head[16384];
        dss_read_request_head(c, head, sizeof(head), 5000);
        pthread_mutex_lock(&evil.lock);
        snprintf(evil.last, sizeof(evil.last), "%s", head);
        evil.requests++;
        pthread_mutex_unlock(&evil.lock);

        if (strstr(head, "/plain/bigmissing")) {
            /* a document system's verbose 404 page (a stack trace...) */
            static char page[40000];
            memset(page, 'x', sizeof(page));
            memcpy(page, "<html>", 6);
            char h[256];
            int n = snprintf(h, sizeof(h),
                             "HTTP/1.1 404 Not Found\r\nContent-Type: "
                             "text/html\r\nContent-Length: %zu\r\n"
                             "Connection: close\r\n\r\n",
                             sizeof(page));
            send_text(c, h, (size_t)n);
            send_text(c, page, sizeof(page));
        } else if (strstr(head, "/bills/stall")) {
            /* no answer until the module hangs up (bounded: 10 s) */
            char sink[256];
            struct pollfd q = {.fd = c, .events = POLLIN};
            long long until = dss_now_ms() + 10000;
            while (!evil.stopping && dss_now_ms() < until) {
                if (poll(&q, 1, 50) > 0 && recv(c, sink, sizeof(sink), 0) <= 0) {
                    break;
                }
            }
        } else if (strstr(head, "/bills/hugeclose")) {
            answer_huge(c, 0);
        } else if (strstr(head, "/bills/huge")) {
            answer_huge(c, 1);
        } else if (strstr(head, "/bills/nested")) {
            static const char b[] =
                "<Error><Code><Code>Inner</Code></Code><Message><Message>"
                "m</Message></Message><Error><Code>SlowDown</Code></Error>"
                "</Error>";
            answer_body(c, "503 Slow Down", b, sizeof(b) - 1);
        } else if (strstr(head, "/bills/laughs")) {
            /* entity expansion: a parser that expands would blow up */
            static const char b[] =
                "<?xml version=\"1.0\"?>\n<!DOCTYPE Error [\n"
                "<!ENTITY a \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\">\n"
                "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n"
                "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\n"
                "<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">\n"
                "<!ENTITY e SYSTEM \"file:///etc/shadow\">\n"
                "]>\n<Error><Code>AccessDenied</Code><Message>&d;&e;"
                "&amp;lt;b&amp;gt; &#x41;&#65;&lt;x&gt;</Message></Error>";
            answer_body(c, "403 Forbidden", b, sizeof(b) - 1);
        } else if (strstr(head, "/bills/forge")) {
            /* control bytes, a line break with a forged log line, an
             * escape sequence and bytes that are not UTF-8 */
            static const char b[] =
                "<Error><Code>Access\r\nFORGED-LINE-CODE</Code><Message>"
                "denied\nFORGED-LINE-MESSAGE \x1b[31mred\x1b[0m \xff\xfe"
                "\xc3\x28 \x00tail</Message></Error>";
            answer_body(c, "403 Forbidden", b, sizeof(b) - 1);
        } else if (strstr(head, "/bills/trunc")) {
            static const char b[] = "<Error><Code>SlowDo";
            answer_head(c, "503 Slow Down", 1000);
            send_text(c, b, sizeof(b) - 1);
        } else if (strstr(head, "/bills/longmsg")) {
            /* a complete error whose message is 3000 bytes: beyond the
             * 1024 bytes kept */
            char *b = NULL;
            char msg[3001];
            memset(msg, 'M', 3000);
            msg[3000] = '\0';
            int n = asprintf(&b, "<Error><Code>SlowDown</Code><Message>%s"
                                 "</Message></Error>", msg);
            if (n > 0) {
                answer_body(c, "503 Slow Down", b, (size_t)n);
            }
            free(b);
        } else if (strstr(head, "/bills/echo")) {
            /* AWS's SignatureDoesNotMatch echoes the request as it
             * canonicalised it: the session token is in it */
            const char *t = strstr(head, "x-amz-security-token: ");
            const char *token = t ? t + 22 : "";
            int tlen = (int)strcspn(token, "\r");
            char *b = NULL;
            int n = asprintf(&b,
                             "<Error><Code>SignatureDoesNotMatch</Code><Message>"
                             "The request signature we calculated does not "
                             "match the signature you provided.</Message>"
                             "<StringToSign>AWS4-HMAC-SHA256</StringToSign>"
                             "<CanonicalRequest>GET\n/bills/echo1.pdf\n\n"
                             "x-amz-security-token:%.*s\n</CanonicalRequest>"
                             "</Error>",
                             tlen, token);
            if (n > 0) {
                answer_body(c, "403 Forbidden", b, (size_t)n);
            }
            free(b);
        } else {
            static const char b[] =
                "<Error><Code>NoSuchKey</Code><Message>The specified key "
                "does not exist.</Message></Error>";
            answer_body(c, "404 Not Found", b, sizeof(b) - 1);
        }
        close(c);
    }
    return NULL;
}

static int evil_start(void) {
    evil.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (evil.fd < 0 || bind(evil.fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(evil.fd, 64) != 0 ||
        getsockname(evil.fd, (struct sockaddr *)&a, &len) != 0) {
        return -1;
    }
    evil.port = ntohs(a.sin_port);
    return pthread_create(&evil.thread, NULL, evil_serve, NULL) == 0 ? 0 : -1;
}

static void evil_stop(void) {
    if (evil.fd < 0) {
        return;
    }
    evil.stopping = 1;
    pthread_join(evil.thread, NULL);
    close(evil.fd);
    evil.fd = -1;
}

/* ---- the module's nginx ------------------------------------------------- */

/* %1$d: the hostile store's port */
static const char *const config =
    /* both: an error_log in http replaces the main one for requests */
    "error_log @PREFIX@/logs/error.log info;\n"
    "error_log @PREFIX@/logs/debug.log debug;\n"
    "dss_bill_upstream_temp_path @PREFIX@/temp;\n"
    "server {\n"
    "    listen 127.0.0.1:@PORT@ ssl http2;\n"
    "    ssl_certificate @PREFIX@/cert.pem;\n"
    "    ssl_certificate_key @PREFIX@/key.pem;\n"
    "    location /dss/bill/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "    }\n"
    /* an operator's own 404 page for missing bills */
    "    location /dss/ep/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "        error_page 404 /e404.html;\n"
    "    }\n"
    "    location = /e404.html {\n"
    "        root @PREFIX@/html;\n"
    "    }\n"
    /* location names that need escaping as label values: a quote, a
     * backslash, a line feed, a tab, UTF-8 */
    "    location \"/dss/q\\\"u\\\\o\\nt\\te/\" {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "    }\n"
    "    location /dss/r\xc3\xa9sum\xc3\xa9/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "    }\n"
    "    location /metrics {\n"
    "        dss_bill_metrics;\n"
    "    }\n"
    "    location /plain/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/plain/$dss_bill_id;\n"
    "        dss_bill_max_size 20k;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /s3/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/bills/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_s3 region=us-east-1;\n"
    "        dss_bill_upstream_s3_credentials @PREFIX@/aws/credentials "
    "profile=session;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        dss_bill_upstream_timeout 20s;\n"
    "    }\n"
    "}\n"
    /* the same bill location in a second virtual server (an internal
     * name next to the public one: an everyday configuration) */
    "server {\n"
    "    listen 127.0.0.1:@PORT@ ssl http2;\n"
    "    server_name bills.internal.example;\n"
    "    ssl_certificate @PREFIX@/cert.pem;\n"
    "    ssl_certificate_key @PREFIX@/key.pem;\n"
    "    location /dss/bill/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "    }\n"
    "}\n";

static const char credentials[] =
    "[session]\n"
    "aws_access_key_id = " ACCESS_KEY "\n"
    "aws_secret_access_key = " SECRET "\n"
    "aws_session_token = " TOKEN "\n";

#define BILL_SIZE 12345

static int setup(void **state) {
    (void)state;
    if (dss_nginx_prepare(&nginx) != 0 || evil_start() != 0) {
        return -1;
    }
    mkdir(dss_path(&nginx, "bills"), 0755);
    mkdir(dss_path(&nginx, "html"), 0755);
    mkdir(dss_path(&nginx, "temp"), 0777);
    chmod(dss_path(&nginx, "temp"), 0777);
    dss_write_bill(dss_path(&nginx, "bills/100000000001.pdf"), "100000000001",
                   BILL_SIZE);
    static const char page[] = "custom not found page\n";
    dss_write_file(dss_path(&nginx, "html/e404.html"), page, strlen(page));
    mkdir(dss_path(&nginx, "aws"), 0700);
    dss_write_file(dss_path(&nginx, "aws/credentials"), credentials,
                   strlen(credentials));
    chmod(dss_path(&nginx, "aws/credentials"), 0600);

    char *text = NULL;
    if (asprintf(&text, config, evil.port) < 0) {
        return -1;
    }
    int rc = dss_nginx_start(&nginx, text);
    free(text);
    return rc;
}

static int teardown(void **state) {
    (void)state;
    dss_nginx_cleanup(&nginx);
    evil_stop();
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

/* The counters are bumped in the log phase, after the response went out:
 * poll until the series reaches want (bounded). */
static long long await_series(const char *head, long long want) {
    long long v = -1;
    long long deadline = dss_now_ms() + 5000;
    do {
        char *text = scrape();
        v = dss_series(text, head);
        free(text);
        if (v == want) {
            return v;
        }
        dss_poll_pause();
    } while (dss_now_ms() < deadline);
    return v;
}

#define DL_404 "dss_bill_requests_total{route=\"download\",status=\"404\"," \
               "outcome=\"not_found\"}"
#define DL_200 "dss_bill_requests_total{route=\"download\",status=\"200\"," \
               "outcome=\"ok\"}"
#define ROOT_BYTES "dss_bill_response_bytes_total{source=\"root\"}"

/* ---- metrics -------------------------------------------------------------- */

/* D5 + README "each request is counted once": a dss_bill location with an
 * operator's error_page for its 404s still answers 404 to the client; the
 * request must be counted (and its outcome must reach the access log). An
 * internal redirect clears the module's request context, so a counter kept
 * there loses the request. */
static void test_D5_error_page_404_is_still_counted(void **state) {
    (void)state;
    char *before = scrape();
    long long b404 = dss_series(before, DL_404);
    long long bsum = dss_requests_sum(before);
    free(before);

    dss_response r = dss_get(&nginx, "/dss/ep/download/100000000999");
    assert_int_equal(r.status, 404);
    assert_non_null(r.body);
    assert_non_null(strstr(r.body, "custom not found page")); /* error_page ran */
    dss_response_free(&r);

    /* a control request through a plain location, so that we know the
     * log phase of the first one has run when this one is seen */
    r = dss_get(&nginx, "/dss/bill/download/100000000998");
    assert_int_equal(r.status, 404);
    dss_response_free(&r);
    long long after404 = await_series(DL_404, b404 + 2);

    char *after = scrape();
    long long asum = dss_requests_sum(after);
    free(after);
    if (after404 != b404 + 2 || asum != bsum + 2) {
        fail_msg("two download 404s sent (one through error_page), the "
                 "counters grew by %lld (not_found) and %lld (all "
                 "requests): the error_page request was never counted",
                 after404 - b404, asum - bsum);
    }
}

/* D3/D7: a HEAD is one request and no body bytes; an HTTP/2 GET is one
 * request and exactly the bill's bytes. */
static void test_D3_head_and_http2_counted_once_with_exact_bytes(void **state) {
    (void)state;
    char *before = scrape();
    long long b200 = dss_series(before, DL_200);
    long long bbytes = dss_series(before, ROOT_BYTES);
    free(before);
    assert_true(b200 >= 0 && bbytes >= 0);

    dss_request_options head = {.method = "HEAD"};
    dss_response r = dss_request(&nginx, "/dss/bill/download/100000000001",
                                 &head);
    assert_int_equal(r.status, 200);
    dss_response_free(&r);
    assert_int_equal(await_series(DL_200, b200 + 1), b200 + 1);
    char *mid = scrape();
    assert_int_equal(dss_series(mid, ROOT_BYTES), bbytes);
    free(mid);

    dss_request_options h2 = {.http2 = 1};
    r = dss_request(&nginx, "/dss/bill/download/100000000001", &h2);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, BILL_SIZE);
    assert_memory_equal(r.body, "%PDF-", 5);
    dss_response_free(&r);
    assert_int_equal(await_series(DL_200, b200 + 2), b200 + 2);
    assert_int_equal(await_series(ROOT_BYTES, bbytes + BILL_SIZE),
                     bbytes + BILL_SIZE);
}

/* D7: the endpoint answers GET and HEAD only; nothing else changes a
 * counter, and a HEAD has no body. */
static void test_D7_metrics_endpoint_other_methods(void **state) {
    (void)state;
    char *before = scrape();
    long long bsum = dss_requests_sum(before);
    free(before);

    static const char *const methods[] = {"POST", "PUT", "DELETE", "OPTIONS",
                                          "PATCH", "PROPFIND"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        dss_request_options o = {.method = methods[i]};
        dss_response r = dss_request(&nginx, "/metrics", &o);
        if (r.status != 405) {
            fail_msg("%s /metrics answered %ld", methods[i], r.status);
        }
        assert_true(r.body == NULL ||
                    strstr(r.body, "dss_bill_requests_total") == NULL);
        dss_response_free(&r);
    }
    dss_request_options head = {.method = "HEAD"};
    dss_response r = dss_request(&nginx, "/metrics", &head);
    assert_int_equal(r.status, 200);
    assert_true(r.body_len == 0);
    dss_response_free(&r);

    char *after = scrape();
    assert_int_equal(dss_requests_sum(after), bsum);
    free(after);
}

/* T3: label values with quotes, backslashes, a line feed, a tab and UTF-8
 * stay valid exposition (promtool), escaped as the format says. */
static void test_T3_hostile_location_names_pass_promtool(void **state) {
    (void)state;
    char *text = scrape();
    assert_non_null(strstr(text, "dss_bill_source_up{location=\"/dss/q\\\"u"
                                 "\\\\o\\nt\te/\",source=\"root\"} 1\n"));
    assert_non_null(strstr(text, "dss_bill_source_up{location=\"/dss/r\xc3\xa9"
                                 "sum\xc3\xa9/\",source=\"root\"} 1\n"));
    dss_promtool_check(&nginx, text, "hostile-names.txt");
    free(text);
}

/* T3: every sample of one scrape names a distinct series (the exposition
 * format: "each line must have a unique combination of a metric name and
 * labels", else ingestion is undefined and Prometheus drops samples as
 * duplicates). The same bill location in two virtual servers is two
 * health verdicts that must not collapse into one label set. */
static void test_T3_every_series_is_unique(void **state) {
    (void)state;
    char *text = scrape();
    char *copy = strdup(text);
    size_t lines = 0, cap = 1024;
    char **seen = calloc(cap, sizeof(char *));
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            continue;
        }
        char *sp = strrchr(line, ' ');
        assert_non_null(sp);
        *sp = '\0';
        for (size_t i = 0; i < lines; i++) {
            if (strcmp(seen[i], line) == 0) {
                fail_msg("the series %s appears twice in one scrape", line);
            }
        }
        assert_true(lines < cap);
        seen[lines++] = line;
    }
    free(seen);
    free(copy);
    free(text);
}

/* ---- object-store error bodies ----------------------------------------- */

/* The longest line of the error log. */
static size_t longest_log_line(const char *rel) {
    size_t len = 0;
    char *log = dss_read_file(dss_path(&nginx, rel), &len);
    assert_non_null(log);
    size_t longest = 0, cur = 0;
    for (size_t i = 0; i < len; i++) {
        if (log[i] == '\n') {
            longest = cur > longest ? cur : longest;
            cur = 0;
        } else {
            cur++;
        }
    }
    free(log);
    return cur > longest ? cur : longest;
}

/* Whether a line of the log starts with needle (a forged line). */
static int log_has_line_starting(const char *rel, const char *needle) {
    size_t len = 0;
    char *log = dss_read_file(dss_path(&nginx, rel), &len);
    assert_non_null(log);
    int found = 0;
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++) {
        if ((i == 0 || log[i - 1] == '\n' || log[i - 1] == '\r') &&
            memcmp(log + i, needle, n) == 0) {
            found = 1;
            break;
        }
    }
    free(log);
    return found;
}

/* D6: every hostile error body is a 500 (or 404 for NoSuchKey), the worker
 * survives, the log line is bounded and one line, nothing is expanded. */
static void test_D6_hostile_s3_error_bodies(void **state) {
    (void)state;
    static const struct {
        const char *id;
        long status;
        const char *log; /* expected in the error log */
    } cases[] = {
        {"hugeclose1", 500, "object store answered 403"},
        {"nested1", 500, "object store answered 503"},
        {"laughs1", 500, "object store answered 403 AccessDenied"},
        {"forge1", 500, "object store answered 403 Access??FORGED-LINE-CODE"},
        {"trunc1", 500, "/bills/trunc1.pdf"},
        {"longmsg1", 500, "object store answered 503"},
        {"missing1", 404, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char target[128];
        snprintf(target, sizeof(target), "/s3/download/%s", cases[i].id);
        long long t0 = dss_now_ms();
        dss_response r = dss_get(&nginx, target);
        if (r.status != cases[i].status) {
            fail_msg("%s: %ld, want %ld", target, r.status, cases[i].status);
        }
        /* the body is the module's error page, never the store's XML */
        assert_true(r.body == NULL || strstr(r.body, "<Error>") == NULL);
        dss_response_free(&r);
        assert_true(dss_now_ms() - t0 < 15000);
        if (cases[i].log && dss_error_log_count(&nginx, cases[i].log) < 1) {
            fail_msg("%s: no \"%s\" in the error log", target, cases[i].log);
        }
    }
    /* the entity-laden body: nothing expanded, no file read */
    assert_int_equal(dss_error_log_count(&nginx, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 0);
    assert_int_equal(dss_error_log_count(&nginx, "root:"), 0);
    /* no forged line, no raw escape byte or invalid UTF-8 in the log */
    assert_false(log_has_line_starting("logs/error.log", "FORGED-LINE"));
    assert_int_equal(dss_error_log_count(&nginx, "\x1b[31m"), 0);
    assert_int_equal(dss_error_log_count(&nginx, "\xff\xfe"), 0);
    /* bounded: S3's message is cut, whatever its size */
    size_t longest = longest_log_line("logs/error.log");
    if (longest > 2048) {
        fail_msg("an error-log line of %zu bytes", longest);
    }
    /* the worker still serves */
    dss_response ok = dss_get(&nginx, "/dss/bill/download/100000000001");
    assert_int_equal(ok.status, 200);
    assert_int_equal(ok.body_len, BILL_SIZE);
    dss_response_free(&ok);
}

/* D6 + the outcome table: a store's error answer (403, not a bill) that
 * announces a large body is still the store's error: outcome
 * archive_status with S3's status in the log, not "too_large", which the
 * alert rules and README read as bad bill data upstream ("bill exceeds
 * dss_bill_max_size" for a bill that was never sent). */
static void test_D6_large_s3_error_answer_is_not_a_too_large_bill(
    void **state) {
    (void)state;
    dss_response r = dss_get(&nginx, "/s3/download/huge1");
    assert_int_equal(r.status, 500);
    dss_response_free(&r);
    int too_large = dss_error_log_count(&nginx, "exceeds dss_bill_max_size") +
                    dss_error_log_count(&nginx, "too large");
    int store = dss_error_log_count(&nginx, "object store answered 403");
    char *text = scrape();
    long long tl = dss_series(text, "dss_bill_requests_total{route=\"download\","
                                "status=\"500\",outcome=\"too_large\"}");
    free(text);
    if (too_large > 0 || store == 0 || tl > 0) {
        fail_msg("a 403 from the store announcing 8 MB was logged as a bill "
                 "over dss_bill_max_size (%d lines; %d lines with the "
                 "store's 403) and counted as outcome too_large (%lld)",
                 too_large, store, tl);
    }
}

#define IN_FLIGHT "dss_bill_archive_fetches_in_flight"
#define CLIENT_GONE "dss_bill_requests_total{route=\"download\"," \
                    "status=\"499\",outcome=\"client_gone\"}"
#define FETCH_COUNT "dss_bill_archive_fetch_duration_seconds_count"

/* The store's request count, read under its lock. */
static int evil_requests(void) {
    pthread_mutex_lock(&evil.lock);
    int n = evil.requests;
    pthread_mutex_unlock(&evil.lock);
    return n;
}

/* GETs target and hangs up as soon as the store has received more than
 * seen requests (the module's fetch for it), at most 30 s later. Returns
 * 0 when the client left that way, before any answer; -1 otherwise. */
static int leave_once_fetched(const char *target, int seen) {
    char url[256];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", nginx.port, target);
    CURLM *multi = curl_multi_init();
    CURL *easy = curl_easy_init();
    assert_non_null(multi);
    assert_non_null(easy);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_CAINFO, dss_path(&nginx, "cert.pem"));
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 30000L);
    curl_multi_add_handle(multi, easy);
    int running = 1, fetched = 0;
    while (running && !(fetched = evil_requests() > seen)) {
        curl_multi_perform(multi, &running);
        curl_multi_poll(multi, NULL, 0, 10, NULL);
    }
    curl_multi_remove_handle(multi, easy); /* the client hangs up */
    curl_easy_cleanup(easy);
    curl_multi_cleanup(multi);
    return fetched && running ? 0 : -1;
}

/* T5: a client that leaves while its archive fetch runs is one
 * client_gone, the in-flight gauge comes back to 0, and the cancelled fetch
 * is not observed in the histogram. */
static void test_T5_client_gone_mid_fetch_counted_once(void **state) {
    (void)state;
    char *before = scrape();
    long long gone = dss_series(before, CLIENT_GONE);
    long long fetches = dss_series(before, FETCH_COUNT);
    assert_int_equal(dss_series(before, IN_FLIGHT), 0);
    free(before);
    assert_true(gone >= 0 && fetches >= 0);

    /* the client leaves once the store has the fetch's request, not after
     * a fixed time: on a busy machine the request may not even have
     * reached nginx after a second */
    int seen = evil_requests();
    assert_int_equal(leave_once_fetched("/s3/download/stall1", seen), 0);
    assert_true(evil_requests() > seen); /* the fetch had started */

    assert_int_equal(await_series(IN_FLIGHT, 0), 0);
    assert_int_equal(await_series(CLIENT_GONE, gone + 1), gone + 1);
    char *after = scrape();
    assert_int_equal(dss_series(after, FETCH_COUNT), fetches);
    free(after);
}

/* T3: a location name that is not UTF-8 (a config file saved as Latin-1:
 * "location /factures/r\xe9sum\xe9/") must not make the whole exposition
 * invalid: Prometheus refuses the entire scrape when one label value is not
 * UTF-8 (promtool: "invalid label value"), so one such location would blind
 * the monitoring of every counter. */
static void test_T3_non_utf8_location_keeps_the_scrape_valid(void **state) {
    (void)state;
    static dss_nginx latin;
    assert_int_equal(dss_nginx_prepare(&latin), 0);
    mkdir(dss_path(&latin, "bills"), 0755);
    static const char conf[] =
        "server {\n"
        "    listen 127.0.0.1:@PORT@;\n"
        "    location /factures/r\xe9sum\xe9/ {\n"
        "        dss_bill;\n"
        "        dss_bill_root @PREFIX@/bills;\n"
        "    }\n"
        "    location /metrics {\n"
        "        dss_bill_metrics;\n"
        "    }\n"
        "}\n";
    int started = dss_nginx_start(&latin, conf);
    char *text = NULL;
    if (started == 0) {
        dss_request_options o = {.plain_http = 1};
        dss_response r = dss_request(&latin, "/metrics", &o);
        if (r.status == 200 && r.body) {
            text = strndup(r.body, r.body_len);
        }
        dss_response_free(&r);
    }
    dss_nginx_cleanup(&latin);
    assert_int_equal(started, 0);
    assert_non_null(text);
    assert_non_null(strstr(text, "dss_bill_source_up{location=\"/factures/r"));
    dss_promtool_check(&nginx, text, "latin1.txt");
    free(text);
}

/* D5: a bill the archive does not have is a 404, whatever the size of the
 * archive's 404 page: the page is not a bill, so dss_bill_max_size (a
 * bill's limit) has nothing to say about it. */
static void test_D5_missing_bill_with_a_large_404_page_is_404(void **state) {
    (void)state;
    dss_response r = dss_get(&nginx, "/plain/download/bigmissing1");
    long status = r.status;
    dss_response_free(&r);
    if (status != 404) {
        fail_msg("a missing bill whose archive 404 page (40000 bytes, "
                 "announced) exceeds dss_bill_max_size 20k answered %ld, "
                 "outcome in the error log: %d line(s) \"exceeds "
                 "dss_bill_max_size\"",
                 status,
                 dss_error_log_count(&nginx, "exceeds dss_bill_max_size"));
    }
}

/* D9: the session token and the secret never reach a log, at any level
 * (Debian's nginx is built --with-debug, and error_log ... debug is one
 * line away for an operator chasing a problem), not even when the store
 * echoes the request it received in its error message (as AWS does with
 * <CanonicalRequest> / <StringToSign>). */
static void test_D9_no_secret_in_any_log_even_at_debug(void **state) {
    (void)state;
    dss_response r = dss_get(&nginx, "/s3/download/echo1");
    assert_int_equal(r.status, 500);
    dss_response_free(&r);
    /* the token was sent to the store (so a leak was possible) */
    pthread_mutex_lock(&evil.lock);
    int sent = strstr(evil.last, TOKEN) != NULL;
    pthread_mutex_unlock(&evil.lock);
    assert_true(sent);
    /* debug logging is on (else this test proves nothing) */
    size_t len = 0;
    char *debug = dss_read_file(dss_path(&nginx, "logs/debug.log"), &len);
    assert_non_null(debug);
    assert_non_null(memmem(debug, len, "[debug]", 7));
    static const char *const secrets[] = {SECRET, TOKEN, "atTackObsS3cret",
                                          "IQoJattackObsT0ken"};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        if (memmem(debug, len, secrets[i], strlen(secrets[i])) != NULL) {
            free(debug);
            fail_msg("\"%s\" is in the debug log", secrets[i]);
        }
        if (dss_error_log_count(&nginx, secrets[i]) != 0) {
            free(debug);
            fail_msg("\"%s\" is in the error log", secrets[i]);
        }
    }
    free(debug);
}

/* D9 at nginx -t: the credentials file through a symlink (the target's
 * mode counts), a directory, a file over 64k, a byte-order mark; each
 * refusal names the reason and never the secret. And headers that can
 * never be signed as sent (a Host of the operator's, next to the one the
 * signer adds) must be refused with dss_bill_upstream_s3, not accepted
 * into a location whose every fetch is SignatureDoesNotMatch. */
static void test_D9_credentials_and_headers_at_nginx_t(void **state) {
    (void)state;
    static dss_nginx t;
    assert_int_equal(dss_nginx_prepare(&t), 0);
    mkdir(dss_path(&t, "aws"), 0755);
    dss_write_file(dss_path(&t, "aws/open"), credentials, strlen(credentials));
    chmod(dss_path(&t, "aws/open"), 0644);
    dss_write_file(dss_path(&t, "aws/ok"), credentials, strlen(credentials));
    chmod(dss_path(&t, "aws/ok"), 0600);
    assert_int_equal(symlink(dss_path(&t, "aws/open"),
                             dss_path(&t, "aws/link-open")), 0);
    assert_int_equal(symlink(dss_path(&t, "aws/ok"),
                             dss_path(&t, "aws/link-ok")), 0);
    mkdir(dss_path(&t, "aws/dir"), 0700);
    size_t big_len = 65 * 1024 + 1;
    char *big = malloc(big_len);
    assert_non_null(big);
    memset(big, '#', big_len);
    big[big_len - 1] = '\n';
    dss_write_file(dss_path(&t, "aws/big"), big, big_len);
    chmod(dss_path(&t, "aws/big"), 0600);
    free(big);
    static const char bom[] = "\xef\xbb\xbf[session]\n"
                              "aws_access_key_id = " ACCESS_KEY "\n"
                              "aws_secret_access_key = " SECRET "\n";
    dss_write_file(dss_path(&t, "aws/bom"), bom, strlen(bom));
    chmod(dss_path(&t, "aws/bom"), 0600);

    static const struct {
        const char *file, *extra;
        int ok;
        const char *reason;
    } cases[] = {
        {"link-open", "", 0, "(mode 0644)"},
        {"link-ok", "", 1, NULL},
        {"dir", "", 0, "not a regular file"},
        {"big", "", 0, "larger than 64k"},
        {"bom", "", 0, "line 1"},
        {"ok", "", 1, NULL},
        /* reachable: a probe with a query is accepted (its signature is
         * test_H3_probe_query_is_canonicalised_like_botocore's matter) */
        {"ok", "        dss_bill_upstream_health_url "
               "http://127.0.0.1:9/bills?prefix=b&max-keys=0;\n", 1, NULL},
        {"ok", "        dss_bill_upstream_header Host "
               "bills.s3.us-east-1.amazonaws.com;\n", 0, "Host"},
        {"ok", "        dss_bill_upstream_header Authorization "
               "\"Bearer x\";\n", 0, "Authorization"},
        {"ok", "        dss_bill_upstream_header x-amz-content-sha256 "
               "UNSIGNED-PAYLOAD;\n", 0, "x-amz-content-sha256"},
        {"ok", "        dss_bill_upstream_header X-Amz-Date "
               "20261231T235959Z;\n", 0, "X-Amz-Date"},
        {"ok", "        dss_bill_upstream_header X-Empty \"\";\n", 0,
               "empty value"},
    };
    char failures[4096] = "";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *config = NULL;
        assert_true(asprintf(&config,
                             "server {\n"
                             "    listen 127.0.0.1:@PORT@;\n"
                             "    location /b/ {\n"
                             "        dss_bill;\n"
                             "        dss_bill_upstream "
                             "http://127.0.0.1:9/bills/$dss_bill_id.pdf;\n"
                             "        dss_bill_upstream_s3 region=us-east-1;\n"
                             "        dss_bill_upstream_s3_credentials "
                             "@PREFIX@/aws/%s profile=session;\n"
                             "%s"
                             "    }\n"
                             "}\n",
                             cases[i].file, cases[i].extra) > 0);
        static char out[16384];
        int status = dss_nginx_test_config(&t, config, out, sizeof(out));
        free(config);
        assert_null(strstr(out, "atTackObs"));
        assert_null(strstr(out, "IQoJattack"));
        int good = cases[i].ok ? status == 0
                               : status != 0 &&
                                     strstr(out, cases[i].reason) != NULL;
        if (!good) {
            size_t used = strlen(failures);
            snprintf(failures + used, sizeof(failures) - used,
                     "\n  %s%s: nginx -t status %d: %.200s", cases[i].file,
                     cases[i].extra[0] ? " with extra lines" : "", status,
                     out);
        }
    }
    dss_nginx_cleanup(&t);
    if (failures[0]) {
        fail_msg("nginx -t:%s", failures);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_D5_error_page_404_is_still_counted),
        cmocka_unit_test(test_D3_head_and_http2_counted_once_with_exact_bytes),
        cmocka_unit_test(test_D7_metrics_endpoint_other_methods),
        cmocka_unit_test(test_T3_hostile_location_names_pass_promtool),
        cmocka_unit_test(test_T3_every_series_is_unique),
        cmocka_unit_test(test_D6_hostile_s3_error_bodies),
        cmocka_unit_test(test_D6_large_s3_error_answer_is_not_a_too_large_bill),
        cmocka_unit_test(test_D5_missing_bill_with_a_large_404_page_is_404),
        cmocka_unit_test(test_D9_no_secret_in_any_log_even_at_debug),
        cmocka_unit_test(test_T5_client_gone_mid_fetch_counted_once),
        cmocka_unit_test(test_T3_non_utf8_location_keeps_the_scrape_valid),
        cmocka_unit_test(test_D9_credentials_and_headers_at_nginx_t),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

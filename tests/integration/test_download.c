/* Integration tests of GET /dss/bill/download/{id} (contract D1-D8): the
 * real nginx with the built module, over TLS on loopback, driven by libcurl. */

#define _GNU_SOURCE /* memmem, strcasestr */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define FIVE_MB (5 * 1024 * 1024)

static dss_nginx nginx;

static const char *const config =
    "log_format bills '$status $dss_bill_id';\n"
    "map $dss_bill_id $dss_bill_shard {\n"
    "    \"~^(?<head>[0-9]{3})\" $head;\n"
    "    default other;\n"
    "}\n"
    /* D5: a variable that turns a bill id into a path the root must not
     * serve (nginx -t cannot see it: it is judged per request) */
    "map $dss_bill_id $dss_bill_escape {\n"
    "    default $dss_bill_id;\n"
    "    escape-up ../outside;\n"
    "    escape-dot ./123456789012;\n"
    "}\n"
    "server {\n"
    "    listen 127.0.0.1:@PORT@ ssl http2;\n"
    "    ssl_certificate @PREFIX@/cert.pem;\n"
    "    ssl_certificate_key @PREFIX@/key.pem;\n"
    /* D3: nothing may compress the bill or strip its length */
    "    gzip on; gzip_types *; gzip_min_length 0;\n"
    "    dss_bill_root @PREFIX@/bills;\n"
    "    location /dss/bill/ {\n"
    "        dss_bill;\n"
    "        access_log @PREFIX@/logs/bills.log bills;\n"
    "    }\n"
    "    location /auth/dss/bill/ {\n"
    "        auth_basic \"DSS\";\n"
    "        auth_basic_user_file @PREFIX@/htpasswd;\n"
    "        dss_bill;\n"
    "    }\n"
    "    location /small/ { dss_bill; dss_bill_max_size 1k; }\n"
    "    location /large/ { dss_bill; dss_bill_max_size 8m; }\n"
    "    location /sharded/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/sharded;\n"
    "        dss_bill_path $dss_bill_shard/$dss_bill_id.pdf;\n"
    "    }\n"
    "    location /nosymlinks/ { disable_symlinks on; dss_bill; }\n"
    "    location /escape/ { dss_bill; dss_bill_path $dss_bill_escape.pdf; }\n"
    "    location /plain/bill { dss_bill; }\n"
    "    location /cached/ {\n"
    "        open_file_cache max=64; open_file_cache_errors on;\n"
    "        dss_bill;\n"
    "    }\n"
    "    location /digits/ {\n"
    "        dss_bill;\n"
    "        dss_bill_id_chars 0-9;\n"
    "        dss_bill_id_length 12 12;\n"
    "    }\n"
    "}\n";

static const char *bill_path(const char *id) {
    static char path[PATH_MAX];
    char rel[512];
    snprintf(rel, sizeof(rel), "bills/%s.pdf", id);
    snprintf(path, sizeof(path), "%s", dss_path(&nginx, rel));
    return path;
}

static int group_setup(void **state) {
    (void)state;
    if (dss_nginx_prepare(&nginx) != 0) {
        return -1;
    }
    dss_write_bill(bill_path("123456789012"), "123456789012", 0);
    dss_write_bill(bill_path("AB-cd_9"), "AB-cd_9", 0);
    dss_write_bill(bill_path("exactly5mb"), "exactly5mb", FIVE_MB);
    dss_write_bill(bill_path("over5mb"), "over5mb", FIVE_MB + 1);
    dss_write_bill(bill_path("six-mb"), "six-mb", 6 * 1024 * 1024);
    dss_write_bill(bill_path("two-kb"), "two-kb", 2048);
    dss_write_file(bill_path("empty"), "", 0);
    static const char html[] = "<html><body>not a bill</body></html>\n";
    dss_write_file(bill_path("html"), html, sizeof(html) - 1);
    dss_write_file(bill_path("short"), "%PD", 3);

    /* a directory named like a bill */
    mkdir(bill_path("dir"), 0755);

    /* a bill the worker (user nobody) cannot read */
    dss_write_bill(bill_path("secret"), "secret", 0);
    chmod(bill_path("secret"), 0600);

    /* a symbolic link inside the root to a real bill */
    char target[PATH_MAX];
    snprintf(target, sizeof(target), "%s", bill_path("123456789012"));
    symlink(target, bill_path("link"));

    mkdir(dss_path(&nginx, "sharded"), 0755);
    mkdir(dss_path(&nginx, "sharded/987"), 0755);
    dss_write_bill(dss_path(&nginx, "sharded/987/987000000001.pdf"),
                   "987000000001", 0);

    /* a valid bill outside the root, next to it */
    dss_write_bill(dss_path(&nginx, "outside.pdf"), "outside", 0);

    return dss_nginx_start(&nginx, config);
}

static int group_teardown(void **state) {
    (void)state;
    dss_nginx_cleanup(&nginx);
    return 0;
}

static char *read_bill(const char *id, size_t *len) {
    char *data = dss_read_file(bill_path(id), len);
    assert_non_null(data);
    return data;
}

/* The response is the complete bill, byte for byte, as D3 describes it. */
static void assert_complete_bill(dss_response *r, const char *id) {
    size_t len;
    char *expected = read_bill(id, &len);
    char length[32];
    snprintf(length, sizeof(length), "%zu", len);

    assert_int_equal(r->curl_code, CURLE_OK);
    assert_int_equal(r->status, 200);
    assert_non_null(dss_header(r, "Content-Type"));
    assert_string_equal(dss_header(r, "Content-Type"), "application/pdf");
    assert_non_null(dss_header(r, "Content-Length"));
    assert_string_equal(dss_header(r, "Content-Length"), length);
    assert_null(dss_header(r, "Transfer-Encoding"));
    assert_null(dss_header(r, "Content-Encoding"));
    assert_null(dss_header(r, "Content-Range"));
    assert_int_equal(r->body_len, len);
    assert_memory_equal(r->body, expected, len);
    assert_memory_equal(r->body, "%PDF-", 5); /* D8 */
    free(expected);
}

static void expect_status(const char *target, long status) {
    dss_response r = dss_get(&nginx, target);
    assert_int_equal(r.curl_code, CURLE_OK);
    if (r.status != status) {
        fail_msg("%s: status %ld, expected %ld", target, r.status, status);
    }
    dss_response_free(&r);
}

/* Waits until the error log has gained a line with needle. */
static void expect_logged(int before, const char *needle) {
    for (int i = 0; i < 250; i++) {
        if (dss_error_log_count(&nginx, needle) > before) {
            return;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("error log has no new line with \"%s\"", needle);
}

/* ---- one connection, raw bytes (framing across requests) -------------------
 */

/* Sends request as it is on one TLS connection (libcurl connects, then only
 * carries bytes) and returns every byte the server sends until it closes the
 * connection; fails after 10 s. */
static char *raw_exchange(const char *request, size_t *len) {
    char url[64];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", nginx.port);
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CAINFO, dss_path(&nginx, "cert.pem"));
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(curl, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    assert_int_equal(curl_easy_perform(curl), CURLE_OK);
    curl_socket_t fd = CURL_SOCKET_BAD;
    curl_easy_getinfo(curl, CURLINFO_ACTIVESOCKET, &fd);
    assert_true(fd != CURL_SOCKET_BAD);

    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    size_t total = strlen(request), sent = 0, used = 0, cap = 65536;
    char *reply = malloc(cap);
    assert_non_null(reply);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > 10) {
            fail_msg("the exchange did not end within 10 s (%zu bytes in)",
                     used);
        }
        size_t n = 0;
        CURLcode rc;
        struct pollfd p = {fd, POLLIN, 0};
        if (sent < total) {
            rc = curl_easy_send(curl, request + sent, total - sent, &n);
            p.events = POLLOUT;
            sent += rc == CURLE_OK ? n : 0;
        } else {
            if (cap - used < 16384) {
                cap *= 2;
                reply = realloc(reply, cap);
                assert_non_null(reply);
            }
            rc = curl_easy_recv(curl, reply + used, cap - used, &n);
            if (rc == CURLE_OK && n == 0) {
                break; /* closed */
            }
            used += rc == CURLE_OK ? n : 0;
        }
        if (rc == CURLE_AGAIN) {
            poll(&p, 1, 100);
        } else if (rc != CURLE_OK) {
            break; /* reset: what came so far is the answer */
        }
    }
    curl_easy_cleanup(curl);
    *len = used;
    return reply;
}

/* Splits off one HTTP/1.1 response with a Content-Length at *at: checks its
 * status, returns its body (length *body_len) and moves *at past it. */
static const char *next_response(const char *reply, size_t len, size_t *at,
                                 long status, size_t *body_len) {
    const char *head = reply + *at;
    size_t left = len - *at;
    char want[32];
    snprintf(want, sizeof(want), "HTTP/1.1 %ld ", status);
    if (left < strlen(want) || memcmp(head, want, strlen(want)) != 0) {
        fail_msg("at byte %zu: expected \"%s\", got \"%.40s\"", *at, want,
                 head);
    }
    const char *end = memmem(head, left, "\r\n\r\n", 4);
    assert_non_null(end);
    const char *cl = strcasestr(head, "\r\nContent-Length: ");
    if (cl == NULL || cl > end) {
        fail_msg("a response without Content-Length: \"%.*s\"",
                 (int)(end - head), head);
    }
    *body_len = strtoul(cl + 18, NULL, 10);
    size_t header_len = (size_t)(end + 4 - head);
    *at += header_len;
    return head + header_len;
}

/* ---- D1: the request ------------------------------------------------------
 */

static void test_D1_accept_header_is_informative_only(void **state) {
    (void)state;
    static const char *const with_accept[] = {"Accept: application/pdf", NULL};
    static const char *const other_accept[] = {"Accept: text/html", NULL};
    static const char *const no_accept[] = {"Accept:", NULL};
    static const char *const extras[] = {
        "Accept: application/pdf", "X-Request-Id: 42", "User-Agent: Oracle-DSS",
        "Cookie: a=b", NULL};
    const char *const *variants[] = {with_accept, other_accept, no_accept,
                                     extras};

    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        dss_request_options o = {.headers = variants[i]};
        dss_response r =
            dss_request(&nginx, "/dss/bill/download/123456789012", &o);
        assert_complete_bill(&r, "123456789012");
        dss_response_free(&r);
    }
}

/* A GET that carries a body (DSS sends none, a proxy might): the body is
 * read and dropped, so the next request on the connection is the next
 * request, not the body's bytes. */
static void test_D1_get_with_a_body_keeps_the_connection_in_step(void **state) {
    (void)state;
    static const char request[] =
        "GET /dss/bill/download/123456789012 HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nAccept: application/pdf\r\n"
        "Content-Length: 27\r\n\r\n"
        "GET /dss/bill/download/x\r\n\r\n" /* the body: 27 bytes */
        "GET /dss/bill/download/AB-cd_9 HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
    size_t len, at = 0, body_len, bill_len;
    char *reply = raw_exchange(request, &len);

    const char *body = next_response(reply, len, &at, 200, &body_len);
    char *bill = read_bill("123456789012", &bill_len);
    assert_int_equal(body_len, bill_len);
    assert_true(at + body_len <= len);
    assert_memory_equal(body, bill, bill_len);
    at += body_len;
    free(bill);

    body = next_response(reply, len, &at, 200, &body_len);
    bill = read_bill("AB-cd_9", &bill_len);
    assert_int_equal(body_len, bill_len);
    assert_int_equal(at + body_len, len); /* nothing after it */
    assert_memory_equal(body, bill, bill_len);
    free(bill);
    free(reply);
}

/* ---- D2: the bill id
 * ---------------------------------------------------------- */

static void test_D2_twelve_digit_and_token_ids_are_served(void **state) {
    (void)state;
    dss_response r = dss_get(&nginx, "/dss/bill/download/123456789012");
    assert_complete_bill(&r, "123456789012");
    dss_response_free(&r);

    r = dss_get(&nginx, "/dss/bill/download/AB-cd_9");
    assert_complete_bill(&r, "AB-cd_9");
    dss_response_free(&r);
}

static void test_D2_configured_id_rule(void **state) {
    (void)state;
    /* dss_bill_id_chars 0-9; dss_bill_id_length 12 12 */
    dss_response r = dss_get(&nginx, "/digits/download/123456789012");
    assert_complete_bill(&r, "123456789012");
    dss_response_free(&r);

    expect_status("/digits/download/AB-cd_9", 404);
    expect_status("/digits/download/12345678901", 404);
}

static void test_D2_bill_id_variable_is_logged(void **state) {
    (void)state;
    expect_status("/dss/bill/download/AB-cd_9", 200);
    for (int i = 0; i < 250; i++) {
        size_t len;
        char *log = dss_read_file(dss_path(&nginx, "logs/bills.log"), &len);
        int found = log && strstr(log, "200 AB-cd_9\n") != NULL;
        free(log);
        if (found) {
            return;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("$dss_bill_id did not reach the access log");
}

static void test_D2_sharded_layout_through_a_map(void **state) {
    (void)state;
    /* dss_bill_path $dss_bill_shard/$dss_bill_id.pdf with a map on the id */
    dss_response r = dss_get(&nginx, "/sharded/download/987000000001");
    assert_int_equal(r.status, 200);
    size_t len;
    char *expected =
        dss_read_file(dss_path(&nginx, "sharded/987/987000000001.pdf"), &len);
    assert_int_equal(r.body_len, len);
    assert_memory_equal(r.body, expected, len);
    free(expected);
    dss_response_free(&r);

    expect_status("/sharded/download/123456789012", 404);
}

/* ---- D3: the 200
 * ---------------------------------------------------------------- */

static void test_D3_200_is_the_complete_pdf_with_exact_length(void **state) {
    (void)state;
    static const char *const gzip[] = {"Accept-Encoding: gzip, deflate, br",
                                       NULL};
    dss_request_options o = {.headers = gzip};
    dss_response r = dss_request(&nginx, "/dss/bill/download/123456789012", &o);
    assert_complete_bill(&r, "123456789012");

    /* bills are personal data: never cached, never sniffed */
    assert_string_equal(dss_header(&r, "Cache-Control"), "private, no-store");
    assert_string_equal(dss_header(&r, "X-Content-Type-Options"), "nosniff");
    assert_string_equal(dss_header(&r, "Content-Disposition"),
                        "inline; filename=\"123456789012.pdf\"");
    assert_null(dss_header(&r, "Accept-Ranges"));
    assert_null(dss_header(&r, "Last-Modified"));
    assert_null(dss_header(&r, "ETag"));
    dss_response_free(&r);
}

static void test_D3_range_and_conditional_headers_are_ignored(void **state) {
    (void)state;
    static const char *const variants[][3] = {
        {"Range: bytes=0-9", NULL, NULL},
        {"Range: bytes=-5", "If-Range: \"x\"", NULL},
        {"If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT", NULL, NULL},
        {"If-None-Match: *", NULL, NULL},
        {"If-Match: \"nothing\"", NULL, NULL},
        {"If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        dss_request_options o = {.headers = variants[i]};
        dss_response r =
            dss_request(&nginx, "/dss/bill/download/123456789012", &o);
        if (r.status != 200) {
            fail_msg("\"%s\" gave %ld, not a full 200", variants[i][0],
                     r.status);
        }
        assert_complete_bill(&r, "123456789012");
        dss_response_free(&r);
    }
}

static void test_D3_http2_keeps_exact_length(void **state) {
    (void)state;
    dss_request_options o = {.http2 = 1};
    dss_response r = dss_request(&nginx, "/dss/bill/download/exactly5mb", &o);
    assert_complete_bill(&r, "exactly5mb");
    assert_non_null(strstr(r.headers, "HTTP/2 200"));
    dss_response_free(&r);
}

static void test_D3_open_file_cache_serves_the_same_bill(void **state) {
    (void)state;
    for (int i = 0; i < 3; i++) {
        dss_response r = dss_get(&nginx, "/cached/download/123456789012");
        assert_complete_bill(&r, "123456789012");
        dss_response_free(&r);
        expect_status("/cached/download/000000000000", 404);
    }
}

/* ---- D4: the size limit
 * ---------------------------------------------------------- */

static void test_D4_exactly_5mb_is_served(void **state) {
    (void)state;
    dss_response r = dss_get(&nginx, "/dss/bill/download/exactly5mb");
    assert_complete_bill(&r, "exactly5mb");
    assert_string_equal(dss_header(&r, "Content-Length"), "5242880");
    dss_response_free(&r);
}

static void test_D4_over_5mb_is_500_with_reason_logged(void **state) {
    (void)state;
    const char *logged = "bill exceeds dss_bill_max_size, bill id \"over5mb\"";
    int before = dss_error_log_count(&nginx, logged);
    dss_response r = dss_get(&nginx, "/dss/bill/download/over5mb");
    assert_int_equal(r.status, 500);
    assert_true(r.body_len < 1024); /* an error page, not the bill */
    dss_response_free(&r);
    expect_logged(before, logged);
}

static void test_D4_limit_is_configurable_down_and_up(void **state) {
    (void)state;
    /* dss_bill_max_size 1k */
    dss_response r = dss_get(&nginx, "/small/download/123456789012");
    assert_complete_bill(&r, "123456789012");
    dss_response_free(&r);
    expect_status("/small/download/two-kb", 500);

    /* dss_bill_max_size 8m */
    r = dss_get(&nginx, "/large/download/six-mb");
    assert_complete_bill(&r, "six-mb");
    dss_response_free(&r);
    expect_status("/dss/bill/download/six-mb", 500);
}

/* ---- D5: not found
 * ------------------------------------------------------------------ */

static void test_D5_absent_bill_is_404(void **state) {
    (void)state;
    const char *logged = "bill not found, bill id \"999999999999\"";
    int before = dss_error_log_count(&nginx, logged);
    expect_status("/dss/bill/download/999999999999", 404);
    expect_logged(before, logged);
}

static void test_D5_hostile_ids_are_never_served(void **state) {
    (void)state;
    static const char *const hostile[] = {
        "/dss/bill/download/",
        "/dss/bill/download/..",
        "/dss/bill/download/../../key.pem",
        "/dss/bill/download/..%2F..%2F..%2Fetc%2Fpasswd",
        "/dss/bill/download/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/dss/bill/download/123456789012%00",
        "/dss/bill/download/123456789012%00.pdf",
        "/dss/bill/download/..%5c..%5cetc%5cpasswd",
        "/dss/bill/download/a\\b",
        "/dss/bill/download/a/b",
        "/dss/bill/download/123456789012/",
        "/dss/bill/download/123456789012.pdf",
        "/dss/bill/download/123456789012%2Epdf",
        "/dss/bill/download/%31%32%33%34%35%36%37%38%39%30%31%32%2F",
        "/dss/bill/download/nginx.conf",
        "/dss/bill/download/..%2Fnginx.conf",
        "/dss/bill/download/%2Fetc%2Fpasswd",
        "/dss/bill/download/~root",
        "/dss/bill/download/$dss_bill_id",
        "/dss/bill/download/123456789012%0d%0aX-Injected:%201",
        "/dss/bill/download/%C0%AE%C0%AE",
        "/dss/bill/download/link%2F..%2F..%2Fkey.pem",
    };
    size_t len;
    char *key = dss_read_file(dss_path(&nginx, "key.pem"), &len);
    assert_non_null(key);

    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        dss_response r = dss_get(&nginx, hostile[i]);
        /* 404 from the module, or 400 from nginx's own request parsing */
        if (r.status != 404 && r.status != 400) {
            fail_msg("%s: status %ld", hostile[i], r.status);
        }
        assert_null(dss_header(&r, "X-Injected"));
        if (r.body && (strstr(r.body, "%PDF-") || strstr(r.body, "root:") ||
                       strstr(r.body, "PRIVATE KEY"))) {
            fail_msg("%s: the body leaks file contents", hostile[i]);
        }
        dss_response_free(&r);
    }
    free(key);

    /* 4000 characters: too long for any bill id */
    char target[4100];
    int n = snprintf(target, sizeof(target), "/dss/bill/download/");
    memset(target + n, '1', 4000);
    target[n + 4000] = '\0';
    expect_status(target, 404);
}

static void test_D5_directory_named_like_a_bill_is_404(void **state) {
    (void)state;
    const char *logged = "not a regular file, bill id \"dir\"";
    int before = dss_error_log_count(&nginx, logged);
    expect_status("/dss/bill/download/dir", 404);
    expect_logged(before, logged);
}

static void test_D5_symlink_refused_by_disable_symlinks(void **state) {
    (void)state;
    dss_response r = dss_get(&nginx, "/dss/bill/download/link");
    assert_complete_bill(&r, "123456789012");
    dss_response_free(&r);

    const char *logged = "refused by disable_symlinks";
    int before = dss_error_log_count(&nginx, logged);
    expect_status("/nosymlinks/download/link", 404);
    expect_logged(before, logged);
}

static void test_D5_other_paths_under_the_location_are_404(void **state) {
    (void)state;
    expect_status("/dss/bill/", 404);
    expect_status("/dss/bill/download", 404);
    expect_status("/dss/bill/bills/123456789012.pdf", 404);
    expect_status("/dss/bill/123456789012.pdf", 404);
    expect_status("/dss/bill/healthcheck/extra", 404);
}

/* The prefix location "/plain/bill" has no trailing slash: its routes are
 * "/plain/bill/healthcheck" and "/plain/bill/download/<id>", never
 * "/plain/billhealthcheck" or "/plain/billdownload/<id>". */
static void test_D5_prefix_without_slash_routes_whole_segments(void **state) {
    (void)state;
    dss_response r = dss_get(&nginx, "/plain/bill/download/123456789012");
    assert_complete_bill(&r, "123456789012");
    dss_response_free(&r);
    expect_status("/plain/bill/healthcheck", 200);

    expect_status("/plain/billhealthcheck", 404);
    expect_status("/plain/billdownload/123456789012", 404);
    expect_status("/plain/billing/download/123456789012", 404);
}

/* D5: "..", "." reached through a variable of dss_bill_path (here a map on
 * the id): nginx -t cannot see them, the per-request check refuses them,
 * even where the resulting file exists (a bill outside the root). */
static void test_D5_dot_segments_from_a_variable_are_404(void **state) {
    (void)state;
    /* the location serves through the map */
    dss_response r = dss_get(&nginx, "/escape/download/123456789012");
    assert_complete_bill(&r, "123456789012");
    dss_response_free(&r);

    static const char *const ids[] = {"escape-up", "escape-dot"};
    static const char *const paths[] = {"../outside.pdf", "./123456789012.pdf"};
    for (size_t i = 0; i < 2; i++) {
        char target[128], logged[256];
        snprintf(target, sizeof(target), "/escape/download/%s", ids[i]);
        snprintf(logged, sizeof(logged),
                 "dss_bill_path produced an unsafe relative path, bill id "
                 "\"%s\", file \"%s\"",
                 ids[i], paths[i]);
        int before = dss_error_log_count(&nginx, logged);
        r = dss_get(&nginx, target);
        if (r.status != 404) {
            fail_msg("%s: status %ld (%zu bytes), expected 404", target,
                     r.status, r.body_len);
        }
        assert_true(r.body == NULL || strstr(r.body, "%PDF-") == NULL);
        dss_response_free(&r);
        expect_logged(before, logged);
    }
}

/* ---- D6: server errors
 * -------------------------------------------------------------- */

static void test_D6_not_a_pdf_is_500(void **state) {
    (void)state;
    const char *logged = "not a PDF (no %PDF- signature), bill id \"html\"";
    int before = dss_error_log_count(&nginx, logged);
    dss_response r = dss_get(&nginx, "/dss/bill/download/html");
    assert_int_equal(r.status, 500);
    assert_true(r.body == NULL || strstr(r.body, "not a bill") == NULL);
    dss_response_free(&r);
    expect_logged(before, logged);

    /* shorter than the signature itself */
    expect_status("/dss/bill/download/short", 500);
}

static void test_D6_empty_file_is_500(void **state) {
    (void)state;
    const char *logged = "bill is empty, bill id \"empty\"";
    int before = dss_error_log_count(&nginx, logged);
    expect_status("/dss/bill/download/empty", 500);
    expect_logged(before, logged);
}

static void test_D6_unreadable_file_is_500(void **state) {
    (void)state;
    if (geteuid() != 0) {
        skip(); /* workers only run as "nobody" when started by root */
    }
    const char *logged = "not readable by the worker, bill id \"secret\"";
    int before = dss_error_log_count(&nginx, logged);
    expect_status("/dss/bill/download/secret", 500);
    expect_logged(before, logged);
}

/* ---- D7: only 200, 404 and 500 from the module
 * --------------------------------- */

static void test_D7_other_methods_get_405_with_allow(void **state) {
    (void)state;
    static const char *const methods[] = {"POST", "PUT", "DELETE", "PATCH",
                                          "OPTIONS"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        dss_request_options o = {.method = methods[i]};
        dss_response r =
            dss_request(&nginx, "/dss/bill/download/123456789012", &o);
        if (r.status != 405) {
            fail_msg("%s: status %ld", methods[i], r.status);
        }
        assert_non_null(dss_header(&r, "Allow"));
        assert_string_equal(dss_header(&r, "Allow"), "GET, HEAD");
        assert_true(r.body == NULL || strstr(r.body, "%PDF-") == NULL);
        dss_response_free(&r);
    }
}

static void test_D7_head_answers_like_get_without_body(void **state) {
    (void)state;
    dss_request_options o = {.method = "HEAD"};
    dss_response r = dss_request(&nginx, "/dss/bill/download/exactly5mb", &o);
    assert_int_equal(r.status, 200);
    assert_string_equal(dss_header(&r, "Content-Length"), "5242880");
    assert_string_equal(dss_header(&r, "Content-Type"), "application/pdf");
    assert_int_equal(r.body_len, 0);
    dss_response_free(&r);

    r = dss_request(&nginx, "/dss/bill/download/999999999999", &o);
    assert_int_equal(r.status, 404);
    dss_response_free(&r);
}

/* HEAD then GET on one keep-alive connection: the HEAD answer is headers
 * only (its Content-Length is the bill's), and the next bytes are the GET's
 * answer, whose body is the bill. */
static void test_D7_head_then_get_on_one_connection(void **state) {
    (void)state;
    static const char request[] =
        "HEAD /dss/bill/download/two-kb HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n\r\n"
        "GET /dss/bill/download/123456789012 HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
    size_t len, at = 0, body_len, bill_len;
    char *reply = raw_exchange(request, &len);

    (void)next_response(reply, len, &at, 200, &body_len);
    assert_int_equal(body_len, 2048); /* announced, not sent */

    const char *body = next_response(reply, len, &at, 200, &body_len);
    char *bill = read_bill("123456789012", &bill_len);
    assert_int_equal(body_len, bill_len);
    assert_int_equal(at + body_len, len);
    assert_memory_equal(body, bill, bill_len);
    free(bill);
    free(reply);
}

static void test_D7_basic_auth_comes_from_nginx(void **state) {
    (void)state;
    const char *target = "/auth/dss/bill/download/123456789012";
    expect_status(target, 401);

    dss_request_options wrong = {.userpwd = "dss:wrong"};
    dss_response r = dss_request(&nginx, target, &wrong);
    assert_int_equal(r.status, 401);
    dss_response_free(&r);

    dss_request_options right = {.userpwd = "dss:secret"};
    r = dss_request(&nginx, target, &right);
    assert_complete_bill(&r, "123456789012");
    dss_response_free(&r);
}

/* ---- D8 / T5: many requests on kept-alive connections stay exact
 * --------------- */

static void test_D8_concurrent_downloads_are_all_complete(void **state) {
    (void)state;
    size_t len;
    char *expected = read_bill("exactly5mb", &len);
    CURLM *multi = curl_multi_init();
    enum { N = 16 };
    CURL *easy[N];
    FILE *sinks[N];
    char *bodies[N];
    size_t sizes[N];
    char url[256];
    snprintf(url, sizeof(url),
             "https://127.0.0.1:%d/dss/bill/download/exactly5mb", nginx.port);

    for (int i = 0; i < N; i++) {
        sinks[i] = open_memstream(&bodies[i], &sizes[i]);
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_CAINFO, dss_path(&nginx, "cert.pem"));
        curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, sinks[i]);
        curl_easy_setopt(easy[i], CURLOPT_TIMEOUT_MS, 30000L);
        curl_multi_add_handle(multi, easy[i]);
    }
    int running = 1;
    while (running) {
        curl_multi_perform(multi, &running);
        if (running) {
            curl_multi_poll(multi, NULL, 0, 1000, NULL);
        }
    }
    for (int i = 0; i < N; i++) {
        long status = 0;
        curl_easy_getinfo(easy[i], CURLINFO_RESPONSE_CODE, &status);
        fclose(sinks[i]);
        assert_int_equal(status, 200);
        assert_int_equal(sizes[i], len);
        assert_memory_equal(bodies[i], expected, len);
        free(bodies[i]);
        curl_multi_remove_handle(multi, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    curl_multi_cleanup(multi);
    free(expected);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_D1_accept_header_is_informative_only),
        cmocka_unit_test(test_D1_get_with_a_body_keeps_the_connection_in_step),
        cmocka_unit_test(test_D2_twelve_digit_and_token_ids_are_served),
        cmocka_unit_test(test_D2_configured_id_rule),
        cmocka_unit_test(test_D2_bill_id_variable_is_logged),
        cmocka_unit_test(test_D2_sharded_layout_through_a_map),
        cmocka_unit_test(test_D3_200_is_the_complete_pdf_with_exact_length),
        cmocka_unit_test(test_D3_range_and_conditional_headers_are_ignored),
        cmocka_unit_test(test_D3_http2_keeps_exact_length),
        cmocka_unit_test(test_D3_open_file_cache_serves_the_same_bill),
        cmocka_unit_test(test_D4_exactly_5mb_is_served),
        cmocka_unit_test(test_D4_over_5mb_is_500_with_reason_logged),
        cmocka_unit_test(test_D4_limit_is_configurable_down_and_up),
        cmocka_unit_test(test_D5_absent_bill_is_404),
        cmocka_unit_test(test_D5_hostile_ids_are_never_served),
        cmocka_unit_test(test_D5_directory_named_like_a_bill_is_404),
        cmocka_unit_test(test_D5_symlink_refused_by_disable_symlinks),
        cmocka_unit_test(test_D5_other_paths_under_the_location_are_404),
        cmocka_unit_test(test_D5_prefix_without_slash_routes_whole_segments),
        cmocka_unit_test(test_D5_dot_segments_from_a_variable_are_404),
        cmocka_unit_test(test_D6_not_a_pdf_is_500),
        cmocka_unit_test(test_D6_empty_file_is_500),
        cmocka_unit_test(test_D6_unreadable_file_is_500),
        cmocka_unit_test(test_D7_other_methods_get_405_with_allow),
        cmocka_unit_test(test_D7_head_answers_like_get_without_body),
        cmocka_unit_test(test_D7_head_then_get_on_one_connection),
        cmocka_unit_test(test_D7_basic_auth_comes_from_nginx),
        cmocka_unit_test(test_D8_concurrent_downloads_are_all_complete),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

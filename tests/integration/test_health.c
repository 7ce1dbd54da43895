/* Integration tests of GET /dss/bill/healthcheck (contract H1-H4). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static dss_nginx nginx;

static const char *const config =
    "server {\n"
    "    listen 127.0.0.1:@PORT@ ssl;\n"
    "    ssl_certificate @PREFIX@/cert.pem;\n"
    "    ssl_certificate_key @PREFIX@/key.pem;\n"
    "    gzip on; gzip_types *; gzip_min_length 0;\n"
    "    dss_bill_root @PREFIX@/bills;\n"
    /* H1: probes carry no credentials; bill downloads do */
    "    location = /dss/bill/healthcheck { dss_bill; }\n"
    "    location /dss/bill/ {\n"
    "        auth_basic \"DSS\";\n"
    "        auth_basic_user_file @PREFIX@/htpasswd;\n"
    "        dss_bill;\n"
    "    }\n"
    "    location /missing/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/nonexistent;\n"
    "    }\n"
    "    location /locked/ { dss_bill; dss_bill_root @PREFIX@/locked; }\n"
    "    location /listonly/ { dss_bill; dss_bill_root @PREFIX@/listonly; }\n"
    "    location /flapping/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/flapping;\n"
    "        dss_bill_health_interval 50ms;\n"
    "    }\n"
    "    location /slowprobe/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/slowprobe;\n"
    "        dss_bill_health_interval 1h;\n"
    "    }\n"
    "}\n";

static int group_setup(void **state) {
    (void)state;
    if (dss_nginx_prepare(&nginx) != 0) {
        return -1;
    }
    dss_write_bill(dss_path(&nginx, "bills/123456789012.pdf"), "123456789012",
                   0);
    mkdir(dss_path(&nginx, "locked"), 0700); /* root's; workers are nobody */
    /* the workers may list it (r), not enter it (no x) */
    mkdir(dss_path(&nginx, "listonly"), 0744);
    chmod(dss_path(&nginx, "listonly"), 0744);
    mkdir(dss_path(&nginx, "flapping"), 0755);
    mkdir(dss_path(&nginx, "slowprobe"), 0755);
    return dss_nginx_start(&nginx, config);
}

static int group_teardown(void **state) {
    (void)state;
    dss_nginx_cleanup(&nginx);
    return 0;
}

static long health_status(const char *target) {
    dss_response r = dss_get(&nginx, target);
    assert_int_equal(r.curl_code, CURLE_OK);
    dss_response_free(&r);
    return r.status;
}

/* Polls the health route until it answers want; fails after 10 s. */
static void expect_health_becomes(const char *target, long want) {
    long got = 0;
    for (int i = 0; i < 500; i++) {
        got = health_status(target);
        if (got == want) {
            return;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("%s stayed %ld, expected %ld", target, got, want);
}

static void assert_healthy_answer(dss_response *r) {
    assert_int_equal(r->curl_code, CURLE_OK);
    assert_int_equal(r->status, 200);
    assert_non_null(dss_header(r, "Content-Length"));
    assert_string_equal(dss_header(r, "Content-Length"), "0");
    assert_null(dss_header(r, "Transfer-Encoding"));
    assert_null(dss_header(r, "Content-Encoding"));
    assert_int_equal(r->body_len, 0);
}

static void test_H2_healthy_is_200_with_content_length_zero(void **state) {
    (void)state;
    dss_response r = dss_get(&nginx, "/dss/bill/healthcheck");
    assert_healthy_answer(&r);
    dss_response_free(&r);

    dss_request_options head = {.method = "HEAD"};
    r = dss_request(&nginx, "/dss/bill/healthcheck", &head);
    assert_healthy_answer(&r);
    dss_response_free(&r);
}

static void test_H1_request_headers_are_informative_only(void **state) {
    (void)state;
    static const char *const headers[] = {"Accept: application/json",
                                          "Accept-Encoding: gzip",
                                          "X-Forwarded-For: 203.0.113.7",
                                          "Range: bytes=0-0",
                                          "If-None-Match: *",
                                          NULL};
    dss_request_options o = {.headers = headers};
    dss_response r = dss_request(&nginx, "/dss/bill/healthcheck?x=1", &o);
    assert_healthy_answer(&r);
    dss_response_free(&r);
}

static void test_H1_health_needs_no_credentials_downloads_do(void **state) {
    (void)state;
    assert_int_equal(health_status("/dss/bill/healthcheck"), 200);
    assert_int_equal(health_status("/dss/bill/download/123456789012"), 401);

    dss_request_options auth = {.userpwd = "dss:secret"};
    dss_response r =
        dss_request(&nginx, "/dss/bill/download/123456789012", &auth);
    assert_int_equal(r.status, 200);
    dss_response_free(&r);
}

static void test_H3_missing_root_is_503(void **state) {
    (void)state;
    assert_int_equal(health_status("/missing/healthcheck"), 503);
    assert_true(dss_error_log_count(&nginx, "nonexistent\" is unhealthy: "
                                            "cannot open the document root: "
                                            "No such file or directory") > 0);
}

static void test_H3_root_the_worker_cannot_enter_is_503(void **state) {
    (void)state;
    if (geteuid() != 0) {
        skip(); /* workers only run as "nobody" when started by root */
    }
    assert_int_equal(health_status("/locked/healthcheck"), 503);
    assert_true(dss_error_log_count(&nginx, "Permission denied") > 0);
}

/* A root the workers can open and list but not enter (r without x): no bill
 * below it can be opened, so it is unhealthy too. */
static void
test_H3_root_the_worker_can_list_but_not_enter_is_503(void **state) {
    (void)state;
    if (geteuid() != 0) {
        skip(); /* workers only run as "nobody" when started by root */
    }
    assert_int_equal(health_status("/listonly/healthcheck"), 503);
    assert_true(dss_error_log_count(&nginx, "listonly\" is unhealthy: "
                                            "cannot enter the document root: "
                                            "Permission denied") > 0);
}

/* A cache between DSS and the instance must never replay a 200 after the
 * storage failed: the health answer is not to be stored. */
static void test_H3_health_answer_is_not_cacheable(void **state) {
    (void)state;
    dss_response r = dss_get(&nginx, "/dss/bill/healthcheck");
    assert_healthy_answer(&r);
    assert_non_null(dss_header(&r, "Cache-Control"));
    assert_string_equal(dss_header(&r, "Cache-Control"), "no-store");
    dss_response_free(&r);

    dss_request_options head = {.method = "HEAD"};
    r = dss_request(&nginx, "/dss/bill/healthcheck", &head);
    assert_healthy_answer(&r);
    assert_non_null(dss_header(&r, "Cache-Control"));
    assert_string_equal(dss_header(&r, "Cache-Control"), "no-store");
    dss_response_free(&r);
}

/* An archive that accepts connections and never answers: a probe of it
 * stays pending (until dss_bill_upstream_timeout). */
typedef struct {
    int listen_fd;
    int port;
    int fds[16];
    int accepted;
} silent_archive;

static void silent_archive_start(silent_archive *s) {
    memset(s, 0, sizeof(*s));
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(s->listen_fd >= 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&addr, len), 0);
    assert_int_equal(listen(s->listen_fd, 16), 0);
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&addr, &len),
                     0);
    s->port = ntohs(addr.sin_port);
}

/* Polls (at most 10 s) until at least n probes have connected. */
static void silent_archive_wait(silent_archive *s, int n) {
    for (int i = 0; i < 500 && s->accepted < n; i++) {
        int fd;
        while (s->accepted < 16 &&
               (fd = accept(s->listen_fd, NULL, NULL)) >= 0) {
            s->fds[s->accepted++] = fd;
        }
        if (s->accepted < n) {
            struct pollfd p = {s->listen_fd, POLLIN, 0};
            poll(&p, 1, 20);
        }
    }
    if (s->accepted < n) {
        fail_msg("%d archive probes connected, expected %d", s->accepted, n);
    }
}

static void silent_archive_stop(silent_archive *s) {
    for (int i = 0; i < s->accepted; i++) {
        close(s->fds[i]);
    }
    close(s->listen_fd);
}

/* The nginx and the archive of the test below; its teardown stops both,
 * whatever the test's outcome. */
static dss_nginx pending;
static silent_archive silent = {.listen_fd = -1};

static int pending_teardown(void **state) {
    (void)state;
    if (pending.prefix[0]) {
        dss_nginx_cleanup(&pending);
    }
    if (silent.listen_fd >= 0) {
        silent_archive_stop(&silent);
        silent.listen_fd = -1;
    }
    return 0;
}

/* A new worker (at start, and after a reload) serves health before its
 * first archive probe has ended: until a probe says otherwise the archive
 * counts as up, so a reload does not make a load balancer take the
 * instance out (T6). */
static void
test_H3_new_worker_serves_while_its_archive_probe_is_pending(void **state) {
    (void)state;
    silent_archive_start(&silent);
    assert_int_equal(dss_nginx_prepare(&pending), 0);
    char config[1024];
    snprintf(config, sizeof(config),
             "server {\n"
             "    listen 127.0.0.1:@PORT@ ssl;\n"
             "    ssl_certificate @PREFIX@/cert.pem;\n"
             "    ssl_certificate_key @PREFIX@/key.pem;\n"
             "    location /pending/ {\n"
             "        dss_bill;\n"
             "        dss_bill_upstream "
             "http://127.0.0.1:%d/$dss_bill_id.pdf;\n"
             "        dss_bill_upstream_timeout 60s;\n"
             "        dss_bill_health_interval 1h;\n"
             "    }\n"
             "}\n",
             silent.port);
    assert_int_equal(dss_nginx_start(&pending, config), 0);

    /* the worker's first probe is at the archive, unanswered */
    silent_archive_wait(&silent, 1);
    dss_response r = dss_get(&pending, "/pending/healthcheck");
    assert_healthy_answer(&r);
    dss_response_free(&r);

    /* reload: the old worker goes, the new one probes, still unanswered */
    int shutting = dss_error_log_count(&pending, "gracefully shutting down");
    assert_int_equal(dss_nginx_signal(&pending, SIGHUP), 0);
    for (int i = 0;
         i < 500 && dss_error_log_count(&pending, "gracefully shutting "
                                                  "down") <= shutting;
         i++) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_true(dss_error_log_count(&pending, "gracefully shutting down") >
                shutting);
    /* the new worker answers (this request also wakes it: a probe started
     * at worker start only runs once the worker wakes up) */
    r = dss_get(&pending, "/pending/healthcheck");
    assert_healthy_answer(&r);
    dss_response_free(&r);
    silent_archive_wait(&silent, 2);
    for (int i = 0; i < 5; i++) {
        r = dss_get(&pending, "/pending/healthcheck");
        assert_healthy_answer(&r);
        dss_response_free(&r);
    }
    assert_int_equal(dss_error_log_count(&pending, "is unhealthy"), 0);
}

static void test_H3_health_follows_the_root_in_the_background(void **state) {
    (void)state;
    /* a copy: every request below reuses one of dss_path()'s buffers */
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s", dss_path(&nginx, "flapping"));
    expect_health_becomes("/flapping/healthcheck", 200);

    assert_int_equal(rmdir(root), 0);
    expect_health_becomes("/flapping/healthcheck", 503);

    assert_int_equal(mkdir(root, 0755), 0);
    expect_health_becomes("/flapping/healthcheck", 200);
    assert_true(dss_error_log_count(&nginx, "flapping\" is healthy again") > 0);
}

static void test_H4_health_answers_from_cache_not_storage(void **state) {
    (void)state;
    /* probed at worker start, next probe in an hour: a request that looked
     * at storage itself would see the root gone */
    assert_int_equal(health_status("/slowprobe/healthcheck"), 200);
    assert_int_equal(rmdir(dss_path(&nginx, "slowprobe")), 0);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(health_status("/slowprobe/healthcheck"), 200);
    }
    /* downloads, unlike health, do look at storage */
    assert_int_equal(health_status("/slowprobe/download/123456789012"), 404);
}

static void test_H4_other_methods_get_405(void **state) {
    (void)state;
    dss_request_options o = {.method = "POST"};
    dss_response r = dss_request(&nginx, "/dss/bill/healthcheck", &o);
    assert_int_equal(r.status, 405);
    assert_string_equal(dss_header(&r, "Allow"), "GET, HEAD");
    dss_response_free(&r);
}

/* Runs last: the hourly probe timer must not hold up a graceful shutdown. */
static void test_H4_probe_timer_does_not_delay_graceful_shutdown(void **state) {
    (void)state;
    assert_int_equal(dss_nginx_signal(&nginx, SIGQUIT), 0);
    assert_int_equal(dss_nginx_wait_exit(&nginx, 15000), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_H2_healthy_is_200_with_content_length_zero),
        cmocka_unit_test(test_H1_request_headers_are_informative_only),
        cmocka_unit_test(test_H1_health_needs_no_credentials_downloads_do),
        cmocka_unit_test(test_H3_missing_root_is_503),
        cmocka_unit_test(test_H3_root_the_worker_cannot_enter_is_503),
        cmocka_unit_test(test_H3_root_the_worker_can_list_but_not_enter_is_503),
        cmocka_unit_test(test_H3_health_answer_is_not_cacheable),
        cmocka_unit_test_teardown(
            test_H3_new_worker_serves_while_its_archive_probe_is_pending,
            pending_teardown),
        cmocka_unit_test(test_H3_health_follows_the_root_in_the_background),
        cmocka_unit_test(test_H4_health_answers_from_cache_not_storage),
        cmocka_unit_test(test_H4_other_methods_get_405),
        cmocka_unit_test(test_H4_probe_timer_does_not_delay_graceful_shutdown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

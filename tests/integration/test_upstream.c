/* Integration tests of the archive source (dss_bill_upstream): a stock nginx
 * as the archive, an in-process fault-injecting origin for what nginx cannot
 * do, and the module's nginx in front, driven with libcurl. */

#define _GNU_SOURCE /* asprintf */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fault_origin.h"
#include "harness.h"

static dss_nginx archive; /* stock nginx serving files */
static dss_nginx nginx;   /* the module */
static fault_origin origin;

/* a listener whose accept queue is full: a connect to it never completes */
#define BLACKHOLE_FILLERS 4
static int blackhole = -1;
static int blackhole_port;
static int blackhole_fillers[BLACKHOLE_FILLERS];

static const char *const archive_config =
    "log_format conn '$connection $connection_requests $status $uri';\n"
    "server {\n"
    "    listen 127.0.0.1:@PORT@;\n"
    "    listen 127.0.0.1:@PORT2@ ssl;\n"
    "    ssl_certificate @PREFIX@/cert.pem;\n"
    "    ssl_certificate_key @PREFIX@/key.pem;\n"
    "    access_log @PREFIX@/logs/archive.log conn;\n"
    "    keepalive_requests 10000;\n"
    "    root @PREFIX@/bills;\n"
    "    location / { }\n"
    "    location /private/ {\n"
    "        auth_basic \"archive\";\n"
    "        auth_basic_user_file @PREFIX@/htpasswd;\n"
    "        if ($http_x_api_key != \"k123\") { return 403; }\n"
    "    }\n"
    "    location /gone/ { return 410; }\n"
    "    ssl_verify_client optional;\n"
    "    ssl_client_certificate @PREFIX@/client-ca.pem;\n"
    "    location /mtls/ {\n"
    "        if ($ssl_client_verify != SUCCESS) { return 403; }\n"
    "    }\n"
    "}\n";

/* The module's configuration; %1$s archive prefix, %2$d archive http port,
 * %3$d archive https port, %4$d fault origin port. */
static const char *const module_config =
    "dss_bill_upstream_temp_path @PREFIX@/temp;\n"
    "dss_bill_upstream_memory 1m;\n"
    "server {\n"
    "    listen 127.0.0.1:@PORT@ ssl;\n"
    "    ssl_certificate @PREFIX@/cert.pem;\n"
    "    ssl_certificate_key @PREFIX@/key.pem;\n"
    "    gzip on; gzip_types *; gzip_min_length 0;\n"
    "    location /arch/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%2$d/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_keepalive on;\n"
    "        dss_bill_health_interval 100ms;\n"
    "    }\n"
    "    location /spill/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%2$d/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_buffer_size 1k;\n"
    "    }\n"
    "    location /arch-1m/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%2$d/$dss_bill_id.pdf;\n"
    "        dss_bill_max_size 1m;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /arch-8m/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%2$d/$dss_bill_id.pdf;\n"
    "        dss_bill_max_size 8m;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /fallback/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%2$d/$dss_bill_id.pdf;\n"
    "    }\n"
    "    location /private/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream "
    "http://127.0.0.1:%2$d/private/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_basic_auth dss:secret;\n"
    "        dss_bill_upstream_header X-Api-Key k123;\n"
    "    }\n"
    "    location /noauth/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream "
    "http://127.0.0.1:%2$d/private/$dss_bill_id.pdf;\n"
    "    }\n"
    "    location /gone/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%2$d/gone/$dss_bill_id;\n"
    "    }\n"
    "    location /tls/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream_connect_timeout 10s;\n"
    "        dss_bill_upstream_timeout 15s;\n"
    "        dss_bill_upstream https://127.0.0.1:%3$d/$dss_bill_id.pdf;\n"
    "    }\n"
    "    location /mtls/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream_connect_timeout 10s;\n"
    "        dss_bill_upstream_timeout 15s;\n"
    "        dss_bill_upstream https://127.0.0.1:%3$d/mtls/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_ssl_trusted_certificate %1$s/cert.pem;\n"
    "        dss_bill_upstream_ssl_certificate @PREFIX@/cert.pem;\n"
    "        dss_bill_upstream_ssl_certificate_key @PREFIX@/client-key.pem;\n"
    "    }\n"
    "    location /tls-trusted/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream_connect_timeout 10s;\n"
    "        dss_bill_upstream_timeout 15s;\n"
    "        dss_bill_upstream https://127.0.0.1:%3$d/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_ssl_trusted_certificate %1$s/cert.pem;\n"
    "    }\n"
    "    location /fault/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%4$d/$dss_bill_id;\n"
    "        dss_bill_upstream_connect_timeout 500ms;\n"
    "        dss_bill_upstream_timeout 1500ms;\n"
    "        dss_bill_id_chars A-Za-z0-9_-;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /gated/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%4$d/$dss_bill_id;\n"
    "        dss_bill_upstream_timeout 30s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /limited/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%4$d/$dss_bill_id;\n"
    "        dss_bill_max_size 1m;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /follow/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%4$d/$dss_bill_id;\n"
    "        dss_bill_upstream_redirects 2;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /blackhole/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%5$d/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_connect_timeout 300ms;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /down/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:1/$dss_bill_id.pdf;\n"
    "        dss_bill_health_interval 100ms;\n"
    "    }\n"
    "}\n";

static void write_archive_bill(const char *rel, const char *id, size_t size) {
    dss_write_bill(dss_path(&archive, rel), id, size);
}

/* Listens with a backlog of 0 and fills the queue with connections nobody
 * accepts: further SYNs are dropped, so a connect hangs until its timeout. */
static int blackhole_start(void) {
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    blackhole = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (blackhole < 0 || bind(blackhole, (struct sockaddr *)&sa, len) != 0 ||
        listen(blackhole, 0) != 0 ||
        getsockname(blackhole, (struct sockaddr *)&sa, &len) != 0) {
        return -1;
    }
    blackhole_port = ntohs(sa.sin_port);
    for (int i = 0; i < BLACKHOLE_FILLERS; i++) {
        blackhole_fillers[i] =
            socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        (void)connect(blackhole_fillers[i], (struct sockaddr *)&sa, len);
    }
    return 0;
}

static void blackhole_stop(void) {
    for (int i = 0; i < BLACKHOLE_FILLERS; i++) {
        if (blackhole_fillers[i] >= 0) {
            close(blackhole_fillers[i]);
        }
    }
    if (blackhole >= 0) {
        close(blackhole);
    }
}

static int group_setup(void **state) {
    (void)state;
    if (blackhole_start() != 0 || fault_origin_start(&origin) != 0 || dss_nginx_prepare(&archive) != 0 ||
        dss_nginx_prepare(&nginx) != 0) {
        return -1;
    }
    write_archive_bill("bills/100000000001.pdf", "100000000001", 0);
    write_archive_bill("bills/big.pdf", "big", 3 * 1024 * 1024);
    write_archive_bill("bills/half.pdf", "half", 600 * 1024);
    write_archive_bill("bills/over.pdf", "over", 5 * 1024 * 1024 + 1);
    mkdir(dss_path(&archive, "bills/private"), 0755);
    write_archive_bill("bills/private/100000000002.pdf", "100000000002", 0);
    mkdir(dss_path(&archive, "bills/mtls"), 0755);
    write_archive_bill("bills/mtls/100000000003.pdf", "100000000003", 0);
    /* mutual TLS: the archive trusts the module's certificate, whose key
     * only root may read (nginx reads it at start, never a worker) */
    size_t len;
    char *pem = dss_read_file(dss_path(&nginx, "cert.pem"), &len);
    dss_write_file(dss_path(&archive, "client-ca.pem"), pem, len);
    free(pem);
    pem = dss_read_file(dss_path(&nginx, "key.pem"), &len);
    dss_write_file(dss_path(&nginx, "client-key.pem"), pem, len);
    free(pem);
    chmod(dss_path(&nginx, "client-key.pem"), 0600);
    /* in the module's root only, and in the archive only */
    dss_write_bill(dss_path(&nginx, "bills/rootonly.pdf"), "rootonly", 0);
    write_archive_bill("bills/archiveonly.pdf", "archiveonly", 0);

    if (dss_nginx_start(&archive, archive_config) != 0) {
        return -1;
    }
    char *config = NULL;
    if (asprintf(&config, module_config, archive.prefix, archive.port,
                 archive.port2, origin.port, blackhole_port) < 0) {
        return -1;
    }
    int rc = dss_nginx_start(&nginx, config);
    free(config);
    return rc;
}

static int group_teardown(void **state) {
    (void)state;
    dss_nginx_cleanup(&nginx);
    dss_nginx_cleanup(&archive);
    fault_origin_stop(&origin);
    blackhole_stop();
    return 0;
}

static void assert_bill_equals_file(dss_response *r, const char *path) {
    size_t len;
    char *expected = dss_read_file(path, &len);
    assert_non_null(expected);
    char length[32];
    snprintf(length, sizeof(length), "%zu", len);

    assert_int_equal(r->curl_code, CURLE_OK);
    assert_int_equal(r->status, 200);
    assert_string_equal(dss_header(r, "Content-Type"), "application/pdf");
    assert_non_null(dss_header(r, "Content-Length"));
    assert_string_equal(dss_header(r, "Content-Length"), length);
    assert_null(dss_header(r, "Transfer-Encoding"));
    assert_null(dss_header(r, "Content-Encoding"));
    assert_int_equal(r->body_len, len);
    assert_memory_equal(r->body, expected, len);
    free(expected);
}

static void assert_fault_pdf(dss_response *r) {
    assert_int_equal(r->curl_code, CURLE_OK);
    assert_int_equal(r->status, 200);
    assert_string_equal(dss_header(r, "Content-Length"), "2000");
    assert_null(dss_header(r, "Transfer-Encoding"));
    assert_int_equal(r->body_len, FAULT_ORIGIN_PDF_SIZE);
    assert_memory_equal(r->body, fault_origin_pdf(), FAULT_ORIGIN_PDF_SIZE);
}

/* GET target, waiting longer than the TLS locations' archive timeouts
 * (connect 10 s, fetch 15 s, for a worker under ASan on a busy machine):
 * the module's answer decides, not the client's default 10 s. */
static dss_response get_patiently(const char *target) {
    dss_request_options o = {.timeout_ms = 30000};
    return dss_request(&nginx, target, &o);
}

static long status_of(const char *target) {
    dss_response r = get_patiently(target);
    assert_int_equal(r.curl_code, CURLE_OK);
    dss_response_free(&r);
    return r.status;
}

/* Requests target, expects status, and a new error-log line with logged. */
static void expect_failure(const char *target, long status,
                           const char *logged) {
    int before = dss_error_log_count(&nginx, logged);
    long got = status_of(target);
    if (got != status) {
        fail_msg("%s: status %ld, expected %ld", target, got, status);
    }
    for (int i = 0; i < 250; i++) {
        if (dss_error_log_count(&nginx, logged) > before) {
            return;
        }
        dss_poll_pause();
    }
    fail_msg("%s: no new error-log line with \"%s\"", target, logged);
}

/* ---- D3: the complete bill, whatever the archive's framing ----------------
 */

static void test_D3_archive_bill_is_complete_with_exact_length(void **state) {
    (void)state;
    dss_response r = dss_get(&nginx, "/arch/download/100000000001");
    assert_bill_equals_file(&r, dss_path(&archive, "bills/100000000001.pdf"));
    assert_string_equal(dss_header(&r, "Cache-Control"), "private, no-store");
    dss_response_free(&r);
}

static void test_D3_large_bill_spills_to_a_temp_file(void **state) {
    (void)state;
    /* dss_bill_upstream_memory 1m: 600 KB grows in memory, 3 MB grows to
     * the budget, then moves to a temporary file; the kept file and buffer
     * are reused by the next bills */
    static const char *const targets[] = {
        "/arch/download/half", "/arch/download/big", "/spill/download/big",
        "/spill/download/half", "/arch/download/big"};
    static const char *const files[] = {"bills/half.pdf", "bills/big.pdf",
                                        "bills/big.pdf", "bills/half.pdf",
                                        "bills/big.pdf"};
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        dss_response r = dss_get(&nginx, targets[i]);
        assert_bill_equals_file(&r, dss_path(&archive, files[i]));
        dss_response_free(&r);
    }
}

static void
test_D3_chunked_and_close_delimited_bodies_get_a_length(void **state) {
    (void)state;
    static const char *const targets[] = {"/fault/download/chunked-1",
                                          "/fault/download/close-1"};
    for (size_t i = 0; i < 2; i++) {
        dss_response r = dss_get(&nginx, targets[i]);
        assert_fault_pdf(&r);
        dss_response_free(&r);
    }
}

static void test_D3_head_through_the_archive(void **state) {
    (void)state;
    dss_request_options head = {.method = "HEAD"};
    dss_response r = dss_request(&nginx, "/arch/download/100000000001", &head);
    assert_int_equal(r.status, 200);
    assert_non_null(dss_header(&r, "Content-Length"));
    assert_int_equal(r.body_len, 0);
    dss_response_free(&r);
}

/* ---- D4: the size limit, enforced while the body arrives -------------------
 */

static void test_D4_oversize_archive_bill_is_500(void **state) {
    (void)state;
    expect_failure("/arch/download/over", 500,
                   "bill exceeds dss_bill_max_size");
    expect_failure("/fault/download/huge-announced-1", 500,
                   "bill exceeds dss_bill_max_size");
}

/* D4: the limit is inclusive on the archive path too: a bill of exactly
 * dss_bill_max_size bytes (5 MB by default) is served, grown in memory
 * within the budget and spilled (/arch/), or spilled early (/spill/); one
 * byte more is not. */
static void test_D4_archive_bill_of_exactly_the_limit_is_200(void **state) {
    (void)state;
    write_archive_bill("bills/exactly5mb.pdf", "exactly5mb", 5 * 1024 * 1024);
    static const char *const targets[] = {"/arch/download/exactly5mb",
                                          "/spill/download/exactly5mb"};
    for (size_t i = 0; i < 2; i++) {
        dss_response r = dss_get(&nginx, targets[i]);
        if (r.status != 200) {
            fail_msg("%s: status %ld", targets[i], r.status);
        }
        assert_bill_equals_file(&r, dss_path(&archive, "bills/exactly5mb.pdf"));
        assert_string_equal(dss_header(&r, "Content-Length"), "5242880");
        dss_response_free(&r);
    }
    expect_failure("/spill/download/over", 500,
                   "bill exceeds dss_bill_max_size");
}

/* D4: dss_bill_max_size applies to the archive, downwards (1m: 600 KB
 * served, 3 MB refused) and upwards (8m: 6 MB served). */
static void test_D4_archive_limit_is_configurable_down_and_up(void **state) {
    (void)state;
    dss_response r = dss_get(&nginx, "/arch-1m/download/half");
    assert_bill_equals_file(&r, dss_path(&archive, "bills/half.pdf"));
    dss_response_free(&r);
    expect_failure("/arch-1m/download/big", 500,
                   "bill exceeds dss_bill_max_size");

    write_archive_bill("bills/six-mb.pdf", "six-mb", 6 * 1024 * 1024);
    r = dss_get(&nginx, "/arch-8m/download/six-mb");
    assert_bill_equals_file(&r, dss_path(&archive, "bills/six-mb.pdf"));
    dss_response_free(&r);
    expect_failure("/arch/download/six-mb", 500,
                   "bill exceeds dss_bill_max_size");
}

static void test_D4_unannounced_oversize_is_cut_off_early(void **state) {
    (void)state;
    /* chunked, no length: only counting the bytes can stop it (1m limit) */
    expect_failure("/limited/download/huge-chunked-1", 500,
                   "bill exceeds dss_bill_max_size (more than");
    long long sent = 0;
    for (int i = 0;
         i < 250 && (sent = fault_origin_huge_bytes_sent(&origin)) == 0; i++) {
        dss_poll_pause();
    }
    /* the origin would send 64 MB to a fetch that read to the end */
    if (sent >= 32LL * 1024 * 1024) {
        fail_msg("the fetch read %lld bytes before stopping", sent);
    }
}

/* ---- D5: the archive's "no such bill" ---------------------------------------
 */

static void test_D5_archive_404_and_410_are_404(void **state) {
    (void)state;
    expect_failure("/arch/download/999999999999", 404,
                   "archive has no such bill (archive answered 404)");
    expect_failure("/gone/download/1", 404,
                   "archive has no such bill (archive answered 410)");
}

static void test_D5_root_first_then_archive(void **state) {
    (void)state;
    dss_response r = dss_get(&nginx, "/fallback/download/rootonly");
    assert_bill_equals_file(&r, dss_path(&nginx, "bills/rootonly.pdf"));
    dss_response_free(&r);

    r = dss_get(&nginx, "/fallback/download/archiveonly");
    assert_bill_equals_file(&r, dss_path(&archive, "bills/archiveonly.pdf"));
    dss_response_free(&r);

    /* the archive logged the bill it served (nginx writes its access log
     * after the response, so poll), never the one the root had */
    int logged = 0;
    for (int i = 0; i < 250 && !logged; i++) {
        size_t len;
        char *log = dss_read_file(dss_path(&archive, "logs/archive.log"), &len);
        assert_non_null(log);
        logged = strstr(log, "/archiveonly.pdf") != NULL;
        assert_null(strstr(log, "/rootonly.pdf"));
        free(log);
        if (!logged) {
            dss_poll_pause();
        }
    }
    assert_true(logged);

    expect_failure("/fallback/download/nowhere", 404,
                   "archive has no such bill");
}

/* ---- D6: every other archive failure is a clean 500 ------------------------
 */

static void test_D6_archive_error_statuses_are_500(void **state) {
    (void)state;
    static const char *const statuses[] = {"401", "403", "500", "503"};
    for (size_t i = 0; i < 4; i++) {
        char target[64], logged[64];
        snprintf(target, sizeof(target), "/fault/download/status-%s-1",
                 statuses[i]);
        snprintf(logged, sizeof(logged), "(archive answered %s)", statuses[i]);
        expect_failure(target, 500, logged);
    }
}

static void test_D6_archive_body_not_a_pdf_or_empty_is_500(void **state) {
    (void)state;
    expect_failure("/fault/download/html-1", 500, "bill is not a PDF");
    expect_failure("/fault/download/empty-1", 500, "bill is empty");
}

static void test_D6_archive_timeouts_are_500_within_the_timeout(void **state) {
    (void)state;
    /* dss_bill_upstream_timeout 1500ms; the origin stalls for 3 s */
    expect_failure("/fault/download/slow-first-byte-1", 500,
                   "archive timed out");
    expect_failure("/fault/download/slow-body-1", 500, "archive timed out");
}

static void test_D6_archive_reset_and_short_body_are_500(void **state) {
    (void)state;
    expect_failure("/fault/download/reset-1", 500,
                   "archive connection broke before the body was complete");
    expect_failure("/fault/download/short-1", 500,
                   "archive connection broke before the body was complete");
}

static void test_D6_archive_unreachable_is_500(void **state) {
    (void)state;
    expect_failure("/down/download/100000000001", 500,
                   "cannot connect to the archive");
}

/* libcurl 7.88 closes a socket whose connect timed out with close(), not
 * through the module's close callback: the module must forget it, not
 * watch a closed descriptor (epoll_ctl() EBADF alerts), nor take the number
 * for its old socket when it comes back as a new one. Fetches that time out
 * connecting alternate with fetches that reuse the descriptor numbers. */
static void test_D6_connect_timeouts_leave_no_stale_socket(void **state) {
    (void)state;
    int alerts = dss_error_log_count(&nginx, "[alert]");
    for (int i = 0; i < 4; i++) {
        double start = dss_now_ms();
        expect_failure("/blackhole/download/100000000001", 500,
                       "archive");
        assert_true(dss_now_ms() - start < 5000);
        dss_response r = dss_get(&nginx, "/spill/download/big");
        assert_bill_equals_file(&r, dss_path(&archive, "bills/big.pdf"));
        dss_response_free(&r);
    }
    assert_int_equal(dss_error_log_count(&nginx, "[alert]"), alerts);
}

static void test_D6_archive_tls_is_verified(void **state) {
    (void)state;
    /* a self-signed archive certificate is refused by default... */
    expect_failure("/tls/download/100000000001", 500,
                   "TLS with the archive failed");
    /* ...and accepted with dss_bill_upstream_ssl_trusted_certificate */
    dss_response r = get_patiently("/tls-trusted/download/100000000001");
    assert_bill_equals_file(&r, dss_path(&archive, "bills/100000000001.pdf"));
    dss_response_free(&r);
}

/* Mutual TLS with the archive, the client key readable by root only: nginx
 * read the files at start, and libcurl gets them from memory. */
static void test_D6_archive_mutual_tls_without_worker_file_access(
    void **state) {
    (void)state;
    dss_response r = get_patiently("/mtls/download/100000000003");
    assert_bill_equals_file(&r, dss_path(&archive,
                                         "bills/mtls/100000000003.pdf"));
    dss_response_free(&r);

    /* the archive does refuse a client without the certificate */
    dss_request_options plain = {.plain_http = 1};
    r = dss_request(&archive, "/mtls/100000000003.pdf", &plain);
    assert_int_equal(r.status, 403);
    dss_response_free(&r);
}

static void test_D6_redirects_only_when_configured(void **state) {
    (void)state;
    expect_failure("/fault/download/redirect-1", 500,
                   "redirect that is not followed");
    dss_response r = dss_get(&nginx, "/follow/download/redirect-1");
    assert_fault_pdf(&r);
    dss_response_free(&r);
}

static void test_D6_archive_credentials_and_headers_are_sent(void **state) {
    (void)state;
    dss_response r = dss_get(&nginx, "/private/download/100000000002");
    assert_bill_equals_file(
        &r, dss_path(&archive, "bills/private/100000000002.pdf"));
    dss_response_free(&r);

    expect_failure("/noauth/download/100000000002", 500,
                   "(archive answered 403)"); /* no X-Api-Key */
    /* never the credentials in the log */
    assert_int_equal(dss_error_log_count(&nginx, "secret"), 0);
}

/* ---- D8: a client that goes away cancels its fetch -------------------------
 */

static long long elapsed_ms(const struct timespec *since) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000LL +
           (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* An nginx of its own for the test below: no health probe or other fetch
 * runs there, so nothing but the cancel can end its archive connection
 * early. Its teardown stops it whatever the outcome. */
static dss_nginx lone;

static int lone_teardown(void **state) {
    (void)state;
    if (lone.prefix[0]) {
        dss_nginx_cleanup(&lone);
    }
    return 0;
}

/* The client leaves while the archive stalls (it would stall until the
 * fetch's own timeout, 30 s): the module stops the fetch at once, so the
 * archive sees its connection close within a few seconds. */
static void test_D8_client_disconnect_cancels_the_fetch(void **state) {
    (void)state;
    assert_int_equal(dss_nginx_prepare(&lone), 0);
    char *config = NULL;
    assert_true(asprintf(&config,
                         "server {\n"
                         "    listen 127.0.0.1:@PORT@ ssl;\n"
                         "    ssl_certificate @PREFIX@/cert.pem;\n"
                         "    ssl_certificate_key @PREFIX@/key.pem;\n"
                         "    location /stalled/ {\n"
                         "        dss_bill;\n"
                         "        dss_bill_upstream "
                         "http://127.0.0.1:%d/$dss_bill_id;\n"
                         "        dss_bill_upstream_timeout 30s;\n"
                         "        dss_bill_upstream_health_url off;\n"
                         "    }\n"
                         "}\n",
                         origin.port) > 0);
    int started = dss_nginx_start(&lone, config);
    free(config);
    assert_int_equal(started, 0);
    int before = fault_origin_open_connections(&origin);

    char url[256];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/stalled/download/stall-c",
             lone.port);
    CURLM *multi = curl_multi_init();
    CURL *easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_CAINFO, dss_path(&lone, "cert.pem"));
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 20000L);
    curl_multi_add_handle(multi, easy);

    /* drive the request until its fetch is at the origin (at most 10 s) */
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int running = 1;
    while (running && fault_origin_open_connections(&origin) <= before &&
           elapsed_ms(&start) < 10000) {
        curl_multi_perform(multi, &running);
        curl_multi_poll(multi, NULL, 0, 10, NULL);
    }
    int reached = fault_origin_open_connections(&origin) > before;

    /* the client goes away */
    struct timespec gone;
    clock_gettime(CLOCK_MONOTONIC, &gone);
    curl_multi_remove_handle(multi, easy);
    curl_easy_cleanup(easy);
    curl_multi_cleanup(multi);
    if (!reached) {
        fail_msg("the fetch never reached the origin");
    }

    /* the origin sees the archive connection close promptly */
    while (fault_origin_open_connections(&origin) > before &&
           elapsed_ms(&gone) < 10000) {
        dss_poll_pause();
    }
    long long ms = elapsed_ms(&gone);
    print_message("the origin saw the fetch end %lld ms after its client\n",
                  ms);
    if (fault_origin_open_connections(&origin) > before || ms > 5000) {
        fail_msg("the fetch outlived its client by %lld ms", ms);
    }
    const char *cancelled = "fetch of bill id \"stall-c\" cancelled";
    for (int i = 0; i < 250 && dss_error_log_count(&lone, cancelled) == 0;
         i++) {
        dss_poll_pause();
    }
    assert_int_equal(dss_error_log_count(&lone, cancelled), 1);
    assert_int_equal(dss_error_log_count(&lone, "exited on signal"), 0);
}

/* ---- H3: the archive's health ----------------------------------------------
 */

static void test_H3_health_follows_the_archive(void **state) {
    (void)state;
    long got = 0;
    for (int i = 0; i < 250 && (got = status_of("/down/healthcheck")) != 503;
         i++) {
        dss_poll_pause();
    }
    assert_int_equal(got, 503);
    assert_int_equal(status_of("/arch/healthcheck"), 200);
    assert_true(dss_error_log_count(&nginx, "archive \"http://127.0.0.1:1/\" "
                                            "is unhealthy") > 0);
}

/* ---- T5: keep-alive and concurrency
 * ------------------------------------------ */

/* The highest $connection_requests the archive logged for uri; polled: the
 * access log is written after the response. */
static long archive_connection_requests(const char *uri, int expect_lines) {
    long most = 0;
    for (int i = 0; i < 250; i++) {
        size_t len;
        int lines = 0;
        char *log = dss_read_file(dss_path(&archive, "logs/archive.log"), &len);
        assert_non_null(log);
        most = 0;
        for (char *line = log; line && *line;) {
            long conn, requests, status;
            char logged[256];
            if (sscanf(line, "%ld %ld %ld %255s", &conn, &requests, &status,
                       logged) == 4 &&
                strcmp(logged, uri) == 0) {
                lines++;
                most = requests > most ? requests : most;
            }
            line = strchr(line, '\n');
            line = line ? line + 1 : NULL;
        }
        free(log);
        if (lines >= expect_lines) {
            return most;
        }
        dss_poll_pause();
    }
    fail_msg("the archive did not log %d requests for %s", expect_lines, uri);
    return 0;
}

/* dss_bill_upstream_keepalive on: one connection carries several fetches */
static void test_T5_archive_connections_are_reused(void **state) {
    (void)state;
    for (int i = 0; i < 5; i++) {
        dss_response r = dss_get(&nginx, "/arch/download/100000000001");
        assert_int_equal(r.status, 200);
        dss_response_free(&r);
    }
    assert_true(archive_connection_requests("/100000000001.pdf", 5) >= 3);
}

/* D9: by default (like proxy_pass) every fetch has its own connection,
 * even where other locations keep connections to the same archive */
static void test_D9_archive_connections_are_not_reused_by_default(
    void **state) {
    (void)state;
    for (int i = 0; i < 5; i++) {
        dss_response r = dss_get(&nginx, "/arch/download/100000000001");
        assert_int_equal(r.status, 200);
        dss_response_free(&r);
        r = dss_get(&nginx, "/fallback/download/archiveonly");
        assert_int_equal(r.status, 200);
        dss_response_free(&r);
    }
    assert_int_equal(archive_connection_requests("/archiveonly.pdf", 5), 1);
}

static void
test_T5_200_slow_fetches_leave_health_and_root_responsive(void **state) {
    (void)state;
    enum { N = 200 };
    CURLM *multi = curl_multi_init();
    CURL *slow[N];
    FILE *sinks[N];
    char *bodies[N];
    size_t sizes[N];
    char url[256];

    for (int i = 0; i < N; i++) {
        snprintf(url, sizeof(url),
                 "https://127.0.0.1:%d/gated/download/gated-%d", nginx.port, i);
        sinks[i] = open_memstream(&bodies[i], &sizes[i]);
        slow[i] = curl_easy_init();
        curl_easy_setopt(slow[i], CURLOPT_URL, url);
        curl_easy_setopt(slow[i], CURLOPT_CAINFO, dss_path(&nginx, "cert.pem"));
        curl_easy_setopt(slow[i], CURLOPT_WRITEDATA, sinks[i]);
        curl_easy_setopt(slow[i], CURLOPT_TIMEOUT_MS, 20000L);
        curl_multi_add_handle(multi, slow[i]);
    }

    /* drive the slow fetches until all are in flight at the origin */
    int running = 1;
    for (int i = 0;
         i < 1000 && running && fault_origin_open_connections(&origin) < N;
         i++) {
        curl_multi_perform(multi, &running);
        curl_multi_poll(multi, NULL, 0, 10, NULL);
    }
    if (fault_origin_open_connections(&origin) < N) {
        fail_msg("only %d of %d fetches reached the origin",
                 fault_origin_open_connections(&origin), N);
    }

    /* meanwhile health and a root download answer, while the slow ones are
     * all still parked at the origin */
    assert_int_equal(status_of("/arch/healthcheck"), 200);
    assert_int_equal(status_of("/fallback/download/rootonly"), 200);
    assert_true(fault_origin_open_connections(&origin) >= N);
    fault_origin_set_gate(&origin, 1);

    while (running) {
        curl_multi_perform(multi, &running);
        if (running) {
            curl_multi_poll(multi, NULL, 0, 1000, NULL);
        }
    }
    for (int i = 0; i < N; i++) {
        long status = 0;
        curl_easy_getinfo(slow[i], CURLINFO_RESPONSE_CODE, &status);
        fclose(sinks[i]);
        if (status != 200 || sizes[i] != FAULT_ORIGIN_PDF_SIZE ||
            memcmp(bodies[i], fault_origin_pdf(), FAULT_ORIGIN_PDF_SIZE)) {
            fail_msg("slow fetch %d: status %ld, %zu bytes", i, status,
                     sizes[i]);
        }
        free(bodies[i]);
        curl_multi_remove_handle(multi, slow[i]);
        curl_easy_cleanup(slow[i]);
    }
    curl_multi_cleanup(multi);
}

/* A reload: the old worker finishes the fetch it has in flight, then exits
 * cleanly (its libcurl sockets handed back: no "open socket left" alert). */
static void test_T6_reload_finishes_fetches_in_flight(void **state) {
    (void)state;
    fault_origin_set_gate(&origin, 0);
    int parked = fault_origin_open_connections(&origin);
    int exited = dss_error_log_count(&nginx, "exit\n");

    char url[256];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/gated/download/gated-r",
             nginx.port);
    char *body = NULL;
    size_t size = 0;
    FILE *sink = open_memstream(&body, &size);
    CURLM *multi = curl_multi_init();
    CURL *easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_CAINFO, dss_path(&nginx, "cert.pem"));
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 20000L);
    curl_multi_add_handle(multi, easy);

    int running = 1;
    for (int i = 0;
         i < 1000 && fault_origin_open_connections(&origin) <= parked; i++) {
        curl_multi_perform(multi, &running);
        curl_multi_poll(multi, NULL, 0, 10, NULL);
    }
    assert_true(fault_origin_open_connections(&origin) > parked);

    /* reload while the fetch waits at the origin */
    int shutting = dss_error_log_count(&nginx, "gracefully shutting down");
    assert_int_equal(dss_nginx_signal(&nginx, SIGHUP), 0);
    for (int i = 0;
         i < 500 &&
         dss_error_log_count(&nginx, "gracefully shutting down") <= shutting;
         i++) {
        curl_multi_perform(multi, &running);
        curl_multi_poll(multi, NULL, 0, 10, NULL);
    }
    assert_true(dss_error_log_count(&nginx, "gracefully shutting down") >
                shutting);

    fault_origin_set_gate(&origin, 1);
    while (running) {
        curl_multi_perform(multi, &running);
        if (running) {
            curl_multi_poll(multi, NULL, 0, 100, NULL);
        }
    }
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    fclose(sink);
    assert_int_equal(status, 200);
    assert_int_equal(size, FAULT_ORIGIN_PDF_SIZE);
    assert_memory_equal(body, fault_origin_pdf(), FAULT_ORIGIN_PDF_SIZE);
    free(body);
    curl_multi_remove_handle(multi, easy);
    curl_easy_cleanup(easy);
    curl_multi_cleanup(multi);

    /* the old worker exits once its request is done */
    for (int i = 0; i < 500 && dss_error_log_count(&nginx, "exit\n") <= exited;
         i++) {
        dss_poll_pause();
    }
    assert_true(dss_error_log_count(&nginx, "exit\n") > exited);

    /* and the new worker serves */
    dss_response r = dss_get(&nginx, "/arch/download/100000000001");
    assert_int_equal(r.status, 200);
    dss_response_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_D3_archive_bill_is_complete_with_exact_length),
        cmocka_unit_test(test_D3_large_bill_spills_to_a_temp_file),
        cmocka_unit_test(
            test_D3_chunked_and_close_delimited_bodies_get_a_length),
        cmocka_unit_test(test_D3_head_through_the_archive),
        cmocka_unit_test(test_D4_oversize_archive_bill_is_500),
        cmocka_unit_test(test_D4_archive_bill_of_exactly_the_limit_is_200),
        cmocka_unit_test(test_D4_archive_limit_is_configurable_down_and_up),
        cmocka_unit_test(test_D4_unannounced_oversize_is_cut_off_early),
        cmocka_unit_test(test_D5_archive_404_and_410_are_404),
        cmocka_unit_test(test_D5_root_first_then_archive),
        cmocka_unit_test(test_D6_archive_error_statuses_are_500),
        cmocka_unit_test(test_D6_archive_body_not_a_pdf_or_empty_is_500),
        cmocka_unit_test(test_D6_archive_timeouts_are_500_within_the_timeout),
        cmocka_unit_test(test_D6_archive_reset_and_short_body_are_500),
        cmocka_unit_test(test_D6_archive_unreachable_is_500),
        cmocka_unit_test(test_D6_connect_timeouts_leave_no_stale_socket),
        cmocka_unit_test(test_D6_archive_tls_is_verified),
        cmocka_unit_test(test_D6_archive_mutual_tls_without_worker_file_access),
        cmocka_unit_test(test_D6_redirects_only_when_configured),
        cmocka_unit_test(test_D6_archive_credentials_and_headers_are_sent),
        cmocka_unit_test_teardown(test_D8_client_disconnect_cancels_the_fetch,
                                  lone_teardown),
        cmocka_unit_test(test_H3_health_follows_the_archive),
        cmocka_unit_test(test_T5_archive_connections_are_reused),
        cmocka_unit_test(test_D9_archive_connections_are_not_reused_by_default),
        cmocka_unit_test(
            test_T5_200_slow_fetches_leave_health_and_root_responsive),
        cmocka_unit_test(test_T6_reload_finishes_fetches_in_flight),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/* Unit tests of the C++ core, through its C boundary (dss_bill.h). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "dss_bill.h"

static int valid(const dss_bill_id_rule *rule, const char *id) {
    return dss_bill_id_is_valid(rule, id, strlen(id));
}

/* ---- D2, D5: the bill-id rule ------------------------------------------- */

static void test_D2_default_rule_accepts_billing_ids(void **state) {
    (void)state;
    dss_bill_id_rule rule;
    dss_bill_id_rule_default(&rule);

    assert_true(valid(&rule, "123456789012"));
    assert_true(valid(&rule, "a"));
    assert_true(valid(&rule, "ABC-def_09"));
    char longest[65];
    memset(longest, '7', 64);
    longest[64] = '\0';
    assert_true(valid(&rule, longest));
}

static void test_D5_default_rule_refuses_hostile_ids(void **state) {
    (void)state;
    dss_bill_id_rule rule;
    dss_bill_id_rule_default(&rule);

    static const char *const hostile[] = {
        "",         "..",     ".",   "../etc/passwd", "a/b",  "a\\b", "%2e%2e",
        "%2F",      "12.pdf", "a b", "a\tb",          "a\nb", "a?b",  "a#b",
        "\xc3\xa9", "a;rm",   "a*",  "$(id)",         "a\"b", "'",
    };
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        if (valid(&rule, hostile[i])) {
            fail_msg("hostile id \"%s\" was accepted", hostile[i]);
        }
    }

    /* an embedded NUL must not cut the check short */
    assert_false(dss_bill_id_is_valid(&rule, "12\0../x", 7));

    char too_long[66];
    memset(too_long, '1', 65);
    too_long[65] = '\0';
    assert_false(valid(&rule, too_long));

    char huge[4001];
    memset(huge, 'a', 4000);
    huge[4000] = '\0';
    assert_false(valid(&rule, huge));
}

static void test_D2_custom_chars_and_length(void **state) {
    (void)state;
    char err[128];
    dss_bill_id_rule rule;
    dss_bill_id_rule_default(&rule);

    assert_int_equal(
        dss_bill_id_rule_set_chars(&rule, "0-9", 3, err, sizeof(err)), 0);
    assert_int_equal(
        dss_bill_id_rule_set_length(&rule, 12, 12, err, sizeof(err)), 0);

    assert_true(valid(&rule, "123456789012"));
    assert_false(valid(&rule, "12345678901"));
    assert_false(valid(&rule, "1234567890123"));
    assert_false(valid(&rule, "12345678901a"));
    assert_false(valid(&rule, "12345678901-"));
}

static void test_D2_literal_dash_first_or_last(void **state) {
    (void)state;
    char err[128];
    dss_bill_id_rule rule;
    dss_bill_id_rule_default(&rule);

    assert_int_equal(
        dss_bill_id_rule_set_chars(&rule, "-a", 2, err, sizeof(err)), 0);
    assert_true(valid(&rule, "a-a"));
    assert_false(valid(&rule, "b"));

    assert_int_equal(
        dss_bill_id_rule_set_chars(&rule, "x-", 2, err, sizeof(err)), 0);
    assert_true(valid(&rule, "x-x"));
    assert_false(valid(&rule, "w"));
}

static void expect_chars_refused(const char *spec, const char *reason_part) {
    char err[128];
    dss_bill_id_rule rule;
    dss_bill_id_rule_default(&rule);
    dss_bill_id_rule before = rule;

    assert_int_equal(
        dss_bill_id_rule_set_chars(&rule, spec, strlen(spec), err, sizeof(err)),
        -1);
    if (strstr(err, reason_part) == NULL) {
        fail_msg("reason for \"%s\" is \"%s\", expected \"%s\"", spec, err,
                 reason_part);
    }
    /* a refused class leaves the rule as it was */
    assert_memory_equal(&rule, &before, sizeof(rule));
}

static void
test_D5_char_classes_that_could_touch_paths_are_refused(void **state) {
    (void)state;
    expect_chars_refused("", "empty");
    expect_chars_refused("a-z.", "'.'");
    expect_chars_refused("a-z/", "'/'");
    expect_chars_refused("\\\\", "'\\'");
    expect_chars_refused("%", "'%'");
    expect_chars_refused("!-~", "'\"'"); /* the whole printable range */
    expect_chars_refused("a-z<", "'<'"); /* not literal in a URL path */
    expect_chars_refused("a-z{}", "'{'");
    expect_chars_refused("a-z\x7f", "control");
    expect_chars_refused("a-z\xc3\xa9", "non-ASCII");

    /* the URL path characters that mean nothing to a file system are fine */
    char err[128];
    dss_bill_id_rule rule;
    const char *url_safe = "A-Za-z0-9-_~!$&'()*+,;=:@";
    assert_int_equal(dss_bill_id_rule_set_chars(
                         &rule, url_safe, strlen(url_safe), err, sizeof(err)),
                     0);
    expect_chars_refused("z-a", "reversed");
    expect_chars_refused("a b", "space");
}

static void test_D2_length_bounds_are_checked(void **state) {
    (void)state;
    char err[128];
    dss_bill_id_rule rule;
    dss_bill_id_rule_default(&rule);

    assert_int_equal(
        dss_bill_id_rule_set_length(&rule, 0, 10, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "at least 1"));
    assert_int_equal(dss_bill_id_rule_set_length(&rule, 5, 4, err, sizeof(err)),
                     -1);
    assert_int_equal(dss_bill_id_rule_set_length(
                         &rule, 1, DSS_BILL_ID_LIMIT + 1, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "200"));
    /* a tiny error buffer truncates, never overflows */
    char tiny[4] = {'x', 'x', 'x', 'x'};
    assert_int_equal(dss_bill_id_rule_set_length(&rule, 0, 1, tiny, 3), -1);
    assert_int_equal(tiny[2], '\0');
    assert_int_equal(tiny[3], 'x');
}

/* ---- routing ---------------------------------------------------------------
 */

static dss_bill_route route(const char *uri, const char *prefix) {
    return dss_bill_route_parse(uri, strlen(uri), strlen(prefix));
}

static void test_routes_below_the_location(void **state) {
    (void)state;
    dss_bill_route r = route("/dss/bill/healthcheck", "/dss/bill/");
    assert_int_equal(r.kind, DSS_BILL_ROUTE_HEALTH);

    r = route("/dss/bill/healthcheck", "/dss/bill");
    assert_int_equal(r.kind, DSS_BILL_ROUTE_HEALTH);

    r = route("/dss/bill/download/123", "/dss/bill/");
    assert_int_equal(r.kind, DSS_BILL_ROUTE_DOWNLOAD);
    assert_int_equal(r.id_len, 3);
    assert_memory_equal(r.id, "123", 3);

    r = route("/x/download/a/b", "/x/");
    assert_int_equal(r.kind, DSS_BILL_ROUTE_DOWNLOAD);
    assert_int_equal(r.id_len, 3); /* "a/b": the id rule refuses it */

    r = route("/dss/bill/download/", "/dss/bill/");
    assert_int_equal(r.kind, DSS_BILL_ROUTE_DOWNLOAD);
    assert_int_equal(r.id_len, 0);
}

static size_t base(const char *location) {
    return dss_bill_route_base_len(location, strlen(location));
}

static void test_H1_route_base_of_exact_health_location(void **state) {
    (void)state;
    assert_int_equal(base("/dss/bill/"), 10);
    assert_int_equal(base("/dss/bill"), 9);
    assert_int_equal(base("/dss/bill/healthcheck"), 10);
    assert_int_equal(base("/dss/bill/download/"), 10);
    assert_int_equal(base("/dss/bill/download"), 10);
    assert_int_equal(base("/healthcheck"), 1);
    assert_int_equal(base("/myhealthcheck"), 14); /* not a whole segment */

    /* "= /dss/bill/healthcheck" answers the health route */
    const char *uri = "/dss/bill/healthcheck";
    assert_int_equal(dss_bill_route_parse(uri, strlen(uri), base(uri)).kind,
                     DSS_BILL_ROUTE_HEALTH);
}

static void test_other_paths_are_no_route(void **state) {
    (void)state;
    static const char *const others[] = {
        "/dss/bill/",
        "/dss/bill/healthcheck/",
        "/dss/bill/healthchecks",
        "/dss/bill/download",
        "/dss/bill/downloads/1",
        "/dss/bill/x/healthcheck",
        "/dss/billing/healthcheck",
    };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        dss_bill_route r = route(others[i], "/dss/bill");
        if (r.kind != DSS_BILL_ROUTE_NONE) {
            fail_msg("\"%s\" routed to %d", others[i], r.kind);
        }
    }
    /* a prefix longer than the uri cannot match */
    assert_int_equal(dss_bill_route_parse("/a", 2, 10).kind,
                     DSS_BILL_ROUTE_NONE);
}

/* ---- paths under the root
 * ---------------------------------------------------- */

static int safe(const char *rel) {
    return dss_bill_relative_path_is_safe(rel, strlen(rel));
}

static void test_D5_relative_paths(void **state) {
    (void)state;
    assert_true(safe("123.pdf"));
    assert_true(safe("12/34/123.pdf"));
    assert_true(safe("..pdf"));

    assert_false(safe(""));
    assert_false(safe("/etc/passwd"));
    assert_false(safe("../x.pdf"));
    assert_false(safe("a/../../x.pdf"));
    assert_false(safe("a/.."));
    assert_false(safe("./x.pdf"));
    assert_false(safe("a//b.pdf"));
    assert_false(safe("a/"));
    assert_false(safe("a\\..\\b"));
    assert_false(dss_bill_relative_path_is_safe("a\0/../b", 7));
}

static void test_D5_path_template_check(void **state) {
    (void)state;
    char err[128];
#define CHECK_TEMPLATE(t) dss_bill_path_template_check(t, strlen(t), err, sizeof(err))
    assert_int_equal(CHECK_TEMPLATE("$dss_bill_id.pdf"), 0);
    assert_int_equal(CHECK_TEMPLATE("$shard/$dss_bill_id.pdf"), 0);
    assert_int_equal(CHECK_TEMPLATE("2024/$dss_bill_id.pdf"), 0);
    assert_int_equal(CHECK_TEMPLATE("..$x/a.pdf"), 0); /* judged per request */
    assert_int_equal(CHECK_TEMPLATE(""), -1);
    assert_string_equal(err, "is empty");
    assert_int_equal(CHECK_TEMPLATE("bills/fixed.pdf"), -1); /* D9 */
    assert_int_equal(CHECK_TEMPLATE("/srv/$dss_bill_id.pdf"), -1);
    assert_int_equal(CHECK_TEMPLATE("../$dss_bill_id.pdf"), -1);
    assert_int_equal(CHECK_TEMPLATE("a/./$dss_bill_id.pdf"), -1);
    assert_int_equal(CHECK_TEMPLATE("a//$dss_bill_id.pdf"), -1);
    assert_int_equal(CHECK_TEMPLATE("$dss_bill_id/"), -1);
    assert_int_equal(CHECK_TEMPLATE("a\\$dss_bill_id"), -1);
#undef CHECK_TEMPLATE
}

static void test_join_path(void **state) {
    (void)state;
    char out[64];
    size_t n =
        dss_bill_join_path("/srv/bills", 10, "1.pdf", 5, out, sizeof(out));
    assert_string_equal(out, "/srv/bills/1.pdf");
    assert_int_equal(n, strlen(out));

    n = dss_bill_join_path("/srv/bills//", 12, "1.pdf", 5, out, sizeof(out));
    assert_string_equal(out, "/srv/bills/1.pdf");

    n = dss_bill_join_path("/", 1, "1.pdf", 5, out, sizeof(out));
    assert_string_equal(out, "/1.pdf");

    /* exactly enough room, then one byte short */
    assert_int_equal(dss_bill_join_path("/r", 2, "ab", 2, out, 6), 5);
    assert_int_equal(dss_bill_join_path("/r", 2, "ab", 2, out, 5), 0);
}

/* ---- D8: PDF signature
 * --------------------------------------------------------- */

static void test_D8_pdf_signature(void **state) {
    (void)state;
    const unsigned char pdf[] = "%PDF-1.7\n";
    assert_true(dss_bill_is_pdf_signature(pdf, 9));
    assert_true(dss_bill_is_pdf_signature(pdf, 5));
    assert_false(dss_bill_is_pdf_signature(pdf, 4));
    assert_false(dss_bill_is_pdf_signature((const unsigned char *)"<html>", 6));
    assert_false(dss_bill_is_pdf_signature((const unsigned char *)"%pdf-1", 6));
    assert_false(
        dss_bill_is_pdf_signature((const unsigned char *)" %PDF-1.4", 9));
    assert_false(dss_bill_is_pdf_signature((const unsigned char *)"", 0));
}

/* A body of size bytes: "%PDF-1.7\n", filler, and end (NUL-terminated) at
 * its very end; verdict with the head and tail a source would read. */
static dss_bill_outcome verdict_of(dss_bill_pdf_check check, size_t size,
                                   const char *end) {
    unsigned char *body = malloc(size);
    assert_non_null(body);
    memset(body, 'x', size);
    memcpy(body, "%PDF-1.7\n", size < 9 ? size : 9);
    size_t end_len = strlen(end);
    if (end_len <= size) {
        memcpy(body + size - end_len, end, end_len);
    }
    long long tail = dss_bill_pdf_tail_offset((long long)size);
    dss_bill_outcome o = dss_bill_pdf_verdict(
        check, (long long)size, body, size < 5 ? size : 5, body + tail,
        size - (size_t)tail);
    free(body);
    return o;
}

static void test_D8_complete_pdf_needs_eof_in_the_last_1024_bytes(
    void **state) {
    (void)state;
    const dss_bill_pdf_check complete = DSS_BILL_PDF_CHECK_COMPLETE;
    assert_int_equal(verdict_of(complete, 2000, "%%EOF\n"), DSS_BILL_OK);
    assert_int_equal(verdict_of(complete, 2000, "%%EOF"), DSS_BILL_OK);
    /* %%EOF followed by trailing bytes, still inside the last 1024 */
    char trailer[1100];
    memset(trailer, ' ', sizeof(trailer));
    memcpy(trailer, "%%EOF", 5);
    trailer[1024] = '\0'; /* %%EOF starts exactly 1024 bytes from the end */
    assert_int_equal(verdict_of(complete, 4000, trailer), DSS_BILL_OK);
    trailer[1024] = ' ';
    trailer[1025] = '\0'; /* one byte further: its '%' is outside */
    assert_int_equal(verdict_of(complete, 4000, trailer),
                     DSS_BILL_INCOMPLETE_PDF);
    /* truncated: no end marker at all */
    assert_int_equal(verdict_of(complete, 8000, "xx"),
                     DSS_BILL_INCOMPLETE_PDF);
    /* a small body is its own tail */
    assert_int_equal(verdict_of(complete, 20, "%%EOF"), DSS_BILL_OK);
    /* the relaxed check asks for the signature only */
    assert_int_equal(verdict_of(DSS_BILL_PDF_CHECK_SIGNATURE, 8000, "xx"),
                     DSS_BILL_OK);
}

static void test_D8_verdict_refuses_empty_non_pdf_and_short_tails(
    void **state) {
    (void)state;
    const unsigned char html[] = "<html>%%EOF";
    assert_int_equal(dss_bill_pdf_verdict(DSS_BILL_PDF_CHECK_COMPLETE, 0,
                                          html, 0, html, 0),
                     DSS_BILL_EMPTY);
    assert_int_equal(dss_bill_pdf_verdict(DSS_BILL_PDF_CHECK_SIGNATURE, 11,
                                          html, 5, html, 11),
                     DSS_BILL_NOT_PDF);
    /* "%PDF" is not the signature; neither is a head shorter than 5 */
    const unsigned char pdf[] = "%PDF-%%EOF";
    assert_int_equal(dss_bill_pdf_verdict(DSS_BILL_PDF_CHECK_SIGNATURE, 4,
                                          pdf, 4, pdf, 4),
                     DSS_BILL_NOT_PDF);
    assert_int_equal(dss_bill_pdf_verdict(DSS_BILL_PDF_CHECK_COMPLETE, 10,
                                          pdf, 5, pdf, 10),
                     DSS_BILL_OK);
    /* a tail that is not the body's whole last part proves nothing */
    assert_int_equal(dss_bill_pdf_verdict(DSS_BILL_PDF_CHECK_COMPLETE, 10,
                                          pdf, 5, pdf + 5, 5),
                     DSS_BILL_INCOMPLETE_PDF);
    assert_int_equal(dss_bill_pdf_tail_offset(100), 0);
    assert_int_equal(dss_bill_pdf_tail_offset(1024), 0);
    assert_int_equal(dss_bill_pdf_tail_offset(5000), 5000 - 1024);
}

/* ---- D9: archive headers stay with the archive's origin ---------------- */

static void test_D9_same_origin(void **state) {
    (void)state;
    assert_true(dss_bill_same_origin("http://archive/a.pdf",
                                     "http://archive:80/other?x=1"));
    assert_true(dss_bill_same_origin("https://Archive.Example/a",
                                     "https://archive.example:443/b"));
    assert_false(dss_bill_same_origin("http://archive/a", "https://archive/a"));
    assert_false(
        dss_bill_same_origin("http://archive:8080/a", "http://archive/a"));
    assert_false(dss_bill_same_origin("http://127.0.0.1:9/a",
                                      "http://localhost:9/a"));
    assert_false(dss_bill_same_origin("http://archive/a",
                                      "http://archive.evil/a"));
    assert_false(dss_bill_same_origin("http://archive/a", "not a url"));
    assert_false(dss_bill_same_origin("", ""));
}

/* ---- D3-D7: outcome -> status
 * ---------------------------------------------------- */

static void test_D7_every_outcome_is_200_404_or_500(void **state) {
    (void)state;
    for (int o = DSS_BILL_OK; o <= DSS_BILL_OUTCOME_LAST; o++) {
        int status = dss_bill_outcome_status((dss_bill_outcome)o);
        assert_true(status == 200 || status == 404 || status == 500);
        const char *reason = dss_bill_outcome_reason((dss_bill_outcome)o);
        assert_non_null(reason);
        assert_true(strlen(reason) > 0);
    }
    /* an unknown value is an internal error, not a success */
    assert_int_equal(dss_bill_outcome_status((dss_bill_outcome)999), 500);
}

static void test_D5_D6_outcome_mapping(void **state) {
    (void)state;
    assert_int_equal(dss_bill_outcome_status(DSS_BILL_OK), 200);
    assert_int_equal(dss_bill_outcome_status(DSS_BILL_INVALID_ID), 404);
    assert_int_equal(dss_bill_outcome_status(DSS_BILL_ABSENT), 404);
    assert_int_equal(dss_bill_outcome_status(DSS_BILL_NOT_REGULAR_FILE), 404);
    assert_int_equal(dss_bill_outcome_status(DSS_BILL_UNSAFE_PATH), 404);
    assert_int_equal(dss_bill_outcome_status(DSS_BILL_UNREADABLE), 500);
    assert_int_equal(dss_bill_outcome_status(DSS_BILL_EMPTY), 500);
    assert_int_equal(dss_bill_outcome_status(DSS_BILL_TOO_LARGE), 500);
    assert_int_equal(dss_bill_outcome_status(DSS_BILL_NOT_PDF), 500);
    assert_int_equal(dss_bill_outcome_status(DSS_BILL_STORAGE_ERROR), 500);

    assert_int_equal(dss_bill_outcome_from_open_errno(ENOENT), DSS_BILL_ABSENT);
    assert_int_equal(dss_bill_outcome_from_open_errno(ENOTDIR),
                     DSS_BILL_ABSENT);
    assert_int_equal(dss_bill_outcome_from_open_errno(EACCES),
                     DSS_BILL_UNREADABLE);
    assert_int_equal(dss_bill_outcome_from_open_errno(ELOOP),
                     DSS_BILL_SYMLINK_REFUSED);
    assert_int_equal(dss_bill_outcome_from_open_errno(EIO),
                     DSS_BILL_STORAGE_ERROR);
    assert_int_equal(dss_bill_outcome_severity(DSS_BILL_STORAGE_ERROR),
                     DSS_BILL_SEVERITY_CRIT);
    assert_int_equal(dss_bill_outcome_severity(DSS_BILL_ABSENT),
                     DSS_BILL_SEVERITY_NOT_FOUND);
}

static void test_D4_size_limit_is_inclusive(void **state) {
    (void)state;
    const long long limit = 5LL * 1024 * 1024;
    assert_int_equal(dss_bill_check_file(1, limit, limit), DSS_BILL_OK);
    assert_int_equal(dss_bill_check_file(1, limit + 1, limit),
                     DSS_BILL_TOO_LARGE);
    assert_int_equal(dss_bill_check_file(1, 1, limit), DSS_BILL_OK);
    assert_int_equal(dss_bill_check_file(1, 0, limit), DSS_BILL_EMPTY);
    assert_int_equal(dss_bill_check_file(0, 10, limit),
                     DSS_BILL_NOT_REGULAR_FILE);
}

/* ---- H3: document-root probe
 * --------------------------------------------------- */

static void test_H3_root_probe(void **state) {
    (void)state;
    char dir[] = "/tmp/dss-probe-XXXXXX";
    char reason[128];
    assert_non_null(mkdtemp(dir));

    assert_int_equal(dss_bill_probe_root(dir, reason, sizeof(reason)), 1);

    char file[PATH_MAX];
    snprintf(file, sizeof(file), "%s/f", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(dss_bill_probe_root(file, reason, sizeof(reason)), 0);
    assert_non_null(strstr(reason, "Not a directory"));

    unlink(file);
    rmdir(dir);
    assert_int_equal(dss_bill_probe_root(dir, reason, sizeof(reason)), 0);
    assert_non_null(strstr(reason, "No such file"));
}

/* ---- the archive source
 * ------------------------------------------------------ */

static int url_ok(const char *url) {
    char err[128];
    return dss_bill_upstream_url_check(url, strlen(url), err, sizeof(err)) == 0;
}

static void test_upstream_url_check(void **state) {
    (void)state;
    assert_true(url_ok("https://archive.internal/api/bills/$dss_bill_id/pdf"));
    assert_true(url_ok("HTTP://127.0.0.1:8080/$dss_bill_id.pdf"));
    assert_true(url_ok("http://$archive_host/x"));

    assert_false(url_ok("ftp://archive/x"));
    assert_false(url_ok("file:///etc/passwd"));
    assert_false(url_ok("archive/x"));
    assert_false(url_ok("https:///x"));

    char err[128];
    const char *creds = "https://user:pw@archive/x";
    assert_int_equal(
        dss_bill_upstream_url_check(creds, strlen(creds), err, sizeof(err)),
        -1);
    assert_non_null(strstr(err, "dss_bill_upstream_basic_auth"));
    /* an '@' in the path is not a credential */
    assert_true(url_ok("https://archive/bills/a@b"));
}

static void test_H3_upstream_probe_url_is_the_archive_base(void **state) {
    (void)state;
    char out[128];
    const char *url = "https://archive.internal:8443/api/$dss_bill_id/pdf";
    assert_int_equal(
        dss_bill_upstream_url_base(url, strlen(url), out, sizeof(out)), 30);
    assert_string_equal(out, "https://archive.internal:8443/");

    const char *bare = "http://archive";
    assert_true(
        dss_bill_upstream_url_base(bare, strlen(bare), out, sizeof(out)) > 0);
    assert_string_equal(out, "http://archive/");

    const char *variable = "http://$host/x";
    assert_int_equal(dss_bill_upstream_url_base(variable, strlen(variable), out,
                                                sizeof(out)),
                     0);
    assert_int_equal(dss_bill_upstream_url_base(url, strlen(url), out, 10), 0);
}

static const dss_bill_upstream_options test_options = {
    .connect_timeout_ms = 1000,
    .timeout_ms = 2000,
    .max_size = 5 * 1024 * 1024,
    .buffer_size = 1024,
    .temp_dir = "/tmp",
    .ssl_verify = 1,
};

static void test_D6_transport_failures_map_to_500(void **state) {
    (void)state;
    static const struct {
        CURLcode code;
        dss_bill_outcome outcome;
    } cases[] = {
        {CURLE_OPERATION_TIMEDOUT, DSS_BILL_UPSTREAM_TIMEOUT},
        {CURLE_COULDNT_CONNECT, DSS_BILL_UPSTREAM_CONNECT},
        {CURLE_COULDNT_RESOLVE_HOST, DSS_BILL_UPSTREAM_RESOLVE},
        {CURLE_PEER_FAILED_VERIFICATION, DSS_BILL_UPSTREAM_TLS},
        {CURLE_SSL_CONNECT_ERROR, DSS_BILL_UPSTREAM_TLS},
        {CURLE_PARTIAL_FILE, DSS_BILL_UPSTREAM_TRUNCATED},
        {CURLE_RECV_ERROR, DSS_BILL_UPSTREAM_TRUNCATED},
        {CURLE_FILESIZE_EXCEEDED, DSS_BILL_TOO_LARGE},
        {CURLE_TOO_MANY_REDIRECTS, DSS_BILL_UPSTREAM_REDIRECT},
        {CURLE_UNSUPPORTED_PROTOCOL, DSS_BILL_UPSTREAM_ERROR},
    };
    char err[128];
    dss_bill_fetch_pool *pool = dss_bill_fetch_pool_create(4, 0);
    assert_non_null(pool);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dss_bill_fetch *fetch = dss_bill_fetch_start(
            pool, &test_options, "http://127.0.0.1:1/x", 0, err, sizeof(err));
        assert_non_null(fetch);
        dss_bill_outcome outcome = dss_bill_fetch_finish(fetch, cases[i].code);
        if (outcome != cases[i].outcome) {
            fail_msg("curl code %d gave outcome %d, expected %d", cases[i].code,
                     outcome, cases[i].outcome);
        }
        assert_int_equal(dss_bill_outcome_status(outcome), 500);
        /* libcurl's reason and code reach the log line */
        char code[32];
        snprintf(code, sizeof(code), "(curl %d)", cases[i].code);
        assert_non_null(strstr(dss_bill_fetch_detail(fetch), code));
        dss_bill_fetch_release(fetch);
    }
    dss_bill_fetch_pool_destroy(pool);
}

static void test_fetch_pool_reuses_easy_handles(void **state) {
    (void)state;
    char err[128];
    dss_bill_fetch_pool *pool = dss_bill_fetch_pool_create(1, 0);
    dss_bill_fetch *a = dss_bill_fetch_start(
        pool, &test_options, "http://127.0.0.1:1/a", 0, err, sizeof(err));
    void *easy = dss_bill_fetch_easy(a);
    dss_bill_fetch_release(a);

    dss_bill_fetch *b = dss_bill_fetch_start(
        pool, &test_options, "http://127.0.0.1:1/b", 0, err, sizeof(err));
    assert_ptr_equal(dss_bill_fetch_easy(b), easy);

    /* beyond max_idle, released fetches are destroyed, not kept */
    dss_bill_fetch *c = dss_bill_fetch_start(
        pool, &test_options, "http://127.0.0.1:1/c", 0, err, sizeof(err));
    dss_bill_fetch_release(b);
    dss_bill_fetch_release(c);
    dss_bill_fetch_pool_destroy(pool);
}


/* ---- archive cache entries (issue 9) ----------------------------------- */

static int cache_temp_file(void) {
    char name[] = "/tmp/dss-cache-test-XXXXXX";
    int fd = mkstemp(name);
    assert_true(fd >= 0);
    unlink(name);
    return fd;
}

static void assert_file_holds(int fd, const unsigned char *header,
                              size_t header_len, const unsigned char *bill,
                              size_t bill_len) {
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, (off_t)(header_len + bill_len));
    unsigned char *all = malloc(header_len + bill_len);
    assert_non_null(all);
    assert_int_equal(pread(fd, all, header_len + bill_len, 0),
                     (ssize_t)(header_len + bill_len));
    assert_memory_equal(all, header, header_len);
    assert_memory_equal(all + header_len, bill, bill_len);
    free(all);
}

/* The entry is the header, then the bill's exact bytes, from memory or from
 * the fetch's file (read from offset 0 whatever its position), across the
 * copy's 64 KB chunks. */
static void test_cache_entry_is_header_then_exact_bill(void **state) {
    (void)state;
    const unsigned char header[] = "HEADER\nKEY: http://a/b.pdf\n";
    size_t bill_len = 300 * 1024 + 7;
    unsigned char *bill = malloc(bill_len);
    assert_non_null(bill);
    for (size_t i = 0; i < bill_len; i++) {
        bill[i] = (unsigned char)(i * 31 + i / 7);
    }

    int to = cache_temp_file();
    dss_bill_body body = {bill, -1, (long long)bill_len};
    assert_int_equal(dss_bill_cache_write(to, header, sizeof(header), &body),
                     0);
    assert_file_holds(to, header, sizeof(header), bill, bill_len);
    close(to);

    int from = cache_temp_file();
    assert_int_equal(write(from, bill, bill_len), (ssize_t)bill_len);
    /* the fetch's file position is at its end: the copy must not care */
    to = cache_temp_file();
    body.data = NULL;
    body.fd = from;
    assert_int_equal(dss_bill_cache_write(to, header, sizeof(header), &body),
                     0);
    assert_file_holds(to, header, sizeof(header), bill, bill_len);
    close(to);
    close(from);
    free(bill);
}

/* A write error comes back as its errno (a full disk: ENOSPC), a body file
 * shorter than announced as ENODATA, nonsense as EINVAL: never a success
 * that would let a partial entry be renamed into place. */
static void test_cache_entry_write_errors_are_reported(void **state) {
    (void)state;
    const unsigned char header[] = "H";
    const unsigned char bill[] = "%PDF-1.4 tiny %%EOF";
    dss_bill_body body = {bill, -1, (long long)sizeof(bill)};

    int full = open("/dev/full", O_WRONLY);
    if (full >= 0) {
        assert_int_equal(
            dss_bill_cache_write(full, header, sizeof(header), &body),
            ENOSPC);
        close(full);
    }

    int from = cache_temp_file();
    assert_int_equal(write(from, bill, sizeof(bill)), (ssize_t)sizeof(bill));
    int to = cache_temp_file();
    dss_bill_body longer = {NULL, from, (long long)sizeof(bill) + 100};
    assert_int_equal(dss_bill_cache_write(to, header, sizeof(header), &longer),
                     ENODATA);
    close(to);
    close(from);

    dss_bill_body empty = {bill, -1, 0};
    assert_int_equal(dss_bill_cache_write(1, header, sizeof(header), &empty),
                     EINVAL);
    assert_int_equal(dss_bill_cache_write(-1, header, sizeof(header), &body),
                     EINVAL);
    dss_bill_body nothing = {NULL, -1, 10};
    assert_int_equal(
        dss_bill_cache_write(1, header, sizeof(header), &nothing), EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_D2_default_rule_accepts_billing_ids),
        cmocka_unit_test(test_D5_default_rule_refuses_hostile_ids),
        cmocka_unit_test(test_D2_custom_chars_and_length),
        cmocka_unit_test(test_D2_literal_dash_first_or_last),
        cmocka_unit_test(
            test_D5_char_classes_that_could_touch_paths_are_refused),
        cmocka_unit_test(test_D2_length_bounds_are_checked),
        cmocka_unit_test(test_routes_below_the_location),
        cmocka_unit_test(test_H1_route_base_of_exact_health_location),
        cmocka_unit_test(test_other_paths_are_no_route),
        cmocka_unit_test(test_D5_relative_paths),
        cmocka_unit_test(test_D5_path_template_check),
        cmocka_unit_test(test_join_path),
        cmocka_unit_test(test_D8_pdf_signature),
        cmocka_unit_test(test_D8_complete_pdf_needs_eof_in_the_last_1024_bytes),
        cmocka_unit_test(test_D8_verdict_refuses_empty_non_pdf_and_short_tails),
        cmocka_unit_test(test_D9_same_origin),
        cmocka_unit_test(test_D7_every_outcome_is_200_404_or_500),
        cmocka_unit_test(test_D5_D6_outcome_mapping),
        cmocka_unit_test(test_D4_size_limit_is_inclusive),
        cmocka_unit_test(test_H3_root_probe),
        cmocka_unit_test(test_upstream_url_check),
        cmocka_unit_test(test_H3_upstream_probe_url_is_the_archive_base),
        cmocka_unit_test(test_D6_transport_failures_map_to_500),
        cmocka_unit_test(test_fetch_pool_reuses_easy_handles),
        cmocka_unit_test(test_cache_entry_is_header_then_exact_bill),
        cmocka_unit_test(test_cache_entry_write_errors_are_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of the core's observability part through dss_bill.h: outcome
 * labels, the counters' layout, the Prometheus exposition. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dss_bill.h"

static uint64_t values[DSS_BILL_M_COUNT];
static const dss_bill_cache_state *caches;
static size_t cache_count;

/* Renders into a malloc'd, NUL-terminated buffer. */
static char *render(const dss_bill_source_state *sources, size_t count) {
    dss_bill_metrics_snapshot s = {values, sources, count, "1.22.1", caches,
                                   cache_count};
    size_t len = dss_bill_metrics_render(&s, NULL, 0);
    assert_true(len > 0);
    char *out = malloc(len + 1);
    assert_non_null(out);
    assert_int_equal(dss_bill_metrics_render(&s, out, len), len);
    out[len] = '\0';
    return out;
}

static int has_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n') {
            return 1;
        }
    }
    return 0;
}

static void expect_line(const char *text, const char *line) {
    if (!has_line(text, line)) {
        fail_msg("missing line: %s\n--- exposition:\n%s", line, text);
    }
}

static void expect_no_line(const char *text, const char *line) {
    if (has_line(text, line)) {
        fail_msg("unexpected line: %s", line);
    }
}

/* D5, D6: every outcome and every other ending has its own label, so the
 * log and the counters tell them apart (an outcome added to dss_bill.h
 * without a label fails here). */
static void test_D6_every_result_has_a_distinct_label(void **state) {
    (void)state;
    for (int i = 0; i < DSS_BILL_RESULT_COUNT; i++) {
        const char *name = dss_bill_result_name(i);
        assert_non_null(name);
        if (name[0] == '\0') {
            fail_msg("result %d has no label", i);
        }
        assert_int_equal(strspn(name, "abcdefghijklmnopqrstuvwxyz_"),
                         strlen(name));
        for (int j = 0; j < i; j++) {
            if (strcmp(name, dss_bill_result_name(j)) == 0) {
                fail_msg("results %d and %d share the label %s", j, i, name);
            }
        }
    }
    assert_string_equal(dss_bill_result_name(DSS_BILL_OK), "ok");
    assert_string_equal(dss_bill_result_name(DSS_BILL_ABSENT), "not_found");
    assert_string_equal(dss_bill_result_name(DSS_BILL_UPSTREAM_TIMEOUT),
                        "archive_timeout");
    assert_string_equal(dss_bill_result_name(DSS_BILL_RESULT_CLIENT_GONE),
                        "client_gone");
    assert_string_equal(dss_bill_result_name(DSS_BILL_RESULT_COUNT), "");
    assert_string_equal(dss_bill_result_name(-1), "");

    assert_string_equal(dss_bill_source_name(DSS_BILL_SOURCE_NONE), "");
    assert_string_equal(dss_bill_source_name(DSS_BILL_SOURCE_ROOT), "root");
    assert_string_equal(dss_bill_source_name(DSS_BILL_SOURCE_ARCHIVE),
                        "archive");
    assert_string_equal(dss_bill_source_name(DSS_BILL_SOURCE_CACHE), "cache");
    assert_string_equal(dss_bill_source_name(DSS_BILL_SOURCE_COUNT), "");
}

static void test_status_index_and_fetch_buckets(void **state) {
    (void)state;
    static const int known[] = {200, 400, 404, 405, 413, 499, 500, 503};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        assert_int_equal(dss_bill_metric_status_index(known[i]), (int)i);
    }
    assert_int_equal(dss_bill_metric_status_index(302),
                     DSS_BILL_METRIC_STATUS_COUNT - 1);
    assert_int_equal(dss_bill_metric_status_index(0),
                     DSS_BILL_METRIC_STATUS_COUNT - 1);

    /* bounds are inclusive: le="0.05" holds 50 ms */
    assert_int_equal(dss_bill_fetch_bucket(0), 0);
    assert_int_equal(dss_bill_fetch_bucket(50), 0);
    assert_int_equal(dss_bill_fetch_bucket(51), 1);
    assert_int_equal(dss_bill_fetch_bucket(1000), 4);
    assert_int_equal(dss_bill_fetch_bucket(4999), 8);
    assert_int_equal(dss_bill_fetch_bucket(5000), 8);
    assert_int_equal(dss_bill_fetch_bucket(5001), DSS_BILL_FETCH_BUCKET_COUNT - 1);
    assert_int_equal(dss_bill_fetch_bucket(100000000),
                     DSS_BILL_FETCH_BUCKET_COUNT - 1);

    /* the layout: no two counters share a slot */
    assert_true(DSS_BILL_M_REQUEST(DSS_BILL_METRIC_ROUTE_COUNT - 1,
                                   DSS_BILL_RESULT_COUNT - 1,
                                   DSS_BILL_METRIC_STATUS_COUNT - 1)
                == DSS_BILL_M_BYTES - 1);
    assert_true(DSS_BILL_M_FETCHES_IN_FLIGHT == DSS_BILL_M_CACHE - 1);
    assert_true(DSS_BILL_M_CACHE + DSS_BILL_CACHE_EVENT_COUNT == DSS_BILL_M_COUNT);
}

/* Zero-valued series an operator's rate() and ratio need from the first
 * scrape; nothing else while zero. */
static void test_D6_exposition_shows_each_outcome_from_the_start(void **state) {
    (void)state;
    memset(values, 0, sizeof(values));
    char *text = render(NULL, 0);

    expect_line(text, "# TYPE dss_bill_requests_total counter");
    expect_line(text, "dss_bill_requests_total{route=\"download\",status=\"200\","
                      "outcome=\"ok\"} 0");
    expect_line(text, "dss_bill_requests_total{route=\"download\",status=\"500\","
                      "outcome=\"too_large\"} 0");
    expect_line(text, "dss_bill_requests_total{route=\"download\",status=\"404\","
                      "outcome=\"archive_not_found\"} 0");
    expect_line(text, "dss_bill_requests_total{route=\"download\",status=\"499\","
                      "outcome=\"client_gone\"} 0");
    expect_line(text, "dss_bill_requests_total{route=\"health\",status=\"200\","
                      "outcome=\"healthy\"} 0");
    expect_line(text, "dss_bill_requests_total{route=\"health\",status=\"503\","
                      "outcome=\"unhealthy\"} 0");
    expect_line(text, "dss_bill_requests_total{route=\"health\",status=\"405\","
                      "outcome=\"method_not_allowed\"} 0");
    expect_line(text, "dss_bill_requests_total{route=\"other\",status=\"404\","
                      "outcome=\"no_route\"} 0");
    expect_no_line(text, "dss_bill_requests_total{route=\"download\",status=\"200\","
                         "outcome=\"too_large\"} 0");
    expect_no_line(text, "dss_bill_requests_total{route=\"health\",status=\"200\","
                         "outcome=\"ok\"} 0");

    expect_line(text, "dss_bill_response_bytes_total{source=\"root\"} 0");
    expect_line(text, "dss_bill_response_bytes_total{source=\"archive\"} 0");
    expect_line(text, "dss_bill_response_bytes_total{source=\"cache\"} 0");
    expect_line(text, "dss_bill_archive_fetch_duration_seconds_bucket{le=\"+Inf\"} 0");
    expect_line(text, "dss_bill_archive_fetch_duration_seconds_count 0");
    expect_line(text, "dss_bill_archive_fetches_in_flight 0");
    expect_line(text, "dss_bill_build_info{version=\"" DSS_BILL_VERSION
                      "\",nginx=\"1.22.1\"} 1");
    free(text);
}

static void test_D3_exposition_values(void **state) {
    (void)state;
    memset(values, 0, sizeof(values));
    values[DSS_BILL_M_REQUEST(DSS_BILL_METRIC_ROUTE_DOWNLOAD, DSS_BILL_OK,
                              dss_bill_metric_status_index(200))] = 12345678901ULL;
    /* a combination that is not natural shows once it counts */
    values[DSS_BILL_M_REQUEST(DSS_BILL_METRIC_ROUTE_HEALTH,
                              DSS_BILL_RESULT_OTHER,
                              dss_bill_metric_status_index(302))] = 2;
    values[DSS_BILL_M_BYTES + DSS_BILL_SOURCE_ROOT] = 102400;
    values[DSS_BILL_M_BYTES + DSS_BILL_SOURCE_CACHE] = 7;
    values[DSS_BILL_M_FETCH_BUCKETS + 0] = 3;
    values[DSS_BILL_M_FETCH_BUCKETS + 4] = 2;
    values[DSS_BILL_M_FETCH_BUCKETS + DSS_BILL_FETCH_BUCKET_COUNT - 1] = 1;
    values[DSS_BILL_M_FETCH_SUM_MS] = 7005;
    values[DSS_BILL_M_FETCHES_IN_FLIGHT] = 4;

    char *text = render(NULL, 0);
    expect_line(text, "dss_bill_requests_total{route=\"download\",status=\"200\","
                      "outcome=\"ok\"} 12345678901");
    expect_line(text, "dss_bill_requests_total{route=\"health\",status=\"other\","
                      "outcome=\"other\"} 2");
    expect_line(text, "dss_bill_response_bytes_total{source=\"root\"} 102400");
    expect_line(text, "dss_bill_response_bytes_total{source=\"cache\"} 7");
    /* cumulative buckets */
    expect_line(text, "dss_bill_archive_fetch_duration_seconds_bucket{le=\"0.05\"} 3");
    expect_line(text, "dss_bill_archive_fetch_duration_seconds_bucket{le=\"0.5\"} 3");
    expect_line(text, "dss_bill_archive_fetch_duration_seconds_bucket{le=\"1\"} 5");
    expect_line(text, "dss_bill_archive_fetch_duration_seconds_bucket{le=\"5\"} 5");
    expect_line(text, "dss_bill_archive_fetch_duration_seconds_bucket{le=\"+Inf\"} 6");
    expect_line(text, "dss_bill_archive_fetch_duration_seconds_sum 7.005");
    expect_line(text, "dss_bill_archive_fetch_duration_seconds_count 6");
    expect_line(text, "dss_bill_archive_fetches_in_flight 4");
    free(text);
}

/* H3: the probes' verdicts, with hostile location names escaped. */
static void test_H3_source_up_and_label_escaping(void **state) {
    (void)state;
    memset(values, 0, sizeof(values));
    static const char odd[] = "/a\"b\\c\nd/";
    dss_bill_source_state sources[] = {
        {"/dss/bill/", 10, 1, 1, 1, 0},
        {odd, sizeof(odd) - 1, 0, 0, 1, 1},
    };
    char *text = render(sources, 2);
    expect_line(text, "dss_bill_source_up{location=\"/dss/bill/\",source=\"root\"} 1");
    expect_line(text,
                "dss_bill_source_up{location=\"/dss/bill/\",source=\"archive\"} 0");
    expect_line(text, "dss_bill_source_up{location=\"/a\\\"b\\\\c\\nd/\","
                      "source=\"archive\"} 1");
    expect_no_line(text, "dss_bill_source_up{location=\"/a\\\"b\\\\c\\nd/\","
                         "source=\"root\"} 0");
    free(text);
}

/* Issue 9: the archive cache's events are counters from the first scrape,
 * bytes served from it count under source="cache", and each zone's size,
 * max_size and entries are gauges labelled with the zone. */
static void test_cache_series(void **state) {
    (void)state;
    memset(values, 0, sizeof(values));
    char *text = render(NULL, 0);
    expect_line(text, "dss_bill_cache_hits_total 0");
    expect_line(text, "dss_bill_cache_misses_total 0");
    expect_line(text, "dss_bill_response_bytes_total{source=\"cache\"} 0");
    assert_null(strstr(text, "dss_bill_cache_size_bytes"));
    free(text);

    values[DSS_BILL_M_CACHE + DSS_BILL_CACHE_HIT] = 7;
    values[DSS_BILL_M_CACHE + DSS_BILL_CACHE_MISS] = 3;
    values[DSS_BILL_M_CACHE + DSS_BILL_CACHE_STORED] = 2;
    values[DSS_BILL_M_CACHE + DSS_BILL_CACHE_STORE_FAILED] = 1;
    values[DSS_BILL_M_CACHE + DSS_BILL_CACHE_UNUSABLE] = 4;
    values[DSS_BILL_M_BYTES + DSS_BILL_SOURCE_CACHE] = 123456;
    static const dss_bill_cache_state zones[] = {
        {"bills", 5, 4096ULL * 10, 1024ULL * 1024 * 1024, 10},
        {"a\"b", 3, 0, 0, 0},
    };
    caches = zones;
    cache_count = 2;
    text = render(NULL, 0);
    caches = NULL;
    cache_count = 0;
    expect_line(text, "dss_bill_cache_hits_total 7");
    expect_line(text, "dss_bill_cache_misses_total 3");
    expect_line(text, "dss_bill_cache_stores_total 2");
    expect_line(text, "dss_bill_cache_store_errors_total 1");
    expect_line(text, "dss_bill_cache_unusable_total 4");
    expect_line(text, "dss_bill_response_bytes_total{source=\"cache\"} 123456");
    expect_line(text, "dss_bill_cache_size_bytes{zone=\"bills\"} 40960");
    expect_line(text,
                "dss_bill_cache_max_size_bytes{zone=\"bills\"} 1073741824");
    expect_line(text, "dss_bill_cache_entries{zone=\"bills\"} 10");
    expect_line(text, "dss_bill_cache_entries{zone=\"a\\\"b\"} 0");
    free(text);
}

/* A short buffer gets a prefix, never more, and the full length back. */
static void test_render_is_bounded(void **state) {
    (void)state;
    memset(values, 0, sizeof(values));
    dss_bill_metrics_snapshot s = {values, NULL, 0, "1.22.1", NULL, 0};
    size_t len = dss_bill_metrics_render(&s, NULL, 0);
    char *full = malloc(len);
    assert_non_null(full);
    assert_int_equal(dss_bill_metrics_render(&s, full, len), len);
    char buf[101];
    memset(buf, 'Z', sizeof(buf));
    assert_int_equal(dss_bill_metrics_render(&s, buf, 100), len);
    assert_memory_equal(buf, full, 100);
    assert_int_equal(buf[100], 'Z');
    assert_int_equal(full[len - 1], '\n');
    free(full);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_D6_every_result_has_a_distinct_label),
        cmocka_unit_test(test_status_index_and_fetch_buckets),
        cmocka_unit_test(test_D6_exposition_shows_each_outcome_from_the_start),
        cmocka_unit_test(test_D3_exposition_values),
        cmocka_unit_test(test_H3_source_up_and_label_escaping),
        cmocka_unit_test(test_cache_series),
        cmocka_unit_test(test_render_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Hostile review of the object-store core (issue 10): SigV4 for keys that
 * need encoding (every character dss_bill_id_chars may allow, '+', '=',
 * '~', 200-character ids), header whitespace, a day rollover and the
 * per-worker signing-key cache with several locations (distinct secrets,
 * one region, more locations than cache slots); the shared-credentials
 * parser against BOMs, duplicates, missing newlines, NUL bytes and large
 * files; S3 error bodies that are huge, nested, entity-laden or not UTF-8.
 * Expected signatures come from botocore 1.43 (python3-botocore) with a
 * fixed clock; AWS's published example is checked alongside as a control. */

#define _GNU_SOURCE /* accept4, strcasestr */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "dss_bill.h"
#include "fetch_exchange.h"

#define EDGE_SECRET "S3cr+t/With=Signs~And/Slashes+++"

static const char not_found[] =
    "HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\n"
    "Content-Length: 60\r\nConnection: close\r\n\r\n"
    "<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>";

static dss_bill_fetch_pool *shared_pool; /* NULL: a pool per exchange */


/* ---- SigV4 for keys that need encoding ------------------------------------ */

/* The configured URL with the id in place, encoded by the module, then
 * signed: the URL and the signature must be botocore's. */
static void test_D9_edge_keys_encoded_and_signed_like_botocore(void **state) {
    (void)state;
    static const dss_bill_s3_options s3 = {
        .region = "us-east-1", .service = "s3", .access_key_id = "AKIDEDGE",
        .secret_access_key = EDGE_SECRET};
    static char long_id[300];
    memset(long_id, 'x', 200);
    long_id[200] = '\0';
    static char long_url[400], long_encoded[400];
    snprintf(long_url, sizeof(long_url), "http://127.0.0.1:9000/bills/%s.pdf",
             long_id);
    snprintf(long_encoded, sizeof(long_encoded),
             "http://127.0.0.1:9000/bills/%s.pdf", long_id);
    const struct {
        const char *url, *encoded, *signature;
    } cases[] = {
        /* every character dss_bill_id_chars may allow */
        {"http://127.0.0.1:9000/bills/A-Z_a~z!$&'()*+,;=:@9.pdf",
         "http://127.0.0.1:9000/bills/"
         "A-Z_a~z%21%24%26%27%28%29%2A%2B%2C%3B%3D%3A%409.pdf",
         "c6650de37a62d08004f08412a1774dbba60b186eba6729095765d6bafb62e487"},
        {"http://127.0.0.1:9000/bills/a+b=c.pdf",
         "http://127.0.0.1:9000/bills/a%2Bb%3Dc.pdf",
         "1340f5fb0381de7718979203e09af2bc2ed8f843a7ebab59635388bace47ea59"},
        {long_url, long_encoded,
         "9a54773dda32d0019fd285c005837ff45edc5bc8a31d34b438bd6bf4c958655f"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char encoded[1024];
        size_t n = dss_bill_s3_encode_url(cases[i].url, strlen(cases[i].url),
                                          encoded, sizeof(encoded));
        assert_int_equal(n, strlen(cases[i].encoded));
        assert_string_equal(encoded, cases[i].encoded);
        char auth[512], want[512];
        snprintf(want, sizeof(want),
                 "AWS4-HMAC-SHA256 Credential=AKIDEDGE/20261231/us-east-1/s3/"
                 "aws4_request, SignedHeaders=host;x-amz-content-sha256;"
                 "x-amz-date, Signature=%s",
                 cases[i].signature);
        assert_int_not_equal(dss_bill_s3_authorization(&s3, encoded,
                                                       "20261231T235959Z",
                                                       NULL, auth,
                                                       sizeof(auth)),
                             0);
        assert_string_equal(auth, want);
    }
}

/* A configured header with runs of spaces and tabs is signed as SigV4
 * canonicalises it (botocore: "a b c"); a day rollover changes the scope
 * and the key. */
static void test_D9_header_whitespace_and_new_year_like_botocore(void **state) {
    (void)state;
    static const dss_bill_s3_options s3 = {
        .region = "us-east-1", .service = "s3", .access_key_id = "AKIDEDGE",
        .secret_access_key = EDGE_SECRET};
    static const char *const spaced[] = {"X-Api-Key:   a   b \t c  ", NULL};
    char auth[512];
    assert_int_not_equal(
        dss_bill_s3_authorization(&s3, "http://127.0.0.1:9000/bills/1.pdf",
                                  "20261231T235959Z", spaced, auth,
                                  sizeof(auth)),
        0);
    assert_string_equal(
        auth, "AWS4-HMAC-SHA256 Credential=AKIDEDGE/20261231/us-east-1/s3/"
              "aws4_request, SignedHeaders=host;x-amz-content-sha256;"
              "x-amz-date;x-api-key, Signature="
              "addbca6106752f8b51dc222d0e7c01d22e44aa8b37b8ed5375ddf07c9f47d48d");
    assert_int_not_equal(
        dss_bill_s3_authorization(&s3, "http://127.0.0.1:9000/bills/1.pdf",
                                  "20270101T000000Z", NULL, auth,
                                  sizeof(auth)),
        0);
    assert_string_equal(
        auth, "AWS4-HMAC-SHA256 Credential=AKIDEDGE/20270101/us-east-1/s3/"
              "aws4_request, SignedHeaders=host;x-amz-content-sha256;"
              "x-amz-date, Signature="
              "9fe021fc3cb7e3811a3ff41280a8fae1e7b03f92250d0ec2d80b17a511981fe9");
}

/* The worker's signing-key cache: ten locations (more than its slots), all
 * in one region with the same key id, each with its own secret, fetched in
 * turn through one pool, twice over, across a day change: every request
 * carries its own location's signature. Two of them are checked against
 * botocore outright. */
static void test_D9_key_cache_keeps_locations_apart(void **state) {
    (void)state;
    enum { N = 10 };
    static char secrets[N][48];
    static dss_bill_s3_options s3[N];
    for (int i = 0; i < N; i++) {
        snprintf(secrets[i], sizeof(secrets[i]), "secret-%d", i);
        s3[i] = (dss_bill_s3_options){.region = "us-east-1", .service = "s3",
                                      .access_key_id = "AKIDEDGE",
                                      .secret_access_key = secrets[i]};
    }
    snprintf(secrets[0], sizeof(secrets[0]), "%s", EDGE_SECRET);
    snprintf(secrets[1], sizeof(secrets[1]), "other-secret");
    static const char *const day1[] = {"x-amz-date: 20261231T235959Z", NULL};
    static const char *const day2[] = {"x-amz-date: 20270101T000000Z", NULL};
    shared_pool = dss_bill_fetch_pool_create(1, 0);
    for (int round = 0; round < 3; round++) {
        const char *const *date = round == 1 ? day2 : day1;
        for (int j = 0; j < N; j++) {
            int i = round == 2 ? N - 1 - j : j;
            dss_bill_upstream_options o = {
                .connect_timeout_ms = 5000, .timeout_ms = 8000,
                .max_size = 1 << 20, .buffer_size = 1024, .temp_dir = "/tmp",
                .headers = date, .s3 = &s3[i]};
            char request[8192], detail[512], auth[512], want[512];
            fetch_exchange(shared_pool, &o, "http://127.0.0.1:9000/bills/1.pdf",
                           "127.0.0.1:9000", not_found, request,
                           sizeof(request), detail, sizeof(detail));
            assert_non_null(fetch_header_value(request, "Authorization", auth,
                                               sizeof(auth)));
            assert_int_not_equal(
                dss_bill_s3_authorization(&s3[i],
                                          "http://127.0.0.1:9000/bills/1.pdf",
                                          date[0] + 12, date, want,
                                          sizeof(want)),
                0);
            if (strcmp(auth, want) != 0) {
                fail_msg("location %d, round %d: signed %s, want %s", i,
                         round, auth, want);
            }
            if (i <= 1 && round != 1) {
                const char *sig = strstr(auth, "Signature=");
                assert_non_null(sig);
                assert_string_equal(
                    sig + 10,
                    i == 0 ? "523752178579b691dc1d33533de9d0ddfec6c8c57ae97234"
                             "f5b6c788d3f1ccd9"
                           : "3298df8799e1fe4e4dfac9372ebffc9c236967bae27a0f0d"
                             "24c4814e6ee8d652");
            }
        }
    }
    dss_bill_fetch_pool_destroy(shared_pool);
    shared_pool = NULL;
}

/* H3: a dss_bill_upstream_health_url with a query (a listing limited to
 * the prefix an IAM condition on s3:prefix allows, e.g.
 * "?prefix=bills&max-keys=0") is signed with its query as SigV4 wants it:
 * parameters sorted by name. Signed raw, S3 answers SignatureDoesNotMatch
 * to every probe and the health check is 503 for good. */
static void test_H3_probe_query_is_canonicalised_like_botocore(void **state) {
    (void)state;
    static const dss_bill_s3_options s3 = {
        .region = "eu-west-1", .service = "s3", .access_key_id = "AKIDEDGE",
        .secret_access_key = EDGE_SECRET};
    const char *url = "https://dss-bills.s3.eu-west-1.amazonaws.com/"
                      "?prefix=bills&max-keys=0";
    char encoded[512], auth[512];
    assert_int_not_equal(
        dss_bill_s3_encode_url(url, strlen(url), encoded, sizeof(encoded)), 0);
    assert_int_not_equal(dss_bill_s3_authorization(&s3, encoded,
                                                   "20261231T235959Z", NULL,
                                                   auth, sizeof(auth)),
                         0);
    /* botocore: the same signature as for "?max-keys=0&prefix=bills" */
    assert_string_equal(
        auth, "AWS4-HMAC-SHA256 Credential=AKIDEDGE/20261231/eu-west-1/s3/"
              "aws4_request, SignedHeaders=host;x-amz-content-sha256;"
              "x-amz-date, Signature="
              "54354c09b4e384cfe6606701f8f5b1394331a98529cd6bc871514bc15eb34b2c");
}


/* Headers a signature cannot carry (Host, Authorization, x-amz-*, an
 * empty value) made every signed request of the location fail; nginx -t
 * refuses them now with dss_bill_upstream_s3: see
 * test_D9_credentials_and_headers_at_nginx_t (integration, attack_obs). */

/* ---- the shared-credentials file ------------------------------------------ */

static int parse(const char *text, size_t len, const char *profile,
                 dss_bill_s3_credentials *c, char *err, size_t err_size) {
    err[0] = '\0';
    return dss_bill_s3_credentials_parse(text, len, profile, strlen(profile),
                                         c, err, err_size);
}

static void assert_text(dss_bill_text t, const char *want) {
    assert_non_null(t.data);
    assert_int_equal(t.len, strlen(want));
    assert_memory_equal(t.data, want, t.len);
}

/* Files that are fine: no trailing newline (a CR at the end too), a
 * profile name with spaces, keys in any case, a 60 KB file of comments. */
static void test_D9_credentials_edge_files_that_parse(void **state) {
    (void)state;
    dss_bill_s3_credentials c;
    char err[256];
    static const char no_newline[] =
        "[default]\naws_access_key_id=AKID\naws_secret_access_key=s/e+c=";
    assert_int_equal(parse(no_newline, strlen(no_newline), "default", &c, err,
                           sizeof(err)),
                     0);
    assert_text(c.secret_access_key, "s/e+c=");
    static const char cr_end[] =
        "[default]\r\naws_access_key_id=AKID\r\naws_secret_access_key=sec\r";
    assert_int_equal(
        parse(cr_end, strlen(cr_end), "default", &c, err, sizeof(err)), 0);
    assert_text(c.secret_access_key, "sec");
    static const char spaced[] =
        "[my bills]\naws_access_key_id = AKID\naws_secret_access_key = s\n";
    assert_int_equal(
        parse(spaced, strlen(spaced), "my bills", &c, err, sizeof(err)), 0);
    assert_text(c.access_key_id, "AKID");

    size_t big_len = 60 * 1024;
    char *big = malloc(big_len + 1);
    assert_non_null(big);
    for (size_t i = 0; i < big_len; i += 60) {
        memset(big + i, '#', 59);
        big[i + 59] = '\n';
    }
    static const char tail[] =
        "[default]\naws_access_key_id=AKID\naws_secret_access_key=s\n";
    /* comment lines, then the profile as the file's last lines */
    memcpy(big + big_len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
    big[big_len - (sizeof(tail) - 1) - 1] = '\n';
    big[big_len] = '\0';
    long long t0 = (long long)clock();
    assert_int_equal(parse(big, big_len, "default", &c, err, sizeof(err)), 0);
    assert_true((long long)clock() - t0 < CLOCKS_PER_SEC);
    free(big);
}

/* Damaged files are refused, and no reason quotes a value of the file. */
#define NUL_CASE                                                               \
    "[default]\naws_access_key_id=AKID\naws_secret_access_key=LEAK\0ME3\n"

static void test_D9_credentials_damaged_files_refused_quietly(void **state) {
    (void)state;
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
    } cases[] = {
        /* a UTF-8 byte-order mark before the first section */
        {"\xef\xbb\xbf[default]\naws_access_key_id=AKID\n"
         "aws_secret_access_key=LEAKME1\n", 0},
        /* a secret with a space inside */
        {"[default]\naws_access_key_id=AKID\n"
         "aws_secret_access_key=LEAKME2 tail\n", 0},
        /* a NUL byte inside the secret */
        {NUL_CASE, sizeof(NUL_CASE) - 1},
        /* a secret wrapped onto the next line */
        {"[default]\naws_access_key_id=AKID\n"
         "aws_secret_access_key=\nLEAKME4\n", 0},
        /* a section header with trailing text */
        {"[default] LEAKME5\naws_access_key_id=AKID\n"
         "aws_secret_access_key=x\n", 0},
        /* UTF-8 in the secret */
        {"[default]\naws_access_key_id=AKID\n"
         "aws_secret_access_key=LEAKME6\xc3\xa9\n", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dss_bill_s3_credentials c;
        char err[256];
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        if (parse(cases[i].text, len, "default", &c, err, sizeof(err)) == 0) {
            fail_msg("case %zu parsed", i);
        }
        assert_true(err[0] != '\0');
        if (strstr(err, "LEAK") || strstr(err, "AKID")) {
            fail_msg("case %zu: the reason quotes the file: %s", i, err);
        }
    }
}

/* A key given twice in one profile is ambiguous, exactly like a profile
 * given twice (which the parser refuses): which secret does the location
 * sign with? botocore (configparser, strict) refuses such a file with
 * DuplicateOptionError, so `aws s3 ls` and the module would disagree. */
static void test_D9_credentials_duplicate_key_is_refused(void **state) {
    (void)state;
    static const char text[] =
        "[default]\n"
        "aws_access_key_id = AKIDOLD\n"
        "aws_secret_access_key = OLDSECRET\n"
        "aws_access_key_id = AKIDNEW\n"
        "aws_secret_access_key = NEWSECRET\n";
    dss_bill_s3_credentials c;
    char err[256];
    int rc = parse(text, strlen(text), "default", &c, err, sizeof(err));
    if (rc == 0) {
        fail_msg("a profile with two aws_access_key_id and two "
                 "aws_secret_access_key lines was accepted (took \"%.*s\")",
                 (int)c.access_key_id.len, c.access_key_id.data);
    }
    assert_null(strstr(err, "SECRET"));
}

/* ---- S3 error bodies -------------------------------------------------------- */

static void test_D6_hostile_error_bodies(void **state) {
    (void)state;
    char code[64], message[160];

    /* 16 MB of an unterminated element: bounded, not found */
    size_t huge_len = 16u << 20;
    char *huge = malloc(huge_len);
    assert_non_null(huge);
    memset(huge, 'A', huge_len);
    memcpy(huge, "<Error><Code>", 13);
    clock_t t0 = clock();
    assert_int_equal(dss_bill_s3_error_parse(huge, huge_len, code,
                                             sizeof(code), message,
                                             sizeof(message)),
                     0);
    /* a complete one whose message is huge: cut to the buffer */
    memcpy(huge, "<Error><Code>SlowDown</Code><Message>", 37);
    memcpy(huge + 2000, "</Message></Error>", 18);
    assert_int_equal(dss_bill_s3_error_parse(huge, huge_len, code,
                                             sizeof(code), message,
                                             sizeof(message)),
                     1);
    assert_string_equal(code, "SlowDown");
    assert_int_equal(strlen(message), sizeof(message) - 1);
    assert_true(clock() - t0 < CLOCKS_PER_SEC);
    free(huge);

    /* nested elements: the markup is refused, never half-read */
    static const char nested[] =
        "<Error><Code><Code>Inner</Code></Code></Error>";
    assert_int_equal(dss_bill_s3_error_parse(nested, strlen(nested), code,
                                             sizeof(code), message,
                                             sizeof(message)),
                     0);

    /* entities: the five XML ones decoded once, nothing else expanded */
    static const char entities[] =
        "<!DOCTYPE Error [<!ENTITY a \"AAAAAAAA\"><!ENTITY e SYSTEM "
        "\"file:///etc/passwd\">]><Error><Code>AccessDenied</Code><Message>"
        "&a;&e;&amp;lt;&#x41;&#65;&lt;b&gt;</Message></Error>";
    assert_int_equal(dss_bill_s3_error_parse(entities, strlen(entities), code,
                                             sizeof(code), message,
                                             sizeof(message)),
                     1);
    assert_string_equal(code, "AccessDenied");
    assert_string_equal(message, "&a;&e;&lt;&#x41;&#65;<b>");

    /* bytes that are not UTF-8, controls, a line break: one log-safe line */
    static const char bytes[] =
        "<Error><Code>Bad\xff\xfe</Code><Message>a\r\nFORGED \x1b[31m\xc3\x28"
        "</Message></Error>";
    assert_int_equal(dss_bill_s3_error_parse(bytes, strlen(bytes), code,
                                             sizeof(code), message,
                                             sizeof(message)),
                     1);
    assert_string_equal(code, "Bad??");
    assert_string_equal(message, "a??FORGED ?[31m?(");

    /* truncated in the middle of a closing tag */
    static const char cut[] = "<Error><Code>SlowDown</Co";
    assert_int_equal(dss_bill_s3_error_parse(cut, strlen(cut), code,
                                             sizeof(code), message,
                                             sizeof(message)),
                     0);

    /* zero-sized output buffers are left alone */
    static const char ok[] = "<Error><Code>X</Code><Message>Y</Message></Error>";
    assert_int_equal(dss_bill_s3_error_parse(ok, strlen(ok), code, 0, message,
                                             0),
                     1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_D9_edge_keys_encoded_and_signed_like_botocore),
        cmocka_unit_test(test_D9_header_whitespace_and_new_year_like_botocore),
        cmocka_unit_test(test_D9_key_cache_keeps_locations_apart),
        cmocka_unit_test(test_H3_probe_query_is_canonicalised_like_botocore),
        cmocka_unit_test(test_D9_credentials_edge_files_that_parse),
        cmocka_unit_test(test_D9_credentials_damaged_files_refused_quietly),
        cmocka_unit_test(test_D9_credentials_duplicate_key_is_refused),
        cmocka_unit_test(test_D6_hostile_error_bodies),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}

/* Unit tests of the object-store part of the core: credentials file, S3
 * error bodies, key encoding, the bucket probe URL, and the SigV4
 * signatures (core/s3_sign.cpp), on their own and as a fetch sends them,
 * checked against AWS's published example and botocore
 * (tests/tools/s3_sigv4_vectors.py). */

#define _GNU_SOURCE /* accept4, strcasestr, strptime, timegm */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "dss_bill.h"
#include "fetch_exchange.h"

static int parse(const char *text, const char *profile,
                 dss_bill_s3_credentials *c, char *err, size_t err_size) {
    return dss_bill_s3_credentials_parse(text, strlen(text), profile,
                                         strlen(profile), c, err, err_size);
}

static void assert_text(dss_bill_text t, const char *want) {
    assert_non_null(t.data);
    assert_int_equal(t.len, strlen(want));
    assert_memory_equal(t.data, want, t.len);
}

/* ---- D9: the shared-credentials file ------------------------------------ */

static void test_D9_credentials_profiles(void **state) {
    (void)state;
    static const char file[] =
        "# written by aws configure\r\n"
        "[default]\r\n"
        "aws_access_key_id = AKIADEFAULT\r\n"
        "aws_secret_access_key=default/secret+key\r\n"
        "region = eu-west-1\r\n"
        "\n"
        "  [ bills ]  \n"
        "; a comment\n"
        "AWS_ACCESS_KEY_ID\t=\tAKIABILLS\n"
        "aws_secret_access_key = bills/secret\n"
        "aws_session_token = FwoGZXIvYXdzEXAMPLE//token==\n";
    dss_bill_s3_credentials c;
    char err[128];

    assert_int_equal(parse(file, "default", &c, err, sizeof(err)), 0);
    assert_text(c.access_key_id, "AKIADEFAULT");
    assert_text(c.secret_access_key, "default/secret+key");
    assert_null(c.session_token.data);

    assert_int_equal(parse(file, "bills", &c, err, sizeof(err)), 0);
    assert_text(c.access_key_id, "AKIABILLS");
    assert_text(c.secret_access_key, "bills/secret");
    assert_text(c.session_token, "FwoGZXIvYXdzEXAMPLE//token==");
}

static void test_D9_credentials_errors_never_quote_the_file(void **state) {
    (void)state;
    static const struct {
        const char *text;
        const char *profile;
        const char *reason;
    } cases[] = {
        {"[default]\naws_access_key_id = K\n", "default",
         "no \"aws_secret_access_key\""},
        {"[default]\naws_secret_access_key = SECRETVALUE\n", "default",
         "no \"aws_access_key_id\""},
        {"[other]\naws_access_key_id = K\naws_secret_access_key = SECRETVALUE\n",
         "default", "no profile \"default\""},
        {"[default\naws_secret_access_key = SECRETVALUE\n", "default",
         "line 1"},
        {"[default]\nSECRETVALUE\n", "default", "line 2"},
        {"[default]\naws_access_key_id = K\n"
         "aws_secret_access_key = SECRET VALUE\n",
         "default", "\"aws_secret_access_key\" is empty or has spaces"},
        {"[default]\naws_access_key_id = K\naws_secret_access_key =\n",
         "default", "is empty"},
        {"[default]\naws_access_key_id = K\naws_secret_access_key = S\n"
         "[default]\naws_secret_access_key = SECRETVALUE\n",
         "default", "appears twice"},
        {"", "default", "no profile"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dss_bill_s3_credentials c;
        char err[160];
        assert_int_equal(parse(cases[i].text, cases[i].profile, &c, err,
                               sizeof(err)),
                         -1);
        if (strstr(err, cases[i].reason) == NULL) {
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].reason);
        }
        assert_null(strstr(err, "SECRET"));
    }
}

static void test_region_and_service_names(void **state) {
    (void)state;
    char err[128];
    assert_int_equal(dss_bill_s3_name_check("eu-west-1", 9, err, sizeof(err)),
                     0);
    assert_int_equal(dss_bill_s3_name_check("s3", 2, err, sizeof(err)), 0);
    assert_int_equal(dss_bill_s3_name_check("", 0, err, sizeof(err)), -1);
    assert_int_equal(dss_bill_s3_name_check("eu:west", 7, err, sizeof(err)),
                     -1); /* would split libcurl's aws:amz:REGION:SERVICE */
    assert_int_equal(dss_bill_s3_name_check("EU", 2, err, sizeof(err)), -1);
}

/* ---- D6: S3's error bodies ------------------------------------------------ */

static void test_D6_s3_error_code_and_message(void **state) {
    (void)state;
    static const char body[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<Error><Code>SignatureDoesNotMatch</Code><Message>The request "
        "signature we calculated does not match &amp; so on</Message>"
        "<StringToSign>AWS4-HMAC-SHA256\n20240101T000000Z</StringToSign>"
        "</Error>";
    char code[64], message[128];
    assert_int_equal(dss_bill_s3_error_parse(body, strlen(body), code,
                                             sizeof(code), message,
                                             sizeof(message)),
                     1);
    assert_string_equal(code, "SignatureDoesNotMatch");
    assert_string_equal(message, "The request signature we calculated does "
                                 "not match & so on");

    /* truncated to the buffers, controls replaced */
    static const char odd[] = "<Error><Code>Slow\x01" "Down</Code>"
                              "<Message>0123456789</Message></Error>";
    char small[6];
    assert_int_equal(dss_bill_s3_error_parse(odd, strlen(odd), code,
                                             sizeof(code), small,
                                             sizeof(small)),
                     1);
    assert_string_equal(code, "Slow?Down");
    assert_string_equal(small, "01234");
}

static void test_D6_s3_error_bodies_that_are_not(void **state) {
    (void)state;
    char code[64], message[64];
    static const char *const bodies[] = {
        "",
        "<html>403 Forbidden</html>",
        "<Code>AccessDenied</Code>",                /* no <Error> */
        "<Error><Code>AccessDenied",                /* cut off */
        "<Error><Code><![CDATA[x]]></Code></Error>", /* markup inside */
        "<Error><Code></Code></Error>",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        assert_int_equal(dss_bill_s3_error_parse(bodies[i], strlen(bodies[i]),
                                                 code, sizeof(code), message,
                                                 sizeof(message)),
                         0);
        assert_string_equal(code, "");
        assert_string_equal(message, "");
    }
    assert_int_equal(dss_bill_s3_error_parse(NULL, 0, code, sizeof(code),
                                             message, sizeof(message)),
                     0);

    /* only a bounded prefix is looked at */
    static char big[8192];
    memset(big, ' ', sizeof(big));
    const char tail[] = "<Error><Code>Late</Code></Error>";
    memcpy(big + sizeof(big) - sizeof(tail), tail, sizeof(tail));
    assert_int_equal(dss_bill_s3_error_parse(big, sizeof(big) - 1, code,
                                             sizeof(code), message,
                                             sizeof(message)),
                     0);
}

/* ---- keys and the bucket -------------------------------------------------- */

static void test_s3_url_check(void **state) {
    (void)state;
    char err[160];
    const char *ok = "https://minio.internal:9000/bills/$dss_bill_id.pdf";
    assert_int_equal(dss_bill_s3_url_check(ok, strlen(ok), err, sizeof(err)),
                     0);
    static const char *const bad[] = {
        "https://h/b/$dss_bill_id.pdf?versionId=1",
        "https://h/b/$dss_bill_id.pdf#x",
        "https://h/b/a%20b/$dss_bill_id.pdf",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(dss_bill_s3_url_check(bad[i], strlen(bad[i]), err,
                                               sizeof(err)),
                         -1);
    }
}

static void test_s3_keys_are_encoded_the_sigv4_way(void **state) {
    (void)state;
    char out[256];
    const char *url = "https://Host.Example:9000/bills/2024/A!b'(c)*:@~ x.pdf";
    size_t n = dss_bill_s3_encode_url(url, strlen(url), out, sizeof(out));
    assert_string_equal(out, "https://Host.Example:9000/bills/2024/"
                             "A%21b%27%28c%29%2A%3A%40~%20x.pdf");
    assert_int_equal(n, strlen(out));

    /* the probe's query is not part of the path */
    const char *probe = "http://h:9/b c?max-keys=0";
    dss_bill_s3_encode_url(probe, strlen(probe), out, sizeof(out));
    assert_string_equal(out, "http://h:9/b%20c?max-keys=0");

    /* bytes beyond ASCII, upper-case hex */
    const char *utf8 = "http://h/b/\xc3\xa9t\xc3\xa9";
    dss_bill_s3_encode_url(utf8, strlen(utf8), out, sizeof(out));
    assert_string_equal(out, "http://h/b/%C3%A9t%C3%A9");

    /* 3 * len + 1 always suffices; less may not */
    const char *worst = "http://h/!!!!";
    char exact[3 * 13 + 1];
    assert_int_not_equal(dss_bill_s3_encode_url(worst, 13, exact,
                                                sizeof(exact)),
                         0);
    assert_int_equal(dss_bill_s3_encode_url(worst, 13, exact, 20), 0);
}

static void test_H3_s3_probe_is_the_bucket(void **state) {
    (void)state;
    static const struct {
        const char *url;
        const char *probe; /* NULL: cannot be told */
    } cases[] = {
        {"https://bills.s3.eu-west-1.amazonaws.com/pdf/$dss_bill_id.pdf",
         "https://bills.s3.eu-west-1.amazonaws.com/?max-keys=0"},
        {"https://bills.s3-eu-west-1.amazonaws.com/$dss_bill_id.pdf",
         "https://bills.s3-eu-west-1.amazonaws.com/?max-keys=0"},
        {"http://127.0.0.1:9000/bills/$dss_bill_id.pdf",
         "http://127.0.0.1:9000/bills?max-keys=0"},
        {"https://ns.compat.objectstorage.eu-frankfurt-1.oraclecloud.com/"
         "bills/2024/$dss_bill_id.pdf",
         "https://ns.compat.objectstorage.eu-frankfurt-1.oraclecloud.com/"
         "bills?max-keys=0"},
        {"https://s3.eu-west-1.amazonaws.com/bills/$dss_bill_id.pdf",
         "https://s3.eu-west-1.amazonaws.com/bills?max-keys=0"},
        {"http://127.0.0.1:9000/$bucket/$dss_bill_id.pdf", NULL},
        {"http://127.0.0.1:9000/$dss_bill_id.pdf", NULL},
        {"https://$host.s3.amazonaws.com/$dss_bill_id.pdf", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[256];
        size_t n = dss_bill_s3_probe_url(cases[i].url, strlen(cases[i].url),
                                         out, sizeof(out));
        if (cases[i].probe == NULL) {
            assert_int_equal(n, 0);
        } else {
            assert_int_equal(n, strlen(cases[i].probe));
            assert_string_equal(out, cases[i].probe);
        }
    }
}

/* ---- SigV4: the request libcurl sends with the fetch's options ------------ */

static dss_bill_fetch_pool *shared_pool; /* NULL: a pool per exchange */

static const char not_found[] =
    "HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\n"
    "Content-Length: 68\r\nConnection: close\r\n\r\n"
    "<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>\n      \n";

static void test_D9_sigv4_matches_the_published_aws_example(void **state) {
    (void)state;
    /* AWS's SigV4 documentation, "Example: GET Object" (also what botocore
     * computes: tests/tools/s3_sigv4_vectors.py); the date and the Range
     * header come in as configured headers, the rest is the fetch's own */
    static const dss_bill_s3_options s3 = {
        .region = "us-east-1",
        .service = "s3",
        .access_key_id = "AKIAIOSFODNN7EXAMPLE",
        .secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    };
    static const char *const headers[] = {
        "Range: bytes=0-9", "x-amz-date: 20130524T000000Z", NULL};
    dss_bill_upstream_options o = {
        .connect_timeout_ms = 5000, .timeout_ms = 8000, .max_size = 1 << 20,
        .buffer_size = 1024, .temp_dir = "/tmp", .headers = headers,
        .s3 = &s3};
    char request[8192], detail[512], auth[512];

    dss_bill_outcome outcome = fetch_exchange(
        shared_pool, &o, "http://examplebucket.s3.amazonaws.com/test.txt",
        "examplebucket.s3.amazonaws.com:80", not_found, request,
        sizeof(request), detail, sizeof(detail));
    assert_int_equal(outcome, DSS_BILL_UPSTREAM_NOT_FOUND);
    assert_non_null(strstr(detail, "404 NoSuchKey: gone"));
    assert_non_null(fetch_header_value(request, "Authorization", auth, sizeof(auth)));
    assert_string_equal(
        auth,
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
        "s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;"
        "x-amz-date, Signature="
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    /* the secret itself never travels */
    assert_null(strstr(request, "wJalrXUtnFEMI"));
}

static void test_D9_sigv4_token_and_encoded_key_match_botocore(void **state) {
    (void)state;
    static const dss_bill_s3_options s3 = {
        .region = "eu-west-1",
        .service = "s3",
        .access_key_id = "AKIDEXAMPLE",
        .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        .token_header =
            "x-amz-security-token: FwoGZXIvYXdzEBYaDEXAMPLETOKEN+/=",
    };
    static const char *const headers[] = {"x-amz-date: 20240229T235959Z",
                                          NULL};
    dss_bill_upstream_options o = {
        .connect_timeout_ms = 5000, .timeout_ms = 8000, .max_size = 1 << 20,
        .buffer_size = 1024, .temp_dir = "/tmp", .headers = headers,
        .s3 = &s3};
    char request[8192], detail[512], auth[512], value[256];

    fetch_exchange(shared_pool, &o,
                   "http://minio.internal:9000/bills/2024/A!b'(c)*:@~.pdf",
                   "minio.internal:9000", not_found, request, sizeof(request),
                   detail, sizeof(detail));
    assert_non_null(strstr(request, "GET /bills/2024/A%21b%27%28c%29%2A%3A%40~"
                                    ".pdf HTTP/1.1\r\n"));
    assert_non_null(fetch_header_value(request, "Authorization", auth, sizeof(auth)));
    assert_string_equal(
        auth,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240229/eu-west-1/s3/"
        "aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;"
        "x-amz-security-token, Signature="
        "0f438bd712b9063e30a7919faa63675a5041505c150413a246753ec6541e2edc");
    assert_non_null(fetch_header_value(request, "x-amz-security-token", value,
                                 sizeof(value)));
    assert_string_equal(value, "FwoGZXIvYXdzEBYaDEXAMPLETOKEN+/=");
    assert_null(strstr(request, "wJalrXUtnFEMI"));
}

static void test_D9_sigv4_signatures_match_botocore(void **state) {
    (void)state;
    /* tests/tools/s3_sigv4_vectors.py prints each expected value */
    static const dss_bill_s3_options aws = {
        .region = "us-east-1", .service = "s3",
        .access_key_id = "AKIAIOSFODNN7EXAMPLE",
        .secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"};
    static const dss_bill_s3_options token = {
        .region = "eu-west-1", .service = "s3",
        .access_key_id = "AKIDEXAMPLE",
        .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        .token_header =
            "x-amz-security-token: FwoGZXIvYXdzEBYaDEXAMPLETOKEN+/="};
    static const dss_bill_s3_options probe = {
        .region = "eu-west-1", .service = "s3",
        .access_key_id = "AKIDEXAMPLE",
        .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"};
    static const dss_bill_s3_options oci = {
        .region = "eu-frankfurt-1", .service = "s3",
        .access_key_id = "0123456789abcdef0123456789abcdef01234567",
        .secret_access_key = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
                             "kkkkkkkkkkkkkkkk"};
    static const char *const range[] = {"Range: bytes=0-9", NULL};
    static const struct {
        const dss_bill_s3_options *s3;
        const char *url, *date;
        const char *const *headers;
        const char *want;
    } cases[] = {
        {&aws, "http://examplebucket.s3.amazonaws.com/test.txt",
         "20130524T000000Z", range,
         "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/"
         "us-east-1/s3/aws4_request, SignedHeaders=host;range;"
         "x-amz-content-sha256;x-amz-date, Signature="
         "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"},
        {&token,
         "http://minio.internal:9000/bills/2024/A%21b%27%28c%29%2A%3A%40~.pdf",
         "20240229T235959Z", NULL,
         "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240229/eu-west-1/s3/"
         "aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;"
         "x-amz-security-token, Signature="
         "0f438bd712b9063e30a7919faa63675a5041505c150413a246753ec6541e2edc"},
        {&probe, "https://dss-bills.s3.eu-west-1.amazonaws.com/?max-keys=0",
         "20261201T170000Z", NULL,
         "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/eu-west-1/s3/"
         "aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
         "Signature="
         "ef92edfe228fa53a8e159af1a1ccd45a2abbf88d169e759273f59d379f5fa5c7"},
        {&oci,
         "https://ns.compat.objectstorage.eu-frankfurt-1.oraclecloud.com/"
         "dss-bills/bills/%C3%A9%201.pdf",
         "20261231T235959Z", NULL,
         "AWS4-HMAC-SHA256 Credential=0123456789abcdef0123456789abcdef01234567"
         "/20261231/eu-frankfurt-1/s3/aws4_request, SignedHeaders=host;"
         "x-amz-content-sha256;x-amz-date, Signature="
         "41f38ea1023db40531d5b51d09ef71579e1b468048fb0eabafded384878caff6"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[512];
        size_t n = dss_bill_s3_authorization(cases[i].s3, cases[i].url,
                                             cases[i].date, cases[i].headers,
                                             out, sizeof(out));
        assert_int_equal(n, strlen(cases[i].want));
        assert_string_equal(out, cases[i].want);
    }
    /* no host, or a buffer too small: nothing */
    char small[16];
    assert_int_equal(dss_bill_s3_authorization(&aws, "http:///x",
                                               "20130524T000000Z", NULL, small,
                                               sizeof(small)),
                     0);
    assert_int_equal(dss_bill_s3_authorization(
                         &aws, "http://h/x", "20130524T000000Z", NULL, small,
                         sizeof(small)),
                     0);
}

static void test_D9_fetch_signs_with_the_current_time(void **state) {
    (void)state;
    /* without a fixed x-amz-date, the fetch signs now, and its signature is
     * the one the (vector-checked) signer gives for that time */
    static const dss_bill_s3_options s3 = {
        .region = "eu-west-1", .service = "s3",
        .access_key_id = "AKIDEXAMPLE", .secret_access_key = "S3CR3T/x+y"};
    dss_bill_upstream_options o = {
        .connect_timeout_ms = 5000, .timeout_ms = 8000, .max_size = 1 << 20,
        .buffer_size = 1024, .temp_dir = "/tmp", .s3 = &s3};
    char request[8192], detail[512], auth[512], date[64], want[512];
    time_t before = time(NULL);
    fetch_exchange(shared_pool, &o,
                   "http://bills.s3.eu-west-1.amazonaws.com/a b.pdf",
                   "bills.s3.eu-west-1.amazonaws.com:80", not_found, request,
                   sizeof(request), detail, sizeof(detail));
    assert_non_null(strstr(request, "GET /a%20b.pdf HTTP/1.1\r\n"));
    assert_non_null(strstr(request, "\r\nHost: bills.s3.eu-west-1."
                                    "amazonaws.com\r\n"));
    assert_non_null(fetch_header_value(request, "x-amz-date", date, sizeof(date)));
    struct tm tm = {0};
    assert_non_null(strptime(date, "%Y%m%dT%H%M%SZ", &tm));
    time_t signed_at = timegm(&tm);
    assert_true(signed_at >= before - 1 && signed_at <= time(NULL) + 1);
    assert_non_null(fetch_header_value(request, "Authorization", auth,
                                 sizeof(auth)));
    assert_int_not_equal(dss_bill_s3_authorization(
                             &s3, "http://bills.s3.eu-west-1.amazonaws.com/"
                                  "a%20b.pdf",
                             date, NULL, want, sizeof(want)),
                         0);
    assert_string_equal(auth, want);
    assert_null(strstr(request, "S3CR3T"));
}

static void test_D9_signing_key_follows_the_date(void **state) {
    (void)state;
    /* a worker keeps the derived key per day: across midnight (UTC) the
     * next fetch of the same location must use the new day's key */
    static const dss_bill_s3_options s3 = {
        .region = "eu-west-1", .service = "s3",
        .access_key_id = "AKIDEXAMPLE", .secret_access_key = "S3CR3T/x+y"};
    static const char *const days[][2] = {
        {"x-amz-date: 20240229T235959Z", NULL},
        {"x-amz-date: 20240301T000001Z", NULL},
        {"x-amz-date: 20240229T235959Z", NULL},
    };
    shared_pool = dss_bill_fetch_pool_create(1, 0);
    for (size_t i = 0; i < sizeof(days) / sizeof(days[0]); i++) {
        dss_bill_upstream_options o = {
            .connect_timeout_ms = 5000, .timeout_ms = 8000,
            .max_size = 1 << 20, .buffer_size = 1024, .temp_dir = "/tmp",
            .headers = days[i], .s3 = &s3};
        char request[8192], detail[512], auth[512], want[512];
        fetch_exchange(shared_pool, &o,
                       "http://bills.s3.eu-west-1.amazonaws.com/1.pdf",
                       "bills.s3.eu-west-1.amazonaws.com:80", not_found,
                       request, sizeof(request), detail, sizeof(detail));
        assert_non_null(
            fetch_header_value(request, "Authorization", auth, sizeof(auth)));
        assert_int_not_equal(
            dss_bill_s3_authorization(
                &s3, "http://bills.s3.eu-west-1.amazonaws.com/1.pdf",
                days[i][0] + 12, days[i], want, sizeof(want)),
            0);
        assert_string_equal(auth, want);
    }
    dss_bill_fetch_pool_destroy(shared_pool);
    shared_pool = NULL;
}

/* ---- D5, D6: what S3's answers become ------------------------------------ */

static void test_D5_D6_s3_answers(void **state) {
    (void)state;
    static dss_bill_s3_options s3 = {
        .region = "eu-west-1",
        .service = "s3",
        .access_key_id = "AKIDEXAMPLE",
        .secret_access_key = "TOPSECRETKEY",
    };
    dss_bill_upstream_options o = {
        .connect_timeout_ms = 5000, .timeout_ms = 8000, .max_size = 1 << 20,
        .buffer_size = 1024, .temp_dir = "/tmp", .s3 = &s3};
#define S3_ANSWER(status, code, message)                                       \
    "HTTP/1.1 " status "\r\nConnection: close\r\n\r\n<?xml version=\"1.0\"?>"  \
    "<Error><Code>" code "</Code><Message>" message "</Message></Error>"
    static const struct {
        int missing; /* dss_bill_upstream_s3_access_denied missing */
        const char *response;
        dss_bill_outcome outcome;
        const char *detail;
    } cases[] = {
        {0, S3_ANSWER("404 Not Found", "NoSuchKey", "The key does not exist"),
         DSS_BILL_UPSTREAM_NOT_FOUND, "404 NoSuchKey: The key does not exist"},
        {0, S3_ANSWER("404 Not Found", "NoSuchBucket", "no bucket"),
         DSS_BILL_UPSTREAM_STATUS, "404 NoSuchBucket: no bucket"},
        {0, S3_ANSWER("403 Forbidden", "AccessDenied", "Access Denied"),
         DSS_BILL_UPSTREAM_STATUS, "403 AccessDenied: Access Denied"},
        {1, S3_ANSWER("403 Forbidden", "AccessDenied", "Access Denied"),
         DSS_BILL_UPSTREAM_NOT_FOUND, "taken as missing"},
        {1, S3_ANSWER("403 Forbidden", "SignatureDoesNotMatch", "bad sig"),
         DSS_BILL_UPSTREAM_STATUS, "403 SignatureDoesNotMatch: bad sig"},
        {1, S3_ANSWER("403 Forbidden", "RequestTimeTooSkewed", "skew"),
         DSS_BILL_UPSTREAM_STATUS, "403 RequestTimeTooSkewed: skew"},
        {1, S3_ANSWER("400 Bad Request", "ExpiredToken", "expired"),
         DSS_BILL_UPSTREAM_STATUS, "400 ExpiredToken: expired"},
        {0, S3_ANSWER("503 Slow Down", "SlowDown", "Please reduce"),
         DSS_BILL_UPSTREAM_STATUS, "503 SlowDown: Please reduce"},
        {1, "HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n",
         DSS_BILL_UPSTREAM_STATUS, "object store answered 403"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char request[8192], detail[512];
        s3.access_denied_is_missing = cases[i].missing;
        dss_bill_outcome outcome = fetch_exchange(
            shared_pool, &o, "http://bills.s3.eu-west-1.amazonaws.com/1.pdf",
            "bills.s3.eu-west-1.amazonaws.com:80", cases[i].response, request,
            sizeof(request), detail, sizeof(detail));
        if (outcome != cases[i].outcome ||
            strstr(detail, cases[i].detail) == NULL) {
            fail_msg("case %zu: outcome %d, detail \"%s\"", i, outcome,
                     detail);
        }
        assert_null(strstr(detail, "TOPSECRETKEY"));
        assert_null(strstr(request, "TOPSECRETKEY"));
    }
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_D9_credentials_profiles),
        cmocka_unit_test(test_D9_credentials_errors_never_quote_the_file),
        cmocka_unit_test(test_region_and_service_names),
        cmocka_unit_test(test_D6_s3_error_code_and_message),
        cmocka_unit_test(test_D6_s3_error_bodies_that_are_not),
        cmocka_unit_test(test_s3_url_check),
        cmocka_unit_test(test_s3_keys_are_encoded_the_sigv4_way),
        cmocka_unit_test(test_H3_s3_probe_is_the_bucket),
        cmocka_unit_test(test_D9_sigv4_matches_the_published_aws_example),
        cmocka_unit_test(test_D9_sigv4_token_and_encoded_key_match_botocore),
        cmocka_unit_test(test_D9_sigv4_signatures_match_botocore),
        cmocka_unit_test(test_D9_fetch_signs_with_the_current_time),
        cmocka_unit_test(test_D9_signing_key_follows_the_date),
        cmocka_unit_test(test_D5_D6_s3_answers),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}

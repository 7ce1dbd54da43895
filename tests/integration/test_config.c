/* Integration tests of the module's configuration: "nginx -t" with the built
 * module must refuse every configuration mistake with a message that names
 * the directive (or the location) at fault, and accept a good configuration.
 * Nothing is started: each test only runs "nginx -t" in one shared prefix. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static dss_nginx nginx;

/* nginx -t prints a handful of lines; room to spare for the whole output */
static char out[32768];

static int group_setup(void **state) {
    (void)state;
    return dss_nginx_prepare(&nginx);
}

static int group_teardown(void **state) {
    (void)state;
    dss_nginx_cleanup(&nginx);
    return 0;
}

/* Runs "nginx -t" on http_block; on a failed expectation the whole nginx
 * output is printed, so a changed message is seen, not guessed. */
static int test_config(const char *http_block) {
    out[0] = '\0';
    return dss_nginx_test_config(&nginx, http_block, out, sizeof(out));
}

static void assert_output_contains(const char *needle) {
    if (strstr(out, needle) == NULL) {
        fail_msg("nginx -t output lacks \"%s\":\n%s", needle, out);
    }
}

/* A refused configuration: non-zero exit, nginx's verdict and the specific
 * message. */
static void assert_refused(const char *http_block, const char *message) {
    int rc = test_config(http_block);
    if (rc == 0) {
        fail_msg("nginx -t accepted a bad configuration:\n%s", out);
    }
    assert_output_contains("test failed");
    assert_output_contains(message);
}

/* ...and the place (nginx.conf:<line>) nginx appends to a directive's
 * error, so the reader is sent to the right line. */
static void assert_rejected(const char *http_block, const char *message) {
    assert_refused(http_block, message);
    assert_output_contains("nginx.conf:");
}

static void assert_accepted(const char *http_block) {
    int rc = test_config(http_block);
    if (rc != 0) {
        fail_msg("nginx -t refused a good configuration (exit %d):\n%s", rc,
                 out);
    }
    assert_output_contains("test is successful");
}

/* One server on the test port around the given server-level lines. */
#define SERVER(body)                                                           \
    "server {\n"                                                               \
    "    listen 127.0.0.1:@PORT@;\n" body "}\n"

/* A bill location with a valid root, plus the directive under test. */
#define BILL_LOCATION(directive)                                               \
    SERVER("    location /dss/bill/ {\n"                                       \
           "        dss_bill;\n"                                               \
           "        dss_bill_root @PREFIX@/bills;\n"                           \
           "        " directive "\n"                                           \
           "    }\n")

/* An archive location whose URL names one bill for every id. */
#define ARCHIVE_LOCATION_FIXED                                                 \
    SERVER("    location /dss/bill/ {\n"                                       \
           "        dss_bill;\n"                                               \
           "        dss_bill_upstream http://archive/fixed.pdf;\n"             \
           "    }\n")

/* Line number (1-based) of the first line of nginx.conf containing needle,
 * or 0: where the harness put a directive, without counting its header. */
static int config_line_of(const char *needle) {
    size_t len;
    char *text = dss_read_file(dss_path(&nginx, "nginx.conf"), &len);
    assert_non_null(text);
    int line = 1, found = 0;
    for (char *p = text; *p; p++) {
        if (strncmp(p, needle, strlen(needle)) == 0) {
            found = line;
            break;
        }
        if (*p == '\n') {
            line++;
        }
    }
    free(text);
    return found;
}

/* ---- good configurations ------------------------------------------------- */

/* Every directive with a valid value, several bill locations, the id
 * variable used by a map and by dss_bill_path, and the health route as an
 * exact location relying on the server-level root. */
static void test_config_good_configuration_is_accepted(void **state) {
    (void)state;
    assert_accepted(
        "map $dss_bill_id $shard {\n"
        "    \"~^(?<head>[0-9]{3})\" $head;\n"
        "    default other;\n"
        "}\n" SERVER("    dss_bill_root @PREFIX@/bills;\n"
                     "    dss_bill_health_interval 2s;\n"
                     "    location = /dss/bill/healthcheck { dss_bill; }\n"
                     "    location /dss/bill/ {\n"
                     "        dss_bill;\n"
                     "        dss_bill_path $dss_bill_id.pdf;\n"
                     "        dss_bill_max_size 8m;\n"
                     "    }\n"
                     "    location /sharded/ {\n"
                     "        dss_bill;\n"
                     "        dss_bill_root @PREFIX@/sharded;\n"
                     "        dss_bill_path $shard/$dss_bill_id.pdf;\n"
                     "    }\n"
                     "    location /digits/ {\n"
                     "        dss_bill;\n"
                     "        dss_bill_id_chars 0-9;\n"
                     "        dss_bill_id_length 12 12;\n"
                     "    }\n"));
}

/* A root set once for the server serves every bill location below it. */
static void test_config_root_inherited_from_server_passes(void **state) {
    (void)state;
    assert_accepted(SERVER("    dss_bill_root @PREFIX@/bills;\n"
                           "    location /x/ { dss_bill; }\n"));
}

/* ...and one set at the http level too. */
static void test_config_root_inherited_from_http_passes(void **state) {
    (void)state;
    assert_accepted("dss_bill_root @PREFIX@/bills;\n" SERVER(
        "    location /x/ { dss_bill; }\n"));
}

/* ---- dss_bill ------------------------------------------------------------ */

/* Without a root anywhere the location cannot serve: the message names the
 * location and points at the "dss_bill" line of the file. */
static void test_config_missing_source_names_location(void **state) {
    (void)state;
    assert_rejected(SERVER("    location /x/ {\n"
                           "        dss_bill;\n"
                           "    }\n"),
                    "\"dss_bill\" in location \"/x/\" has no bill source: "
                    "set \"dss_bill_root\" or \"dss_bill_upstream\" in ");

    int line = config_line_of("        dss_bill;");
    assert_int_not_equal(line, 0);
    char where[PATH_MAX + 32];
    /* that line and no other: not the end of the http block as well */
    snprintf(where, sizeof(where), "or \"dss_bill_upstream\" in %s:%d\n",
             dss_path(&nginx, "nginx.conf"), line);
    assert_output_contains(where);
}

/* A root in a sibling location does not count for this one. */
static void test_config_root_of_sibling_location_does_not_count(void **state) {
    (void)state;
    assert_rejected(SERVER("    location /a/ {\n"
                           "        dss_bill;\n"
                           "        dss_bill_root @PREFIX@/bills;\n"
                           "    }\n"
                           "    location /b/ { dss_bill; }\n"),
                    "\"dss_bill\" in location \"/b/\" has no bill source");
}

/* The routes hang off the location's prefix: a regex has none. */
static void test_config_regex_location_rejected(void **state) {
    (void)state;
    assert_rejected(SERVER("    dss_bill_root @PREFIX@/bills;\n"
                           "    location ~ ^/dss/bill/ { dss_bill; }\n"),
                    "\"dss_bill\" needs a prefix or exact location such as "
                    "\"location /dss/bill/\", not \"^/dss/bill/\"");
}

static void test_config_named_location_rejected(void **state) {
    (void)state;
    assert_rejected(SERVER("    dss_bill_root @PREFIX@/bills;\n"
                           "    location / { try_files $uri @bills; }\n"
                           "    location @bills { dss_bill; }\n"),
                    "\"dss_bill\" needs a prefix or exact location such as "
                    "\"location /dss/bill/\", not \"@bills\"");
}

static void test_config_duplicate_dss_bill_rejected(void **state) {
    (void)state;
    assert_rejected(BILL_LOCATION("dss_bill;"),
                    "\"dss_bill\" directive is duplicate");
}

static void test_config_dss_bill_in_server_context_not_allowed(void **state) {
    (void)state;
    assert_rejected(SERVER("    dss_bill_root @PREFIX@/bills;\n"
                           "    dss_bill;\n"),
                    "\"dss_bill\" directive is not allowed here");
}

static void test_config_dss_bill_with_argument_rejected(void **state) {
    (void)state;
    assert_rejected(SERVER("    location /x/ {\n"
                           "        dss_bill on;\n"
                           "        dss_bill_root @PREFIX@/bills;\n"
                           "    }\n"),
                    "invalid number of arguments in \"dss_bill\" directive");
}

/* ---- dss_bill_root and dss_bill_path ------------------------------------- */

/* The health probe watches one fixed directory: variables belong in
 * dss_bill_path, and the message says so. */
static void test_config_root_with_variables_rejected(void **state) {
    (void)state;
    assert_rejected(SERVER("    location /x/ {\n"
                           "        dss_bill;\n"
                           "        dss_bill_root @PREFIX@/$host;\n"
                           "    }\n"),
                    "\"dss_bill_root\" does not take variables; use them in "
                    "\"dss_bill_path\"");
}

static void test_config_duplicate_root_rejected(void **state) {
    (void)state;
    assert_rejected(BILL_LOCATION("dss_bill_root /tmp;"),
                    "\"dss_bill_root\" directive is duplicate");
}

/* nginx resolves variable names after parsing: its message names the
 * variable but no file or line. */
static void test_config_path_with_unknown_variable_rejected(void **state) {
    (void)state;
    assert_refused(BILL_LOCATION("dss_bill_path $no_such_var.pdf;"),
                   "unknown \"no_such_var\" variable");
}

/* What can be judged before any request is refused, with the line, instead
 * of a 404 on every download while health says 200 (D5, issue 13). */
static void test_D5_config_path_that_cannot_name_a_bill_rejected(
    void **state) {
    (void)state;
    assert_rejected(BILL_LOCATION("dss_bill_path /etc/passwd;"),
                    "\"dss_bill_path\" \"/etc/passwd\" must be relative to "
                    "\"dss_bill_root\"");
    assert_rejected(BILL_LOCATION("dss_bill_path ../$dss_bill_id.pdf;"),
                    "\"dss_bill_path\" \"../$dss_bill_id.pdf\" has an empty, "
                    "\".\" or \"..\" segment");
    assert_rejected(BILL_LOCATION("dss_bill_path a//$dss_bill_id.pdf;"),
                    "has an empty, \".\" or \"..\" segment");
    assert_rejected(BILL_LOCATION("dss_bill_path $dss_bill_id/;"),
                    "has an empty, \".\" or \"..\" segment");
    /* D9: one file for every bill id */
    assert_rejected(BILL_LOCATION("dss_bill_path fixed.pdf;"),
                    "\"dss_bill_path\" \"fixed.pdf\" holds no variable: "
                    "every bill id would get the same file");
    assert_rejected(ARCHIVE_LOCATION_FIXED,
                    "\"dss_bill_upstream\" \"http://archive/fixed.pdf\" "
                    "holds no variable");
    /* a segment with a variable is judged per request */
    assert_accepted(BILL_LOCATION("dss_bill_path $dss_bill_id/a.pdf;"));
    assert_accepted(BILL_LOCATION("dss_bill_path ..$dss_bill_id.pdf;"));
}

/* Variables that need not come from the bill id: a warning. */
static void test_D9_config_path_without_the_bill_id_warns(void **state) {
    (void)state;
    assert_accepted(BILL_LOCATION("dss_bill_path $arg_p.pdf;"));
    assert_output_contains("[warn]");
    assert_output_contains("\"dss_bill_path\" \"$arg_p.pdf\" does not use "
                           "$dss_bill_id");
    assert_accepted(BILL_LOCATION("dss_bill_path $dss_bill_id.pdf;"));
    if (strstr(out, "does not use") != NULL) {
        fail_msg("a warning for a path that uses $dss_bill_id:\n%s", out);
    }
}

/* Storage may be mounted after nginx starts: a warning, not an error. */
static void test_H3_config_missing_root_warns(void **state) {
    (void)state;
    assert_accepted(SERVER("    location /dss/bill/ {\n"
                           "        dss_bill;\n"
                           "        dss_bill_root @PREFIX@/not-yet-mounted;\n"
                           "    }\n"));
    assert_output_contains("[warn]");
    assert_output_contains("not-yet-mounted\" cannot be read; the health "
                           "check answers 503 until it can");
    assert_output_contains("nginx.conf:");
    assert_accepted(SERVER("    location /dss/bill/ {\n"
                           "        dss_bill;\n"
                           "        dss_bill_root @PREFIX@/cert.pem;\n"
                           "    }\n"));
    assert_output_contains("cert.pem\" is not a directory; the health "
                           "check answers 503 until it is");
}

/* ---- dss_bill_max_size --------------------------------------------------- */

static void test_config_max_size_zero_rejected(void **state) {
    (void)state;
    assert_rejected(BILL_LOCATION("dss_bill_max_size 0;"),
                    "\"dss_bill_max_size\" directive must be greater than "
                    "zero");
}

static void test_config_max_size_not_a_size_rejected(void **state) {
    (void)state;
    assert_rejected(BILL_LOCATION("dss_bill_max_size abc;"),
                    "\"dss_bill_max_size\" directive invalid value");
}

/* ---- dss_bill_id_chars --------------------------------------------------- */

static void test_config_id_chars_allowing_slash_rejected(void **state) {
    (void)state;
    assert_rejected(BILL_LOCATION("dss_bill_id_chars a-z/;"),
                    "invalid \"dss_bill_id_chars\" \"a-z/\": the character "
                    "class allows '/', which could change a path or URL");
}

/* A range can let a forbidden character in without naming it ('.' and '/'
 * lie between '+' and '0'). */
static void test_config_id_chars_range_spanning_dot_rejected(void **state) {
    (void)state;
    assert_rejected(BILL_LOCATION("dss_bill_id_chars +-9;"),
                    "invalid \"dss_bill_id_chars\" \"+-9\": the character "
                    "class allows '.'");
}

static void test_config_id_chars_reversed_range_rejected(void **state) {
    (void)state;
    assert_rejected(BILL_LOCATION("dss_bill_id_chars z-a;"),
                    "invalid \"dss_bill_id_chars\" \"z-a\": the range "
                    "\"z-a\" is reversed");
}

/* ---- dss_bill_id_length -------------------------------------------------- */

static void test_config_id_length_zero_minimum_rejected(void **state) {
    (void)state;
    assert_rejected(BILL_LOCATION("dss_bill_id_length 0 5;"),
                    "invalid \"dss_bill_id_length\" \"0 5\": the minimum "
                    "length must be at least 1");
}

static void test_config_id_length_minimum_above_maximum_rejected(void **state) {
    (void)state;
    assert_rejected(BILL_LOCATION("dss_bill_id_length 10 5;"),
                    "invalid \"dss_bill_id_length\" \"10 5\": the minimum "
                    "length exceeds the maximum");
}

static void test_config_id_length_not_numbers_rejected(void **state) {
    (void)state;
    assert_rejected(BILL_LOCATION("dss_bill_id_length x y;"),
                    "invalid \"dss_bill_id_length\" \"x y\": expected two "
                    "whole numbers");
}

static void test_config_id_length_above_limit_rejected(void **state) {
    (void)state;
    assert_rejected(BILL_LOCATION("dss_bill_id_length 1 500;"),
                    "invalid \"dss_bill_id_length\" \"1 500\": the maximum "
                    "length must not exceed 200");
}

static void test_config_id_length_one_argument_rejected(void **state) {
    (void)state;
    assert_rejected(BILL_LOCATION("dss_bill_id_length 12;"),
                    "invalid number of arguments in \"dss_bill_id_length\" "
                    "directive");
}

/* ---- dss_bill_health_interval -------------------------------------------- */

static void test_config_health_interval_zero_rejected(void **state) {
    (void)state;
    assert_rejected(BILL_LOCATION("dss_bill_health_interval 0;"),
                    "\"dss_bill_health_interval\" directive must be greater "
                    "than zero");
}

/* ---- the archive source ---------------------------------------------------
 */

/* An archive-only location, every archive directive with a valid value. */
static void test_config_archive_location_is_accepted(void **state) {
    (void)state;
    assert_accepted(SERVER(
        "    location /dss/bill/ {\n"
        "        dss_bill;\n"
        "        dss_bill_upstream "
        "https://archive.internal/api/$dss_bill_id/pdf;\n"
        "        dss_bill_upstream_connect_timeout 1s;\n"
        "        dss_bill_upstream_timeout 3s;\n"
        "        dss_bill_upstream_buffer_size 16k;\n"
        "        dss_bill_upstream_redirects 1;\n"
        "        dss_bill_upstream_ssl_verify on;\n"
        "        dss_bill_upstream_ssl_trusted_certificate @PREFIX@/cert.pem;\n"
        "        dss_bill_upstream_ssl_certificate @PREFIX@/cert.pem;\n"
        "        dss_bill_upstream_ssl_certificate_key @PREFIX@/key.pem;\n"
        "        dss_bill_upstream_basic_auth dss:secret;\n"
        "        dss_bill_upstream_header X-Api-Key 0123abcd;\n"
        "        dss_bill_upstream_temp_path @PREFIX@/temp;\n"
        "        dss_bill_upstream_health_url https://archive.internal/ping;\n"
        "    }\n"));
}

#define ARCHIVE_LOCATION(directive)                                            \
    SERVER("    location /dss/bill/ {\n"                                       \
           "        dss_bill;\n"                                               \
           "        dss_bill_upstream http://archive/$dss_bill_id;\n"          \
           "        " directive "\n"                                           \
           "    }\n")

static void test_config_archive_url_scheme_checked(void **state) {
    (void)state;
    assert_rejected(
        SERVER("    location /b/ {\n"
               "        dss_bill;\n"
               "        dss_bill_upstream file:///etc/$dss_bill_id;\n"
               "    }\n"),
        "invalid \"dss_bill_upstream\" \"file:///etc/$dss_bill_id\": "
        "the URL must start with \"http://\" or \"https://\"");
}

static void test_config_archive_url_without_credentials(void **state) {
    (void)state;
    assert_rejected(SERVER("    location /b/ {\n"
                           "        dss_bill;\n"
                           "        dss_bill_upstream http://u:p@archive/x;\n"
                           "    }\n"),
                    "must not hold credentials; use "
                    "\"dss_bill_upstream_basic_auth\"");
}

static void test_config_archive_timeouts_ordered(void **state) {
    (void)state;
    assert_rejected(ARCHIVE_LOCATION("dss_bill_upstream_connect_timeout 5s;"),
                    "\"dss_bill_upstream_connect_timeout\" exceeds "
                    "\"dss_bill_upstream_timeout\" in location \"/dss/bill/\"");
}

static void test_config_archive_client_certificate_needs_key(void **state) {
    (void)state;
    assert_rejected(ARCHIVE_LOCATION(
                        "dss_bill_upstream_ssl_certificate @PREFIX@/cert.pem;"),
                    "\"dss_bill_upstream_ssl_certificate\" and "
                    "\"dss_bill_upstream_ssl_certificate_key\" go together");
}

static void test_D8_config_pdf_check_values(void **state) {
    (void)state;
    assert_accepted(BILL_LOCATION("dss_bill_pdf_check signature;"));
    assert_accepted(BILL_LOCATION("dss_bill_pdf_check complete;"));
    assert_rejected(BILL_LOCATION("dss_bill_pdf_check maybe;"),
                    "\"dss_bill_pdf_check\" must be \"complete\" or "
                    "\"signature\", not \"maybe\"");
    assert_rejected(BILL_LOCATION("dss_bill_pdf_check complete;\n"
                                  "dss_bill_pdf_check signature;"),
                    "\"dss_bill_pdf_check\" directive is duplicate");
}

/* The archive's TLS files are read and checked by nginx -t, each message
 * with the directive, the file and its line (issue 13). */
static void test_config_archive_tls_files_are_checked(void **state) {
    (void)state;
    static const char garbage[] = "not a certificate\n";
    dss_write_file(dss_path(&nginx, "garbage.pem"), garbage,
                   sizeof(garbage) - 1);

    assert_rejected(
        ARCHIVE_LOCATION("dss_bill_upstream_ssl_trusted_certificate "
                         "@PREFIX@/missing.pem;"),
        "missing.pem\" failed (2: No such file or directory)");
    assert_rejected(
        ARCHIVE_LOCATION("dss_bill_upstream_ssl_trusted_certificate "
                         "@PREFIX@/garbage.pem;"),
        "invalid \"dss_bill_upstream_ssl_trusted_certificate\"");
    assert_output_contains("no certificate in PEM format");
    /* a key where a certificate belongs, and the other way round */
    assert_rejected(ARCHIVE_LOCATION(
                        "dss_bill_upstream_ssl_certificate @PREFIX@/key.pem;\n"
                        "dss_bill_upstream_ssl_certificate_key "
                        "@PREFIX@/key.pem;"),
                    "invalid \"dss_bill_upstream_ssl_certificate\"");
    assert_rejected(ARCHIVE_LOCATION(
                        "dss_bill_upstream_ssl_certificate @PREFIX@/cert.pem;\n"
                        "dss_bill_upstream_ssl_certificate_key "
                        "@PREFIX@/cert.pem;"),
                    "no unencrypted private key in PEM format");
}

static void test_config_archive_key_must_match_certificate(void **state) {
    (void)state;
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
             "-out '%s' 2>/dev/null && openssl pkey -in '%s' -aes256 "
             "-passout pass:secret -out '%s' 2>/dev/null",
             dss_path(&nginx, "other-key.pem"),
             dss_path(&nginx, "other-key.pem"),
             dss_path(&nginx, "encrypted-key.pem"));
    assert_int_equal(system(cmd), 0);

    assert_rejected(ARCHIVE_LOCATION(
                        "dss_bill_upstream_ssl_certificate @PREFIX@/cert.pem;\n"
                        "dss_bill_upstream_ssl_certificate_key "
                        "@PREFIX@/other-key.pem;"),
                    "the private key does not match the certificate");
    assert_rejected(ARCHIVE_LOCATION(
                        "dss_bill_upstream_ssl_certificate @PREFIX@/cert.pem;\n"
                        "dss_bill_upstream_ssl_certificate_key "
                        "@PREFIX@/encrypted-key.pem;"),
                    "no unencrypted private key in PEM format");
    /* the matching pair, and a CA bundle, pass */
    assert_accepted(ARCHIVE_LOCATION(
        "dss_bill_upstream_ssl_trusted_certificate @PREFIX@/cert.pem;\n"
        "dss_bill_upstream_ssl_certificate @PREFIX@/cert.pem;\n"
        "dss_bill_upstream_ssl_certificate_key @PREFIX@/key.pem;"));
}

static void test_config_archive_basic_auth_needs_colon(void **state) {
    (void)state;
    assert_rejected(ARCHIVE_LOCATION("dss_bill_upstream_basic_auth dss;"),
                    "\"dss_bill_upstream_basic_auth\" directive expects "
                    "\"user:password\"");
}

static void test_config_archive_header_name_checked(void **state) {
    (void)state;
    assert_rejected(ARCHIVE_LOCATION("dss_bill_upstream_header \"X-Key:\" v;"),
                    "invalid header name \"X-Key:\"");
}

static void test_config_archive_buffer_and_redirects_bounded(void **state) {
    (void)state;
    assert_rejected(ARCHIVE_LOCATION("dss_bill_upstream_buffer_size 10;"),
                    "must be between 64 and 16777216");
    assert_rejected(ARCHIVE_LOCATION("dss_bill_upstream_redirects 11;"),
                    "must be between 0 and 10");
}

static void test_config_archive_health_url_checked_with_its_line(
    void **state) {
    (void)state;
    assert_rejected(ARCHIVE_LOCATION(
                        "dss_bill_upstream_health_url ftp://archive/;"),
                    "invalid \"dss_bill_upstream_health_url\" "
                    "\"ftp://archive/\": the URL must start with");
}

static void test_config_archive_variable_host_needs_health_url(void **state) {
    (void)state;
    assert_rejected(SERVER("    location /b/ {\n"
                           "        dss_bill;\n"
                           "        dss_bill_upstream http://$host/x;\n"
                           "    }\n"),
                    "set \"dss_bill_upstream_health_url\" (or \"off\") for "
                    "location \"/b/\"");
    assert_accepted(SERVER("    location /b/ {\n"
                           "        dss_bill;\n"
                           "        dss_bill_upstream http://$host/x;\n"
                           "        dss_bill_upstream_health_url off;\n"
                           "    }\n"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_good_configuration_is_accepted),
        cmocka_unit_test(test_config_root_inherited_from_server_passes),
        cmocka_unit_test(test_config_root_inherited_from_http_passes),
        cmocka_unit_test(test_config_missing_source_names_location),
        cmocka_unit_test(test_config_root_of_sibling_location_does_not_count),
        cmocka_unit_test(test_config_regex_location_rejected),
        cmocka_unit_test(test_config_named_location_rejected),
        cmocka_unit_test(test_config_duplicate_dss_bill_rejected),
        cmocka_unit_test(test_config_dss_bill_in_server_context_not_allowed),
        cmocka_unit_test(test_config_dss_bill_with_argument_rejected),
        cmocka_unit_test(test_config_root_with_variables_rejected),
        cmocka_unit_test(test_config_duplicate_root_rejected),
        cmocka_unit_test(test_config_path_with_unknown_variable_rejected),
        cmocka_unit_test(test_D5_config_path_that_cannot_name_a_bill_rejected),
        cmocka_unit_test(test_H3_config_missing_root_warns),
        cmocka_unit_test(test_D9_config_path_without_the_bill_id_warns),
        cmocka_unit_test(test_config_max_size_zero_rejected),
        cmocka_unit_test(test_config_max_size_not_a_size_rejected),
        cmocka_unit_test(test_config_id_chars_allowing_slash_rejected),
        cmocka_unit_test(test_config_id_chars_range_spanning_dot_rejected),
        cmocka_unit_test(test_config_id_chars_reversed_range_rejected),
        cmocka_unit_test(test_config_id_length_zero_minimum_rejected),
        cmocka_unit_test(test_config_id_length_minimum_above_maximum_rejected),
        cmocka_unit_test(test_config_id_length_not_numbers_rejected),
        cmocka_unit_test(test_config_id_length_above_limit_rejected),
        cmocka_unit_test(test_config_id_length_one_argument_rejected),
        cmocka_unit_test(test_config_health_interval_zero_rejected),
        cmocka_unit_test(test_config_archive_location_is_accepted),
        cmocka_unit_test(test_config_archive_url_scheme_checked),
        cmocka_unit_test(test_config_archive_url_without_credentials),
        cmocka_unit_test(test_config_archive_timeouts_ordered),
        cmocka_unit_test(test_config_archive_client_certificate_needs_key),
        cmocka_unit_test(test_config_archive_tls_files_are_checked),
        cmocka_unit_test(test_D8_config_pdf_check_values),
        cmocka_unit_test(test_config_archive_key_must_match_certificate),
        cmocka_unit_test(test_config_archive_basic_auth_needs_colon),
        cmocka_unit_test(test_config_archive_header_name_checked),
        cmocka_unit_test(test_config_archive_buffer_and_redirects_bounded),
        cmocka_unit_test(test_config_archive_variable_host_needs_health_url),
        cmocka_unit_test(test_config_archive_health_url_checked_with_its_line),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

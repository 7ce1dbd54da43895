/* Integration tests of dss-bill-check (build/dss-bill-check), the binary
 * run as a utility would run it:
 *  - against the module serving from a root and from an archive: every
 *    check passes;
 *  - against stock nginx configurations written without the module: it
 *    fails, naming the rules each breaks;
 *  - against bad_endpoint, broken one way per route prefix: every check
 *    fails (or warns) when, and only when, its rule is broken;
 *  - TLS (old protocol, untrusted, expiring and expired certificates),
 *    --json, --watch, exit statuses, and passwords never printed. */

#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bad_endpoint.h"
#include "fault_origin.h"
#include "harness.h"

/* The module tests' Basic-auth password: distinctive, so that finding it
 * anywhere in the output means it was printed. */
#define PASSWORD "Pw-7c1e-Quokka-93"

static bad_endpoint bad;
static fault_origin origin;
static char bad_url[64];

/* ---- running the binary -------------------------------------------------- */

typedef struct {
    int status; /* exit status, or -1 */
    char out[1 << 17];
    char err[1 << 14];
} run_result;

static void append(char *buf, size_t cap, size_t *len, const char *data,
                   size_t n) {
    if (*len + n >= cap) {
        n = cap - 1 - *len;
    }
    memcpy(buf + *len, data, n);
    *len += n;
    buf[*len] = '\0';
}

static pid_t spawn(const char *const *args, int *out_fd, int *err_fd) {
    int out[2], err[2];
    if (pipe(out) != 0 || pipe(err) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(out[0]);
        close(err[0]);
        const char *argv[64] = {DSS_CHECK_BINARY};
        for (int i = 0; args[i] && i < 62; i++) {
            argv[i + 1] = args[i];
        }
        execv(DSS_CHECK_BINARY, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    *out_fd = out[0];
    *err_fd = err[0];
    return pid;
}

/* Reads what the child writes until it exits (at most 120 s), then reaps
 * it. Stops reading early when stop_at appears on stdout (then returns
 * with the child still running: status -2). */
static void collect(pid_t pid, int out_fd, int err_fd, run_result *r,
                    size_t *out_len, const char *stop_at) {
    size_t err_len = 0;
    long long deadline = dss_now_ms() + 120000;
    int open_fds = 2;
    struct pollfd p[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    while (open_fds > 0 && dss_now_ms() < deadline) {
        if (stop_at && strstr(r->out, stop_at)) {
            r->status = -2;
            return;
        }
        if (poll(p, 2, 200) <= 0) {
            continue;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            char buf[4096];
            ssize_t n = read(p[i].fd, buf, sizeof(buf));
            if (n <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
            } else if (i == 0) {
                append(r->out, sizeof(r->out), out_len, buf, (size_t)n);
            } else {
                append(r->err, sizeof(r->err), &err_len, buf, (size_t)n);
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        if (p[i].fd >= 0) {
            close(p[i].fd);
        }
    }
    if (open_fds > 0) {
        kill(pid, SIGKILL);
        fprintf(stderr, "dss-bill-check did not finish within 120 s\n");
    }
    int st = 0;
    waitpid(pid, &st, 0);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs the checker with the NULL-terminated arguments; prints its output
 * when DSS_CHECK_VERBOSE is set or it ran abnormally. */
static run_result *run_checker_args(const char *const *args) {
    run_result *r = calloc(1, sizeof(*r));
    int out_fd, err_fd;
    size_t out_len = 0;
    pid_t pid = spawn(args, &out_fd, &err_fd);
    assert_true(pid > 0);
    collect(pid, out_fd, err_fd, r, &out_len, NULL);
    if (getenv("DSS_CHECK_VERBOSE") || r->status < 0 || r->status > 2) {
        fprintf(stderr, "---- dss-bill-check (exit %d):\n%s%s", r->status,
                r->out, r->err);
    }
    return r;
}
#define run_checker(...)                                                       \
    run_checker_args((const char *const[]){__VA_ARGS__, NULL})

/* The report line of a check, e.g. line_of(r, "D3 range-ignored"), or NULL. */
static const char *line_of(const run_result *r, const char *check) {
    static char line[4096];
    for (const char *at = r->out; *at;) {
        size_t len = strcspn(at, "\n");
        if (len > 5 && len < sizeof(line) &&
            strncmp(at + 5, check, strlen(check)) == 0 &&
            at[5 + strlen(check)] == ':') {
            memcpy(line, at, len);
            line[len] = '\0';
            return line;
        }
        at += len + (at[len] == '\n');
    }
    return NULL;
}

/* Asserts that check's verdict is word ("PASS", "FAIL", ...). */
static void expect_verdict(const run_result *r, const char *word,
                           const char *check) {
    const char *line = line_of(r, check);
    if (line == NULL || strncmp(line, word, 4) != 0) {
        fail_msg("expected %s %s, got: %s\n---- output:\n%s%s", word, check,
                 line ? line : "(no such line)", r->out, r->err);
    }
}

/* The checks that are not PASS (and not SKIP): "FAIL D3 x,WARN H1 y," */
static void non_passing(const run_result *r, char *out, size_t size) {
    out[0] = '\0';
    for (const char *at = r->out; *at;) {
        size_t len = strcspn(at, "\n");
        if (strncmp(at, "FAIL ", 5) == 0 || strncmp(at, "WARN ", 5) == 0) {
            size_t name = strcspn(at, ":");
            if (name < len && strlen(out) + name + 2 < size) {
                strncat(out, at, name);
                strcat(out, ",");
            }
        }
        at += len + (at[len] == '\n');
    }
}

static void assert_no_password(const run_result *r, const char *password) {
    if (strstr(r->out, password) || strstr(r->err, password)) {
        fail_msg("the password appears in the output:\n%s%s", r->out, r->err);
    }
}

/* ---- a minimal JSON validator (independent of the checker's writer) ----- */

static const char *json_value(const char *p, int depth);

static const char *json_ws(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') {
        p++;
    }
    return p;
}

static const char *json_str(const char *p) {
    if (*p++ != '"') {
        return NULL;
    }
    while (*p != '"') {
        if ((unsigned char)*p < 0x20) {
            return NULL; /* control characters must be escaped */
        }
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++) {
                    if (!isxdigit((unsigned char)p[i])) {
                        return NULL;
                    }
                }
                p += 4;
            } else if (!strchr("\"\\/bfnrt", *p)) {
                return NULL;
            }
        }
        p++;
    }
    return p + 1;
}

static const char *json_value(const char *p, int depth) {
    p = json_ws(p);
    if (depth > 32) {
        return NULL;
    }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        int object = *p == '{';
        p = json_ws(p + 1);
        if (*p == close) {
            return p + 1;
        }
        for (;;) {
            if (object) {
                if (!(p = json_str(json_ws(p)))) {
                    return NULL;
                }
                p = json_ws(p);
                if (*p++ != ':') {
                    return NULL;
                }
            }
            if (!(p = json_value(p, depth + 1))) {
                return NULL;
            }
            p = json_ws(p);
            if (*p == close) {
                return p + 1;
            }
            if (*p++ != ',') {
                return NULL;
            }
        }
    }
    if (*p == '"') {
        return json_str(p);
    }
    if (strncmp(p, "true", 4) == 0 || strncmp(p, "null", 4) == 0) {
        return p + 4;
    }
    if (strncmp(p, "false", 5) == 0) {
        return p + 5;
    }
    const char *start = p;
    p += *p == '-';
    while (isdigit((unsigned char)*p)) {
        p++;
    }
    return p > start ? p : NULL;
}

static void assert_json_document(const char *text) {
    const char *end = json_value(text, 0);
    if (end == NULL || *json_ws(end) != '\0') {
        fail_msg("not one JSON document:\n%s", text);
    }
}

/* ---- nginx instances
 * --------------------------------------------------------- */

static void make_cert(const dss_nginx *n, int days) {
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -days %d "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
             "-keyout '%s/key.pem' -out '%s/cert.pem' 2>/dev/null && chmod 644 "
             "'%s/key.pem'",
             days, n->prefix, n->prefix, n->prefix);
    assert_int_equal(system(cmd), 0);
}

/* A certificate valid from 2020-01-01 to 2020-01-02, self-signed with
 * "openssl ca" (OpenSSL 3.0's x509 and req cannot backdate). */
static void make_expired_cert(const dss_nginx *n) {
    char cmd[8 * PATH_MAX];
    snprintf(
        cmd, sizeof(cmd),
        "set -e; cd '%s' && mkdir ca && cd ca && touch index.txt && echo 01 > "
        "serial && "
        "printf '[ca]\\ndefault_ca = x\\n[x]\\ndatabase = index.txt\\n"
        "new_certs_dir = .\\nserial = serial\\ndefault_md = sha256\\npolicy = "
        "p\\n"
        "copy_extensions = copy\\n[p]\\ncommonName = supplied\\n' > ca.cnf && "
        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout "
        "../key.pem "
        "-out req.csr 2>/dev/null && "
        "openssl ca -batch -config ca.cnf -selfsign -keyfile ../key.pem -in "
        "req.csr "
        "-out ../cert.pem -startdate 20200101000000Z -enddate 20200102000000Z "
        "-notext "
        "2>/dev/null && chmod 644 ../key.pem && cd .. && rm -rf ca",
        n->prefix);
    assert_int_equal(system(cmd), 0);
}

static void write_password_file(const dss_nginx *n, const char *password) {
    char cmd[2 * PATH_MAX];
    dss_write_file(dss_path(n, "password"), password, strlen(password));
    snprintf(
        cmd, sizeof(cmd),
        "printf 'dss:%%s\\n' \"$(openssl passwd -5 '%s')\" > '%s/htpasswd2'",
        password, n->prefix);
    assert_int_equal(system(cmd), 0);
}

/* The module as the README's quick start configures it: health outside
 * Basic auth, downloads behind it, bills from the root. */
static const char *const module_root_config =
    "server {\n"
    "    listen 127.0.0.1:@PORT@ ssl;\n"
    "    ssl_certificate @PREFIX@/cert.pem;\n"
    "    ssl_certificate_key @PREFIX@/key.pem;\n"
    "    location = /dss/bill/healthcheck { dss_bill; dss_bill_root "
    "@PREFIX@/bills; }\n"
    "    location /dss/bill/ {\n"
    "        auth_basic \"DSS\";\n"
    "        auth_basic_user_file @PREFIX@/htpasswd2;\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "    }\n"
    "}\n";

static void start_module_root(dss_nginx *n, int cert_days) {
    assert_int_equal(dss_nginx_prepare(n), 0);
    if (cert_days > 0) {
        make_cert(n, cert_days);
    } else if (cert_days < 0) {
        make_expired_cert(n);
    }
    write_password_file(n, PASSWORD);
    dss_write_bill(dss_path(n, "bills/100000000001.pdf"), "100000000001",
                   50000);
    dss_write_bill(dss_path(n, "bills/100000000002.pdf"), "100000000002",
                   200000);
    assert_int_equal(dss_nginx_start(n, module_root_config), 0);
}

static const char *url_of(const dss_nginx *n) {
    static char url[64];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", n->port);
    return url;
}

/* Every nginx a test starts comes from here, so that the test's teardown
 * stops it even when an assertion ends the test early. */
static dss_nginx instances[4];
static int live[4];

static dss_nginx *new_nginx(void) {
    for (int i = 0; i < 4; i++) {
        if (!live[i]) {
            memset(&instances[i], 0, sizeof(instances[i]));
            live[i] = 1;
            return &instances[i];
        }
    }
    fail_msg("more than 4 nginx instances in one test");
    return NULL;
}

static void cleanup_nginx(dss_nginx *n) {
    int i = (int)(n - instances);
    if (live[i] && n->prefix[0]) {
        dss_nginx_cleanup(n);
    }
    live[i] = 0;
}

static int teardown_nginx(void **state) {
    (void)state;
    for (int i = 0; i < 4; i++) {
        if (live[i]) {
            cleanup_nginx(&instances[i]);
        }
    }
    return 0;
}

/* ---- the module: every check passes
 * ------------------------------------------ */

static void test_all_checks_pass_against_the_module_root(void **state) {
    (void)state;
    dss_nginx *n = new_nginx();
    start_module_root(n, 400);
    run_result *r = run_checker(
        url_of(n), "--bill", "100000000001", "--bill", "100000000002",
        "--missing", "100000000404", "--cacert", dss_path(n, "cert.pem"),
        "--user", "dss", "--password-file", dss_path(n, "password"));
    char bad_lines[4096];
    non_passing(r, bad_lines, sizeof(bad_lines));
    if (r->status != 0 || bad_lines[0]) {
        fail_msg("exit %d, not passing: %s\n%s%s", r->status, bad_lines, r->out,
                 r->err);
    }
    /* every check ran (none skipped) and saw the real bills */
    assert_non_null(strstr(r->out, "\n24 passed, 0 failed, 0 skipped\n"));
    assert_non_null(strstr(line_of(r, "D3 download-status"),
                           "bill 100000000001: 200, 50000 bytes; bill "
                           "100000000002: 200, 200000 bytes"));
    assert_non_null(strstr(line_of(r, "T1 certificate"), "days left"));
    assert_non_null(
        strstr(line_of(r, "T2 basic-auth"), "without credentials: 401"));
    assert_no_password(r, PASSWORD);
    free(r);

    /* the same with the password from the environment, as JSON */
    setenv("DSS_CHECK_TEST_PASSWORD", PASSWORD, 1);
    r = run_checker(url_of(n), "--bill", "100000000001", "--cacert",
                    dss_path(n, "cert.pem"), "--user", "dss", "--password-env",
                    "DSS_CHECK_TEST_PASSWORD", "--json");
    unsetenv("DSS_CHECK_TEST_PASSWORD");
    assert_int_equal(r->status, 0);
    assert_json_document(r->out);
    assert_non_null(
        strstr(r->out, "\"name\": \"basic-auth\", \"verdict\": \"PASS\""));
    assert_non_null(strstr(r->out, "\"failed\": 0"));
    assert_non_null(strstr(r->out, "\"exit_status\": 0"));
    assert_no_password(r, PASSWORD);
    free(r);
    cleanup_nginx(n);
}

static void test_all_checks_pass_against_the_module_archive(void **state) {
    (void)state;
    dss_nginx *archive = new_nginx(), *n = new_nginx();
    char config[2048];
    assert_int_equal(dss_nginx_prepare(archive), 0);
    dss_write_bill(dss_path(archive, "bills/100000000007.pdf"), "100000000007",
                   120000);
    assert_int_equal(dss_nginx_start(archive, "server {\n"
                                              "    listen 127.0.0.1:@PORT@;\n"
                                              "    root @PREFIX@/bills;\n"
                                              "}\n"),
                     0);
    assert_int_equal(dss_nginx_prepare(n), 0);
    make_cert(n, 400);
    snprintf(config, sizeof(config),
             "dss_bill_upstream_temp_path @PREFIX@/temp;\n"
             "server {\n"
             "    listen 127.0.0.1:@PORT@ ssl;\n"
             "    ssl_certificate @PREFIX@/cert.pem;\n"
             "    ssl_certificate_key @PREFIX@/key.pem;\n"
             "    location /dss/bill/ {\n"
             "        dss_bill;\n"
             "        dss_bill_upstream http://127.0.0.1:%d/$dss_bill_id.pdf;\n"
             "        dss_bill_upstream_keepalive on;\n"
             "    }\n"
             "}\n",
             archive->port);
    assert_int_equal(dss_nginx_start(n, config), 0);
    run_result *r =
        run_checker(url_of(n), "--bill", "100000000007", "--missing",
                    "100000000404", "--cacert", dss_path(n, "cert.pem"));
    char bad_lines[4096];
    non_passing(r, bad_lines, sizeof(bad_lines));
    if (r->status != 0 || bad_lines[0]) {
        fail_msg("exit %d, not passing: %s\n%s%s", r->status, bad_lines, r->out,
                 r->err);
    }
    /* without --user only the Basic-auth check is skipped */
    assert_non_null(strstr(r->out, "\n23 passed, 0 failed, 1 skipped\n"));
    expect_verdict(r, "SKIP", "T2 basic-auth");
    assert_non_null(strstr(line_of(r, "D3 download-status"),
                           "bill 100000000007: 200, 120000 bytes"));
    free(r);
    cleanup_nginx(n);
    cleanup_nginx(archive);
}

/* ---- stock nginx configurations a utility might write
 * ------------------------ */

static run_result *check_stock(dss_nginx *n, const char *config) {
    assert_int_equal(dss_nginx_prepare(n), 0);
    make_cert(n, 400);
    dss_write_bill(dss_path(n, "bills/100000000001.pdf"), "100000000001",
                   40000);
    dss_write_bill(dss_path(n, "bills/100000000001"), "100000000001", 40000);
    assert_int_equal(dss_nginx_start(n, config), 0);
    return run_checker(url_of(n), "--bill", "100000000001", "--missing",
                       "100000000404", "--cacert", dss_path(n, "cert.pem"));
}

static void
test_D3_stock_alias_and_return_200_fails_range_and_conditional(void **state) {
    (void)state;
    dss_nginx *n = new_nginx();
    run_result *r =
        check_stock(n, "server {\n"
                       "    listen 127.0.0.1:@PORT@ ssl;\n"
                       "    ssl_certificate @PREFIX@/cert.pem;\n"
                       "    ssl_certificate_key @PREFIX@/key.pem;\n"
                       "    location = /dss/bill/healthcheck { return 200; }\n"
                       "    location ~ ^/dss/bill/download/(?<bill>[^/]+)$ {\n"
                       "        default_type application/pdf;\n"
                       "        alias @PREFIX@/bills/$bill.pdf;\n"
                       "    }\n"
                       "}\n");
    char bad_lines[4096];
    non_passing(r, bad_lines, sizeof(bad_lines));
    assert_int_equal(r->status, 1);
    assert_string_equal(
        bad_lines,
        "FAIL D3 range-ignored,FAIL D3 conditional-ignored,FAIL D7 statuses,");
    assert_non_null(
        strstr(line_of(r, "D3 range-ignored"), "206 Partial Content"));
    assert_non_null(
        strstr(line_of(r, "D3 conditional-ignored"), "304 Not Modified"));
    expect_verdict(r, "PASS",
                   "H2 health"); /* return 200 has Content-Length: 0 */
    free(r);
    cleanup_nginx(n);
}

static void test_D3_stock_proxy_to_a_chunked_archive_fails(void **state) {
    (void)state;
    dss_nginx *n = new_nginx();
    char config[2048];
    snprintf(config, sizeof(config),
             "server {\n"
             "    listen 127.0.0.1:@PORT@ ssl;\n"
             "    ssl_certificate @PREFIX@/cert.pem;\n"
             "    ssl_certificate_key @PREFIX@/key.pem;\n"
             "    location = /dss/bill/healthcheck { return 200; }\n"
             "    location /dss/bill/download/ {\n"
             "        proxy_http_version 1.1;\n"
             "        proxy_pass http://127.0.0.1:%d/chunked-;\n"
             "    }\n"
             "}\n",
             origin.port);
    run_result *r = check_stock(n, config);
    assert_int_equal(r->status, 1);
    expect_verdict(r, "FAIL", "D3 not-chunked");
    expect_verdict(r, "FAIL", "D3 content-length");
    assert_non_null(
        strstr(line_of(r, "D3 not-chunked"), "Transfer-Encoding: chunked"));
    /* the archive answers every id: the missing bill is a 200 too */
    expect_verdict(r, "FAIL", "D5 missing");
    free(r);
    cleanup_nginx(n);
}

static void test_D3_D8_stock_proxy_to_an_html_error_page_fails(void **state) {
    (void)state;
    dss_nginx *n = new_nginx();
    char config[2048];
    snprintf(config, sizeof(config),
             "server {\n"
             "    listen 127.0.0.1:@PORT@ ssl;\n"
             "    ssl_certificate @PREFIX@/cert.pem;\n"
             "    ssl_certificate_key @PREFIX@/key.pem;\n"
             "    location = /dss/bill/healthcheck { return 200; }\n"
             "    location /dss/bill/download/ {\n"
             "        proxy_pass http://127.0.0.1:%d/html-;\n"
             "    }\n"
             "    location /dss/bill503/download/ {\n"
             "        proxy_pass http://127.0.0.1:%d/status-503-;\n"
             "    }\n"
             "    location = /dss/bill503/healthcheck { return 200; }\n"
             "}\n",
             origin.port, origin.port);
    run_result *r = check_stock(n, config);
    assert_int_equal(r->status, 1);
    expect_verdict(r, "FAIL", "D3 content-type");
    expect_verdict(r, "FAIL", "D8 pdf");
    assert_non_null(strstr(line_of(r, "D8 pdf"), "<html>"));
    free(r);

    /* an archive's HTML error page passed on with its status */
    r = run_checker(url_of(n), "--bill", "100000000001", "--prefix",
                    "/dss/bill503", "--cacert", dss_path(n, "cert.pem"));
    assert_int_equal(r->status, 1);
    expect_verdict(r, "FAIL", "D3 download-status");
    expect_verdict(r, "FAIL", "D7 statuses");
    assert_non_null(strstr(line_of(r, "D7 statuses"), "503"));
    free(r);
    cleanup_nginx(n);
}

/* etag off and if_modified_since off do not help: If-None-Match: * still
 * gets a 304 from nginx's not-modified filter */
static void test_D3_stock_range_honouring_static_location_fails(void **state) {
    (void)state;
    dss_nginx *n = new_nginx();
    run_result *r =
        check_stock(n, "server {\n"
                       "    listen 127.0.0.1:@PORT@ ssl;\n"
                       "    ssl_certificate @PREFIX@/cert.pem;\n"
                       "    ssl_certificate_key @PREFIX@/key.pem;\n"
                       "    location = /dss/bill/healthcheck { return 200; }\n"
                       "    location /dss/bill/download/ {\n"
                       "        alias @PREFIX@/bills/;\n"
                       "        default_type application/pdf;\n"
                       "        etag off;\n"
                       "        if_modified_since off;\n"
                       "    }\n"
                       "}\n");
    char bad_lines[4096];
    non_passing(r, bad_lines, sizeof(bad_lines));
    assert_int_equal(r->status, 1);
    assert_string_equal(
        bad_lines,
        "FAIL D3 range-ignored,FAIL D3 conditional-ignored,FAIL D7 statuses,");
    assert_non_null(
        strstr(line_of(r, "D3 conditional-ignored"), "If-None-Match"));
    free(r);
    cleanup_nginx(n);
}

/* ---- every check, against an endpoint broken for it -------------------------
 */

typedef struct {
    const char *mode;
    const char *expected; /* the non-passing lines besides "FAIL T1 https," */
    int with_user;
} broken_case;

static const broken_case broken[] = {
    {"good", "", 0},
    {"status500", "FAIL D3 download-status,", 0},
    {"ctype", "FAIL D3 content-type,", 0},
    /* no length: HEAD cannot agree with GET's length either */
    {"nolength", "FAIL D3 content-length,FAIL D7 head,", 0},
    {"chunked", "FAIL D3 content-length,FAIL D3 not-chunked,FAIL D7 head,", 0},
    {"gzip", "FAIL D3 not-chunked,", 0},
    {"notpdf", "FAIL D8 pdf,", 0},
    {"noeof", "WARN D8 pdf,", 0},
    {"huge", "FAIL D4 max-size,", 0},
    {"slow", "FAIL T4 timing,", 0},
    /* every comparison with the plain download fails */
    {"varying",
     "FAIL D1 accept-ignored,FAIL D9 same-bytes,FAIL T5 parallel,FAIL D3 "
     "range-ignored,"
     "FAIL D3 conditional-ignored,",
     0},
    {"burst", "FAIL T5 parallel,", 0},
    {"head", "FAIL D7 head,", 0},
    /* 406, 206 and 304 are statuses DSS counts as a 500 (D7) */
    {"accept", "FAIL D1 accept-ignored,FAIL D7 statuses,", 0},
    {"range", "FAIL D3 range-ignored,FAIL D7 statuses,", 0},
    {"cond", "FAIL D3 conditional-ignored,FAIL D7 statuses,", 0},
    {"anyid", "FAIL D5 missing,FAIL D5 hostile-ids,", 0},
    {"redirect", "FAIL D3 download-status,FAIL D7 statuses,", 0},
    {"close", "FAIL T5 keep-alive,", 0},
    {"h503", "FAIL H2 health,WARN H1 health-without-credentials,", 0},
    {"hbody", "FAIL H2 health,", 0},
    {"hslow", "FAIL H4 health-fast,", 0},
    {"hauth", "WARN H1 health-without-credentials,", 1},
    {"auth", "", 1},
    {"noauth", "FAIL T2 basic-auth,", 1},
    {"wrongauth", "FAIL T2 basic-auth,", 1},
};

static void test_every_check_fails_against_its_broken_endpoint(void **state) {
    (void)state;
    char dir[] = "/tmp/dss-check-pw.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char pwfile[64];
    snprintf(pwfile, sizeof(pwfile), "%s/pw", dir);
    dss_write_file(pwfile, "secret\n", 7); /* bad_endpoint's dss:secret */
    int failures = 0;
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        const broken_case *c = &broken[i];
        char prefix[64], expected[512], got[4096];
        snprintf(prefix, sizeof(prefix), "/%s", c->mode);
        long long started = dss_now_ms();
        run_result *r =
            c->with_user
                ? run_checker(bad_url, "--prefix", prefix, "--bill",
                              "100000000001", "--missing", "200000000404",
                              "--user", "dss", "--password-file", pwfile)
                : run_checker(bad_url, "--prefix", prefix, "--bill",
                              "100000000001", "--missing", "200000000404");
        snprintf(expected, sizeof(expected), "FAIL T1 https,%s", c->expected);
        non_passing(r, got, sizeof(got));
        /* FAIL T1 https always: bad_endpoint speaks plain HTTP */
        if (strcmp(got, expected) != 0 || r->status != 1) {
            fprintf(stderr,
                    "mode %s: exit %d, expected \"%s\", got \"%s\"\n%s%s\n",
                    c->mode, r->status, expected, got, r->out, r->err);
            failures++;
        } else {
            printf("mode %-9s %5lld ms: %s\n", c->mode, dss_now_ms() - started,
                   got);
        }
        if (strstr(r->out, "secret") || strstr(r->err, "secret")) {
            fprintf(stderr, "mode %s: the password was printed\n", c->mode);
            failures++;
        }
        free(r);
    }
    unlink(pwfile);
    rmdir(dir);
    assert_int_equal(failures, 0);
}

/* ---- T1: TLS ---------------------------------------------------------------
 */

static void test_T1_tls_1_1_only_server_fails(void **state) {
    (void)state;
    dss_nginx *n = new_nginx();
    assert_int_equal(dss_nginx_prepare(n), 0);
    make_cert(n, 400);
    assert_int_equal(
        dss_nginx_start(n,
                        "server {\n"
                        "    listen 127.0.0.1:@PORT@ ssl;\n"
                        "    ssl_certificate @PREFIX@/cert.pem;\n"
                        "    ssl_certificate_key @PREFIX@/key.pem;\n"
                        "    ssl_protocols TLSv1 TLSv1.1;\n"
                        "    ssl_ciphers DEFAULT:@SECLEVEL=0;\n"
                        "    location = /dss/bill/healthcheck { return 200; }\n"
                        "}\n"),
        0);
    run_result *r = run_checker(url_of(n), "--bill", "100000000001", "--cacert",
                                dss_path(n, "cert.pem"));
    assert_int_equal(r->status, 1);
    expect_verdict(r, "FAIL", "T1 tls-version");
    expect_verdict(r, "SKIP",
                   "D3 download-status"); /* nothing else can be seen */
    assert_non_null(strstr(r->out, "no TLS connection could be made (see T1)"));
    free(r);
    cleanup_nginx(n);
}

static void test_T1_certificate_untrusted_expiring_expired(void **state) {
    (void)state;
    dss_nginx *n = new_nginx();

    /* the harness's certificate is valid for 2 days: a warning, exit 0 */
    start_module_root(n, 0);
    run_result *r = run_checker(url_of(n), "--bill", "100000000001", "--cacert",
                                dss_path(n, "cert.pem"), "--user", "dss",
                                "--password-file", dss_path(n, "password"));
    assert_int_equal(r->status, 0);
    expect_verdict(r, "WARN", "T1 certificate");
    assert_non_null(
        strstr(line_of(r, "T1 certificate"), "expires within 30 days"));
    free(r);

    /* not trusted (no --cacert, no --insecure): a failure, nothing else */
    r = run_checker(url_of(n), "--bill", "100000000001");
    assert_int_equal(r->status, 1);
    expect_verdict(r, "FAIL", "T1 certificate");
    assert_non_null(strstr(line_of(r, "T1 certificate"), "self-signed"));
    expect_verdict(r, "SKIP", "H2 health");
    free(r);
    cleanup_nginx(n);

    /* expired: a failure, whether verified or not */
    n = new_nginx();
    start_module_root(n, -1);
    r = run_checker(url_of(n), "--bill", "100000000001", "--insecure", "--user",
                    "dss", "--password-file", dss_path(n, "password"));
    assert_int_equal(r->status, 1);
    expect_verdict(r, "FAIL", "T1 certificate");
    assert_non_null(strstr(line_of(r, "T1 certificate"), "expired 2020-01-02"));
    expect_verdict(r, "PASS",
                   "D3 download-status"); /* --insecure: the rest runs */
    free(r);
    r = run_checker(url_of(n), "--bill", "100000000001", "--cacert",
                    dss_path(n, "cert.pem"));
    assert_int_equal(r->status, 1);
    expect_verdict(r, "FAIL", "T1 certificate");
    assert_non_null(strstr(line_of(r, "T1 certificate"), "expired"));
    free(r);
    cleanup_nginx(n);
}

/* ---- output modes and exit statuses
 * ------------------------------------------ */

static void test_json_names_each_rule_and_verdict(void **state) {
    (void)state;
    char prefix[] = "/chunked";
    run_result *r = run_checker(bad_url, "--prefix", prefix, "--bill",
                                "100000000001", "--json");
    assert_int_equal(r->status, 1);
    assert_json_document(r->out);
    assert_non_null(strstr(r->out,
                           "{\"rule\": \"D3\", \"name\": \"not-chunked\", "
                           "\"verdict\": \"FAIL\""));
    assert_non_null(strstr(
        r->out,
        "{\"rule\": \"T1\", \"name\": \"https\", \"verdict\": \"FAIL\""));
    assert_non_null(strstr(r->out, "\"failed\": 4")); /* T1, D3 x 2, D7 head */
    assert_non_null(strstr(r->out, "\"exit_status\": 1"));
    assert_null(strstr(r->out, "\nFAIL ")); /* no report lines mixed in */
    free(r);
}

static void
test_H2_watch_prints_changes_and_fails_when_a_poll_fails(void **state) {
    (void)state;
    dss_nginx *n = new_nginx();
    start_module_root(n, 400);

    /* healthy throughout: one line, exit 0 */
    run_result *r =
        run_checker(url_of(n), "--watch", "--interval", "100ms", "--count", "3",
                    "--cacert", dss_path(n, "cert.pem"));
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, " healthy: 200, Content-Length: 0"));
    assert_non_null(strstr(
        r->out, "watch: 3 polls, 3 healthy, 0 failed, 0 changes of state\n"));
    free(r);

    /* the endpoint stops halfway: a timestamped change line, exit 1 */
    r = calloc(1, sizeof(*r));
    int out_fd, err_fd;
    size_t out_len = 0;
    const char *args[] = {
        url_of(n), "--watch", "--interval", "200ms",
        "--count", "12",      "--cacert",   dss_path(n, "cert.pem"),
        NULL};
    pid_t pid = spawn(args, &out_fd, &err_fd);
    assert_true(pid > 0);
    collect(pid, out_fd, err_fd, r, &out_len, " healthy: ");
    assert_int_equal(r->status, -2); /* still polling */
    dss_nginx_stop(n);
    collect(pid, out_fd, err_fd, r, &out_len, NULL);
    assert_int_equal(r->status, 1);
    const char *down = strstr(r->out, " UNHEALTHY: ");
    assert_non_null(down);
    /* the line starts with the time: 2026-12-01T17:00:00Z */
    const char *line = down;
    while (line > r->out && line[-1] != '\n') {
        line--;
    }
    assert_int_equal(down - line, 20);
    assert_true(line[4] == '-' && line[10] == 'T' && line[19] == 'Z');
    assert_non_null(strstr(r->out, "watch: 12 polls, "));
    assert_non_null(strstr(r->out, " 1 change of state\n"));
    assert_null(strstr(r->out, " 0 failed"));
    free(r);
    cleanup_nginx(n);

    /* --json --watch: one document with the watch log */
    bad_endpoint_set_health(&bad, 0);
    r = run_checker(bad_url, "--prefix", "/good", "--watch", "--interval",
                    "50ms", "--count", "2", "--json");
    bad_endpoint_set_health(&bad, 1);
    assert_int_equal(r->status, 1);
    assert_json_document(r->out);
    assert_non_null(
        strstr(r->out, "\"polls\": 2, \"healthy\": 0, \"failed\": 2"));
    free(r);
}

static void test_exit_status_2_for_usage_and_unreachable(void **state) {
    (void)state;
    run_result *r = run_checker("https://127.0.0.1:1");
    assert_int_equal(r->status, 2); /* no --bill */
    free(r);
    r = run_checker("https://127.0.0.1:1", "--bill", "1", "--password",
                    "hunter2");
    assert_int_equal(r->status, 2);
    assert_no_password(r, "hunter2");
    free(r);
    r = run_checker("https://dss:hunter2@127.0.0.1:1", "--bill", "1");
    assert_int_equal(r->status, 2);
    assert_no_password(r, "hunter2");
    free(r);

    /* a port nothing listens on (held so while the checker runs) */
    int closed_fd;
    int port = dss_closed_port(&closed_fd);
    assert_true(port > 0);
    char url[64];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
    r = run_checker(url, "--bill", "1");
    close(closed_fd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "cannot reach"));
    free(r);

    r = run_checker("--help");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "D3 range-ignored"));
    free(r);
}

static int setup(void **state) {
    (void)state;
    if (bad_endpoint_start(&bad) != 0 || fault_origin_start(&origin) != 0) {
        return -1;
    }
    snprintf(bad_url, sizeof(bad_url), "http://127.0.0.1:%d", bad.port);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    bad_endpoint_stop(&bad);
    fault_origin_stop(&origin);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_all_checks_pass_against_the_module_root,
                                  teardown_nginx),
        cmocka_unit_test_teardown(
            test_all_checks_pass_against_the_module_archive, teardown_nginx),
        cmocka_unit_test(
            test_D3_stock_alias_and_return_200_fails_range_and_conditional),
        cmocka_unit_test_teardown(
            test_D3_stock_proxy_to_a_chunked_archive_fails, teardown_nginx),
        cmocka_unit_test_teardown(
            test_D3_D8_stock_proxy_to_an_html_error_page_fails, teardown_nginx),
        cmocka_unit_test_teardown(
            test_D3_stock_range_honouring_static_location_fails,
            teardown_nginx),
        cmocka_unit_test_teardown(
            test_every_check_fails_against_its_broken_endpoint, teardown_nginx),
        cmocka_unit_test_teardown(test_T1_tls_1_1_only_server_fails,
                                  teardown_nginx),
        cmocka_unit_test_teardown(
            test_T1_certificate_untrusted_expiring_expired, teardown_nginx),
        cmocka_unit_test_teardown(test_json_names_each_rule_and_verdict,
                                  teardown_nginx),
        cmocka_unit_test(
            test_H2_watch_prints_changes_and_fails_when_a_poll_fails),
        cmocka_unit_test_teardown(test_exit_status_2_for_usage_and_unreachable,
                                  teardown_nginx),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

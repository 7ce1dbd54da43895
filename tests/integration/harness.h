/* harness: starts the real nginx with the built module on loopback and talks
 * to it with libcurl. Used by every integration test. */

#ifndef DSS_HARNESS_H
#define DSS_HARNESS_H

/* cmocka and what it needs first; cmocka_run_group_tests is redefined below */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <sys/types.h>

typedef struct {
    char prefix[PATH_MAX]; /* temporary nginx prefix, world-readable */
    int port;
    int port2; /* a second free port, for a config's second listener */
    pid_t pid; /* nginx master; also its process group */
    int running;

    /*
     * Set by a test (after dss_nginx_prepare) that provokes an alert on
     * purpose: a NULL-terminated list of substrings; an error-log line the
     * teardown check would flag is accepted when it contains one of them.
     * Sanitizer reports are never accepted.
     */
    const char *const *allowed_alerts;

    /* worker_processes, set by a test after dss_nginx_prepare (0: 1) */
    int workers;

    /* the harness's own bookkeeping (see dss_nginx_check) */
    struct {
        long from, to;
    } quiet[16]; /* error-log spans of failed starts and of "nginx -t" */
    int quiet_count;
    char exit_problem[160]; /* the master did not exit cleanly: how */
} dss_nginx;

/*
 * Creates a temporary prefix (world-traversable, so that workers running as
 * "nobody" can read what tests put there) with a TLS certificate
 * (cert.pem, key.pem for 127.0.0.1) and an htpasswd file (user "dss",
 * password "secret"). Sets the process's umask to 022, so that what tests
 * create is readable by the workers. Returns 0 or -1.
 */
int dss_nginx_prepare(dss_nginx *n);

/*
 * Writes nginx.conf from http_block (the body of "http { }") after
 * replacing @PREFIX@, @PORT@ and @PORT2@, then starts nginx in the foreground
 * and polls until it accepts connections. Retries with another free port if the
 * first was taken meanwhile. Returns 0 or -1 (nginx's stderr printed).
 */
int dss_nginx_start(dss_nginx *n, const char *http_block);

/*
 * Stops nginx as nginx's own test suite does: SIGQUIT (a graceful shutdown,
 * so every worker runs its exit path and, in the sanitizer build, its leak
 * check), SIGTERM after 5 s, SIGKILL after 15 s; waits for it.
 */
void dss_nginx_stop(dss_nginx *n);

/*
 * The teardown check: stops nginx, then fails (returns the number of
 * problems, each printed to stderr) when, over everything this prefix's
 * nginx ran,
 *  - the error log has an "[alert]" line (this includes "worker process ...
 *    exited on signal"), a process that "exited with code" other than 0, an
 *    "[emerg]" line outside a failed start or "nginx -t", a sanitizer line
 *    ("runtime error", "...Sanitizer"), or stderr.log has one of these but
 *    "[emerg]";
 *  - a sanitizer log in <prefix>/logs/sanitizer/ has content (in the
 *    sanitizer build every nginx the harness starts writes ASan, LSan and
 *    UBSan reports there, with leak detection on);
 *  - the master did not exit with status 0 when stopped.
 * allowed_alerts exempts matching log lines.
 */
int dss_nginx_check(dss_nginx *n);

/*
 * Stops nginx and runs dss_nginx_check; removes the prefix when the check
 * passes (and DSS_KEEP_PREFIX is unset), else keeps it for inspection, says
 * where, and marks the test program failed: its cmocka_run_group_tests
 * (redefined below) then returns non-zero even though cmocka 1.1 ignores a
 * failing group teardown in its result.
 */
void dss_nginx_cleanup(dss_nginx *n);

/* Sends a signal to the master (e.g. SIGQUIT for a graceful shutdown). */
int dss_nginx_signal(dss_nginx *n, int sig);

/*
 * Reloads the configuration (SIGHUP to the master) and polls until every
 * worker that ran before has exited and n->workers new ones run. Returns 0,
 * or -1 when that did not happen within timeout_ms.
 */
int dss_nginx_reload(dss_nginx *n, long timeout_ms);

/* Polls until the master has exited; 0 when it did within timeout_ms. */
int dss_nginx_wait_exit(dss_nginx *n, long timeout_ms);

/*
 * Runs "nginx -t" on a configuration made from http_block, captures its
 * output in out. Returns nginx's exit status.
 */
int dss_nginx_test_config(dss_nginx *n, const char *http_block, char *out,
                          size_t out_size);

/* The same with "nginx -T": the test and the dump of every configuration
 * file nginx read (stdout and stderr together). */
int dss_nginx_dump_config(dss_nginx *n, const char *http_block, char *out,
                          size_t out_size);

/*
 * A loopback port nothing listens on, and nothing can while *fd stays open:
 * a socket bound to it, never listening (connections to it are refused).
 * A port bound and closed again may be taken meanwhile by a server another
 * test program starts. Returns the port (close *fd at the end), or -1.
 */
int dss_closed_port(int *fd);

/*
 * Reads an HTTP request head from fd into head (cap bytes with the NUL):
 * until the blank line after the headers, the end of the stream, a pause of
 * timeout_ms, or a full buffer. Returns the bytes read; head is a string.
 * For the scripted servers of the tests.
 */
size_t dss_read_request_head(int fd, char *head, size_t cap,
                             int timeout_ms);

/*
 * Writes text to a new temporary file (0644) and binds it over target (a
 * file): for a process in a private mount namespace (unshare). 0, or -1
 * with errno.
 */
int dss_bind_file_over(const char *target, const char *text);

/* CLOCK_MONOTONIC in milliseconds. */
long long dss_now_ms(void);

/* Sends all of data on a socket (no SIGPIPE); 0, or -1 on an error. */
int dss_send_all(int fd, const void *data, size_t len);

/* A short pause between two polls of a condition: never a synchronisation
 * by itself, callers always check the condition again. */
void dss_poll_pause(void);

/* Path below the prefix, e.g. dss_path(n, "bills/1.pdf"). Static buffer
 * rotation: up to 8 results valid at once. */
const char *dss_path(const dss_nginx *n, const char *rel);

/* Counts the lines of the error log that contain needle. */
int dss_error_log_count(const dss_nginx *n, const char *needle);

/* Writes a PDF bill of exactly size bytes (0: natural size). */
void dss_write_bill(const char *path, const char *id, size_t size);

/* Writes arbitrary bytes to a file (mode 0644). */
void dss_write_file(const char *path, const void *data, size_t len);

/* ---- HTTP client ----------------------------------------------------------
 */

typedef struct {
    long status;
    char *body;
    size_t body_len;
    char headers[16384];
    int curl_code; /* CURLcode of the transfer */
} dss_response;

typedef struct {
    const char *method;         /* default GET */
    const char *const *headers; /* NULL-terminated extra request headers */
    const char *userpwd;        /* Basic auth, "user:password" */
    int plain_http;             /* 0: https with the test certificate */
    int http2;                  /* negotiate HTTP/2 over TLS */
    long timeout_ms;            /* default 10000 */
} dss_request_options;

/* Performs one request to https://127.0.0.1:<port><target>. */
dss_response dss_request(const dss_nginx *n, const char *target,
                         const dss_request_options *options);

/* GET with default options. */
dss_response dss_get(const dss_nginx *n, const char *target);

/* The value of a response header (case-insensitive name), or NULL. The
 * returned pointer is into a static buffer. */
const char *dss_header(const dss_response *r, const char *name);

void dss_response_free(dss_response *r);

/* Reads a whole file; returns a malloc'd buffer and its length. */
char *dss_read_file(const char *path, size_t *len);

/* The pids of nginx's worker processes now (children of the master named
 * "worker process", not shutting down); at most max. Returns the count. */
int dss_nginx_worker_pids(const dss_nginx *n, pid_t *pids, int max);

/* ---- test program result ----------------------------------------------------
 */

/*
 * cmocka 1.1 prints "[  FAILED  ] GROUP TEARDOWN" for a group teardown that
 * fails, but leaves it out of cmocka_run_group_tests' result, so the program
 * would exit 0. Every integration test program returns
 * cmocka_run_group_tests(...) from main: through these macros the result also
 * counts the nginx teardown checks that failed (dss_nginx_cleanup).
 */
int dss_run_group_tests(const char *group_name,
                        const struct CMUnitTest *const tests, size_t num_tests,
                        CMFixtureFunction group_setup,
                        CMFixtureFunction group_teardown);

#undef cmocka_run_group_tests
#define cmocka_run_group_tests(group_tests, group_setup, group_teardown)       \
    dss_run_group_tests(#group_tests, group_tests,                             \
                        sizeof(group_tests) / sizeof((group_tests)[0]),        \
                        group_setup, group_teardown)
#undef cmocka_run_group_tests_name
#define cmocka_run_group_tests_name(group_name, group_tests, group_setup,      \
                                    group_teardown)                            \
    dss_run_group_tests(group_name, group_tests,                               \
                        sizeof(group_tests) / sizeof((group_tests)[0]),        \
                        group_setup, group_teardown)

#endif

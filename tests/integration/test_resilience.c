/* Integration tests of resilience (issue 8, items 4, 5, 6, 9 and 10): a DNS
 * server that never answers (T5), a full connection table (T5), directio on
 * the document root (D6, D8), helper processes that must not probe the
 * archive (T5), and headers or body filters of other modules (D3, H2).
 *
 * The DNS tests need a private mount namespace (root and unshare): the
 * program bind-mounts its own resolv.conf, naming a UDP socket of this
 * process that receives queries and never answers, before it starts any
 * nginx. Without that they are skipped with the reason. */

#define _GNU_SOURCE /* unshare, asprintf */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fault_origin.h"
#include "harness.h"

/* a name nothing resolves: every query goes to the blackhole */
#define BLACKHOLED_HOST "archive.dss-blackhole.test"

/* ---- the blackhole DNS server --------------------------------------------
 */

static struct {
    int ready;
    char skip_reason[512];
    char address[32]; /* 127.x.y.z, port 53 */
    int fd;
    pthread_t thread;
    pthread_mutex_t lock;
    int queries;
} dns = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

static void *dns_blackhole(void *arg) {
    (void)arg;
    char packet[4096];
    for (;;) {
        ssize_t n = recv(dns.fd, packet, sizeof(packet), 0);
        if (n > 0) {
            pthread_mutex_lock(&dns.lock);
            dns.queries++;
            pthread_mutex_unlock(&dns.lock);
        } else if (n < 0 && errno != EINTR) {
            return NULL; /* the socket is closed at exit */
        }
    }
}

static int dns_queries(void) {
    pthread_mutex_lock(&dns.lock);
    int n = dns.queries;
    pthread_mutex_unlock(&dns.lock);
    return n;
}

/* "hosts: files dns" whatever the machine uses (nss-resolve, mdns and
 * friends would bypass resolv.conf); everything else as it was. */
static int private_nsswitch(void) {
    size_t len;
    char *text = dss_read_file("/etc/nsswitch.conf", &len);
    if (text == NULL) {
        return 0; /* glibc's default for hosts reads resolv.conf */
    }
    char *out = malloc(len + 64);
    assert_non_null(out);
    size_t used = 0;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line + 1) : strlen(line);
        if (strncmp(line, "hosts:", 6) != 0) {
            memcpy(out + used, line, n);
            used += n;
        }
        line += n;
    }
    memcpy(out + used, "hosts: files dns\n", sizeof("hosts: files dns\n"));
    int rc = dss_bind_file_over("/etc/nsswitch.conf", out);
    free(out);
    free(text);
    return rc;
}

/* Runs first in main, while the process has a single thread. */
static void dns_setup(void) {
    char *reason = dns.skip_reason;
    size_t cap = sizeof(dns.skip_reason);
    if (geteuid() != 0) {
        snprintf(reason, cap, "not running as root");
        return;
    }
    size_t len;
    char *hosts = dss_read_file("/etc/hosts", &len);
    int listed = hosts && strcasestr(hosts, BLACKHOLED_HOST) != NULL;
    free(hosts);
    if (listed) {
        snprintf(reason, cap, "/etc/hosts names %s", BLACKHOLED_HOST);
        return;
    }
    if (unshare(CLONE_NEWNS) != 0) {
        snprintf(reason, cap, "unshare(CLONE_NEWNS) failed: %s",
                 strerror(errno));
        return;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        snprintf(reason, cap, "cannot make / private: %s", strerror(errno));
        return;
    }

    /* a random loopback address: another test program may hold one */
    srand((unsigned)(getpid() ^ dss_now_ms()));
    for (int attempt = 0; attempt < 32 && dns.fd < 0; attempt++) {
        snprintf(dns.address, sizeof(dns.address), "127.%d.%d.%d",
                 20 + rand() % 200, 1 + rand() % 250, 1 + rand() % 250);
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in addr = {0};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(53);
        inet_pton(AF_INET, dns.address, &addr.sin_addr);
        if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
            dns.fd = fd;
        } else if (fd >= 0) {
            close(fd);
        }
    }
    if (dns.fd < 0) {
        snprintf(reason, cap, "cannot bind a UDP socket on 127.x.y.z:53");
        return;
    }

    char resolv[256];
    snprintf(resolv, sizeof(resolv),
             "nameserver %s\noptions timeout:6 attempts:1\n", dns.address);
    if (dss_bind_file_over("/etc/resolv.conf", resolv) != 0) {
        snprintf(reason, cap, "cannot bind-mount /etc/resolv.conf: %s",
                 strerror(errno));
        return;
    }
    if (private_nsswitch() != 0) {
        snprintf(reason, cap, "cannot bind-mount /etc/nsswitch.conf: %s",
                 strerror(errno));
        return;
    }
    if (pthread_create(&dns.thread, NULL, dns_blackhole, NULL) != 0) {
        snprintf(reason, cap, "cannot start the DNS thread");
        return;
    }
    pthread_detach(dns.thread);
    dns.ready = 1;
}

static void skip_unless_dns(void) {
    if (!dns.ready) {
        fprintf(stderr,
                "SKIP: the DNS tests need a private mount namespace with "
                "their own resolv.conf: %s\n",
                dns.skip_reason);
        skip();
    }
}

/* ---- the archive: fault_origin's /health (counted, parkable) and /b/<name>
 * (files of the test's folder; "held*" parkable) ----------------------------- */

static fault_origin origin;
static int origin_started;

/* Polls until the origin parks n requests (at most until deadline). */
static void await_held(int n, long long deadline) {
    while (fault_origin_held(&origin) < n && dss_now_ms() < deadline) {
        dss_poll_pause();
    }
    assert_int_equal(fault_origin_held(&origin), n);
}

static void origin_start(const char *dir) {
    assert_int_equal(fault_origin_start(&origin), 0);
    fault_origin_serve_dir(&origin, dir);
    origin_started = 1;
}

/* ---- fixture: one nginx (and maybe the origin) per test -------------------
 */

static dss_nginx nginx;
static int nginx_prepared;

#define MAX_FILL 4096
static int fill_fds[MAX_FILL];
static int fill_count;

static int client_fds[3] = {-1, -1, -1}; /* the shortage test's clients */

static void close_clients(void) {
    for (int i = 0; i < 3; i++) {
        if (client_fds[i] >= 0) {
            close(client_fds[i]);
            client_fds[i] = -1;
        }
    }
}

static void close_fill(void) {
    for (int i = 0; i < fill_count; i++) {
        if (fill_fds[i] >= 0) {
            close(fill_fds[i]);
        }
    }
    fill_count = 0;
}

static int setup(void **state) {
    (void)state;
    if (dss_nginx_prepare(&nginx) != 0) {
        return -1;
    }
    nginx_prepared = 1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    close_fill();
    close_clients();
    if (nginx_prepared) {
        dss_nginx_cleanup(&nginx);
        nginx_prepared = 0;
    }
    if (origin_started) {
        fault_origin_stop(&origin);
        origin_started = 0;
    }
    return 0;
}

/* Starts nginx with config, a printf format whose arguments follow. */
static void start_nginx(const char *format, ...)
    __attribute__((format(printf, 1, 2)));

static void start_nginx(const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    char *config = NULL;
    int n = vasprintf(&config, format, ap);
    va_end(ap);
    assert_true(n > 0);
    int rc = dss_nginx_start(&nginx, config);
    free(config);
    assert_int_equal(rc, 0);
}

static void write_bill(const char *rel, const char *id, size_t size) {
    dss_write_bill(dss_path(&nginx, rel), id, size);
}

/* A GET over plain HTTP; *elapsed gets its wall time in ms. */
static dss_response timed_get(const char *target, long timeout_ms,
                              long long *elapsed) {
    dss_request_options o = {.plain_http = 1, .timeout_ms = timeout_ms};
    long long start = dss_now_ms();
    dss_response r = dss_request(&nginx, target, &o);
    *elapsed = dss_now_ms() - start;
    return r;
}

/* Polls target until it answers status, for at most timeout_ms; returns
 * the last status seen. */
static long await_status(const char *target, long status, long timeout_ms) {
    long got = 0;
    for (long long end = dss_now_ms() + timeout_ms;;) {
        long long ms;
        dss_response r = timed_get(target, 2000, &ms);
        got = r.status;
        dss_response_free(&r);
        if (got == status || dss_now_ms() >= end) {
            return got;
        }
        dss_poll_pause();
    }
}

/* r is exactly the bill in file path: 200, application/pdf, exact length,
 * not chunked, the same bytes. */
static void assert_bill(const dss_response *r, const char *path,
                        const char *what) {
    size_t len;
    char *expected = dss_read_file(path, &len);
    assert_non_null(expected);
    char length[32];
    snprintf(length, sizeof(length), "%zu", len);
    if (r->curl_code != CURLE_OK || r->status != 200) {
        fail_msg("%s: curl code %d, status %ld (expected 200)", what,
                 r->curl_code, r->status);
    }
    const char *type = dss_header(r, "Content-Type");
    if (type == NULL || strcmp(type, "application/pdf") != 0) {
        fail_msg("%s: Content-Type %s", what, type ? type : "(none)");
    }
    const char *cl = dss_header(r, "Content-Length");
    if (cl == NULL || strcmp(cl, length) != 0) {
        fail_msg("%s: Content-Length %s, expected %s", what, cl ? cl : "(none)",
                 length);
    }
    assert_null(dss_header(r, "Transfer-Encoding"));
    if (r->body_len != len || memcmp(r->body, expected, len) != 0) {
        fail_msg("%s: %zu body bytes differ from the %zu of %s", what,
                 r->body_len, len, path);
    }
    free(expected);
}

/* Polls the error log until it holds more than before lines with needle. */
static int log_grows(const char *needle, int before, long timeout_ms) {
    long long deadline = dss_now_ms() + timeout_ms;
    while (dss_error_log_count(&nginx, needle) <= before) {
        if (dss_now_ms() > deadline) {
            return 0;
        }
        dss_poll_pause();
    }
    return 1;
}

/* ---- T5: a DNS server that never answers -----------------------------------
 *
 * resolv.conf: "timeout:6 attempts:1", so a lookup blocks its resolver
 * thread for 6 s. Nothing may wait for that thread: not the worker (when a
 * fetch is cancelled or times out), not the document root, not health.
 */

static const char *const dns_config =
    "dss_bill_upstream_temp_path @PREFIX@/temp;\n"
    "server {\n"
    "    listen 127.0.0.1:@PORT@;\n"
    "    location /root/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "    }\n"
    "    location /dns/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://" BLACKHOLED_HOST
    ":%d/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_connect_timeout 2s;\n"
    "        %s\n"
    "    }\n"
    "}\n";

/* A document-root download that must answer fast and byte-exact. */
static long long root_download_ms(const char *id, long long bound_ms) {
    char target[128], rel[128];
    snprintf(target, sizeof(target), "/root/download/%s", id);
    snprintf(rel, sizeof(rel), "bills/%s.pdf", id);
    long long ms;
    dss_response r = timed_get(target, 15000, &ms);
    if (ms >= bound_ms) {
        fail_msg("the document root answered %s in %lld ms (bound %lld ms)",
                 target, ms, bound_ms);
    }
    assert_bill(&r, dss_path(&nginx, rel), target);
    dss_response_free(&r);
    return ms;
}

static void
test_T5_client_abort_during_dns_does_not_block_the_worker(void **state) {
    (void)state;
    skip_unless_dns();
    write_bill("bills/100000000001.pdf", "100000000001", 0);
    write_bill("bills/100000000002.pdf", "100000000002", 30000);
    start_nginx(dns_config, 80, "dss_bill_upstream_health_url off;");

    /* a download that waits on the lookup... */
    int queries = dns_queries();
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/dns/download/300000000001",
             nginx.port);
    CURLM *multi = curl_multi_init();
    CURL *easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 20000L);
    curl_multi_add_handle(multi, easy);
    int running = 1;
    long long deadline = dss_now_ms() + 5000;
    while (dns_queries() == queries && running && dss_now_ms() < deadline) {
        curl_multi_perform(multi, &running);
        curl_multi_poll(multi, NULL, 0, 10, NULL);
    }
    int reached = dns_queries() > queries;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);

    /* ...whose client gives up while the lookup is in flight */
    int cancelled = dss_error_log_count(&nginx, "cancelled");
    long long aborted = dss_now_ms();
    curl_multi_remove_handle(multi, easy);
    curl_easy_cleanup(easy);
    curl_multi_cleanup(multi);
    if (!reached) {
        fail_msg("the lookup never reached the blackhole DNS server "
                 "(status %ld)",
                 status);
    }

    /* the worker notices the abort and cancels the fetch (it logs that
     * before removing the transfer); meanwhile and after, the document
     * root answers at once. Polled up to 10 s: a busy machine may take a
     * while to run the worker, the bound is on each root download */
    long long worst = 0;
    int seen = 0;
    for (int i = 0; dss_now_ms() - aborted < 10000; i++) {
        seen = seen || dss_error_log_count(&nginx, "cancelled") > cancelled;
        long long ms =
            root_download_ms(i % 2 ? "100000000001" : "100000000002", 1000);
        worst = ms > worst ? ms : worst;
        if (seen && dss_now_ms() - aborted > 1000) {
            break;
        }
    }
    print_message("slowest root download after the abort: %lld ms\n", worst);
    if (!seen) {
        fail_msg("the fetch was never cancelled after its client left");
    }
}

static void test_T5_dns_timeout_answers_within_connect_timeout(void **state) {
    (void)state;
    skip_unless_dns();
    write_bill("bills/100000000001.pdf", "100000000001", 0);
    start_nginx(dns_config, 80, "dss_bill_upstream_health_url off;");

    int queries = dns_queries();
    long long ms;
    dss_response r = timed_get("/dns/download/300000000002", 15000, &ms);
    print_message("blackholed fetch answered %ld in %lld ms\n", r.status, ms);
    assert_int_equal(r.curl_code, CURLE_OK);
    assert_int_equal(r.status, 500);
    dss_response_free(&r);
    assert_true(dns_queries() > queries);
    /* connect timeout 2 s (it covers the lookup); the resolver's 6 s must
     * not show */
    if (ms >= 4000) {
        fail_msg("the 500 took %lld ms with a 2 s connect timeout", ms);
    }
    /* and the worker is not left waiting for the resolver afterwards */
    root_download_ms("100000000001", 1000);
}

static void test_T5_health_probe_dns_does_not_stall_root(void **state) {
    (void)state;
    skip_unless_dns();
    write_bill("bills/100000000001.pdf", "100000000001", 0);
    write_bill("bills/100000000002.pdf", "100000000002", 30000);
    int queries = dns_queries();
    long long started = dss_now_ms();
    start_nginx(dns_config, 80, "dss_bill_health_interval 200ms;");

    /* the worker probes the blackholed archive from its start: every probe
     * waits on the lookup, times out (connect timeout 2 s), is retried */
    long long first_query = 0;
    long long worst = 0, worst_health = 0;
    for (int i = 0; dss_now_ms() - started < 15000; i++) {
        if (first_query == 0 && dns_queries() > queries) {
            first_query = dss_now_ms();
        }
        if (first_query && dss_now_ms() - first_query > 3500) {
            break;
        }
        long long ms =
            root_download_ms(i % 2 ? "100000000001" : "100000000002", 1000);
        worst = ms > worst ? ms : worst;

        /* the health routes answer from their cached verdicts */
        static const char *const health[] = {"/root/healthcheck",
                                             "/dns/healthcheck"};
        dss_response r = timed_get(health[i % 2], 15000, &ms);
        assert_int_equal(r.curl_code, CURLE_OK);
        if (i % 2 == 0) {
            assert_int_equal(r.status, 200); /* the root is fine */
        }
        dss_response_free(&r);
        if (ms >= 1000) {
            fail_msg("%s answered in %lld ms", health[i % 2], ms);
        }
        worst_health = ms > worst_health ? ms : worst_health;
    }
    print_message("slowest root download %lld ms, slowest health %lld ms\n",
                  worst, worst_health);
    if (first_query == 0) {
        fail_msg("no probe reached the blackhole DNS server");
    }
    /* H3: and health tells the truth about the unresolvable archive */
    assert_int_equal(await_status("/dns/healthcheck", 503, 5000), 503);
}

/* ---- T5: a full connection table fails one fetch, not the archive --------
 */

/* Lines of nginx's alert that its connection table is full (not the
 * warning that it reuses idle connections). */
static int table_full_alerts(void) {
    size_t len;
    char *log = dss_read_file(dss_path(&nginx, "logs/error.log"), &len);
    assert_non_null(log);
    int count = 0;
    for (char *line = log; line && *line;) {
        char *end = strchr(line, '\n');
        if (end) {
            *end = '\0';
        }
        count += strstr(line, "[alert]") != NULL &&
                 strstr(line, "worker_connections are not enough") != NULL;
        line = end ? end + 1 : NULL;
    }
    free(log);
    return count;
}

/* Connects to nginx over TCP; -1 if the connection is refused. */
static int connect_nginx(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)nginx.port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads one response from fd (Content-Length framed, or to the close);
 * returns its status, 0 if none arrived within timeout_ms. */
static long read_status(int fd, long timeout_ms, char **body,
                        size_t *body_len) {
    size_t cap = 65536, used = 0;
    char *buf = malloc(cap + 1);
    assert_non_null(buf);
    long long deadline = dss_now_ms() + timeout_ms;
    long status = 0;
    for (;;) {
        buf[used] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            const char *cl = strcasestr(buf, "\r\ncontent-length:");
            if (cl && cl < end) {
                size_t want = (size_t)strtoul(cl + 17, NULL, 10);
                if (used >= (size_t)(end + 4 - buf) + want) {
                    break;
                }
            }
        }
        long long left = deadline - dss_now_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            break;
        }
        if (used == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        ssize_t n = recv(fd, buf + used, cap - used, 0);
        if (n <= 0) {
            break;
        }
        used += (size_t)n;
    }
    buf[used] = '\0';
    sscanf(buf, "HTTP/1.1 %ld", &status);
    char *end = strstr(buf, "\r\n\r\n");
    if (body) {
        size_t skip = end ? (size_t)(end + 4 - buf) : used;
        *body_len = used - skip;
        *body = malloc(*body_len + 1);
        assert_non_null(*body);
        memcpy(*body, buf + skip, *body_len);
    }
    free(buf);
    return status;
}

static void
test_T5_connection_shortage_fails_one_fetch_not_the_archive(void **state) {
    (void)state;
    /* filling the connection table is what nginx alerts about; nothing
     * else may (the harness checks the log when nginx stops) */
    static const char *const table_full[] = {
        "worker_connections are not enough", NULL};
    nginx.allowed_alerts = table_full;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2048) {
        fprintf(stderr,
                "SKIP: RLIMIT_NOFILE %lu: this test holds 1024 "
                "connections\n",
                (unsigned long)rl.rlim_cur);
        skip();
    }
    mkdir(dss_path(&nginx, "origin"), 0755);
    static const char *const ids[] = {"held1",      "2000000001", "2000000002",
                                      "2000000003", "2000000004", "2000000005",
                                      "late1"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char rel[64];
        snprintf(rel, sizeof(rel), "origin/%s.pdf", ids[i]);
        write_bill(rel, ids[i], 3000 + 1000 * i);
    }
    origin_start(dss_path(&nginx, "origin"));
    fault_origin_hold(&origin, FAULT_ORIGIN_HOLD_HEALTH, 1);
    fault_origin_hold(&origin, FAULT_ORIGIN_HOLD_BILLS, 1);

    /* harness: worker_connections 1024 */
    start_nginx("dss_bill_upstream_temp_path @PREFIX@/temp;\n"
                "server {\n"
                "    listen 127.0.0.1:@PORT@ deferred;\n"
                "    location = /ping { return 204; }\n"
                "    location /arch/ {\n"
                "        dss_bill;\n"
                "        dss_bill_upstream http://127.0.0.1:%1$d/b/"
                "$dss_bill_id.pdf;\n"
                "        dss_bill_upstream_health_url "
                "http://127.0.0.1:%1$d/health;\n"
                "        dss_bill_health_interval 100ms;\n"
                "        dss_bill_upstream_timeout 30s;\n"
                "    }\n"
                /* a name that takes libcurl's resolver (and its socket) */
                "    location /named/ {\n"
                "        dss_bill;\n"
                "        dss_bill_upstream http://" BLACKHOLED_HOST ":%1$d/b/"
                "$dss_bill_id.pdf;\n"
                "        dss_bill_upstream_health_url off;\n"
                "    }\n"
                "}\n",
                origin.port);

    /* a slow health probe in flight, and a download parked at the origin */
    long long deadline = dss_now_ms() + 10000;
    await_held(1, deadline);
    int parked = client_fds[0] = connect_nginx();
    assert_true(parked >= 0);
    static const char parked_request[] =
        "GET /arch/download/held1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    assert_int_equal(
        dss_send_all(parked, parked_request, sizeof(parked_request) - 1), 0);
    await_held(2, deadline);

    /* a client whose request is complete but for its last line */
    int late = client_fds[1] = connect_nginx();
    assert_true(late >= 0);
    static const char late_head[] =
        "GET /arch/download/late1 HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    assert_int_equal(dss_send_all(late, late_head, sizeof(late_head) - 1), 0);
    /* and one whose fetch starts with a name lookup (DNS tests only) */
    int named = -1;
    static const char named_head[] =
        "GET /named/download/late2 HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (dns.ready) {
        named = client_fds[2] = connect_nginx();
        assert_true(named >= 0);
        assert_int_equal(
            dss_send_all(named, named_head, sizeof(named_head) - 1), 0);
    }

    /* fill the connection table with clients in the middle of a request
     * line: with "deferred", nginx accepts each with its data and reads it
     * at once, so none is reusable; nginx says when the table is full */
    static const char partial[] = "GET /ping HTTP/1.1\r\n";
    while (fill_count < 1200 && table_full_alerts() == 0) {
        for (int i = 0; i < 32 && fill_count < MAX_FILL; i++) {
            int fd = connect_nginx();
            if (fd < 0) {
                break;
            }
            fill_fds[fill_count++] = fd;
            dss_send_all(fd, partial, sizeof(partial) - 1);
        }
        dss_poll_pause();
    }
    if (table_full_alerts() == 0) {
        fail_msg("%d connections did not fill nginx's table", fill_count);
    }
    print_message("the table is full after %d client connections\n",
                  fill_count);

    /* now the last line: this fetch cannot get a connection for its
     * socket; it alone may fail */
    assert_int_equal(dss_send_all(late, "\r\n", 2), 0);
    char *late_body = NULL;
    size_t late_len = 0;
    long late_status = read_status(late, 10000, &late_body, &late_len);
    print_message("the fetch started during the shortage: %ld\n", late_status);
    if (late_status == 200) {
        size_t len;
        char *expected =
            dss_read_file(dss_path(&nginx, "origin/late1.pdf"), &len);
        assert_int_equal(late_len, len);
        assert_memory_equal(late_body, expected, len);
        free(expected);
    } else if (late_status != 500) {
        fail_msg("the fetch started during the shortage answered %ld",
                 late_status);
    }
    free(late_body);

    /* the lookup's socket cannot be watched (no free connection): that
     * fetch alone fails, the transfers of the worker go on. The 500 above
     * closed its connection: fill the table again first */
    if (named >= 0) {
        int alerts = table_full_alerts();
        for (long long end = dss_now_ms() + 10000;
             table_full_alerts() == alerts && fill_count < MAX_FILL &&
             dss_now_ms() < end;) {
            int fd = connect_nginx();
            if (fd >= 0) {
                fill_fds[fill_count++] = fd;
                dss_send_all(fd, partial, sizeof(partial) - 1);
            }
            dss_poll_pause();
        }
        assert_true(table_full_alerts() > alerts);
        int no_watch = dss_error_log_count(&nginx, "no free connection to "
                                                   "watch an archive transfer");
        assert_int_equal(dss_send_all(named, "\r\n", 2), 0);
        long named_status = read_status(named, 10000, NULL, NULL);
        print_message("the fetch with a lookup during the shortage: %ld\n",
                      named_status);
        assert_int_equal(named_status, 500);
        assert_true(dss_error_log_count(&nginx,
                                        "no free connection to watch "
                                        "an archive transfer") > no_watch);
    }

    /* the shortage ends */
    close_fill();
    deadline = dss_now_ms() + 10000;
    long ping = 0;
    while (ping != 204 && dss_now_ms() < deadline) {
        long long ms;
        dss_response r = timed_get("/ping", 2000, &ms);
        ping = r.status;
        dss_response_free(&r);
    }
    assert_int_equal(ping, 204);

    /* the archive serves at once, while the slow probe is still in flight */
    long long ms0;
    for (int i = 1; i <= 5; i++) {
        char target[64], rel[64];
        snprintf(target, sizeof(target), "/arch/download/200000000%d", i);
        snprintf(rel, sizeof(rel), "origin/200000000%d.pdf", i);
        long long ms;
        dss_response r = timed_get(target, 15000, &ms);
        print_message("%s after the shortage: %ld in %lld ms\n", target,
                      r.status, ms);
        assert_bill(&r, dss_path(&nginx, rel), target);
        dss_response_free(&r);
        if (ms >= 1000) {
            fail_msg("%s took %lld ms after the shortage", target, ms);
        }
    }

    /* health is truthful: the archive serves (the probe is in flight) */
    dss_response h = timed_get("/arch/healthcheck", 2000, &ms0);
    assert_int_equal(h.status, 200);
    dss_response_free(&h);

    /* the download that was parked through the shortage completes */
    fault_origin_hold(&origin, FAULT_ORIGIN_HOLD_BILLS, 0);
    char *body = NULL;
    size_t body_len = 0;
    long status = read_status(parked, 10000, &body, &body_len);
    close_clients();
    size_t len;
    char *expected = dss_read_file(dss_path(&nginx, "origin/held1.pdf"), &len);
    if (status != 200 || body_len != len || memcmp(body, expected, len) != 0) {
        fail_msg("the download in flight through the shortage: status %ld, "
                 "%zu bytes (expected 200 and the %zu of held1.pdf)",
                 status, body_len, len);
    }
    free(body);
    free(expected);

    /* health: the slow probe answers, the archive is up, health says so */
    fault_origin_hold(&origin, FAULT_ORIGIN_HOLD_HEALTH, 0);
    assert_int_equal(await_status("/arch/healthcheck", 200, 5000), 200);
    long long ms;
    dss_response r = timed_get("/arch/download/2000000005", 15000, &ms);
    assert_bill(&r, dss_path(&nginx, "origin/2000000005.pdf"), "last");
    dss_response_free(&r);

    /* nginx's own alert for the full table is expected, nothing else */
}

/* ---- D6, D8: directio on the document root -------------------------------
 */

static const char *const directio_config =
    "server {\n"
    "    listen 127.0.0.1:@PORT@;\n"
    "    dss_bill_root @PREFIX@/bills;\n"
    "    location /dio/ { dss_bill; directio 4k; }\n"
    "    location /dio-aio/ { dss_bill; directio 4k; aio threads; }\n"
    "    location /dio-sendfile/ { dss_bill; directio 4k; sendfile on; }\n"
    "}\n";

static const char *const directio_locations[] = {"/dio/", "/dio-aio/",
                                                 "/dio-sendfile/"};

/* O_DIRECT works on the prefix's file system (not on older tmpfs). */
static void skip_unless_directio(void) {
    const char *path = dss_path(&nginx, "bills/odirect-probe");
    dss_write_file(path, "x", 1);
    int fd = open(path, O_RDONLY);
    int ok = fd >= 0 && fcntl(fd, F_SETFL, O_DIRECT) == 0;
    if (fd >= 0) {
        close(fd);
    }
    unlink(path);
    if (!ok) {
        fprintf(stderr, "SKIP: O_DIRECT is not supported under %s\n",
                nginx.prefix);
        skip();
    }
}

static void test_D6_directio_root_bills_are_served(void **state) {
    (void)state;
    skip_unless_directio();
    static const size_t sizes[] = {3 * 1024, 4 * 1024, 5 * 1024, 100 * 1024,
                                   1024 * 1024 + 17};
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    for (size_t i = 0; i < N; i++) {
        char id[32], rel[64];
        snprintf(id, sizeof(id), "40000000000%zu", i);
        snprintf(rel, sizeof(rel), "bills/%s.pdf", id);
        write_bill(rel, id, sizes[i]);
    }
    start_nginx("%s", directio_config);

    /* twice: the second time from the page cache, if any */
    for (int round = 0; round < 2; round++) {
        for (size_t l = 0; l < 3; l++) {
            for (size_t i = 0; i < N; i++) {
                char target[128], rel[64];
                snprintf(target, sizeof(target), "%sdownload/40000000000%zu",
                         directio_locations[l], i);
                snprintf(rel, sizeof(rel), "bills/40000000000%zu.pdf", i);
                long long ms;
                dss_response r = timed_get(target, 10000, &ms);
                assert_bill(&r, dss_path(&nginx, rel), target);
                dss_response_free(&r);
            }
        }
    }
    assert_int_equal(dss_error_log_count(&nginx, "pread() failed"), 0);
}

static void test_D8_directio_incomplete_root_bill_is_500(void **state) {
    (void)state;
    skip_unless_directio();

    /* a print job still writing: a 100 KB bill cut at 60 KB */
    write_bill("bills/500000000001.pdf", "500000000001", 100 * 1024);
    assert_int_equal(
        truncate(dss_path(&nginx, "bills/500000000001.pdf"), 60 * 1024 + 3), 0);
    /* 8 KB, then 2,000 bytes after its %%EOF: not within the last 1,024 */
    write_bill("bills/500000000002.pdf", "500000000002", 8 * 1024);
    /* 8 KB + 17, then 1,000 bytes after its %%EOF: still complete */
    write_bill("bills/500000000003.pdf", "500000000003", 8 * 1024 + 17);
    char filler[2000];
    for (size_t i = 0; i < sizeof(filler); i++) {
        filler[i] = i % 64 == 63 ? '\n' : (char)('a' + i % 26);
    }
    FILE *f = fopen(dss_path(&nginx, "bills/500000000002.pdf"), "ab");
    assert_non_null(f);
    assert_int_equal(fwrite(filler, 1, 2000, f), 2000);
    fclose(f);
    f = fopen(dss_path(&nginx, "bills/500000000003.pdf"), "ab");
    assert_non_null(f);
    assert_int_equal(fwrite(filler, 1, 1000, f), 1000);
    fclose(f);
    start_nginx("%s", directio_config);

    for (size_t l = 0; l < 3; l++) {
        for (int i = 1; i <= 2; i++) {
            char target[128];
            snprintf(target, sizeof(target), "%sdownload/50000000000%d",
                     directio_locations[l], i);
            int before =
                dss_error_log_count(&nginx, "bill is not a complete PDF");
            long long ms;
            dss_response r = timed_get(target, 10000, &ms);
            assert_int_equal(r.curl_code, CURLE_OK);
            if (r.status != 500) {
                fail_msg("%s: status %ld for an incomplete bill", target,
                         r.status);
            }
            dss_response_free(&r);
            if (!log_grows("bill is not a complete PDF", before, 5000)) {
                fail_msg("%s: no \"bill is not a complete PDF\" logged",
                         target);
            }
        }
        char target[128];
        snprintf(target, sizeof(target), "%sdownload/500000000003",
                 directio_locations[l]);
        long long ms;
        dss_response r = timed_get(target, 10000, &ms);
        assert_bill(&r, dss_path(&nginx, "bills/500000000003.pdf"), target);
        dss_response_free(&r);
    }
}

/* ---- T5: only workers probe the archive ----------------------------------
 */

/* Counts nginx's helper processes whose title holds what. */
static int helper_processes(const char *what) {
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0])) {
            continue;
        }
        char path[300];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        size_t len;
        char *stat = dss_read_file(path, &len);
        char *paren = stat ? strrchr(stat, ')') : NULL;
        int ppid = 0;
        if (paren == NULL || sscanf(paren + 1, " %*c %d", &ppid) != 1 ||
            ppid != nginx.pid) {
            free(stat);
            continue;
        }
        free(stat);
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        char *cmdline = dss_read_file(path, &len);
        count += cmdline && strstr(cmdline, what) != NULL;
        free(cmdline);
    }
    closedir(d);
    return count;
}

static void test_T5_only_workers_probe_the_archive(void **state) {
    (void)state;
    mkdir(dss_path(&nginx, "origin"), 0755);
    origin_start(dss_path(&nginx, "origin"));
    start_nginx("proxy_cache_path @PREFIX@/cache keys_zone=z:1m;\n"
                "server {\n"
                "    listen 127.0.0.1:@PORT@;\n"
                "    location /arch/ {\n"
                "        dss_bill;\n"
                "        dss_bill_upstream http://127.0.0.1:%1$d/b/"
                "$dss_bill_id.pdf;\n"
                "        dss_bill_upstream_health_url "
                "http://127.0.0.1:%1$d/health;\n"
                "        dss_bill_health_interval 100ms;\n"
                "    }\n"
                "}\n",
                origin.port);

    /* the helpers are there (else this proves nothing) */
    long long deadline = dss_now_ms() + 10000;
    while ((helper_processes("cache manager") < 1 ||
            helper_processes("worker process") < 1 ||
            fault_origin_probes(&origin) < 1) &&
           dss_now_ms() < deadline) {
        dss_poll_pause();
    }
    assert_int_equal(helper_processes("cache manager"), 1);
    assert_int_equal(helper_processes("worker process"), 1);

    /* one worker probing every 100 ms: about 20 probes in 2 s */
    long long from = dss_now_ms();
    while (dss_now_ms() - from < 2000) {
        dss_poll_pause();
    }
    long long to = dss_now_ms();
    int probes = fault_origin_probes_between(&origin, from, to);
    long long window = to - from;
    long long bound = window / 100 * 3 / 2 + 2;
    print_message("%d probes in %lld ms (bound %lld)\n", probes, window, bound);
    if (probes > bound) {
        fail_msg("%d probes in %lld ms with one worker probing every 100 ms",
                 probes, window);
    }
    if (probes < 3) {
        fail_msg("only %d probes in %lld ms: the worker does not probe", probes,
                 window);
    }
}

/* ---- D3, H2: headers and bodies of other modules -------------------------
 */

/* How many header lines called name (the harness returns the first). */
static int header_count(const dss_response *r, const char *name) {
    size_t name_len = strlen(name);
    int count = 0;
    for (const char *line = r->headers; line && *line;) {
        if (strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
            count++;
        }
        line = strstr(line, "\r\n");
        line = line ? line + 2 : NULL;
    }
    return count;
}

static void test_D3_expires_does_not_add_a_second_cache_control(void **state) {
    (void)state;
    write_bill("bills/600000000001.pdf", "600000000001", 0);
    start_nginx("server {\n"
                "    listen 127.0.0.1:@PORT@;\n"
                "    location /exp/ {\n"
                "        dss_bill;\n"
                "        dss_bill_root @PREFIX@/bills;\n"
                "        expires 1h;\n"
                "    }\n"
                "    location /add/ {\n"
                "        dss_bill;\n"
                "        dss_bill_root @PREFIX@/bills;\n"
                "        add_header Cache-Control public always;\n"
                "        add_header Expires \"Thu, 01 Jan 2037 00:00:00 GMT\" "
                "always;\n"
                "        add_header X-Kept yes always;\n"
                "    }\n"
                "}\n");
    static const char *const targets[] = {
        "/exp/download/600000000001", "/exp/healthcheck",
        "/add/download/600000000001", "/add/healthcheck"};
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        long long ms;
        dss_response r = timed_get(targets[i], 10000, &ms);
        assert_int_equal(r.status, 200);
        if (strstr(targets[i], "download")) {
            assert_bill(&r, dss_path(&nginx, "bills/600000000001.pdf"),
                        targets[i]);
        }
        /* a bill is never cacheable: exactly the module's Cache-Control */
        if (header_count(&r, "Cache-Control") != 1 ||
            header_count(&r, "Expires") != 0) {
            fail_msg("%s: %d Cache-Control and %d Expires headers:\n%s",
                     targets[i], header_count(&r, "Cache-Control"),
                     header_count(&r, "Expires"), r.headers);
        }
        assert_string_equal(dss_header(&r, "Cache-Control"),
                            strstr(targets[i], "download")
                                ? "private, no-store"
                                : "no-store");
        if (strncmp(targets[i], "/add/", 5) == 0) {
            /* other headers stay */
            assert_string_equal(dss_header(&r, "X-Kept"), "yes");
        }
        dss_response_free(&r);
    }
}

/*
 * nginx's body-rewriting filters, enabled for every type in dss_bill
 * locations, would drop the Content-Length and change the bytes (sub_filter
 * rewrites them, add_after_body appends, and even turns the health answer
 * into "Transfer-Encoding: chunked" with no body, so the client waits until
 * keepalive_timeout); charset_types * would append "; charset=utf-8" to the
 * type. The module's own answers see these filters switched off.
 */
static void test_D3_H2_body_rewriting_filters_leave_bills_and_health_alone(
    void **state) {
    (void)state;
    write_bill("bills/700000000001.pdf", "700000000001", 0);
    start_nginx("server {\n"
                "    listen 127.0.0.1:@PORT@;\n"
                "    dss_bill_root @PREFIX@/bills;\n"
                "    location = /added { return 200 \"ADDED\"; }\n"
                "    location /add/ {\n"
                "        dss_bill;\n"
                "        addition_types *;\n"
                "        add_before_body /added;\n"
                "        add_after_body /added;\n"
                "    }\n"
                "    location /sub/ {\n"
                "        dss_bill;\n"
                "        sub_filter_types *;\n"
                "        sub_filter_once off;\n"
                "        sub_filter PDF XYZ;\n"
                "        sub_filter a b;\n"
                "    }\n"
                "    location /ssi/ { dss_bill; ssi on; ssi_types *; }\n"
                "    location /cs/ {\n"
                "        dss_bill;\n"
                "        charset utf-8;\n"
                "        charset_types *;\n"
                "    }\n"
                "}\n");
    static const char *const locations[] = {"/sub/", "/ssi/", "/add/",
                                            "/cs/"};
    for (size_t i = 0; i < sizeof(locations) / sizeof(locations[0]); i++) {
        char target[128];
        long long ms;

        snprintf(target, sizeof(target), "%shealthcheck", locations[i]);
        dss_response r = timed_get(target, 3000, &ms);
        const char *te = dss_header(&r, "Transfer-Encoding");
        const char *cl = dss_header(&r, "Content-Length");
        print_message("%s: curl %d, %ld, %lld ms, Content-Length %s, "
                      "Transfer-Encoding %s, %zu body bytes\n",
                      target, r.curl_code, r.status, ms, cl ? cl : "-",
                      te ? te : "-", r.body_len);
        if (r.curl_code != CURLE_OK || r.status != 200 || te != NULL ||
            cl == NULL || strcmp(cl, "0") != 0 || r.body_len != 0) {
            fail_msg("H2: %s is not a 200 with Content-Length: 0 and no body "
                     "(curl %d, status %ld, %lld ms, Transfer-Encoding %s)",
                     target, r.curl_code, r.status, ms, te ? te : "-");
        }
        dss_response_free(&r);

        /* D3: the bill's exact bytes, its exact length, its exact type */
        snprintf(target, sizeof(target), "%sdownload/700000000001",
                 locations[i]);
        r = timed_get(target, 3000, &ms);
        assert_bill(&r, dss_path(&nginx, "bills/700000000001.pdf"), target);
        dss_response_free(&r);
    }
}

/* "if" and "limit_except" blocks keep their location's content handler:
 * they must answer like their location (a worker once followed a null
 * health pointer for /healthcheck?x=1 in "location /"). */
static void test_D3_H2_D7_if_and_limit_except_blocks_answer_like_their_location(
    void **state) {
    (void)state;
    write_bill("bills/800000000001.pdf", "800000000001", 0);
    start_nginx("server {\n"
                "    listen 127.0.0.1:@PORT@;\n"
                "    dss_bill_root @PREFIX@/bills;\n"
                "    location / {\n"
                "        dss_bill;\n"
                "        if ($arg_x) { add_header X-If 1; }\n"
                "    }\n"
                "    location /b/ {\n"
                "        dss_bill;\n"
                "        if ($arg_x) { add_header X-If 1; }\n"
                "        limit_except GET { allow 127.0.0.1; deny all; }\n"
                "    }\n"
                "}\n");
    static const char *const targets[] = {
        "/download/800000000001?x=1", "/b/download/800000000001?x=1",
        "/b/download/800000000001"};
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        long long ms;
        dss_response r = timed_get(targets[i], 5000, &ms);
        assert_bill(&r, dss_path(&nginx, "bills/800000000001.pdf"),
                    targets[i]);
        dss_response_free(&r);
    }
    static const char *const health[] = {"/healthcheck?x=1",
                                         "/b/healthcheck?x=1"};
    for (size_t i = 0; i < sizeof(health) / sizeof(health[0]); i++) {
        assert_int_equal(await_status(health[i], 200, 0), 200);
    }
    /* limit_except lets this client through: the module's own 405 */
    dss_request_options post = {.method = "POST", .plain_http = 1};
    dss_response r = dss_request(&nginx, "/b/download/800000000001", &post);
    assert_int_equal(r.status, 405);
    assert_string_equal(dss_header(&r, "Allow"), "GET, HEAD");
    dss_response_free(&r);
}

int main(void) {
    /* before any thread: the private mount namespace for the DNS tests */
    dns_setup();

    /* the connection-shortage test holds ~1,024 connections; nginx, started
     * from here, inherits the limit too */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 8192 &&
        rl.rlim_max > rl.rlim_cur) {
        rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_T5_client_abort_during_dns_does_not_block_the_worker, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_T5_dns_timeout_answers_within_connect_timeout, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_T5_health_probe_dns_does_not_stall_root, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_T5_connection_shortage_fails_one_fetch_not_the_archive, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_D6_directio_root_bills_are_served,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_D8_directio_incomplete_root_bill_is_500, setup, teardown),
        cmocka_unit_test_setup_teardown(test_T5_only_workers_probe_the_archive,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_D3_H2_D7_if_and_limit_except_blocks_answer_like_their_location,
            setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_D3_expires_does_not_add_a_second_cache_control, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_D3_H2_body_rewriting_filters_leave_bills_and_health_alone,
            setup, teardown),
    };
    /* DSS_TEST_FILTER=test_T5_* runs a subset */
    const char *filter = getenv("DSS_TEST_FILTER");
    if (filter && *filter) {
        cmocka_set_test_filter(filter);
    }
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (dns.fd >= 0) {
        close(dns.fd);
    }
    return failed;
}

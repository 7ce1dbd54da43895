/* Integration tests of the archive path's byte integrity (D8, D9): every
 * body checked byte for byte against the bill it should be. A stock nginx
 * as the archive, the fault origin for the framings and connections a stock
 * nginx cannot produce, and the module's nginx in front on a plain-HTTP
 * listener with sendfile (Debian's default), driven with libcurl and raw
 * sockets.
 *
 * Every bill here has distinct bytes everywhere: its filler is made of
 * records "[<id>@<offset>]", so a block of another bill (or of another place
 * in the same bill) never compares equal, and a wrong body names the bill
 * its bytes came from. */

#define _GNU_SOURCE /* asprintf */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fault_origin.h"
#include "harness.h"
#include "sample_pdf.h"

static dss_nginx archive;      /* stock nginx serving files */
static dss_nginx nginx;        /* the module, default memory budget */
static dss_nginx nginx0;       /* the module, dss_bill_upstream_memory 0 */
static dss_nginx fresh;        /* test_D8_big_first_chunk_...: its own worker */
static dss_nginx relaxed;      /* dss_bill_pdf_check signature */
static fault_origin origin;    /* framing, redirects */
static fault_origin ka_origin; /* kept-alive connections: its own, so that a
                                  desynchronised connection left by a failing
                                  test cannot reach the other tests */

static const char *const archive_config = "server {\n"
                                          "    listen 127.0.0.1:@PORT@;\n"
                                          "    keepalive_requests 100000;\n"
                                          "    root @PREFIX@/bills;\n"
                                          "    location / { }\n"
                                          "}\n";

/* %1$d archive port, %2$d fault origin port, %3$d keep-alive origin port */
static const char *const module_config =
    "sendfile on;\n"
    "dss_bill_upstream_temp_path @PREFIX@/temp;\n"
    "server {\n"
    "    listen 127.0.0.1:@PORT@;\n"
    "    location /arch/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/$dss_bill_id.pdf;\n"
    "    }\n"
    "    location /root/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "    }\n"
    "    location /fault/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%2$d/$dss_bill_id;\n"
    "        dss_bill_upstream_timeout 3s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /ka/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%3$d/$dss_bill_id;\n"
    "        dss_bill_upstream_keepalive on;\n"
    "        dss_bill_upstream_timeout 3s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /ka-default/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%3$d/$dss_bill_id;\n"
    "        dss_bill_upstream_timeout 3s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /key/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%2$d/$dss_bill_id;\n"
    "        dss_bill_upstream_header X-Api-Key k123;\n"
    "        dss_bill_upstream_redirects 1;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /basic/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%2$d/$dss_bill_id;\n"
    "        dss_bill_upstream_basic_auth dss:secret;\n"
    "        dss_bill_upstream_redirects 1;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "}\n";

/* %1$d archive port; kept connections here, so that the battery also
 * proves their reuse */
static const char *const module0_config =
    "sendfile on;\n"
    "dss_bill_upstream_memory 0;\n"
    "dss_bill_upstream_keepalive on;\n"
    "dss_bill_upstream_temp_path @PREFIX@/temp;\n"
    "server {\n"
    "    listen 127.0.0.1:@PORT@;\n"
    "    location /arch/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/$dss_bill_id.pdf;\n"
    "    }\n"
    "}\n";

/* %1$d archive port */
static const char *const fresh_config =
    "dss_bill_upstream_memory 0;\n"
    "dss_bill_upstream_temp_path @PREFIX@/temp;\n"
    "server {\n"
    "    listen 127.0.0.1:@PORT@;\n"
    "    location /arch/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_buffer_size 1k;\n"
    "    }\n"
    "}\n";

/* %1$d archive port, %2$s the root with the test's bills */
static const char *const relaxed_config =
    "server {\n"
    "    listen 127.0.0.1:@PORT@;\n"
    "    location /arch/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/$dss_bill_id.pdf;\n"
    "        dss_bill_pdf_check signature;\n"
    "    }\n"
    "    location /root/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root %2$s;\n"
    "        dss_bill_pdf_check signature;\n"
    "    }\n"
    "}\n";

/* ---- bills -------------------------------------------------------------- */

/* The concurrency battery: distinct bills, 2 KB to 600 KB. */
enum { NBILLS = 150 };
static char bill_ids[NBILLS][16];
static char *bill_bytes[NBILLS];
static size_t bill_sizes[NBILLS];

/* Test-specific bills (bytes as written to storage). */
typedef struct {
    char *bytes;
    size_t len;
} blob;

static blob slow_a, fast_b;                                 /* D9 slow reader */
static blob big200k, small500, html_page;                   /* D8 first chunk */
static blob arch_incomplete, arch_truncated, arch_trailing; /* D8 complete */
static blob root_incomplete, root_truncated, root_trailing;

/*
 * A valid one-page PDF of exactly size bytes whose padding stream is filled
 * with records naming the id and the offset: distinct bytes everywhere.
 */
static blob tagged_pdf(const char *dir_path, const char *id, size_t size) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s.pdf", dir_path, id) >=
        (int)sizeof(path)) {
        fail_msg("path too long: %s/%s.pdf", dir_path, id);
    }
    if (sample_pdf_write(path, id, size) != 0) {
        fail_msg("cannot write bill %s: %s", path, strerror(errno));
    }
    blob b;
    b.bytes = dss_read_file(path, &b.len);
    assert_non_null(b.bytes);
    assert_int_equal(b.len, size);
    char *obj = strstr(b.bytes, "6 0 obj\n<< /Length ");
    assert_non_null(obj);
    size_t pad = strtoul(obj + 19, NULL, 10);
    char *stream = strstr(obj, "stream\n");
    assert_non_null(stream);
    stream += 7;
    fault_origin_fill_tagged(stream, pad, id, (size_t)(stream - b.bytes));
    dss_write_file(path, b.bytes, b.len);
    return b;
}

/* Writes bytes as <dir>/<id>.pdf and keeps them. */
static blob stored(const char *dir_path, const char *id, char *bytes,
                   size_t len) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s.pdf", dir_path, id) >=
        (int)sizeof(path)) {
        fail_msg("path too long: %s/%s.pdf", dir_path, id);
    }
    dss_write_file(path, bytes, len);
    blob b = {bytes, len};
    return b;
}

/* A PDF whose %%EOF is 2000 bytes before the end: not complete. */
static blob incomplete_pdf(const char *dir_path, const char *id) {
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%s-base", id);
    blob base = tagged_pdf(dir_path, tmp, 10000);
    size_t extra = 1995; /* "%%EOF\n" ends the base: %%EOF at end - 2001 */
    char *bytes = malloc(base.len + extra);
    assert_non_null(bytes);
    memcpy(bytes, base.bytes, base.len);
    fault_origin_fill_tagged(bytes + base.len, extra, id, base.len);
    free(base.bytes);
    return stored(dir_path, id, bytes, base.len + extra);
}

/* The first 8000 bytes of a 20000-byte PDF (a print job still writing). */
static blob truncated_pdf(const char *dir_path, const char *id) {
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%s-whole", id);
    blob whole = tagged_pdf(dir_path, tmp, 20000);
    return stored(dir_path, id, whole.bytes, 8000);
}

/* A PDF followed by 1000 bytes of whitespace and junk after its %%EOF. */
static blob trailing_pdf(const char *dir_path, const char *id) {
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%s-base", id);
    blob base = tagged_pdf(dir_path, tmp, 10000);
    size_t extra = 1000;
    char *bytes = malloc(base.len + extra);
    assert_non_null(bytes);
    memcpy(bytes, base.bytes, base.len);
    for (size_t i = 0; i < extra; i++) {
        bytes[base.len + i] = " \r\n\t"[i % 4];
    }
    memcpy(bytes + base.len + 500, "junk after the end", 18);
    free(base.bytes);
    return stored(dir_path, id, bytes, base.len + extra);
}

/* Sizes spread evenly on a log scale from 2 KB to 600 KB (without libm:
 * the step is the (NBILLS-1)th root of the ratio, found by bisection), in
 * an order that mixes small and large; distinct sizes too. */
static size_t battery_size(int i) {
    const double lo = 2048, hi = 600 * 1024;
    double a = 1.0, b = 2.0;
    for (int k = 0; k < 60; k++) {
        double m = (a + b) / 2, p = 1.0;
        for (int j = 0; j < NBILLS - 1; j++) {
            p *= m;
        }
        if (p < hi / lo) {
            a = m;
        } else {
            b = m;
        }
    }
    double size = lo;
    for (int j = (i * 53) % NBILLS; j > 0; j--) {
        size *= a;
    }
    return (size_t)size + (size_t)i;
}

/* ---- comparing bodies --------------------------------------------------- */

/* If a record "[<id>@<hex>]" starts at pos, copies its id to out. */
static int record_at(const char *body, size_t len, size_t pos, char *out,
                     size_t out_size) {
    if (pos >= len || body[pos] != '[') {
        return 0;
    }
    const char *at = memchr(body + pos, '@', len - pos < 66 ? len - pos : 66);
    if (at == NULL || at == body + pos + 1) {
        return 0;
    }
    const char *p = at + 1;
    while (p < body + len && *p && strchr("0123456789abcdef", *p)) {
        p++;
    }
    if (p == at + 1 || p >= body + len || *p != ']') {
        return 0;
    }
    snprintf(out, out_size, "%.*s", (int)(at - body - (long)pos - 1),
             body + pos + 1);
    return 1;
}

/* The bill whose tagged filler holds the byte at off (or, outside the
 * filler, the next record after it), or "?". */
static void owner_at(const char *body, size_t len, size_t off, char *out,
                     size_t out_size) {
    snprintf(out, out_size, "?");
    for (size_t back = 0; back < 96 && back <= off; back++) {
        if (record_at(body, len, off - back, out, out_size)) {
            return;
        }
    }
    for (size_t pos = off; pos < len && pos < off + 4096; pos++) {
        if (record_at(body, len, pos, out, out_size)) {
            return;
        }
    }
}

/* The id the PDF shows ("Bill ID: <id>)"), or "?". */
static void shown_id(const char *body, size_t len, char *out, size_t out_size) {
    snprintf(out, out_size, "?");
    const char *p = memmem(body, len, "Bill ID: ", 9);
    if (p == NULL) {
        return;
    }
    p += 9;
    const char *end = memchr(p, ')', len - (size_t)(p - body));
    if (end && end - p < 64) {
        snprintf(out, out_size, "%.*s", (int)(end - p), p);
    }
}

/* Describes how body differs from the expected bill; returns 1 if equal. */
static int same_bytes(const char *body, size_t len, const char *expected,
                      size_t expected_len, char *why, size_t why_size) {
    if (len == expected_len && memcmp(body, expected, len) == 0) {
        return 1;
    }
    size_t off = 0, common = len < expected_len ? len : expected_len;
    while (off < common && body[off] == expected[off]) {
        off++;
    }
    char owner[80], shown[80];
    owner_at(body, len, off, owner, sizeof(owner));
    shown_id(body, len, shown, sizeof(shown));
    snprintf(why, why_size,
             "%zu bytes (expected %zu), first difference at offset %zu, "
             "bytes there belong to \"%s\", the PDF shows bill id \"%s\"",
             len, expected_len, off, owner, shown);
    return 0;
}

static void assert_body(const dss_response *r, const char *what,
                        const blob *expected) {
    char why[512];
    if (r->curl_code != CURLE_OK || r->status != 200) {
        fail_msg("%s: curl %d, status %ld (expected a 200)", what, r->curl_code,
                 r->status);
    }
    if (!same_bytes(r->body, r->body_len, expected->bytes, expected->len, why,
                    sizeof(why))) {
        fail_msg("%s: 200 with the wrong bytes: %s", what, why);
    }
    const char *type = dss_header(r, "Content-Type");
    if (type == NULL || strcmp(type, "application/pdf") != 0) {
        fail_msg("%s: Content-Type %s", what, type ? type : "(none)");
    }
}

static dss_response get_plain(const dss_nginx *n, const char *target) {
    dss_request_options o = {.plain_http = 1};
    return dss_request(n, target, &o);
}

/* Polls the error log for a new line with needle (written after the
 * response). */
static int log_grows(const dss_nginx *n, const char *needle, int before) {
    for (int i = 0; i < 250; i++) {
        if (dss_error_log_count(n, needle) > before) {
            return 1;
        }
        dss_poll_pause();
    }
    return 0;
}

/* target answers status (never a 200 with a body), and, if logged is not
 * NULL, a new error-log line holds it. */
static void expect_failure(const dss_nginx *n, const char *target, long status,
                           const char *logged) {
    int before = logged ? dss_error_log_count(n, logged) : 0;
    dss_response r = get_plain(n, target);
    if (r.curl_code != CURLE_OK || r.status != status) {
        fail_msg("%s: curl %d, status %ld with %zu body bytes (expected %ld)",
                 target, r.curl_code, r.status, r.body_len, status);
    }
    dss_response_free(&r);
    if (logged && !log_grows(n, logged, before)) {
        fail_msg("%s: no new error-log line with \"%s\"", target, logged);
    }
}

/* ---- setup -------------------------------------------------------------- */

static int start_module(dss_nginx *n, const char *format, ...) {
    va_list ap;
    char *config = NULL;
    va_start(ap, format);
    int len = vasprintf(&config, format, ap);
    va_end(ap);
    if (len < 0) {
        return -1;
    }
    int rc = dss_nginx_start(n, config);
    free(config);
    return rc;
}

static int group_setup(void **state) {
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (fault_origin_start(&origin) != 0 ||
        fault_origin_start(&ka_origin) != 0 ||
        dss_nginx_prepare(&archive) != 0 || dss_nginx_prepare(&nginx) != 0 ||
        dss_nginx_prepare(&nginx0) != 0) {
        return -1;
    }
    const char *store = dss_path(&archive, "bills");
    char store_dir[PATH_MAX];
    snprintf(store_dir, sizeof(store_dir), "%s", store);
    char root_dir[PATH_MAX];
    snprintf(root_dir, sizeof(root_dir), "%s", dss_path(&nginx, "bills"));

    for (int i = 0; i < NBILLS; i++) {
        snprintf(bill_ids[i], sizeof(bill_ids[i]), "c%03d", i);
        blob b = tagged_pdf(store_dir, bill_ids[i], battery_size(i));
        bill_bytes[i] = b.bytes;
        bill_sizes[i] = b.len;
    }
    slow_a = tagged_pdf(store_dir, "slowA", 64 * 1024);
    fast_b = tagged_pdf(store_dir, "fastB", 64 * 1024 + 17);

    big200k = tagged_pdf(store_dir, "big200k", 200 * 1024);
    small500 =
        stored(store_dir, "small500", fault_origin_bill("small500", 500), 500);
    size_t html_len = 20 * 1024;
    char *html = malloc(html_len);
    assert_non_null(html);
    memcpy(html, "<html><body>", 12);
    fault_origin_fill_tagged(html + 12, html_len - 12 - 15, "html", 12);
    memcpy(html + html_len - 15, "</body></html>\n", 15);
    html_page = stored(store_dir, "page", html, html_len);

    arch_incomplete = incomplete_pdf(store_dir, "incomplete-a");
    arch_truncated = truncated_pdf(store_dir, "truncated-a");
    arch_trailing = trailing_pdf(store_dir, "trailing-a");
    root_incomplete = incomplete_pdf(root_dir, "incomplete-r");
    root_truncated = truncated_pdf(root_dir, "truncated-r");
    root_trailing = trailing_pdf(root_dir, "trailing-r");

    if (dss_nginx_start(&archive, archive_config) != 0) {
        return -1;
    }
    if (start_module(&nginx, module_config, archive.port, origin.port,
                     ka_origin.port) != 0 ||
        start_module(&nginx0, module0_config, archive.port) != 0) {
        return -1;
    }
    return 0;
}

static void free_blob(blob *b) {
    free(b->bytes);
    b->bytes = NULL;
}

static int group_teardown(void **state) {
    (void)state;
    dss_nginx_cleanup(&relaxed);
    dss_nginx_cleanup(&fresh);
    dss_nginx_cleanup(&nginx0);
    dss_nginx_cleanup(&nginx);
    dss_nginx_cleanup(&archive);
    fault_origin_stop(&ka_origin);
    fault_origin_stop(&origin);
    for (int i = 0; i < NBILLS; i++) {
        free(bill_bytes[i]);
    }
    blob *blobs[] = {&slow_a,         &fast_b,        &big200k,
                     &small500,       &html_page,     &arch_incomplete,
                     &arch_truncated, &arch_trailing, &root_incomplete,
                     &root_truncated, &root_trailing};
    for (size_t i = 0; i < sizeof(blobs) / sizeof(blobs[0]); i++) {
        free_blob(blobs[i]);
    }
    curl_global_cleanup();
    return 0;
}

/* ---- D9: concurrent keep-alive downloads, every byte checked ------------ */

/* Prints the module's last logged reason, for a failure's diagnosis. */
static void print_last_reason(const dss_nginx *n) {
    size_t len;
    char *log = dss_read_file(dss_path(n, "logs/error.log"), &len);
    char *last = NULL;
    for (char *p = log; p && (p = strstr(p, "dss_bill: ")) != NULL; p++) {
        last = p;
    }
    if (last) {
        char *end = strchr(last, '\n');
        fprintf(stderr, "[ info     ] last reason logged: %.*s\n",
                (int)(end ? end - last : (long)strlen(last)), last);
    }
    free(log);
}

enum {
    CLIENTS = 192,      /* keep-alive clients, one easy handle each */
    TOTAL = 6000,       /* downloads per battery */
    PAUSE_MS = 300,     /* a pausing reader waits this long after its first
                           bytes */
    SLOW_RATE = 131072, /* bytes/s of a rate-limited reader */
    MAX_CLIENTS = CLIENTS,
};

typedef struct {
    CURL *easy;
    int busy;
    char *body;
    size_t len, cap;
    const char *expected; /* the bytes this download must be */
    size_t expected_len;
    char *owned;          /* expected, when it was made for this download */
    char what[64];        /* what was asked, for messages */
    int pauses; /* a slow reader: pauses after its first bytes */
    int paused; /* paused now, until resume_at */
    long long resume_at;
} client;

/*
 * A battery of concurrent downloads: clients keep-alive clients (one easy
 * handle each, reused), total downloads; aim() names the i-th download's
 * URL and the bytes it must be (and may hand over a buffer to free). Every
 * body is compared byte for byte; a 500 counts as an answer only with
 * allow_500.
 */
typedef struct {
    const char *label;
    int clients, total;
    int slow_readers; /* a third rate-limited, a third pausing */
    int allow_500;
    void (*aim)(const dss_nginx *n, int i, client *c, char *url,
                size_t url_size);
} battery;

static size_t client_write(char *data, size_t size, size_t nmemb,
                           void *userdata) {
    client *c = userdata;
    size_t n = size * nmemb;
    if (c->pauses && c->len == 0 && !c->paused && c->resume_at == 0) {
        /* libcurl hands these bytes again after the pause */
        c->paused = 1;
        c->resume_at = dss_now_ms() + PAUSE_MS;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap : 65536;
        while (cap < c->len + n) {
            cap *= 2;
        }
        char *p = realloc(c->body, cap);
        if (p == NULL) {
            return 0;
        }
        c->body = p;
        c->cap = cap;
    }
    memcpy(c->body + c->len, data, n);
    c->len += n;
    return n;
}

static void run_battery(const battery *b, const dss_nginx *n) {
    static client clients[MAX_CLIENTS];
    const long long budget_ms = 30000; /* no new downloads after that */
    long long bytes = 0;
    int started = 0, done = 0, right = 0, wrong = 0, failed = 0, active = 0;
    char wrong_example[768] = "", failed_example[256] = "";
    CURLM *multi = curl_multi_init();
    assert_non_null(multi);
    assert_true(b->clients <= MAX_CLIENTS);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)b->clients);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)b->clients);
    long long t0 = dss_now_ms();

    for (int i = 0; i < b->clients; i++) {
        client *c = &clients[i];
        memset(c, 0, sizeof(*c));
        c->easy = curl_easy_init();
        assert_non_null(c->easy);
        curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, client_write);
        curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
        curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(c->easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
        /* slow readers: their bytes wait in the socket buffers while the
         * module serves the next bills; a third read at a low rate, a third
         * pause after their first bytes, the rest read at once */
        if (b->slow_readers && i % 3 == 0) {
            curl_easy_setopt(c->easy, CURLOPT_MAX_RECV_SPEED_LARGE,
                             (curl_off_t)SLOW_RATE);
        }
        c->pauses = b->slow_readers && i % 3 == 1;
    }

    for (;;) {
        /* every idle client takes the next download, while there is time */
        for (int i = 0; i < b->clients; i++) {
            client *c = &clients[i];
            if (c->busy || started >= b->total ||
                dss_now_ms() - t0 >= budget_ms) {
                continue;
            }
            char url[256];
            free(c->owned);
            c->owned = NULL;
            c->len = 0;
            c->paused = 0;
            c->resume_at = 0;
            b->aim(n, started, c, url, sizeof(url));
            assert_non_null(c->expected);
            curl_easy_setopt(c->easy, CURLOPT_URL, url);
            curl_multi_add_handle(multi, c->easy);
            c->busy = 1;
            started++;
            active++;
        }
        if (active == 0) {
            break;
        }

        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE) {
                continue;
            }
            client *c = NULL;
            long status = 0;
            CURLcode result = msg->data.result;
            CURL *easy = msg->easy_handle;
            curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&c);
            curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
            curl_multi_remove_handle(multi, easy);
            c->busy = 0;
            active--;
            done++;
            bytes += (long long)c->len;

            char why[512];
            if (result == CURLE_OK && status == 200) {
                if (same_bytes(c->body, c->len, c->expected, c->expected_len,
                               why, sizeof(why))) {
                    right++;
                } else if (wrong++ == 0) {
                    snprintf(wrong_example, sizeof(wrong_example),
                             "asked %s, got a 200 with %s", c->what, why);
                }
            } else if (!(result == CURLE_OK && status == 500 &&
                         b->allow_500) &&
                       failed++ == 0) {
                snprintf(failed_example, sizeof(failed_example),
                         "asked %s: curl %d (%s), status %ld, %zu bytes",
                         c->what, (int)result, curl_easy_strerror(result),
                         status, c->len);
            }
        }

        long long now = dss_now_ms();
        int wait_ms = 100;
        for (int i = 0; i < b->clients; i++) {
            client *c = &clients[i];
            if (c->paused && now >= c->resume_at) {
                c->paused = 0;
                curl_easy_pause(c->easy, CURLPAUSE_CONT);
            } else if (c->paused && c->resume_at - now < wait_ms) {
                wait_ms = (int)(c->resume_at - now);
            }
        }
        if (active > 0) {
            curl_multi_poll(multi, NULL, 0, wait_ms, NULL);
        }
    }
    long long elapsed = dss_now_ms() - t0;

    for (int i = 0; i < b->clients; i++) {
        curl_easy_cleanup(clients[i].easy);
        free(clients[i].body);
        free(clients[i].owned);
        memset(&clients[i], 0, sizeof(client));
    }
    curl_multi_cleanup(multi);

    fprintf(stderr,
            "[ info     ] %s: %d downloads by %d keep-alive clients in %lld "
            "ms: %d right, %d with wrong bytes, %d failed, %lld MB\n",
            b->label, done, b->clients, elapsed, right, wrong, failed,
            bytes >> 20);
    if (wrong > 0) {
        fail_msg("%s: %d of %d downloads were a 200 with another bill's "
                 "bytes; e.g. %s",
                 b->label, wrong, done, wrong_example);
    }
    if (failed > 0) {
        print_last_reason(n);
        fail_msg("%s: %d of %d downloads failed; e.g. %s", b->label, failed,
                 done, failed_example);
    }
    /* the time budget must not have hidden the battery, nor may the module
     * have refused most of it */
    assert_true(done >= b->total / 3);
    assert_true(right >= done / 2);
}

/* ---- D9: archive bills of mixed sizes, slow readers, sendfile ----------- */

/* The archive's bills through /arch/, in a fixed scattered order. */
static void aim_at_archive_bill(const dss_nginx *n, int i, client *c,
                                char *url, size_t size) {
    int bill = (i * 37 + 11) % NBILLS;
    c->expected = bill_bytes[bill];
    c->expected_len = bill_sizes[bill];
    snprintf(c->what, sizeof(c->what), "%s", bill_ids[bill]);
    snprintf(url, size, "http://127.0.0.1:%d/arch/download/%s", n->port,
             bill_ids[bill]);
}

/* CLIENTS keep-alive clients, two thirds of them reading slowly, fetch
 * TOTAL archive bills of mixed sizes from n's /arch/ over plain HTTP with
 * sendfile; every body is compared with the bill it asked for. */
static void
test_D9_concurrent_archive_downloads_get_their_own_bytes(void **state) {
    (void)state;
    battery b = {"default dss_bill_upstream_memory", CLIENTS, TOTAL, 1, 0,
                 aim_at_archive_bill};
    run_battery(&b, &nginx);
}

static void test_D9_concurrent_archive_downloads_get_their_own_bytes_memory_0(
    void **state) {
    (void)state;
    battery b = {"dss_bill_upstream_memory 0, keepalive on", CLIENTS, TOTAL, 1,
                 0, aim_at_archive_bill};
    run_battery(&b, &nginx0);
}

/* ---- D9: an archive that sends answers nobody asked for ----------------- */

/* The fault origin's kept-alive bills through a location (ka_location),
 * the i-th from the path ka_kinds[i % ka_nkinds] + "k<i>", which answers
 * fault_origin_bill("k<i>") (and, for the faulty kinds, more). */
static const char *ka_location;
static const char *const *ka_kinds;
static int ka_nkinds;

static void aim_at_ka_bill(const dss_nginx *n, int i, client *c, char *url,
                           size_t size) {
    snprintf(c->what, sizeof(c->what), "k%d", i);
    c->owned = fault_origin_bill(c->what, FAULT_ORIGIN_KA_SIZE);
    c->expected = c->owned;
    c->expected_len = FAULT_ORIGIN_KA_SIZE;
    snprintf(url, size, "http://127.0.0.1:%d%sdownload/%s%s", n->port,
             ka_location, ka_kinds[i % ka_nkinds], c->what);
}

static void concurrent_ka(const char *location, const char *const *kinds,
                          int nkinds, int allow_500) {
    ka_location = location;
    ka_kinds = kinds;
    ka_nkinds = nkinds;
    battery b = {location, 32, 480, 0, allow_500, aim_at_ka_bill};
    run_battery(&b, &nginx);
}

/* Kept connections: an answer the archive sends unasked, together with the
 * asked one, never reaches the next request on that connection (bytes that
 * are there when the connection is parked, arrive while it is idle, or wait
 * when it is reused are all caught). */
static void test_D9_unsolicited_answers_under_load_with_keepalive(
    void **state) {
    (void)state;
    static const char *const kinds[] = {"ka-", "ka-excess-", "ka-", "ka-"};
    concurrent_ka("/ka/", kinds, 4, 1);
}

/* By default no connection is reused: even an answer that comes late, when
 * the next request could already be on its way (which HTTP/1.1 cannot tell
 * from that request's own answer), reaches nobody. */
static void test_D9_late_answers_reach_nobody_by_default(void **state) {
    (void)state;
    static const char *const kinds[] = {"ka-", "ka-late-", "ka-excess-"};
    concurrent_ka("/ka-default/", kinds, 3, 0);
}

/* ---- D9: a slow reader keeps its own bill ------------------------------- */

static int raw_connect(int port, int rcvbuf) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    /* before connect(): the window it announces stays small */
    assert_int_equal(
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return fd;
}

/* Reads until the peer closes (or timeout_ms); a malloc'd buffer. */
static char *raw_read_all(int fd, size_t *len, long timeout_ms) {
    size_t cap = 65536, used = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    long long deadline = dss_now_ms() + timeout_ms;
    while (dss_now_ms() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        if (used == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t n = recv(fd, buf + used, cap - used, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        used += (size_t)n;
    }
    *len = used;
    return buf;
}

/* Reads the whole response on fd (and closes it): a 200 whose body is
 * exactly expected's bytes. */
static void expect_raw_bill(int fd, const blob *expected, const char *what) {
    size_t len;
    char *raw = raw_read_all(fd, &len, 10000);
    close(fd);
    char *end = raw ? memmem(raw, len, "\r\n\r\n", 4) : NULL;
    if (end == NULL || strncmp(raw, "HTTP/1.1 200 ", 13) != 0) {
        free(raw);
        fail_msg("%s: no 200 response head in %zu bytes", what, len);
    }
    char *body = end + 4;
    size_t body_len = len - (size_t)(body - raw);
    char why[512];
    int same = same_bytes(body, body_len, expected->bytes, expected->len, why,
                          sizeof(why));
    free(raw);
    if (!same) {
        fail_msg("%s read a 200 with %s", what, why);
    }
}

static int access_log_has(const dss_nginx *n, const char *needle) {
    size_t len;
    char *log = dss_read_file(dss_path(n, "logs/access.log"), &len);
    int found = log && strstr(log, needle) != NULL;
    free(log);
    return found;
}

static void test_D9_slow_reader_keeps_its_own_bill(void **state) {
    (void)state;
    /* client 1 asks for A and does not read */
    int fd = raw_connect(nginx0.port, 4096);
    static const char request[] = "GET /arch/download/slowA HTTP/1.1\r\n"
                                  "Host: 127.0.0.1\r\n"
                                  "Connection: close\r\n\r\n";
    assert_int_equal(send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL),
                     (ssize_t)(sizeof(request) - 1));

    /* nginx has handed all of A to the kernel and logged it as done */
    int logged = 0;
    for (int i = 0; i < 500 && !logged; i++) {
        logged = access_log_has(&nginx0, "\"GET /arch/download/slowA "
                                         "HTTP/1.1\" 200 ");
        if (!logged) {
            dss_poll_pause();
        }
    }
    if (!logged) {
        close(fd);
        fail_msg("nginx never logged A as done while its client waited");
    }

    /* client 2 fetches B completely */
    dss_response r = get_plain(&nginx0, "/arch/download/fastB");
    assert_body(&r, "client 2 (bill fastB)", &fast_b);
    dss_response_free(&r);

    /* client 1 reads now: A's bytes, nothing else */
    expect_raw_bill(fd, &slow_a, "client 1 (bill slowA)");
}

/* The same from memory (the default budget keeps bills of a few MB in
 * memory): a bill larger than the socket buffers can take (4.5 MB; the
 * kernel's send buffer holds at most 4 MB) is still being sent to a client
 * that does not read while other clients fetch other bills; the memory it
 * is sent from is not given to their fetches. */
static void test_D9_slow_reader_keeps_its_own_bill_from_memory(void **state) {
    (void)state;
    char store_dir[PATH_MAX];
    snprintf(store_dir, sizeof(store_dir), "%s", dss_path(&archive, "bills"));
    blob slow = tagged_pdf(store_dir, "slowM", 4608 * 1024);
    blob fast = tagged_pdf(store_dir, "fastM", 2 * 1024 * 1024 + 13);

    /* client 1 asks for slowM and does not read: its answer starts (the
     * status line arrives) and then waits in nginx's buffer */
    int fd = raw_connect(nginx.port, 4096);
    static const char request[] = "GET /arch/download/slowM HTTP/1.1\r\n"
                                  "Host: 127.0.0.1\r\n"
                                  "Connection: close\r\n\r\n";
    assert_int_equal(send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL),
                     (ssize_t)(sizeof(request) - 1));
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) {
        close(fd);
        fail_msg("client 1: no answer within 10 s");
    }

    /* meanwhile other clients fetch fastM */
    for (int i = 0; i < 2; i++) {
        dss_response r = get_plain(&nginx, "/arch/download/fastM");
        assert_body(&r, "client 2 (bill fastM)", &fast);
        dss_response_free(&r);
    }
    /* (slowM is still being sent: else this test proves nothing) */
    if (access_log_has(&nginx, "\"GET /arch/download/slowM HTTP/1.1\" ")) {
        close(fd);
        fail_msg("nginx finished slowM while its client did not read");
    }

    /* client 1 reads now: slowM's bytes, nothing else */
    expect_raw_bill(fd, &slow, "client 1 (bill slowM)");
    free(slow.bytes);
    free(fast.bytes);
}

/* ---- D8: a first chunk larger than the buffer --------------------------- */

static void test_D8_big_first_chunk_is_checked_not_stale_memory(void **state) {
    (void)state;
    /* a worker of its own: the first fetch meets fresh memory */
    assert_int_equal(dss_nginx_prepare(&fresh), 0);
    assert_int_equal(start_module(&fresh, fresh_config, archive.port), 0);

    dss_response r = get_plain(&fresh, "/arch/download/big200k");
    assert_body(&r, "first fetch of a fresh worker (200 KB PDF)", &big200k);
    dss_response_free(&r);

    r = get_plain(&fresh, "/arch/download/small500");
    assert_body(&r, "500-byte PDF", &small500);
    dss_response_free(&r);

    /* 20 KB of HTML after the small PDF: the signature check must read the
     * HTML, not what the buffer held before */
    int before = dss_error_log_count(&fresh, "bill is not a PDF");
    r = get_plain(&fresh, "/arch/download/page");
    if (r.status != 500) {
        fail_msg("archive HTML (%zu bytes, starts \"%.12s\"): status %ld "
                 "with %zu bytes, Content-Type %s (expected 500)",
                 html_page.len, html_page.bytes, r.status, r.body_len,
                 dss_header(&r, "Content-Type") ? dss_header(&r, "Content-Type")
                                                : "(none)");
    }
    dss_response_free(&r);
    assert_true(log_grows(&fresh, "bill is not a PDF", before));

    r = get_plain(&fresh, "/arch/download/big200k");
    assert_body(&r, "200 KB PDF again", &big200k);
    dss_response_free(&r);

    dss_nginx_cleanup(&fresh);
}

/* ---- D9: a kept-alive archive connection carries no stale bytes --------- */

static void expect_own_ka_bill(const char *id, int allow_500) {
    char target[128], what[128], why[512];
    snprintf(target, sizeof(target), "/ka/download/ka-%s", id);
    snprintf(what, sizeof(what), "bill %s", id);
    char *expected = fault_origin_bill(id, FAULT_ORIGIN_KA_SIZE);
    assert_non_null(expected);
    dss_response r = get_plain(&nginx, target);
    int ok = r.curl_code == CURLE_OK &&
             ((r.status == 500 && allow_500) ||
              (r.status == 200 &&
               same_bytes(r.body, r.body_len, expected, FAULT_ORIGIN_KA_SIZE,
                          why, sizeof(why))));
    if (!ok) {
        if (r.status == 200) {
            fail_msg("%s: a 200 with %s", what, why);
        }
        fail_msg("%s: curl %d, status %ld", what, r.curl_code, r.status);
    }
    free(expected);
    dss_response_free(&r);
}

static void test_D9_unsolicited_response_on_kept_alive_connection_is_not_served(
    void **state) {
    (void)state;
    int unsolicited = fault_origin_unsolicited_sent(&ka_origin);

    /* X, answered on a kept-alive connection, followed by a response
     * nobody asked for (bill E-x1) */
    char *x = fault_origin_bill("x1", FAULT_ORIGIN_KA_SIZE);
    blob bx = {x, FAULT_ORIGIN_KA_SIZE};
    dss_response r = get_plain(&nginx, "/ka/download/ka-unsolicited-x1");
    assert_body(&r, "bill x1", &bx);
    dss_response_free(&r);
    free(x);

    for (int i = 0;
         i < 250 && fault_origin_unsolicited_sent(&ka_origin) <= unsolicited;
         i++) {
        dss_poll_pause();
    }
    assert_true(fault_origin_unsolicited_sent(&ka_origin) > unsolicited);

    /* B and C: their own bytes (or a 500), never E's or each other's */
    expect_own_ka_bill("b1", 1);
    expect_own_ka_bill("c1", 1);
    /* and the archive still serves */
    expect_own_ka_bill("d1", 0);
}

/* ---- D9: the API key stays with the archive's origin -------------------- */

static void expect_record(const char *id, int *api_key, int *authorization) {
    int seen = 0;
    for (int i = 0; i < 100 && !seen; i++) {
        seen = fault_origin_record_seen(&origin, id, api_key, authorization);
        if (!seen) {
            dss_poll_pause();
        }
    }
    if (!seen) {
        fail_msg("the origin never saw /record-%s", id);
    }
}

static void test_D9_api_key_never_leaves_the_archive_origin(void **state) {
    (void)state;
    int key = 0, auth = 0;
    char *bill;
    blob expected;

    /* the same origin: the key goes along, the bill arrives */
    bill = fault_origin_bill("same1", FAULT_ORIGIN_KA_SIZE);
    expected = (blob){bill, FAULT_ORIGIN_KA_SIZE};
    dss_response r = get_plain(&nginx, "/key/download/redirect-same-same1");
    assert_body(&r, "redirect within the origin", &expected);
    dss_response_free(&r);
    free(bill);
    expect_record("same1", &key, &auth);
    assert_true(key);

    /* another host name: another origin, the key must stay behind (the
     * download itself may be a 200 or a 500) */
    bill = fault_origin_bill("other1", FAULT_ORIGIN_KA_SIZE);
    expected = (blob){bill, FAULT_ORIGIN_KA_SIZE};
    r = get_plain(&nginx, "/key/download/redirect-other-other1");
    if (r.status != 500) {
        assert_body(&r, "redirect to another origin", &expected);
    }
    dss_response_free(&r);
    free(bill);
    if (fault_origin_record_seen(&origin, "other1", &key, &auth) && key) {
        fail_msg("X-Api-Key followed the redirect to http://localhost:%d/ "
                 "(another origin)",
                 origin.port);
    }

    /* Basic auth: to the same origin, never to another */
    r = get_plain(&nginx, "/basic/download/redirect-same-same2");
    assert_int_equal(r.status, 200);
    dss_response_free(&r);
    expect_record("same2", &key, &auth);
    assert_true(auth);

    r = get_plain(&nginx, "/basic/download/redirect-other-other2");
    assert_true(r.status == 200 || r.status == 500);
    dss_response_free(&r);
    if (fault_origin_record_seen(&origin, "other2", &key, &auth) && auth) {
        fail_msg("Basic credentials followed the redirect to another origin");
    }
}

/* ---- D8: truncated or ambiguous archive framing ------------------------- */

static void
test_D8_truncated_or_ambiguous_archive_framing_is_500(void **state) {
    (void)state;
    /* HTTP/1.0, no length, 8000 of 20000 bytes, then a clean close */
    expect_failure(&nginx, "/fault/download/cut-close-f1", 500, NULL);
    expect_failure(&nginx, "/fault/download/dup-length-f2", 500,
                   "archive response framing is ambiguous");
    expect_failure(&nginx, "/fault/download/dup-same-length-f3", 500,
                   "archive response framing is ambiguous");
    expect_failure(&nginx, "/fault/download/cl-chunked-f4", 500,
                   "archive response framing is ambiguous");
    /* one Content-Length line holding a list, or a signed number: whoever
     * reads "20000, 40000" or "+20000" as 20000 serves a bill another
     * reader would call cut short */
    expect_failure(&nginx, "/fault/download/list-length-f6", 500,
                   "archive response framing is ambiguous");
    expect_failure(&nginx, "/fault/download/signed-length-f7", 500,
                   "archive response framing is ambiguous");

    /* a complete close-delimited body stays a 200 */
    blob pdf = {(char *)fault_origin_pdf(), FAULT_ORIGIN_PDF_SIZE};
    dss_response r = get_plain(&nginx, "/fault/download/close-f5");
    assert_body(&r, "complete close-delimited body", &pdf);
    dss_response_free(&r);
}

/* ---- D8: the completeness check, and its relaxation ---------------------- */

static void test_D8_incomplete_pdf_is_500_unless_relaxed(void **state) {
    (void)state;
    static const char *const not_complete = "bill is not a complete PDF";
    dss_response r;

    /* default (complete): no %%EOF in the last 1024 bytes is a 500 */
    expect_failure(&nginx, "/arch/download/incomplete-a", 500, not_complete);
    expect_failure(&nginx, "/arch/download/truncated-a", 500, not_complete);
    expect_failure(&nginx, "/root/download/incomplete-r", 500, not_complete);
    expect_failure(&nginx, "/root/download/truncated-r", 500, not_complete);

    /* junk after %%EOF, within the last 1024 bytes: still a bill */
    r = get_plain(&nginx, "/arch/download/trailing-a");
    assert_body(&r, "archive bill with 1000 bytes after %%EOF", &arch_trailing);
    dss_response_free(&r);
    r = get_plain(&nginx, "/root/download/trailing-r");
    assert_body(&r, "root bill with 1000 bytes after %%EOF", &root_trailing);
    dss_response_free(&r);

    /* dss_bill_pdf_check signature: the signature is enough */
    assert_int_equal(dss_nginx_prepare(&relaxed), 0);
    if (start_module(&relaxed, relaxed_config, archive.port,
                     dss_path(&nginx, "bills")) != 0) {
        fail_msg("nginx did not start with dss_bill_pdf_check signature");
    }
    static const struct {
        const char *target;
        const blob *bill;
    } served[] = {
        {"/arch/download/incomplete-a", &arch_incomplete},
        {"/arch/download/truncated-a", &arch_truncated},
        {"/arch/download/trailing-a", &arch_trailing},
        {"/root/download/incomplete-r", &root_incomplete},
        {"/root/download/truncated-r", &root_truncated},
        {"/root/download/trailing-r", &root_trailing},
    };
    for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++) {
        r = get_plain(&relaxed, served[i].target);
        assert_body(&r, served[i].target, served[i].bill);
        dss_response_free(&r);
    }
    dss_nginx_cleanup(&relaxed);
}

/* Runs last: nothing above left an alert behind. */

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_D9_concurrent_archive_downloads_get_their_own_bytes),
        cmocka_unit_test(
            test_D9_concurrent_archive_downloads_get_their_own_bytes_memory_0),
        cmocka_unit_test(test_D9_unsolicited_answers_under_load_with_keepalive),
        cmocka_unit_test(test_D9_late_answers_reach_nobody_by_default),
        cmocka_unit_test(test_D9_slow_reader_keeps_its_own_bill),
        cmocka_unit_test(test_D9_slow_reader_keeps_its_own_bill_from_memory),
        cmocka_unit_test(test_D8_big_first_chunk_is_checked_not_stale_memory),
        cmocka_unit_test(
            test_D9_unsolicited_response_on_kept_alive_connection_is_not_served),
        cmocka_unit_test(test_D9_api_key_never_leaves_the_archive_origin),
        cmocka_unit_test(test_D8_truncated_or_ambiguous_archive_framing_is_500),
        cmocka_unit_test(test_D8_incomplete_pdf_is_500_unless_relaxed),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

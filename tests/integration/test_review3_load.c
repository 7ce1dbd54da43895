/* Third hostile review, under load: many clients at once (HTTP/2 over TLS,
 * HTTP/1.1 kept alive over TLS, plain HTTP/1.1 one request per connection;
 * sendfile on and off), every source in the same two workers (root,
 * archive from memory and from a temporary file, the archive cache's
 * misses, collapsed waiters and hits, an object store, errors), small and
 * 5 MB bills, some
 * clients leaving in the middle: every body is compared byte for byte with
 * the bill its request named (D8, D9). Then the same while the cache folder
 * is emptied, replaced, made read-only and removed behind nginx's back, and
 * while nginx reloads and a worker is told to quit with downloads in
 * flight (T6): a download completes byte-exact or fails visibly, never a
 * 200 with another or a shorter body. */

#define _GNU_SOURCE /* asprintf, strndup */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "review3_origin.h"

static dss_nginx nginx;
static review3_origin origin;

static const char *const config =
    "dss_bill_cache_path @PREFIX@/cache levels=1:2 keys_zone=r3:4m "
    "max_size=200m inactive=1h;\n"
    /* a cache far smaller than what goes through it: nginx's cache
     * manager evicts while hits are being served */
    "dss_bill_cache_path @PREFIX@/small keys_zone=r3small:1m max_size=1m "
    "manager_sleep=50ms manager_threshold=50ms;\n"
    "dss_bill_upstream_memory 2m;\n"
    "dss_bill_upstream_temp_path @PREFIX@/temp;\n"
    "server {\n"
    "    listen 127.0.0.1:@PORT@ ssl http2;\n"
    "    listen 127.0.0.1:@PORT2@;\n"
    "    ssl_certificate @PREFIX@/cert.pem;\n"
    "    ssl_certificate_key @PREFIX@/key.pem;\n"
    "    keepalive_requests 100000;\n"
    "    http2_max_concurrent_streams 256;\n"
    "    add_header X-Cache $dss_bill_cache_status always;\n"
    "    location /root/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "        sendfile on;\n"
    "    }\n"
    "    location /rootns/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "        sendfile off;\n"
    "    }\n"
    "    location /arch/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/a/$dss_bill_id;\n"
    "        dss_bill_upstream_connect_timeout 10s;\n"
    "        dss_bill_upstream_timeout 30s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /both/ {\n"
    "        dss_bill;\n"
    "        dss_bill_root @PREFIX@/bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/b/$dss_bill_id;\n"
    "        dss_bill_upstream_connect_timeout 10s;\n"
    "        dss_bill_upstream_timeout 30s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        sendfile off;\n"
    "    }\n"
    "    location /cache/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/c/$dss_bill_id;\n"
    "        dss_bill_upstream_connect_timeout 10s;\n"
    "        dss_bill_upstream_timeout 30s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        dss_bill_cache r3;\n"
    "        sendfile on;\n"
    "    }\n"
    /* an object store (the origin does not check signatures: what is
     * tested is the signed fetch's bytes under load), cached and not */
    "    location /s3/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/bucket/$dss_bill_id;\n"
    "        dss_bill_upstream_s3 region=eu-west-1;\n"
    "        dss_bill_upstream_s3_credentials @PREFIX@/aws/credentials;\n"
    "        dss_bill_upstream_connect_timeout 10s;\n"
    "        dss_bill_upstream_timeout 30s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /s3cache/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/bucket/$dss_bill_id;\n"
    "        dss_bill_upstream_s3 region=eu-west-1;\n"
    "        dss_bill_upstream_s3_credentials @PREFIX@/aws/credentials;\n"
    "        dss_bill_upstream_connect_timeout 10s;\n"
    "        dss_bill_upstream_timeout 30s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        dss_bill_cache r3;\n"
    "    }\n"
    "    location /cachesmall/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/c/$dss_bill_id;\n"
    "        dss_bill_upstream_connect_timeout 10s;\n"
    "        dss_bill_upstream_timeout 30s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        dss_bill_cache r3small;\n"
    "    }\n"
    "    location /cachens/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/c/$dss_bill_id;\n"
    "        dss_bill_upstream_connect_timeout 10s;\n"
    "        dss_bill_upstream_timeout 30s;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        dss_bill_cache r3;\n"
    "        sendfile off;\n"
    "    }\n"
    "}\n";

static int group_setup(void **state) {
    (void)state;
    curl_global_init(CURL_GLOBAL_ALL);
    return review3_origin_start(&origin);
}

static int group_teardown(void **state) {
    (void)state;
    review3_origin_stop(&origin);
    curl_global_cleanup();
    return 0;
}

static void write_root_bill(const char *id, size_t size) {
    char rel[160];
    snprintf(rel, sizeof(rel), "bills/%s.pdf", id);
    char *bill = review3_bill(id, size);
    dss_write_file(dss_path(&nginx, rel), bill, size);
    free(bill);
}

static int setup(void **state) {
    (void)state;
    if (dss_nginx_prepare(&nginx) != 0) {
        return -1;
    }
    nginx.workers = 2;
    static const char credentials[] =
        "[default]\naws_access_key_id = AKIAREVIEW3LOAD\n"
        "aws_secret_access_key = review3LoadSecret/Abc+Def=\n";
    mkdir(dss_path(&nginx, "aws"), 0700);
    dss_write_file(dss_path(&nginx, "aws/credentials"), credentials,
                   strlen(credentials));
    chmod(dss_path(&nginx, "aws/credentials"), 0600);
    /* the root's bills: "r-<size>-<n>" */
    static const size_t sizes[] = {1200, 10000, 70000, 300000, REVIEW3_MB5};
    for (int n = 0; n < 4; n++) {
        for (size_t s = 0; s < 5; s++) {
            char id[64];
            snprintf(id, sizeof(id), "r-%zu-%d", sizes[s], n);
            write_root_bill(id, sizes[s]);
        }
    }
    review3_origin_gate(&origin, 1);
    char *text = NULL;
    if (asprintf(&text, config, origin.port) < 0) {
        return -1;
    }
    int rc = dss_nginx_start(&nginx, text);
    free(text);
    return rc;
}

static int teardown(void **state) {
    (void)state;
    review3_origin_gate(&origin, 1);
    dss_nginx_cleanup(&nginx);
    return 0;
}

/* ---- many requests at once ------------------------------------------------ */

enum { PROTO_H2, PROTO_H1_TLS, PROTO_H1_PLAIN, PROTO_COUNT };

typedef struct {
    char target[200];
    int proto;
    long want_status;  /* 200: want the bill; else that status */
    char bill_id[96];  /* the bill a 200 must be */
    size_t bill_size;
    size_t leave_after; /* > 0: the client leaves after this many bytes */
    long slow;          /* > 0: reads at most this many bytes per second */

    CURL *easy;
    char *body;
    size_t len, cap;
    char cache[16];
    long status;
    CURLcode code;
    int done;
} job;

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
    job *j = arg;
    size_t len = size * n;
    if (j->len + len > j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 65536;
        while (cap < j->len + len) {
            cap *= 2;
        }
        char *p = realloc(j->body, cap);
        if (p == NULL) {
            return 0;
        }
        j->body = p;
        j->cap = cap;
    }
    memcpy(j->body + j->len, data, len);
    j->len += len;
    if (j->leave_after && j->len >= j->leave_after) {
        return 0; /* the client goes away */
    }
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg) {
    job *j = arg;
    size_t len = size * n;
    if (len > 9 && strncasecmp(data, "X-Cache: ", 9) == 0) {
        snprintf(j->cache, sizeof(j->cache), "%.*s", (int)(len - 9), data + 9);
        j->cache[strcspn(j->cache, "\r\n")] = '\0';
    }
    return len;
}

static void job_prepare(job *j) {
    char url[300];
    if (j->proto == PROTO_H1_PLAIN) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", nginx.port2,
                 j->target);
    } else {
        snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", nginx.port,
                 j->target);
    }
    CURL *e = curl_easy_init();
    j->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(e, CURLOPT_CAINFO, dss_path(&nginx, "cert.pem"));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (j->slow > 0) {
        curl_easy_setopt(e, CURLOPT_MAX_RECV_SPEED_LARGE,
                         (curl_off_t)j->slow);
    }
    switch (j->proto) {
    case PROTO_H2:
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
        break;
    case PROTO_H1_TLS:
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
        break;
    default:
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
        break;
    }
}

/*
 * The verdict of one finished job: NULL, or what is wrong. A 200 must be
 * exactly its bill. A client that left has only a prefix of it. A download
 * that failed at the transport level (allowed only where told) must hold
 * no byte of another bill.
 */
static const char *job_problem(job *j, int transport_errors_allowed,
                               char *why, size_t cap) {
    if (j->leave_after) {
        if (j->status == 200 && j->len > 0) {
            char *want = review3_bill(j->bill_id, j->bill_size);
            size_t n = j->len < j->bill_size ? j->len : j->bill_size;
            int same = memcmp(j->body, want, n) == 0 && j->len <= j->bill_size;
            free(want);
            if (!same) {
                snprintf(why, cap, "a client that left got another body");
                return why;
            }
        }
        return NULL;
    }
    if (j->code != CURLE_OK) {
        if (transport_errors_allowed) {
            if (j->status == 200 && j->len > 0) {
                char *want = review3_bill(j->bill_id, j->bill_size);
                size_t n = j->len < j->bill_size ? j->len : j->bill_size;
                int same = memcmp(j->body, want, n) == 0;
                free(want);
                if (!same) {
                    snprintf(why, cap, "a broken download carried another "
                                       "bill's bytes");
                    return why;
                }
            }
            return NULL;
        }
        snprintf(why, cap, "transfer failed: %s (%ld, %zu bytes)",
                 curl_easy_strerror(j->code), j->status, j->len);
        return why;
    }
    if (j->status != j->want_status) {
        snprintf(why, cap, "status %ld, want %ld", j->status, j->want_status);
        return why;
    }
    if (j->status != 200) {
        if (j->len >= 5 && memcmp(j->body, "%PDF-", 5) == 0) {
            snprintf(why, cap, "a %ld with a PDF body", j->status);
            return why;
        }
        return NULL;
    }
    char *want = review3_bill(j->bill_id, j->bill_size);
    int same = j->len == j->bill_size && memcmp(j->body, want, j->len) == 0;
    free(want);
    if (!same) {
        snprintf(why, cap, "200 with %zu bytes that are not bill %s (%zu)",
                 j->len, j->bill_id, j->bill_size);
        return why;
    }
    return NULL;
}

typedef void (*batch_action)(int step);

/* jobs of the last batch that failed at the transport level (allowed or
 * not), and that ended as complete 200s */
static int last_broken, last_complete;

/* Marks the jobs whose transfers ended (code, status, done); returns how
 * many ended now. */
static int collect_finished(CURLM *multi) {
    int ended = 0;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        job *j;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        j->code = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &j->status);
        j->done = 1;
        ended++;
    }
    return ended;
}

/*
 * Runs every job at once; calls action(k) when k * every jobs have
 * finished (k = 1, 2, ...), while the rest are still in flight. Returns the
 * number of jobs with a problem (each printed).
 */
static int run_batch(job *jobs, int count, int transport_errors_allowed,
                     batch_action action, int every) {
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    for (int i = 0; i < count; i++) {
        job_prepare(&jobs[i]);
        curl_multi_add_handle(multi, jobs[i].easy);
    }
    int running = count, finished = 0, step = 0, problems = 0;
    last_broken = last_complete = 0;
    long long end = dss_now_ms() + 80000;
    while (finished < count && dss_now_ms() < end) {
        curl_multi_perform(multi, &running);
        finished += collect_finished(multi);
        if (action && every > 0 && finished >= (step + 1) * every &&
            finished < count) {
            action(++step);
        }
        if (finished < count) {
            curl_multi_poll(multi, NULL, 0, 50, NULL);
        }
    }
    for (int i = 0; i < count; i++) {
        job *j = &jobs[i];
        char why[200];
        const char *p = j->done ? job_problem(j, transport_errors_allowed,
                                              why, sizeof(why))
                                : "never finished";
        last_broken += j->done && j->code != CURLE_OK;
        last_complete += j->done && j->code == CURLE_OK && j->status == 200;
        if (p) {
            problems++;
            fprintf(stderr, "  PROBLEM %s (%s): %s\n", j->target,
                    j->proto == PROTO_H2       ? "h2"
                    : j->proto == PROTO_H1_TLS ? "h1 tls"
                                               : "h1 plain",
                    p);
        }
        curl_multi_remove_handle(multi, j->easy);
        curl_easy_cleanup(j->easy);
        free(j->body);
        j->body = NULL;
        j->len = j->cap = 0;
    }
    curl_multi_cleanup(multi);
    return problems;
}

static void set_job(job *j, int proto, const char *loc, const char *id,
                    size_t size, long status) {
    memset(j, 0, sizeof(*j));
    j->proto = proto;
    snprintf(j->target, sizeof(j->target), "/%s/download/%s", loc, id);
    snprintf(j->bill_id, sizeof(j->bill_id), "%s", id);
    j->bill_size = size;
    j->want_status = status;
}

/* The mixed workload of one round: returns the number of jobs. */
static int make_mix(job *jobs, int max, int round) {
    int n = 0;
    char id[96];
    static const size_t sizes[] = {1200, 10000, 70000, 300000, REVIEW3_MB5};
    for (int i = 0; n < max; i++) {
        int proto = i % PROTO_COUNT;
        int pick = i % 16;
        size_t size = sizes[(i / 3) % 5];
        if (size == REVIEW3_MB5 && (i / 15) % 3 != 0) {
            size = 20000; /* a few 5 MB bills per round, not a third */
        }
        switch (pick) {
        case 0:
        case 1:
            snprintf(id, sizeof(id), "r-%zu-%d", sizes[i % 5], i % 4);
            set_job(&jobs[n++], proto, pick ? "rootns" : "root", id,
                    sizes[i % 5], 200);
            break;
        case 2:
            snprintf(id, sizeof(id), "ok-%zu-a%d-%d", size, round, i);
            set_job(&jobs[n++], proto, "arch", id, size, 200);
            break;
        case 3:
            snprintf(id, sizeof(id), "chunked-%zu-a%d-%d", size, round, i);
            set_job(&jobs[n++], proto, "arch", id, size, 200);
            break;
        case 4:
            /* one bill for many requests: collapsed on the first round,
             * hits later; 300 KB, 5 MB */
            snprintf(id, sizeof(id), "ok-%d-shared%d", i % 2 ? 300000 : REVIEW3_MB5,
                     i % 2);
            set_job(&jobs[n++], proto, i % 3 ? "cache" : "cachens", id,
                    i % 2 ? 300000 : REVIEW3_MB5, 200);
            break;
        case 5:
            /* a new bill per round and request: misses */
            snprintf(id, sizeof(id), "close-%zu-c%d-%d", size, round, i);
            set_job(&jobs[n++], proto, i % 2 ? "cache" : "cachesmall", id,
                    size, 200);
            break;
        case 6:
            /* the same bills every round: misses, then hits */
            snprintf(id, sizeof(id), "ok-%zu-keep%d", sizes[i % 4], i % 7);
            set_job(&jobs[n++], proto,
                    i % 3 == 2 ? "cachesmall"
                               : (i % 2 ? "cache" : "cachens"),
                    id, sizes[i % 4], 200);
            break;
        case 7:
            snprintf(id, sizeof(id), "status-500-e%d-%d", round, i);
            set_job(&jobs[n++], proto, i % 2 ? "arch" : "cache", id, 0, 500);
            break;
        case 8:
            snprintf(id, sizeof(id), "status-404-e%d-%d", round, i);
            set_job(&jobs[n++], proto, "cache", id, 0, 404);
            break;
        case 9:
            snprintf(id, sizeof(id), "html-e%d-%d", round, i);
            set_job(&jobs[n++], proto, "arch", id, 0, 500);
            break;
        case 10:
            /* root first, then the archive */
            snprintf(id, sizeof(id), "r-%zu-%d", sizes[i % 4], i % 4);
            set_job(&jobs[n++], proto, "both", id, sizes[i % 4], 200);
            break;
        case 11:
            snprintf(id, sizeof(id), "ok-%zu-b%d-%d", size, round, i);
            set_job(&jobs[n++], proto, "both", id, size, 200);
            break;
        case 12:
            snprintf(id, sizeof(id), "r-missing-%d", i);
            set_job(&jobs[n++], proto, "root", id, 0, 404);
            break;
        case 13:
            /* leaves in the middle of a 5 MB bill */
            snprintf(id, sizeof(id), "r-%d-%d", REVIEW3_MB5, i % 4);
            set_job(&jobs[n], proto, i % 2 ? "root" : "rootns", id,
                    REVIEW3_MB5, 200);
            jobs[n++].leave_after = 200000 + (size_t)i * 1000;
            break;
        case 14:
            snprintf(id, sizeof(id), "ok-%d-leave%d-%d", REVIEW3_MB5, round, i);
            set_job(&jobs[n], proto, i % 2 ? "arch" : "cache", id,
                    REVIEW3_MB5, 200);
            jobs[n++].leave_after = 100000;
            break;
        default:
            /* the object store: a new bill, or the same ones every round
             * (cached: misses, then hits) */
            if (i % 2) {
                snprintf(id, sizeof(id), "chunked-%zu-s%d-%d", size, round, i);
                set_job(&jobs[n++], proto, "s3", id, size, 200);
            } else {
                snprintf(id, sizeof(id), "ok-%zu-s3keep%d", sizes[i % 4],
                         i % 5);
                set_job(&jobs[n++], proto, "s3cache", id, sizes[i % 4], 200);
            }
            break;
        }
    }
    return n;
}

#define MIX 128

/* D8, D9, T5: 128 requests at once per round, three rounds. */
static void test_D9_mixed_load_every_body_is_its_own_bill(void **state) {
    (void)state;
    static job jobs[MIX];
    long long t0 = dss_now_ms();
    for (int round = 0; round < 3; round++) {
        int n = make_mix(jobs, MIX, round);
        int problems = run_batch(jobs, n, 0, NULL, 0);
        fprintf(stderr, "  round %d: %d requests, %d problems, %lld ms\n",
                round, n, problems, dss_now_ms() - t0);
        assert_int_equal(problems, 0);
    }
    /* what went through the small cache (more than its 1 MB) was trimmed
     * by nginx's cache manager meanwhile */
    long long end = dss_now_ms() + 10000;
    long long used = 0;
    do {
        char *cmd = NULL;
        assert_true(asprintf(&cmd, "du -sb %s", dss_path(&nginx, "small")) >
                    0);
        FILE *p = popen(cmd, "r");
        free(cmd);
        assert_non_null(p);
        used = -1;
        if (fscanf(p, "%lld", &used) != 1) {
            used = -1;
        }
        pclose(p);
        if (used >= 0 && used <= 1200 * 1024) {
            break;
        }
        dss_poll_pause();
    } while (dss_now_ms() < end);
    fprintf(stderr, "  the 1 MB cache holds %lld bytes\n", used);
    assert_true(used >= 0 && used <= 1200 * 1024);
}

/* ---- the cache folder behind nginx's back --------------------------------- */

static void run_cmd(const char *fmt, const char *arg) {
    char *cmd = NULL;
    assert_true(asprintf(&cmd, fmt, arg, arg, arg) > 0);
    /* a command that fails is no verdict: what follows checks the bills */
    int rc = system(cmd);
    (void)rc;
    free(cmd);
}

enum { CUT_ALL = 1, TRUNCATE_ALL, DELETE_ALL, READ_ONLY, WRITABLE,
       REMOVE_FOLDER };

static void cache_change(int what) {
    const char *dir = dss_path(&nginx, "cache");
    switch (what) {
    case CUT_ALL: /* every entry cut short or its signature overwritten in
                   * place; then one copied over another */
        run_cmd("n=0; for f in $(find %s -type f); do n=$((n + 1)); "
                "if [ $((n %% 2)) = 0 ]; then truncate -s 5000 $f; else "
                "printf XXXXX | dd of=$f bs=1 seek=4096 conv=notrunc "
                "status=none; fi; done",
                dir);
        run_cmd("a=$(find %s -type f | sed -n 4p); b=$(find %s -type f | "
                "sed -n 5p); [ -n \"$a\" ] && [ -n \"$b\" ] && cp $a $b",
                dir);
        break;
    case TRUNCATE_ALL: /* every entry cut short, nothing rewritten */
        run_cmd("find %s -type f -exec truncate -s 5000 {} +", dir);
        break;
    case DELETE_ALL:
        run_cmd("find %s -type f -delete", dir);
        break;
    case READ_ONLY: /* for the workers (nobody) */
        run_cmd("chmod 0500 %s", dir);
        break;
    case WRITABLE:
        run_cmd("chmod 0700 %s", dir);
        break;
    case REMOVE_FOLDER:
        run_cmd("chmod 0700 %s && mv %s %s.gone", dir);
        run_cmd("rm -rf %s.gone", dir);
        break;
    default:
        break;
    }
}

/*
 * what each round does in its middle: mid[round][step - 1]. Files are cut
 * short there, never rewritten in place: bytes rewritten under a sendfile()
 * already under way reach the client as they are now, from any file server
 * (nginx's static and proxy_cache alike), so no check made before the send
 * can see them; a file cut short is seen (nginx closes the connection).
 * Rewrites in place, and one entry copied over another, are the damage
 * done before each round, which every hit's checks must catch.
 */
static const int mid[3][2] = {
    {0, 0}, {DELETE_ALL, READ_ONLY}, {TRUNCATE_ALL, REMOVE_FOLDER}};
static int current_round;

static void cache_action(int step) {
    if (step <= 2) {
        cache_change(mid[current_round][step - 1]);
    }
}

/* D8, D9: hits, misses and waiters of a cache whose every entry was cut
 * short or overwritten in place (and one copied over another) before the
 * round; then, while requests are in flight, every entry deleted, the
 * folder made read-only, every entry cut short, the folder removed. */
static void test_D9_cache_folder_changed_under_load(void **state) {
    (void)state;
    static job jobs[MIX];
    /* an entry cut in place while a hit is being sent: nginx says so
     * (and closes the connection: a short body, never a complete one) */
    static const char *const cut_in_place[] = {"read only",
                                                "was truncated", NULL};
    nginx.allowed_alerts = cut_in_place;
    /* warm the cache */
    int n = make_mix(jobs, MIX, 0);
    assert_int_equal(run_batch(jobs, n, 0, NULL, 0), 0);

    for (current_round = 1; current_round < 3; current_round++) {
        if (current_round == 1) {
            cache_change(CUT_ALL);
        } else {
            cache_change(WRITABLE);
        }
        n = make_mix(jobs, MIX, current_round);
        int problems = run_batch(jobs, n, 1, cache_action, n / 3);
        fprintf(stderr, "  round %d: %d requests, %d problems, %d complete "
                        "200s, %d broken off\n",
                current_round, n, problems, last_complete, last_broken);
        assert_int_equal(problems, 0);
        /* the bills are served, not merely failed cleanly */
        assert_true(last_complete >= n / 2);
        /* put the folder back as nginx made it, for the next round */
        const char *dir = dss_path(&nginx, "cache");
        mkdir(dir, 0700);
        struct passwd *pw = getpwnam("nobody");
        assert_non_null(pw);
        assert_int_equal(chown(dir, pw->pw_uid, (gid_t)-1), 0);
        chmod(dir, 0700);
    }
}

/* ---- reload and a worker told to quit, downloads in flight ---------------- */

static int lifecycle_held;
static long long lifecycle_wait;

static void lifecycle_action(int step) {
    (void)step;
}

/* T6, D8: downloads in flight (held at the archive, read slowly from the
 * root and the cache) across a reload and a worker told to quit: each ends
 * byte-exact, or visibly broken, never a 200 with other bytes. */
static void test_T6_reload_and_worker_quit_with_downloads_in_flight(
    void **state) {
    (void)state;
    static job jobs[96];
    int n = 0;
    char id[96];

    /* a cached 5 MB bill to read slowly */
    dss_response r = dss_get(&nginx, "/cache/download/ok-5242880-life");
    assert_int_equal(r.status, 200);
    dss_response_free(&r);

    review3_origin_gate(&origin, 0);
    for (int i = 0; i < 96; i++) {
        int proto = i % PROTO_COUNT;
        switch (i % 4) {
        case 0:
            snprintf(id, sizeof(id), "held-%d-l%d", i % 8 ? 20000 : 400000, i);
            set_job(&jobs[n++], proto, "arch", id, i % 8 ? 20000 : 400000,
                    200);
            break;
        case 1:
            snprintf(id, sizeof(id), "held-%d-lc%d", 30000, (i / 4) % 12);
            set_job(&jobs[n++], proto, "cache", id, 30000, 200);
            break;
        case 2:
            snprintf(id, sizeof(id), "r-%d-%d", REVIEW3_MB5, i % 4);
            set_job(&jobs[n], proto, i % 8 == 2 ? "root" : "rootns", id,
                    REVIEW3_MB5, 200);
            jobs[n++].slow = 2 * 1024 * 1024;
            break;
        default:
            set_job(&jobs[n], proto, "cache", "ok-5242880-life", REVIEW3_MB5,
                    200);
            jobs[n++].slow = 2 * 1024 * 1024;
            break;
        }
    }

    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    for (int i = 0; i < n; i++) {
        job_prepare(&jobs[i]);
        curl_multi_add_handle(multi, jobs[i].easy);
    }
    int running = n, finished = 0, phase = 0;
    long long phase_at = dss_now_ms();
    long long end = dss_now_ms() + 80000;
    while (finished < n && dss_now_ms() < end) {
        curl_multi_perform(multi, &running);
        finished += collect_finished(multi);
        long long now = dss_now_ms();
        if (phase == 0 && (review3_origin_held(&origin) >= 24 + 12 ||
                           now - phase_at > 15000)) {
            lifecycle_held = review3_origin_held(&origin);
            lifecycle_wait = now - phase_at;
            /* a worker told to quit gracefully, then a reload */
            pid_t w[8];
            int nw = dss_nginx_worker_pids(&nginx, w, 8);
            assert_true(nw >= 1);
            assert_int_equal(kill(w[0], SIGQUIT), 0);
            assert_int_equal(dss_nginx_signal(&nginx, SIGHUP), 0);
            phase = 1;
            phase_at = now;
        } else if (phase == 1 && now - phase_at > 1500) {
            review3_origin_gate(&origin, 1);
            phase = 2;
        }
        if (finished < n) {
            curl_multi_poll(multi, NULL, 0, 50, NULL);
        }
    }
    fprintf(stderr, "  held at the archive before the signals: %d (after "
                    "%lld ms); finished: %d of %d\n",
            lifecycle_held, lifecycle_wait, finished, n);
    int problems = 0, broken = 0;
    for (int i = 0; i < n; i++) {
        job *j = &jobs[i];
        char why[200];
        const char *p = j->done ? job_problem(j, 1, why, sizeof(why))
                                : "never finished";
        if (j->done && j->code != CURLE_OK) {
            /* HTTP/2: streams the client opened after the worker's GOAWAY
             * are never answered (nginx's graceful shutdown): a clean
             * failure, with no status and no byte */
            int refused = j->proto == PROTO_H2 && j->status == 0 &&
                          j->len == 0;
            broken += !refused;
            fprintf(stderr, "  %s: %s: %s (%ld, %zu bytes)\n",
                    refused ? "not answered (GOAWAY)" : "broken", j->target,
                    curl_easy_strerror(j->code), j->status, j->len);
        }
        if (p) {
            problems++;
            fprintf(stderr, "  PROBLEM %s: %s\n", j->target, p);
        }
        curl_multi_remove_handle(multi, j->easy);
        curl_easy_cleanup(j->easy);
        free(j->body);
        j->body = NULL;
    }
    curl_multi_cleanup(multi);
    assert_int_equal(problems, 0);
    /* graceful: nginx lets every request it took finish */
    assert_int_equal(broken, 0);
    (void)lifecycle_action;

    /* and the new workers serve */
    r = dss_get(&nginx, "/cache/download/ok-5242880-life");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, REVIEW3_MB5);
    dss_response_free(&r);
}

/* D8, T5: one HTTP/2 connection with 64 streams fetching from the archive
 * (held there: plain, cached and from the object store) goes away at once:
 * every fetch is cancelled (the archive sees every connection close), no
 * worker is left with anything (the teardown checks the log), and the next
 * downloads are byte-exact. */
static void test_D8_http2_connection_gone_with_64_fetches(void **state) {
    (void)state;
    static job jobs[64];
    char id[96];
    review3_origin_gate(&origin, 0);
    for (int i = 0; i < 64; i++) {
        snprintf(id, sizeof(id), "held-%d-h2gone%d", 30000 + i, i);
        set_job(&jobs[i], PROTO_H2,
                i % 3 == 0 ? "arch" : (i % 3 == 1 ? "cache" : "s3"), id,
                30000 + (size_t)i, 200);
    }
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    for (int i = 0; i < 64; i++) {
        job_prepare(&jobs[i]);
        curl_multi_add_handle(multi, jobs[i].easy);
    }
    int running = 64;
    long long end = dss_now_ms() + 20000;
    while (review3_origin_held(&origin) < 64 && dss_now_ms() < end) {
        curl_multi_perform(multi, &running);
        curl_multi_poll(multi, NULL, 0, 50, NULL);
    }
    assert_int_equal(review3_origin_held(&origin), 64);
    /* the client goes: the connection closes with every stream open */
    for (int i = 0; i < 64; i++) {
        curl_multi_remove_handle(multi, jobs[i].easy);
        curl_easy_cleanup(jobs[i].easy);
        free(jobs[i].body);
        jobs[i].body = NULL;
    }
    curl_multi_cleanup(multi);
    end = dss_now_ms() + 10000;
    while (review3_origin_held(&origin) > 0 && dss_now_ms() < end) {
        dss_poll_pause();
    }
    assert_int_equal(review3_origin_held(&origin), 0);
    review3_origin_gate(&origin, 1);

    /* the same bills now, byte-exact */
    for (int i = 0; i < 64; i++) {
        snprintf(id, sizeof(id), "held-%d-h2gone%d", 30000 + i, i);
        set_job(&jobs[i], i % PROTO_COUNT,
                i % 3 == 0 ? "arch" : (i % 3 == 1 ? "cache" : "s3"), id,
                30000 + (size_t)i, 200);
    }
    assert_int_equal(run_batch(jobs, 64, 0, NULL, 0), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_D9_mixed_load_every_body_is_its_own_bill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_D9_cache_folder_changed_under_load,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_T6_reload_and_worker_quit_with_downloads_in_flight, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_D8_http2_connection_gone_with_64_fetches, setup, teardown),

    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/* Integration tests of object-store archives (dss_bill_upstream_s3): the
 * module's nginx signs its fetches with SigV4 against @20minutes/s3rver, an
 * S3-compatible server that verifies signatures (tests/s3rver, installed by
 * scripts/bootstrap), started on loopback for this program and stopped
 * after. A scripted origin in the test process stands in for the answers
 * s3rver cannot give (403 AccessDenied) and shows the request as sent. */

#define _GNU_SOURCE /* asprintf */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* distinctive, so that a search of every log for them means something */
#define ACCESS_KEY "AKIADSSBILLTEST"
#define SECRET "dssBillS3cret/9xQ+Zk2"
#define WRONG_SECRET "dssBillWr0ngS3cret/Q+"
#define TOKEN "IQoJdssBillT0ken+/sessionEXAMPLE=="
#define EMPTY_SHA256                                                           \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static dss_nginx nginx;

/* ---- the S3-compatible server ------------------------------------------- */

static struct {
    pid_t pid;
    int port;
} s3;

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts s3rver with bucket "bills" holding the objects (NULL-terminated
 * "key=file" list); polls for its ready file. 0 or -1. */
static int s3rver_start(const char *const *objects) {
    char script[PATH_MAX], dir[PATH_MAX], ready[PATH_MAX], port[16];
    snprintf(script, sizeof(script), "%s/s3rver.js", DSS_S3RVER_DIR);
    snprintf(dir, sizeof(dir), "%s", dss_path(&nginx, "s3rver"));
    snprintf(ready, sizeof(ready), "%s", dss_path(&nginx, "s3rver.ready"));
    char module[PATH_MAX];
    snprintf(module, sizeof(module),
             "%s/node_modules/@20minutes/s3rver/package.json", DSS_S3RVER_DIR);
    if (access(module, R_OK) != 0) {
        fprintf(stderr, "the S3 test server is not installed (%s): run "
                        "scripts/bootstrap\n", module);
        return -1;
    }

    for (int attempt = 0; attempt < 3; attempt++) {
        s3.port = free_port();
        snprintf(port, sizeof(port), "%d", s3.port);
        unlink(ready);
        const char *argv[32] = {"node",     script, port, dir, ACCESS_KEY,
                                SECRET,     "bills", ready};
        size_t argc = 8;
        for (size_t i = 0; objects[i] && argc < 31; i++) {
            argv[argc++] = objects[i];
        }
        argv[argc] = NULL;
        char log[PATH_MAX];
        snprintf(log, sizeof(log), "%s", dss_path(&nginx, "logs/s3rver.log"));

        s3.pid = fork();
        if (s3.pid == 0) {
            setpgid(0, 0);
            int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (out >= 0) {
                dup2(out, STDOUT_FILENO);
                dup2(out, STDERR_FILENO);
            }
            execvp("node", (char *const *)argv);
            _exit(127);
        }
        if (s3.pid < 0) {
            return -1;
        }
        /* node takes a second or two on a busy machine: poll, bounded */
        long long deadline = dss_now_ms() + 30000;
        int status;
        while (dss_now_ms() < deadline) {
            if (access(ready, F_OK) == 0) {
                return 0;
            }
            if (waitpid(s3.pid, &status, WNOHANG) == s3.pid) {
                s3.pid = 0;
                break; /* died: the port was taken, or worse; again */
            }
            dss_poll_pause();
        }
        if (s3.pid > 0) {
            kill(-s3.pid, SIGKILL);
            waitpid(s3.pid, &status, 0);
            s3.pid = 0;
        }
    }
    fprintf(stderr, "s3rver did not start: see %s\n",
            dss_path(&nginx, "logs/s3rver.log"));
    return -1;
}

static void s3rver_stop(void) {
    if (s3.pid <= 0) {
        return;
    }
    int status;
    kill(-s3.pid, SIGTERM);
    long long deadline = dss_now_ms() + 5000;
    while (dss_now_ms() < deadline) {
        if (waitpid(s3.pid, &status, WNOHANG) == s3.pid) {
            s3.pid = 0;
            return;
        }
        dss_poll_pause();
    }
    kill(-s3.pid, SIGKILL);
    waitpid(s3.pid, &status, 0);
    s3.pid = 0;
}

/* ---- a scripted origin: S3's answers s3rver cannot give ------------------ */

static struct {
    int fd;
    int port;
    pthread_t thread;
    volatile int stopping;
    pthread_mutex_t lock;
    char last[16384];  /* the last request head as received */
    char probe[16384]; /* the last one for a bucket listing */
    int requests;
} scripted = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

#define S3_ERROR(status, code, message)                                        \
    "HTTP/1.1 " status "\r\nContent-Type: application/xml\r\n"                 \
    "Connection: close\r\n\r\n"                                                \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" code           \
    "</Code><Message>" message "</Message><RequestId>4442587FB7D0A2F9"         \
    "</RequestId></Error>"

static void *scripted_serve(void *arg) {
    (void)arg;
    while (!scripted.stopping) {
        struct pollfd p = {.fd = scripted.fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) {
            continue;
        }
        int c = accept(scripted.fd, NULL, NULL);
        if (c < 0) {
            continue;
        }
        char head[16384];
        dss_read_request_head(c, head, sizeof(head), 5000);
        const char *answer =
            strstr(head, "/denied-")
                ? S3_ERROR("403 Forbidden", "AccessDenied", "Access Denied")
            : strstr(head, "/skewed-")
                ? S3_ERROR("403 Forbidden", "RequestTimeTooSkewed",
                           "The difference between the request time and the "
                           "current time is too large.")
                : S3_ERROR("404 Not Found", "NoSuchKey",
                           "The specified key does not exist.");
        pthread_mutex_lock(&scripted.lock);
        if (strstr(head, "?max-keys=0 ")) {
            snprintf(scripted.probe, sizeof(scripted.probe), "%s", head);
        } else {
            snprintf(scripted.last, sizeof(scripted.last), "%s", head);
        }
        scripted.requests++;
        pthread_mutex_unlock(&scripted.lock);
        send(c, answer, strlen(answer), MSG_NOSIGNAL);
        close(c);
    }
    return NULL;
}

static int scripted_start(void) {
    scripted.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (scripted.fd < 0 ||
        bind(scripted.fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(scripted.fd, 16) != 0 ||
        getsockname(scripted.fd, (struct sockaddr *)&a, &len) != 0) {
        return -1;
    }
    scripted.port = ntohs(a.sin_port);
    return pthread_create(&scripted.thread, NULL, scripted_serve, NULL) == 0
               ? 0
               : -1;
}

static void scripted_stop(void) {
    if (scripted.fd < 0) {
        return;
    }
    scripted.stopping = 1;
    pthread_join(scripted.thread, NULL);
    close(scripted.fd);
    scripted.fd = -1;
}

/* ---- a virtual-hosted bucket name for 127.0.0.1 ---------------------------- */

#define VHOST "dss-bills.s3.eu-west-1.amazonaws.com"

static struct {
    int ready;
    char skip_reason[160];
} vhost;

/*
 * Runs first in main, while the process has a single thread: a private
 * mount namespace (inherited by the nginx this program starts) whose
 * /etc/hosts maps VHOST to 127.0.0.1 and whose nsswitch.conf reads it.
 */
static void vhost_setup(void) {
    char *reason = vhost.skip_reason;
    size_t cap = sizeof(vhost.skip_reason);
    if (geteuid() != 0) {
        snprintf(reason, cap, "not running as root");
        return;
    }
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        snprintf(reason, cap, "no private mount namespace: %s",
                 strerror(errno));
        return;
    }
    size_t len;
    char *hosts = dss_read_file("/etc/hosts", &len);
    char *text = NULL;
    int rc = asprintf(&text, "%s\n127.0.0.1 " VHOST "\n", hosts ? hosts : "");
    free(hosts);
    if (rc < 0 || dss_bind_file_over("/etc/hosts", text) != 0 ||
        dss_bind_file_over("/etc/nsswitch.conf", "hosts: files\n") != 0) {
        snprintf(reason, cap, "cannot bind-mount /etc/hosts: %s",
                 strerror(errno));
        free(text);
        return;
    }
    free(text);
    vhost.ready = 1;
}

/* ---- the module's nginx ---------------------------------------------------- */

/* %1$d s3rver's port, %2$d the scripted origin's */
static const char *const module_config =
    "dss_bill_upstream_temp_path @PREFIX@/temp;\n"
    "dss_bill_cache_path @PREFIX@/cache levels=1:2 keys_zone=s3bills:1m;\n"
    "server {\n"
    "    listen 127.0.0.1:@PORT@ ssl;\n"
    "    ssl_certificate @PREFIX@/cert.pem;\n"
    "    ssl_certificate_key @PREFIX@/key.pem;\n"
    "    dss_bill_upstream_s3 region=us-east-1;\n"
    "    dss_bill_upstream_s3_credentials @PREFIX@/aws/credentials;\n"
    "    location /s3/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/bills/$dss_bill_id.pdf;\n"
    "        dss_bill_id_chars \"A-Za-z0-9_!'()*-\";\n"
    "        dss_bill_upstream_buffer_size 4k;\n"
    "        dss_bill_upstream_keepalive on;\n"
    "        dss_bill_health_interval 100ms;\n"
    "    }\n"
    "    location /cached/ {\n"
    "        dss_bill;\n"
    "        dss_bill_cache s3bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/bills/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        add_header X-Cache $dss_bill_cache_status always;\n"
    "    }\n"
    "    location /cached-other/ {\n" /* the same URL, another key */
    "        dss_bill;\n"
    "        dss_bill_cache s3bills;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/bills/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_s3_credentials @PREFIX@/aws/credentials "
    "profile=other;\n"
    "        dss_bill_upstream_health_url off;\n"
    "        add_header X-Cache $dss_bill_cache_status always;\n"
    "    }\n"
    "    location /wrong/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/bills/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_s3_credentials @PREFIX@/aws/credentials "
    "profile=wrong;\n"
    "        dss_bill_health_interval 100ms;\n"
    "    }\n"
    "    location /token/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%1$d/bills/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_s3_credentials @PREFIX@/aws/credentials "
    "profile=session;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /seen/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://127.0.0.1:%2$d/bills/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_s3 region=eu-west-1;\n"
    "        dss_bill_upstream_s3_credentials @PREFIX@/aws/credentials "
    "profile=session;\n"
    "        dss_bill_id_chars \"A-Za-z0-9_!'()*-\";\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /denied/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream "
    "http://127.0.0.1:%2$d/bills/denied-$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_s3_access_denied missing;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "    location /denied-error/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream "
    "http://127.0.0.1:%2$d/bills/denied-$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_health_url off;\n"
    "    }\n"
    "%3$s"
    "    location /skewed/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream "
    "http://127.0.0.1:%2$d/bills/skewed-$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_s3_access_denied missing;\n"
    "        dss_bill_upstream_health_url "
    "http://127.0.0.1:%2$d/bills/skewed-probe.pdf;\n"
    "        dss_bill_health_interval 100ms;\n"
    "    }\n"
    "}\n";

static const char credentials[] =
    "# the test's keys (s3rver knows " ACCESS_KEY ")\n"
    "[default]\n"
    "aws_access_key_id = " ACCESS_KEY "\n"
    "aws_secret_access_key = " SECRET "\n"
    "\n"
    "[wrong]\n"
    "aws_access_key_id = " ACCESS_KEY "\n"
    "aws_secret_access_key = " WRONG_SECRET "\n"
    "\n"
    "[other]\n"
    "aws_access_key_id = AKIAOTHERKEYUNKNOWN\n"
    "aws_secret_access_key = " SECRET "\n"
    "\n"
    "[session]\n"
    "aws_access_key_id = " ACCESS_KEY "\n"
    "aws_secret_access_key = " SECRET "\n"
    "aws_session_token = " TOKEN "\n";

/* only with VHOST mapped to 127.0.0.1 (else it would be looked up in DNS) */
static const char *const vhost_location =
    "    location /vhost/ {\n"
    "        dss_bill;\n"
    "        dss_bill_upstream http://" VHOST ":%1$d/bills/$dss_bill_id.pdf;\n"
    "        dss_bill_upstream_s3 region=eu-west-1;\n"
    "    }\n";

static char *module_conf_text(void) {
    char *vhost_conf = NULL, *config = NULL;
    if (asprintf(&vhost_conf, vhost_location, scripted.port) < 0) {
        return NULL;
    }
    if (asprintf(&config, module_config, s3.port, scripted.port,
                 vhost.ready ? vhost_conf : "") < 0) {
        config = NULL;
    }
    free(vhost_conf);
    return config;
}

static int group_setup(void **state) {
    (void)state;
    if (dss_nginx_prepare(&nginx) != 0 || scripted_start() != 0) {
        return -1;
    }
    mkdir(dss_path(&nginx, "aws"), 0700);
    dss_write_file(dss_path(&nginx, "aws/credentials"), credentials,
                   strlen(credentials));
    chmod(dss_path(&nginx, "aws/credentials"), 0600);

    mkdir(dss_path(&nginx, "objects"), 0755);
    dss_write_bill(dss_path(&nginx, "objects/1.pdf"), "100000000001", 0);
    dss_write_bill(dss_path(&nginx, "objects/2.pdf"), "100000000002",
                   300 * 1024);
    dss_write_bill(dss_path(&nginx, "objects/3.pdf"), "A!b'(1)*", 0);
    char a[PATH_MAX + 32], b[PATH_MAX + 32], c[PATH_MAX + 32];
    snprintf(a, sizeof(a), "100000000001.pdf=%s",
             dss_path(&nginx, "objects/1.pdf"));
    snprintf(b, sizeof(b), "100000000002.pdf=%s",
             dss_path(&nginx, "objects/2.pdf"));
    snprintf(c, sizeof(c), "A!b'(1)*.pdf=%s",
             dss_path(&nginx, "objects/3.pdf"));
    const char *const objects[] = {a, b, c, NULL};
    if (s3rver_start(objects) != 0) {
        return -1;
    }

    char *config = module_conf_text();
    int rc = config ? dss_nginx_start(&nginx, config) : -1;
    free(config);
    return rc;
}

static int group_teardown(void **state) {
    (void)state;
    s3rver_stop();
    scripted_stop();
    dss_nginx_cleanup(&nginx);
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

typedef struct {
    char *data;
    size_t len;
} buffer;

static size_t collect(char *p, size_t size, size_t n, void *userdata) {
    buffer *b = userdata;
    char *grown = realloc(b->data, b->len + size * n + 1);
    if (grown == NULL) {
        return 0;
    }
    b->data = grown;
    memcpy(b->data + b->len, p, size * n);
    b->len += size * n;
    b->data[b->len] = '\0';
    return size * n;
}

/* A GET straight to s3rver, signed by libcurl with secret (NULL: unsigned),
 * with or without x-amz-content-sha256. Returns the status. */
static long s3rver_get(const char *key, const char *secret, int content_sha,
                       buffer *body) {
    CURL *easy = curl_easy_init();
    char url[256], userpwd[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/bills/%s", s3.port, key);
    struct curl_slist *headers = NULL;
    if (content_sha) {
        headers = curl_slist_append(headers,
                                    "x-amz-content-sha256: " EMPTY_SHA256);
    }
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    if (secret) {
        snprintf(userpwd, sizeof(userpwd), "%s:%s", ACCESS_KEY, secret);
        curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
        curl_easy_setopt(easy, CURLOPT_USERPWD, userpwd);
    }
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 10000L);
    long status = 0;
    assert_int_equal(curl_easy_perform(easy), CURLE_OK);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
    return status;
}

static void assert_bill(const char *target, const char *object) {
    size_t len;
    char *want = dss_read_file(dss_path(&nginx, object), &len);
    assert_non_null(want);
    dss_response r = dss_get(&nginx, target);
    assert_int_equal(r.status, 200);
    assert_string_equal(dss_header(&r, "Content-Type"), "application/pdf");
    assert_int_equal(r.body_len, len);
    assert_memory_equal(r.body, want, len); /* D3: the bytes, all of them */
    dss_response_free(&r);
    free(want);
}

static void assert_no_bill(const char *target, long status) {
    dss_response r = dss_get(&nginx, target);
    assert_int_equal(r.status, status);
    assert_true(r.body_len < 5 || memcmp(r.body, "%PDF-", 5) != 0);
    dss_response_free(&r);
}

/* Polls a health route until it answers want (bounded). */
static void await_health(const char *target, long want) {
    long long deadline = dss_now_ms() + 15000;
    long got = 0;
    while (dss_now_ms() < deadline) {
        dss_response r = dss_get(&nginx, target);
        got = r.status;
        dss_response_free(&r);
        if (got == want) {
            return;
        }
        dss_poll_pause();
    }
    fail_msg("%s answered %ld, not %ld", target, got, want);
}

static void scripted_last(char *out, size_t out_size) {
    pthread_mutex_lock(&scripted.lock);
    snprintf(out, out_size, "%s", scripted.last);
    pthread_mutex_unlock(&scripted.lock);
}

/* ---- the server really checks signatures --------------------------------- */

static void test_D9_s3rver_refuses_a_wrong_secret(void **state) {
    (void)state;
    buffer body = {0};
    size_t len;
    char *want = dss_read_file(dss_path(&nginx, "objects/1.pdf"), &len);

    assert_int_equal(s3rver_get("100000000001.pdf", SECRET, 1, &body), 200);
    assert_int_equal(body.len, len);
    assert_memory_equal(body.data, want, len);
    free(body.data);

    body = (buffer){0};
    assert_int_equal(s3rver_get("100000000001.pdf", WRONG_SECRET, 1, &body),
                     403);
    assert_non_null(strstr(body.data, "<Code>SignatureDoesNotMatch</Code>"));
    free(body.data);

    /* what libcurl 7.88 sends by itself is refused too */
    body = (buffer){0};
    assert_int_equal(s3rver_get("100000000001.pdf", SECRET, 0, &body), 400);
    free(body.data);
    free(want);
}

/* ---- bills from the bucket ------------------------------------------------ */

static void test_D3_bill_from_the_bucket_is_byte_identical(void **state) {
    (void)state;
    assert_bill("/s3/download/100000000001", "objects/1.pdf");
    /* larger than the buffer: spilled to a file on the way */
    assert_bill("/s3/download/100000000002", "objects/2.pdf");
    /* a key that SigV4 encodes: signed as S3 reads it */
    assert_bill("/s3/download/A!b'(1)*", "objects/3.pdf");
    /* again, on the kept connection */
    assert_bill("/s3/download/100000000001", "objects/1.pdf");
}

static void test_D5_missing_key_is_404(void **state) {
    (void)state;
    int before = dss_error_log_count(&nginx, "NoSuchKey");
    assert_no_bill("/s3/download/999999999999", 404);
    assert_int_equal(dss_error_log_count(&nginx, "NoSuchKey"), before + 1);
}

static void test_D6_wrong_secret_is_500_with_the_s3_code(void **state) {
    (void)state;
    int before = dss_error_log_count(&nginx, "SignatureDoesNotMatch");
    assert_no_bill("/wrong/download/100000000001", 500);
    assert_true(dss_error_log_count(&nginx, "403 SignatureDoesNotMatch: The "
                                           "request signature we calculated") >
                before);
}

static void test_H3_signed_probe_of_the_bucket(void **state) {
    (void)state;
    /* the wrong key's probe is refused; the right one's is not */
    await_health("/wrong/healthcheck", 503);
    assert_true(dss_error_log_count(&nginx, "is unhealthy: object store "
                                            "answered 403 "
                                            "SignatureDoesNotMatch") >= 1);
    await_health("/s3/healthcheck", 200);
    char line[128];
    snprintf(line, sizeof(line),
             "archive \"http://127.0.0.1:%d/bills?max-keys=0\" is unhealthy",
             s3.port);
    assert_int_equal(dss_error_log_count(&nginx, line), 1);
}

static void test_H3_clock_skew_makes_health_503(void **state) {
    (void)state;
    await_health("/skewed/healthcheck", 503);
    assert_true(dss_error_log_count(&nginx, "RequestTimeTooSkewed") >= 1);
    /* and a download: 500, not taken for a missing bill */
    assert_no_bill("/skewed/download/100000000001", 500);
}

/* ---- session credentials ---------------------------------------------------- */

static void test_D9_session_token_is_sent_and_signed(void **state) {
    (void)state;
    /* s3rver ignores the token's value but checks the signature over every
     * header SignedHeaders names, the token's included */
    assert_bill("/token/download/100000000001", "objects/1.pdf");

    /* what goes out, as the scripted origin saw it */
    assert_no_bill("/seen/download/A!b'(1)*", 404);
    char head[16384];
    scripted_last(head, sizeof(head));
    assert_non_null(strstr(head, "GET /bills/A%21b%27%281%29%2A.pdf "));
    assert_non_null(strstr(head, "\r\nx-amz-security-token: " TOKEN "\r\n"));
    assert_non_null(strstr(head, "\r\nx-amz-content-sha256: " EMPTY_SHA256));
    assert_non_null(strstr(head, "Authorization: AWS4-HMAC-SHA256 "
                                 "Credential=" ACCESS_KEY "/"));
    assert_non_null(strstr(head, "/eu-west-1/s3/aws4_request, SignedHeaders="
                                 "host;x-amz-content-sha256;x-amz-date;"
                                 "x-amz-security-token, Signature="));
    assert_null(strstr(head, SECRET));
}

/* ---- virtual-hosted style ------------------------------------------------------ */

static void test_D9_virtual_hosted_bucket(void **state) {
    (void)state;
    if (!vhost.ready) {
        fprintf(stderr, "SKIP: the virtual-hosted test needs a private mount "
                        "namespace with its own /etc/hosts: %s\n",
                vhost.skip_reason);
        skip();
    }
    /* s3rver would check a virtual-hosted signature over "/bucket/key",
     * which S3 does not: the request as sent is checked here, the
     * signature itself by tests/unit/test_s3.c (AWS's virtual-hosted
     * example) */
    assert_no_bill("/vhost/download/100000000001", 404);
    char head[16384], host[128];
    scripted_last(head, sizeof(head));
    assert_non_null(strstr(head, "GET /bills/100000000001.pdf HTTP/1.1\r\n"));
    snprintf(host, sizeof(host), "\r\nHost: " VHOST ":%d\r\n", scripted.port);
    assert_non_null(strstr(head, host));
    assert_non_null(strstr(head, "/eu-west-1/s3/aws4_request, SignedHeaders="
                                 "host;x-amz-content-sha256;x-amz-date, "
                                 "Signature="));

    /* the default probe lists the bucket the host names */
    long long deadline = dss_now_ms() + 15000;
    for (;;) {
        pthread_mutex_lock(&scripted.lock);
        snprintf(head, sizeof(head), "%s", scripted.probe);
        pthread_mutex_unlock(&scripted.lock);
        if (head[0] || dss_now_ms() > deadline) {
            break;
        }
        dss_poll_pause();
    }
    assert_non_null(strstr(head, "GET /?max-keys=0 HTTP/1.1\r\n"));
    assert_non_null(strstr(head, host));
    assert_non_null(strstr(head, "Authorization: AWS4-HMAC-SHA256 "));
}

/* ---- 403 AccessDenied for a missing key ------------------------------------ */

static void test_D5_access_denied_taken_as_missing(void **state) {
    (void)state;
    int before = dss_error_log_count(&nginx, "AccessDenied");
    assert_no_bill("/denied/download/100000000001", 404);
    assert_no_bill("/denied-error/download/100000000001", 500);
    assert_int_equal(dss_error_log_count(&nginx, "403 AccessDenied: Access "
                                                 "Denied (taken as missing"),
                     1);
    assert_int_equal(dss_error_log_count(&nginx, "AccessDenied"), before + 2);
}

/* ---- the archive cache in front of the bucket -------------------------------- */

static void expect_cached(const char *target, const char *cache) {
    size_t len;
    char *want = dss_read_file(dss_path(&nginx, "objects/1.pdf"), &len);
    dss_response r = dss_get(&nginx, target);
    assert_int_equal(r.status, 200);
    assert_string_equal(dss_header(&r, "X-Cache"), cache);
    assert_int_equal(r.body_len, len);
    assert_memory_equal(r.body, want, len);
    dss_response_free(&r);
    free(want);
}

static void test_D9_cache_in_front_of_the_bucket(void **state) {
    (void)state;
    expect_cached("/cached/download/100000000001", "MISS");
    expect_cached("/cached/download/100000000001", "HIT");

    /* another access key on the same URL shares no entry: s3rver does not
     * know it, so its own fetch fails */
    dss_response r = dss_get(&nginx, "/cached-other/download/100000000001");
    assert_int_equal(r.status, 500);
    assert_string_not_equal(dss_header(&r, "X-Cache"), "HIT");
    dss_response_free(&r);
    assert_true(dss_error_log_count(&nginx, "InvalidAccessKeyId") >= 1);

    expect_cached("/cached/download/100000000001", "HIT");
}

/* ---- secrets stay secret ----------------------------------------------------- */

static void assert_file_lacks_secrets(const char *rel) {
    size_t len;
    char *text = dss_read_file(dss_path(&nginx, rel), &len);
    if (text == NULL) {
        return;
    }
    static const char *const secrets[] = {SECRET, WRONG_SECRET, TOKEN,
                                          "dssBill"};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        if (memmem(text, len, secrets[i], strlen(secrets[i])) != NULL) {
            fail_msg("%s holds \"%s\"", rel, secrets[i]);
        }
    }
    free(text);
}

static void test_D9_no_secret_in_logs_or_nginx_T(void **state) {
    (void)state;
    /* every log this nginx wrote so far, failures included */
    assert_file_lacks_secrets("logs/error.log");
    assert_file_lacks_secrets("logs/access.log");
    assert_file_lacks_secrets("logs/stderr.log");

    /* nginx -T dumps the configuration files, not the credentials file */
    static dss_nginx dump;
    assert_int_equal(dss_nginx_prepare(&dump), 0);
    mkdir(dss_path(&dump, "aws"), 0700);
    dss_write_file(dss_path(&dump, "aws/credentials"), credentials,
                   strlen(credentials));
    chmod(dss_path(&dump, "aws/credentials"), 0600);
    char *config = module_conf_text();
    static char out[65536];
    assert_int_equal(dss_nginx_dump_config(&dump, config, out, sizeof(out)),
                     0);
    free(config);
    assert_non_null(strstr(out, "dss_bill_upstream_s3_credentials"));
    assert_non_null(strstr(out, "profile=session"));
    assert_null(strstr(out, "aws_secret_access_key"));
    assert_null(strstr(out, "dssBill"));
    assert_null(strstr(out, SECRET));
    dss_nginx_cleanup(&dump);
}

/* ---- nginx -t: the credentials file and the directives ---------------------- */

static void test_D9_credentials_checked_by_nginx_t(void **state) {
    (void)state;
    static dss_nginx t;
    assert_int_equal(dss_nginx_prepare(&t), 0);
    mkdir(dss_path(&t, "aws"), 0755);
    dss_write_file(dss_path(&t, "aws/open"), credentials, strlen(credentials));
    chmod(dss_path(&t, "aws/open"), 0644);
    dss_write_file(dss_path(&t, "aws/group"), credentials,
                   strlen(credentials));
    chmod(dss_path(&t, "aws/group"), 0640);
    dss_write_file(dss_path(&t, "aws/ok"), credentials, strlen(credentials));
    chmod(dss_path(&t, "aws/ok"), 0600);
    static const char nokey[] = "[default]\naws_access_key_id = " ACCESS_KEY
                                "\n";
    dss_write_file(dss_path(&t, "aws/nokey"), nokey, strlen(nokey));
    chmod(dss_path(&t, "aws/nokey"), 0600);

    static const struct {
        const char *directives;
        const char *reason;
    } cases[] = {
        {"dss_bill_upstream_s3 region=us-east-1;\n"
         "dss_bill_upstream_s3_credentials @PREFIX@/aws/open;\n",
         "may be read or changed by others than its owner (mode 0644)"},
        {"dss_bill_upstream_s3 region=us-east-1;\n"
         "dss_bill_upstream_s3_credentials @PREFIX@/aws/group;\n",
         "(mode 0640): chmod 600"},
        {"dss_bill_upstream_s3 region=us-east-1;\n"
         "dss_bill_upstream_s3_credentials @PREFIX@/aws/none;\n",
         "No such file"},
        {"dss_bill_upstream_s3 region=us-east-1;\n"
         "dss_bill_upstream_s3_credentials @PREFIX@/aws/ok profile=nope;\n",
         "no profile \"nope\""},
        {"dss_bill_upstream_s3 region=us-east-1;\n"
         "dss_bill_upstream_s3_credentials @PREFIX@/aws/nokey;\n",
         "has no \"aws_secret_access_key\""},
        {"dss_bill_upstream_s3 region=us-east-1;\n",
         "needs \"dss_bill_upstream_s3_credentials\""},
        {"dss_bill_upstream_s3_credentials @PREFIX@/aws/ok;\n",
         "without \"dss_bill_upstream_s3\""},
        {"dss_bill_upstream_s3 region=eu:west;\n", "may hold only a-z"},
        {"dss_bill_upstream_s3 service=s3;\n", "needs \"region=\""},
        {"dss_bill_upstream_s3 region=us-east-1;\n"
         "dss_bill_upstream_s3_credentials @PREFIX@/aws/ok;\n"
         "dss_bill_upstream_basic_auth a:b;\n",
         "exclude each other"},
        {"dss_bill_upstream_s3 region=us-east-1;\n"
         "dss_bill_upstream_s3_credentials @PREFIX@/aws/ok;\n"
         "dss_bill_upstream_s3_access_denied maybe;\n",
         "must be \"error\" or \"missing\""},
        {"dss_bill_upstream_s3 region=us-east-1;\n"
         "dss_bill_upstream_s3_credentials @PREFIX@/aws/ok;\n"
         "dss_bill_upstream_redirects 2;\n",
         "\"dss_bill_upstream_redirects\" must be 0"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *config = NULL;
        assert_true(asprintf(&config,
                             "server {\n"
                             "    listen 127.0.0.1:@PORT@;\n"
                             "    location /b/ {\n"
                             "        dss_bill;\n"
                             "        dss_bill_upstream "
                             "http://127.0.0.1:9/bills/$dss_bill_id.pdf;\n"
                             "%s"
                             "    }\n"
                             "}\n",
                             cases[i].directives) > 0);
        static char out[16384];
        int status = dss_nginx_test_config(&t, config, out, sizeof(out));
        free(config);
        if (status == 0 || strstr(out, cases[i].reason) == NULL) {
            fail_msg("case %zu: status %d, \"%s\"", i, status, out);
        }
        assert_null(strstr(out, "dssBill"));
    }

    /* a URL with a query cannot be signed by libcurl 7.88 as S3 reads it */
    static char out[16384];
    assert_int_not_equal(
        dss_nginx_test_config(&t,
                              "server {\n"
                              "    listen 127.0.0.1:@PORT@;\n"
                              "    location /b/ {\n"
                              "        dss_bill;\n"
                              "        dss_bill_upstream "
                              "http://h/b/$dss_bill_id.pdf?versionId=1;\n"
                              "        dss_bill_upstream_s3 region=us-east-1;\n"
                              "        dss_bill_upstream_s3_credentials "
                              "@PREFIX@/aws/ok;\n"
                              "    }\n"
                              "}\n",
                              out, sizeof(out)),
        0);
    assert_non_null(strstr(out, "no query string"));

    /* and the good file passes */
    assert_int_equal(
        dss_nginx_test_config(&t,
                              "server {\n"
                              "    listen 127.0.0.1:@PORT@;\n"
                              "    location /b/ {\n"
                              "        dss_bill;\n"
                              "        dss_bill_upstream "
                              "http://127.0.0.1:9/bills/$dss_bill_id.pdf;\n"
                              "        dss_bill_upstream_s3 region=us-east-1;\n"
                              "        dss_bill_upstream_s3_credentials "
                              "@PREFIX@/aws/ok profile=session;\n"
                              "    }\n"
                              "}\n",
                              out, sizeof(out)),
        0);
    dss_nginx_cleanup(&t);
}

int main(void) {
    /* before any thread: the private /etc/hosts for the virtual host */
    vhost_setup();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_D9_s3rver_refuses_a_wrong_secret),
        cmocka_unit_test(test_D3_bill_from_the_bucket_is_byte_identical),
        cmocka_unit_test(test_D5_missing_key_is_404),
        cmocka_unit_test(test_D6_wrong_secret_is_500_with_the_s3_code),
        cmocka_unit_test(test_H3_signed_probe_of_the_bucket),
        cmocka_unit_test(test_H3_clock_skew_makes_health_503),
        cmocka_unit_test(test_D9_session_token_is_sent_and_signed),
        cmocka_unit_test(test_D9_virtual_hosted_bucket),
        cmocka_unit_test(test_D9_cache_in_front_of_the_bucket),
        cmocka_unit_test(test_D5_access_denied_taken_as_missing),
        cmocka_unit_test(test_D9_credentials_checked_by_nginx_t),
        cmocka_unit_test(test_D9_no_secret_in_logs_or_nginx_T),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    curl_global_cleanup();
    return rc;
}

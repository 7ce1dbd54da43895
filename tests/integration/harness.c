/* harness: see harness.h. */

#define _GNU_SOURCE

#include "harness.h"
#include "sample_pdf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef DSS_MODULE_PATH
#error "DSS_MODULE_PATH must name the built module"
#endif

static const char *nginx_binary(void) {
    const char *env = getenv("DSS_NGINX_BINARY");
    return env && *env ? env : DSS_NGINX_BINARY;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A short pause between two polls of a condition (never a synchronisation
 * by itself: callers always re-check the condition). */
static void poll_pause(void) {
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

const char *dss_path(const dss_nginx *n, const char *rel) {
    static char ring[8][PATH_MAX];
    static int next;
    char *out = ring[next++ % 8];
    if (snprintf(out, PATH_MAX, "%s/%s", n->prefix, rel) >= PATH_MAX) {
        fail_msg("path too long: %s/%s", n->prefix, rel);
    }
    return out;
}

static int run(const char *cmd) {
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "harness: command failed (%d): %s\n", rc, cmd);
        return -1;
    }
    return 0;
}

int dss_nginx_prepare(dss_nginx *n) {
    memset(n, 0, sizeof(*n));
    const char *tmp = getenv("TMPDIR");
    snprintf(n->prefix, sizeof(n->prefix), "%s/dss-bill-test-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(n->prefix) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    /* workers run as nobody: they must reach the files tests create */
    chmod(n->prefix, 0755);

    static const char *const dirs[] = {"logs", "bills", "temp"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        if (mkdir(dss_path(n, dirs[i]), 0755) != 0) {
            perror("mkdir");
            return -1;
        }
    }
    chmod(dss_path(n, "temp"), 0777);

    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 "
             "-keyout '%s/key.pem' -out '%s/cert.pem' 2>/dev/null",
             n->prefix, n->prefix);
    if (run(cmd) != 0) {
        return -1;
    }
    snprintf(cmd, sizeof(cmd),
             "printf 'dss:%%s\\n' \"$(openssl passwd -5 secret)\" "
             "> '%s/htpasswd' && chmod 0644 '%s/htpasswd' '%s/key.pem'",
             n->prefix, n->prefix, n->prefix);
    return run(cmd);
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0) {
        port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
}

/* Replaces every @PREFIX@ and @PORT@; returns a malloc'd string. */
static char *expand(const dss_nginx *n, const char *text) {
    char port[16], port2[16];
    snprintf(port, sizeof(port), "%d", n->port);
    snprintf(port2, sizeof(port2), "%d", n->port2);
    size_t cap = strlen(text) * 2 + 4096, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (const char *p = text; *p;) {
        const char *value = NULL;
        size_t skip = 0;
        if (strncmp(p, "@PREFIX@", 8) == 0) {
            value = n->prefix;
            skip = 8;
        } else if (strncmp(p, "@PORT@", 6) == 0) {
            value = port;
            skip = 6;
        } else if (strncmp(p, "@PORT2@", 7) == 0) {
            value = port2;
            skip = 7;
        }
        size_t need = value ? strlen(value) : 1;
        if (len + need + 1 > cap) {
            cap = (len + need + 1) * 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        if (value) {
            memcpy(out + len, value, need);
            p += skip;
        } else {
            out[len] = *p++;
        }
        len += need;
    }
    out[len] = '\0';
    return out;
}

static void write_config(dss_nginx *n, const char *http_block) {
    char *body = expand(n, http_block);
    FILE *f = fopen(dss_path(n, "nginx.conf"), "w");
    assert_non_null(f);
    fprintf(f,
            "load_module %s;\n"
            "user nobody nogroup;\n"
            "worker_processes 1;\n"
            "pid %s/nginx.pid;\n"
            "error_log %s/logs/error.log info;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "    access_log %s/logs/access.log;\n"
            "    client_body_temp_path %s/temp/body;\n"
            "    proxy_temp_path %s/temp/proxy;\n"
            "    fastcgi_temp_path %s/temp/fastcgi;\n"
            "    uwsgi_temp_path %s/temp/uwsgi;\n"
            "    scgi_temp_path %s/temp/scgi;\n"
            "%s\n"
            "}\n",
            DSS_MODULE_PATH, n->prefix, n->prefix, n->prefix, n->prefix,
            n->prefix, n->prefix, n->prefix, n->prefix, body);
    fclose(f);
    free(body);
}

static pid_t spawn_nginx(dss_nginx *n, const char *extra_arg) {
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0); /* the master and its workers: one group to stop */
        int out = open(dss_path(n, "logs/stderr.log"),
                       O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (out >= 0) {
            dup2(out, STDOUT_FILENO);
            dup2(out, STDERR_FILENO);
        }
        const char *bin = nginx_binary();
        if (extra_arg) {
            execl(bin, bin, "-p", n->prefix, "-c", dss_path(n, "nginx.conf"),
                  extra_arg, (char *)NULL);
        } else {
            execl(bin, bin, "-p", n->prefix, "-c", dss_path(n, "nginx.conf"),
                  "-g", "daemon off;", (char *)NULL);
        }
        _exit(127);
    }
    if (pid > 0) {
        setpgid(pid, pid);
    }
    return pid;
}

static int accepts_connections(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return ok;
}

static void print_file(const char *path) {
    size_t len;
    char *text = dss_read_file(path, &len);
    if (text) {
        fprintf(stderr, "---- %s\n%s----\n", path, text);
        free(text);
    }
}

int dss_nginx_start(dss_nginx *n, const char *http_block) {
    for (int attempt = 0; attempt < 3; attempt++) {
        n->port = free_port();
        do {
            n->port2 = free_port();
        } while (n->port2 == n->port);
        write_config(n, http_block);
        unlink(dss_path(n, "logs/stderr.log"));

        n->pid = spawn_nginx(n, NULL);
        if (n->pid < 0) {
            return -1;
        }
        n->running = 1;

        long long deadline = now_ms() + 15000;
        while (now_ms() < deadline) {
            int status;
            if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
                n->running = 0;
                break;
            }
            /* the workers inherit the socket from the master: a connect
             * succeeds once the master listens; the master only forks
             * workers after every module has initialised */
            if (accepts_connections(n->port)) {
                return 0;
            }
            poll_pause();
        }
        if (n->running) {
            dss_nginx_stop(n);
            fprintf(stderr, "harness: nginx did not accept in time\n");
            print_file(dss_path(n, "logs/stderr.log"));
            return -1;
        }
        size_t len;
        char *err = dss_read_file(dss_path(n, "logs/stderr.log"), &len);
        int port_taken = err && strstr(err, "Address already in use");
        free(err);
        if (!port_taken) {
            print_file(dss_path(n, "logs/stderr.log"));
            return -1;
        }
    }
    return -1;
}

void dss_nginx_stop(dss_nginx *n) {
    if (!n->running) {
        return;
    }
    kill(n->pid, SIGTERM);
    long long deadline = now_ms() + 10000;
    int status;
    while (waitpid(n->pid, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(n->pid, SIGKILL);
            waitpid(n->pid, &status, 0);
            break;
        }
        poll_pause();
    }
    /* whatever is left of the group (a worker that outlived its master) */
    kill(-n->pid, SIGKILL);
    n->running = 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void dss_nginx_cleanup(dss_nginx *n) {
    dss_nginx_stop(n);
    if (n->prefix[0] && getenv("DSS_KEEP_PREFIX") == NULL) {
        nftw(n->prefix, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

int dss_nginx_signal(dss_nginx *n, int sig) {
    return kill(n->pid, sig);
}

int dss_nginx_wait_exit(dss_nginx *n, long timeout_ms) {
    long long deadline = now_ms() + timeout_ms;
    int status;
    while (n->running) {
        if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
            n->running = 0;
            kill(-n->pid, SIGKILL); /* a worker left behind, if any */
            return 0;
        }
        if (now_ms() > deadline) {
            return -1;
        }
        poll_pause();
    }
    return 0;
}

int dss_nginx_test_config(dss_nginx *n, const char *http_block, char *out,
                          size_t out_size) {
    n->port = free_port();
    write_config(n, http_block);
    unlink(dss_path(n, "logs/stderr.log"));
    pid_t pid = spawn_nginx(n, "-t");
    int status = 0;
    waitpid(pid, &status, 0);
    size_t len = 0;
    char *text = dss_read_file(dss_path(n, "logs/stderr.log"), &len);
    snprintf(out, out_size, "%s", text ? text : "");
    free(text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

char *dss_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *len = 0;
        return NULL;
    }
    size_t cap = 65536, used = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + used, 1, cap - used, f)) > 0) {
        used += got;
        if (used == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    fclose(f);
    if (buf) {
        buf[used] = '\0';
    }
    *len = used;
    return buf;
}

int dss_error_log_count(const dss_nginx *n, const char *needle) {
    size_t len;
    char *text = dss_read_file(dss_path(n, "logs/error.log"), &len);
    int count = 0;
    for (char *p = text; p && (p = strstr(p, needle)) != NULL;
         p += strlen(needle)) {
        count++;
    }
    free(text);
    return count;
}

void dss_write_bill(const char *path, const char *id, size_t size) {
    if (sample_pdf_write(path, id, size) != 0) {
        fail_msg("cannot write bill %s: %s", path, strerror(errno));
    }
}

void dss_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    chmod(path, 0644);
}

/* ---- HTTP client ------------------------------------------------------------
 */

typedef struct {
    dss_response *r;
    size_t cap;
} body_sink;

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
    body_sink *sink = userdata;
    size_t n = size * nmemb;
    if (sink->r->body_len + n + 1 > sink->cap) {
        size_t cap = sink->cap ? sink->cap : 65536;
        while (cap < sink->r->body_len + n + 1) {
            cap *= 2;
        }
        char *p = realloc(sink->r->body, cap);
        if (p == NULL) {
            return 0;
        }
        sink->r->body = p;
        sink->cap = cap;
    }
    memcpy(sink->r->body + sink->r->body_len, data, n);
    sink->r->body_len += n;
    sink->r->body[sink->r->body_len] = '\0';
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata) {
    dss_response *r = userdata;
    size_t n = size * nmemb;
    size_t used = strlen(r->headers);
    /* a new status line (after a 100 Continue, say) starts afresh */
    if (n > 5 && strncmp(data, "HTTP/", 5) == 0) {
        used = 0;
        r->headers[0] = '\0';
    }
    if (used + n + 1 < sizeof(r->headers)) {
        memcpy(r->headers + used, data, n);
        r->headers[used + n] = '\0';
    }
    return n;
}

dss_response dss_request(const dss_nginx *n, const char *target,
                         const dss_request_options *options) {
    static int curl_ready;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = 1;
    }
    dss_request_options defaults = {0};
    if (options == NULL) {
        options = &defaults;
    }

    dss_response r;
    memset(&r, 0, sizeof(r));
    body_sink sink = {&r, 0};

    char url[8192];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s",
             options->plain_http ? "http" : "https", n->port, target);

    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    struct curl_slist *headers = NULL;
    for (const char *const *h = options->headers; h && *h; h++) {
        headers = curl_slist_append(headers, *h);
    }

    curl_easy_setopt(curl, CURLOPT_URL, url);
    /* hostile paths must reach nginx as written */
    curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(curl, CURLOPT_CAINFO, dss_path(n, "cert.pem"));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                     options->timeout_ms ? options->timeout_ms : 10000L);
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION,
                     options->http2 ? CURL_HTTP_VERSION_2TLS
                                    : CURL_HTTP_VERSION_1_1);
    if (options->method && strcmp(options->method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (options->method) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, options->method);
    }
    if (options->userpwd) {
        curl_easy_setopt(curl, CURLOPT_USERPWD, options->userpwd);
    }

    r.curl_code = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return r;
}

dss_response dss_get(const dss_nginx *n, const char *target) {
    return dss_request(n, target, NULL);
}

const char *dss_header(const dss_response *r, const char *name) {
    static char value[4096];
    size_t name_len = strlen(name);
    const char *line = r->headers;
    while (line && *line) {
        const char *end = strstr(line, "\r\n");
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > name_len && line[name_len] == ':' &&
            strncasecmp(line, name, name_len) == 0) {
            const char *v = line + name_len + 1;
            while (*v == ' ') {
                v++;
            }
            size_t vlen = len - (size_t)(v - line);
            if (vlen >= sizeof(value)) {
                vlen = sizeof(value) - 1;
            }
            memcpy(value, v, vlen);
            value[vlen] = '\0';
            return value;
        }
        line = end ? end + 2 : NULL;
    }
    return NULL;
}

void dss_response_free(dss_response *r) {
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

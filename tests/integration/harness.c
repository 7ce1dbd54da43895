/* harness: see harness.h. */

#define _GNU_SOURCE

#include "harness.h"
#include "sample_pdf.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef DSS_MODULE_PATH
#error "DSS_MODULE_PATH must name the built module"
#endif

extern char **environ;

/* nginx instances whose teardown check failed (see dss_run_group_tests) */
static int harness_failures;

/* Where every nginx the harness starts writes its sanitizer reports:
 * world-writable, as the workers run as nobody. */
#define SANITIZER_DIR "logs/sanitizer"

static const char *nginx_binary(void) {
    const char *env = getenv("DSS_NGINX_BINARY");
    return env && *env ? env : DSS_NGINX_BINARY;
}

long long dss_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int dss_send_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void dss_poll_pause(void) {
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
    /* what the tests create must be readable by the workers (nobody)
     * whatever the caller's umask (077 made every bill unreadable) */
    umask(022);
    const char *tmp = getenv("TMPDIR");
    snprintf(n->prefix, sizeof(n->prefix), "%s/dss-bill-test-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(n->prefix) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    /* workers run as nobody: they must reach the files tests create */
    chmod(n->prefix, 0755);

    static const char *const dirs[] = {"logs", "bills", "temp", SANITIZER_DIR};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        if (mkdir(dss_path(n, dirs[i]), 0755) != 0) {
            perror("mkdir");
            return -1;
        }
    }
    chmod(dss_path(n, "temp"), 0777);
    chmod(dss_path(n, SANITIZER_DIR), 0777);

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

size_t dss_read_request_head(int fd, char *head, size_t cap,
                             int timeout_ms) {
    size_t got = 0;
    head[0] = '\0';
    while (got + 1 < cap && strstr(head, "\r\n\r\n") == NULL) {
        struct pollfd q = {.fd = fd, .events = POLLIN};
        if (poll(&q, 1, timeout_ms) <= 0) {
            break;
        }
        ssize_t r = recv(fd, head + got, cap - 1 - got, 0);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
        head[got] = '\0';
    }
    return got;
}

int dss_bind_file_over(const char *target, const char *text) {
    char path[] = "/tmp/dss-bind-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        return -1;
    }
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len && fchmod(fd, 0644) == 0;
    close(fd);
    ok = ok && mount(path, target, NULL, MS_BIND, NULL) == 0;
    int saved = errno;
    unlink(path); /* the mount keeps the file alive */
    errno = saved;
    return ok ? 0 : -1;
}

int dss_closed_port(int *fd) {
    /* no SO_REUSEADDR: no other socket can bind the port while this one is
     * bound */
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (*fd < 0 || bind(*fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        getsockname(*fd, (struct sockaddr *)&addr, &len) != 0) {
        if (*fd >= 0) {
            close(*fd);
        }
        *fd = -1;
        return -1;
    }
    return ntohs(addr.sin_port);
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
            "worker_processes %d;\n"
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
            DSS_MODULE_PATH, n->workers > 0 ? n->workers : 1, n->prefix,
            n->prefix, n->prefix, n->prefix,
            n->prefix, n->prefix, n->prefix, n->prefix, body);
    fclose(f);
    free(body);
}

/* Is nginx to run with the sanitizer runtime (the sanitizer build)? */
static const char *sanitizer_runtime(void) {
#ifdef DSS_ASAN_RUNTIME
    return DSS_ASAN_RUNTIME;
#else
    const char *preload = getenv("LD_PRELOAD");
    return preload && strstr(preload, "libasan") ? preload : NULL;
#endif
}

/* asprintf that fails the test instead of returning -1 */
static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    if (vasprintf(&out, fmt, ap) < 0) {
        out = NULL;
    }
    va_end(ap);
    if (out == NULL) {
        fail_msg("out of memory");
    }
    return out;
}

/* "NAME=<environment's value>:<more>" (the later of two equal options wins
 * in the sanitizers' parser); malloc'd. */
static char *options_var(const char *name, const char *more) {
    const char *base = getenv(name);
    return format("%s=%s%s%s", name, base ? base : "", base && *base ? ":" : "",
                  more);
}

/*
 * nginx's environment: the test's own, plus in the sanitizer build the ASan
 * runtime preloaded (the stock nginx is not instrumented; the module is),
 * leak detection on, and every report into the prefix, where the teardown
 * check looks. Built before fork: the test program may have threads.
 */
static char **nginx_environment(const dss_nginx *n, int config_test) {
    size_t count = 0;
    while (environ[count]) {
        count++;
    }
    char **env = calloc(count + 5, sizeof(char *));
    assert_non_null(env);
    const char *runtime = sanitizer_runtime();
    static const char *const replaced[] = {
        "ASAN_OPTIONS=", "LSAN_OPTIONS=", "UBSAN_OPTIONS=", "LD_PRELOAD="};
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        int skip = 0;
        for (size_t r = 0; runtime && r < 4; r++) {
            skip |= strncmp(environ[i], replaced[r], strlen(replaced[r])) == 0;
        }
        if (!skip) {
            env[used++] = format("%s", environ[i]);
        }
    }
    if (runtime) {
        const char *preload = getenv("LD_PRELOAD");
        if (preload && strstr(preload, "libasan")) {
            env[used++] = format("LD_PRELOAD=%s", preload);
        } else {
            env[used++] =
                format("LD_PRELOAD=%s%s%s", runtime,
                       preload && *preload ? ":" : "", preload ? preload : "");
        }

        /* fast_unwind_on_malloc=0: the stock nginx has no frame pointers,
         * and a leak's stack would stop at ngx_alloc. The slow unwinder
         * costs per frame and per malloc: loading the system CA bundle in a
         * worker takes 0.05 s with the fast one, 0.76 s with a context of
         * 10, 1.9 s with the default 30 (an archive TLS connect then times
         * out under load). 10 shows 8 frames (#0-#7): the expected leaks
         * below need 6, the rest name the module's code behind a leak.
         * abort_on_error=0, exitcode: a report never changes how a process
         * ends (the leaks nginx leaves by design, see only_expected_leaks,
         * would otherwise turn into "exited on signal" alerts); the reports
         * in the prefix are what the teardown check judges. "nginx -t" keeps
         * its verdict: 1 for a refused configuration, which always leaves
         * the init cycle's pool behind.
         * intercept_tls_get_addr=0: with it, the leak check of a worker
         * that has unloaded the module (and libcurl's libraries, which have
         * thread-local storage) crashed in about one run in three
         * ("Tracer caught signal 11" at a small address, a known LSan
         * fault with dynamic TLS); 0 in 16 runs without it. */
        char *more = format("detect_leaks=1:fast_unwind_on_malloc=0:"
                            "malloc_context_size=10:abort_on_error=0:"
                            "intercept_tls_get_addr=0:"
                            "exitcode=%d:log_path=%s/%s/asan",
                            config_test ? 1 : 0, n->prefix, SANITIZER_DIR);
        env[used++] = options_var("ASAN_OPTIONS", more);
        free(more);
        /* print_suppressions=0: a clean exit writes nothing at all */
#ifdef DSS_LSAN_SUPPRESSIONS
        env[used++] = options_var(
            "LSAN_OPTIONS",
            "print_suppressions=0:suppressions=" DSS_LSAN_SUPPRESSIONS);
#else
        env[used++] = options_var("LSAN_OPTIONS", "print_suppressions=0");
#endif
        more = format("print_stacktrace=1:log_path=%s/%s/ubsan", n->prefix,
                      SANITIZER_DIR);
        env[used++] = options_var("UBSAN_OPTIONS", more);
        free(more);
    }
    env[used] = NULL;
    return env;
}

static void free_environment(char **env) {
    for (char **e = env; *e; e++) {
        free(*e);
    }
    free(env);
}

static pid_t spawn_nginx(dss_nginx *n, const char *extra_arg) {
    /* everything the child needs, made before fork */
    char **env = nginx_environment(n, extra_arg != NULL);
    char conf[PATH_MAX], err_path[PATH_MAX];
    snprintf(conf, sizeof(conf), "%s", dss_path(n, "nginx.conf"));
    snprintf(err_path, sizeof(err_path), "%s", dss_path(n, "logs/stderr.log"));
    const char *bin = nginx_binary();
    char *const start_argv[] = {(char *)bin, "-p", n->prefix,     "-c",
                                conf,        "-g", "daemon off;", NULL};
    char *const extra_argv[] = {(char *)bin,       "-p", n->prefix, "-c", conf,
                                (char *)extra_arg, NULL};

    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0); /* the master and its workers: one group to stop */
        int out = open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (out >= 0) {
            dup2(out, STDOUT_FILENO);
            dup2(out, STDERR_FILENO);
        }
        execve(bin, extra_arg ? extra_argv : start_argv, env);
        _exit(127);
    }
    if (pid > 0) {
        setpgid(pid, pid);
    }
    free_environment(env);
    return pid;
}

/*
 * Where a started master mapped each shared object (sanitizer build). A
 * worker unloads the module, and libcurl with it, before its exit-time leak
 * check, so LSan cannot name their frames ("(<unknown module>)"); the
 * workers share the master's mappings, and the check names those frames
 * from this table with addr2line.
 */
static struct {
    char path[256];
    unsigned long base, end;
} mapped[128];
static int mapped_count;

static void record_mappings(pid_t pid) {
    char maps[64], line[1024], path[256];
    snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)pid);
    FILE *f = fopen(maps, "r");
    while (f && fgets(line, sizeof(line), f)) {
        unsigned long start, end, offset;
        if (sscanf(line, "%lx-%lx %*s %lx %*s %*s %255s", &start, &end, &offset,
                   path) != 4 ||
            path[0] != '/' || strstr(path, ".so") == NULL) {
            continue;
        }
        int i = mapped_count - 1;
        while (i >= 0 && strcmp(mapped[i].path, path) != 0) {
            i--;
        }
        if (offset != 0 && i >= 0) {
            mapped[i].end = end > mapped[i].end ? end : mapped[i].end;
        } else if (offset == 0 && (i < 0 || mapped[i].base != start) &&
                   mapped_count < (int)(sizeof(mapped) / sizeof(mapped[0]))) {
            snprintf(mapped[mapped_count].path, sizeof(mapped[0].path), "%s",
                     path);
            mapped[mapped_count].base = start;
            mapped[mapped_count].end = end;
            mapped_count++;
        }
    }
    if (f) {
        fclose(f);
    }
}

/* Names the frames of a sanitizer report that LSan could not name and that
 * lie in a library the master had mapped: "(<unknown module>)", or another
 * library's name+offset when that one took the range over after the unload. */
static void name_unloaded_frames(const char *report) {
    int said = 0, seen_count = 0;
    unsigned long seen[64];
    for (const char *line = report; line && *line;) {
        const char *end = strchr(line, '\n');
        char text[1024];
        size_t len = end ? (size_t)(end - line) : strlen(line);
        snprintf(text, sizeof(text), "%.*s", (int)len, line);
        line = end ? end + 1 : NULL;
        int frame;
        unsigned long addr;
        if (sscanf(text + strspn(text, " "), "#%d 0x%lx", &frame, &addr) != 2 ||
            strstr(text, " in ")) {
            continue; /* not a frame, or one LSan named */
        }
        int known = 0;
        for (int i = 0; i < seen_count; i++) {
            known |= seen[i] == addr;
        }
        for (int i = 0; !known && i < mapped_count; i++) {
            if (addr < mapped[i].base || addr >= mapped[i].end ||
                strstr(text, mapped[i].path)) {
                continue;
            }
            if (seen_count < 64) {
                seen[seen_count++] = addr;
            }
            char cmd[600], out[1024] = "";
            snprintf(cmd, sizeof(cmd),
                     "addr2line -f -C -i -p -e '%.255s' 0x%lx 2>/dev/null",
                     mapped[i].path, addr - mapped[i].base);
            FILE *p = popen(cmd, "r");
            size_t got = p ? fread(out, 1, sizeof(out) - 1, p) : 0;
            if (p) {
                pclose(p);
            }
            out[got] = '\0';
            for (char *c = out; *c; c++) {
                if (*c == '\n' && c[1]) {
                    *c = ' '; /* inlined frames on one line */
                }
            }
            if (!said) {
                fprintf(stderr, "harness: frames LSan could not name (their "
                                "library was unloaded before its check):\n");
                said = 1;
            }
            fprintf(stderr, "    #%d 0x%lx in %s", frame, addr,
                    *out ? out : "?\n");
            break;
        }
    }
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* The error log from `from` on belongs to an nginx that did not start (or to
 * "nginx -t"): its "[emerg]" lines are the caller's business. */
static void quiet_span(dss_nginx *n, long from) {
    long to = file_size(dss_path(n, "logs/error.log"));
    size_t cap = sizeof(n->quiet) / sizeof(n->quiet[0]);
    if ((size_t)n->quiet_count < cap) {
        n->quiet[n->quiet_count].from = from;
        n->quiet[n->quiet_count].to = to;
        n->quiet_count++;
    } else {
        n->quiet[cap - 1].to = to; /* rare: merge into the last span */
    }
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

static void stop_master(dss_nginx *n, int judge);

/* Does <prefix>/nginx.pid name the master started last? (Its own path
 * buffer: called in a loop, dss_path()'s ring would overwrite the paths a
 * caller still holds.) */
static int pid_file_names(const dss_nginx *n) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/nginx.pid", n->prefix);
    size_t len;
    char *text = dss_read_file(path, &len);
    int named = text && atol(text) == (long)n->pid;
    free(text);
    return named;
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
        long log_from = file_size(dss_path(n, "logs/error.log"));

        n->pid = spawn_nginx(n, NULL);
        if (n->pid < 0) {
            return -1;
        }
        n->running = 1;

        long long deadline = dss_now_ms() + 15000;
        while (dss_now_ms() < deadline) {
            int status;
            if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
                n->running = 0;
                break;
            }
            /* the workers inherit the socket from the master: a connect
             * succeeds once the master listens; the master only forks
             * workers after every module has initialised. The pid file
             * first: nginx writes it once all its sockets are bound; a
             * connection accepted before may be another process's, one that
             * took the port since free_port() (nginx then gives up binding
             * after 2 s, and the loop above retries) */
            if (pid_file_names(n) && accepts_connections(n->port)) {
                if (sanitizer_runtime()) {
                    record_mappings(n->pid);
                }
                return 0;
            }
            dss_poll_pause();
        }
        if (n->running) {
            stop_master(n, 0);
            quiet_span(n, log_from);
            fprintf(stderr, "harness: nginx did not accept in time\n");
            print_file(dss_path(n, "logs/stderr.log"));
            return -1;
        }
        quiet_span(n, log_from);
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

/* Notes how a started master ended, for the teardown check. */
static void judge_exit(dss_nginx *n, int status, const char *forced) {
    if (n->exit_problem[0]) {
        return; /* the first problem is the one to see */
    }
    if (forced) {
        snprintf(n->exit_problem, sizeof(n->exit_problem), "nginx master %d %s",
                 (int)n->pid, forced);
    } else if (WIFSIGNALED(status)) {
        snprintf(n->exit_problem, sizeof(n->exit_problem),
                 "nginx master %d exited on signal %d", (int)n->pid,
                 WTERMSIG(status));
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        snprintf(n->exit_problem, sizeof(n->exit_problem),
                 "nginx master %d exited with status %d", (int)n->pid,
                 WEXITSTATUS(status));
    }
}

/* Polls until the master has exited: 0, its status in *status. */
static int reap_master(dss_nginx *n, long timeout_ms, int *status) {
    long long deadline = dss_now_ms() + timeout_ms;
    for (;;) {
        pid_t got = waitpid(n->pid, status, WNOHANG);
        if (got == n->pid) {
            return 0;
        }
        if (got < 0 && errno != EINTR) {
            *status = 0; /* reaped elsewhere: nothing to judge */
            return 0;
        }
        if (dss_now_ms() > deadline) {
            return -1;
        }
        dss_poll_pause();
    }
}

static void stop_master(dss_nginx *n, int judge) {
    if (!n->running) {
        return;
    }
    int status = 0;
    const char *forced = NULL;
    /* graceful first: every worker leaves through its exit path (the leak
     * check runs there), and no master's SIGKILL cuts a slow one short */
    kill(n->pid, SIGQUIT);
    if (reap_master(n, 5000, &status) != 0) {
        fprintf(stderr,
                "harness: nginx %d still running 5 s after SIGQUIT; "
                "sending SIGTERM\n",
                (int)n->pid);
        kill(n->pid, SIGTERM);
        if (reap_master(n, 10000, &status) != 0) {
            kill(n->pid, SIGKILL);
            waitpid(n->pid, &status, 0);
            forced = "did not stop within 15 s of SIGQUIT and SIGTERM";
        }
    }
    /* whatever is left of the group (a worker that outlived its master) */
    kill(-n->pid, SIGKILL);
    n->running = 0;
    if (judge) {
        judge_exit(n, status, forced);
    }
}

void dss_nginx_stop(dss_nginx *n) {
    stop_master(n, 1);
}

static int remove_entry(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int allowed(const dss_nginx *n, const char *line) {
    for (const char *const *a = n->allowed_alerts; a && *a; a++) {
        if (strstr(line, *a)) {
            return 1;
        }
    }
    return 0;
}

static int in_quiet_span(const dss_nginx *n, long offset) {
    for (int i = 0; i < n->quiet_count; i++) {
        if (offset >= n->quiet[i].from && offset < n->quiet[i].to) {
            return 1;
        }
    }
    return 0;
}

/* The lines of a log the check fails on; error_log: the error log (emerg
 * lines count there), else nginx's stderr. Returns how many. */
static int check_log(const dss_nginx *n, const char *rel, int error_log) {
    size_t len;
    char *text = dss_read_file(dss_path(n, rel), &len);
    int found = 0;
    for (char *line = text; line && line < text + len;) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        if (end) {
            *end = '\0';
        }
        long offset = (long)(line - text);
        int sanitizer = strstr(line, "runtime error") != NULL ||
                        strstr(line, "Sanitizer") != NULL;
        const char *code = strstr(line, "exited with code ");
        int flagged =
            sanitizer || strstr(line, "[alert]") != NULL ||
            strstr(line, "exited on signal") != NULL ||
            (code && atoi(code + 17) != 0) || /* a worker's exit(1): ASan */
            (error_log && strstr(line, "[emerg]") != NULL &&
             !in_quiet_span(n, offset));
        if (flagged && (sanitizer || !allowed(n, line))) {
            if (found < 40) {
                fprintf(stderr, "harness: %s/%s: %s\n", n->prefix, rel, line);
            } else if (found == 40) {
                fprintf(stderr, "harness: %s/%s: (more lines cut)\n", n->prefix,
                        rel);
            }
            found++;
        }
        line = end ? end + 1 : text + len;
    }
    free(text);
    return found;
}

/*
 * Two leaks that nginx itself leaves at exit by design, which LSan reports
 * but a suppression cannot name narrowly: Debian's nginx is stripped, so the
 * functions in between are bare addresses, and a suppression matches any one
 * frame (naming ngx_create_pool, ngx_alloc or ngx_spawn_process would hide
 * the module's own leaks through them too). The check accepts a report only
 * when each of its leaks is one of these, recognised by its whole stack:
 *
 *  - the init cycle's pool, the 1024-byte pool main() creates itself: when a
 *    configuration is refused ("nginx -t" in test_config.c, or a start meant
 *    to fail), main() returns 1 without destroying it;
 *  - a worker's connection, read and write event arrays, which
 *    ngx_event_process_init() allocates with ngx_alloc() and nothing frees:
 *    they die with the process, and once the cycle's pool is gone nothing
 *    may point at them any more (LSan sees them in some runs, not others).
 *    Stack: ngx_alloc <- ngx_event_process_init <- ngx_worker_process_init
 *    <- ngx_worker_process_cycle <- ngx_spawn_process, nothing but nginx.
 */
static int frame_in(const char *frame, const char *function) {
    char needle[96];
    snprintf(needle, sizeof(needle), " in %s ", function);
    return frame && strstr(frame, needle) != NULL;
}

/* A frame of the nginx binary: unnamed (stripped), or named as expected. */
static int nginx_frame(const char *frame, const char *function) {
    char unnamed[PATH_MAX + 8];
    snprintf(unnamed, sizeof(unnamed), "(%s+0x", nginx_binary());
    return frame && (strstr(frame, unnamed) || frame_in(frame, function));
}

static int expected_leak(const char *head, const char *const frame[6]) {
    if (strncmp(head, "Direct leak of 1024 byte(s) in 1 object(s) ", 43) == 0 &&
        frame_in(frame[1], "ngx_memalign") &&
        frame_in(frame[2], "ngx_create_pool") && frame_in(frame[3], "main")) {
        return 1;
    }
    return frame_in(frame[1], "ngx_alloc") &&
           nginx_frame(frame[2], "ngx_event_process_init") &&
           nginx_frame(frame[3], "ngx_worker_process_init") &&
           nginx_frame(frame[4], "ngx_worker_process_cycle") &&
           frame_in(frame[5], "ngx_spawn_process");
}

/* Is every leak of this LSan report one of the two above? (Destroys it.) */
static int only_expected_leaks(char *report) {
    int records = 0;
    const char *head = NULL, *frame[6] = {NULL};
    for (char *line = strtok(report, "\n");; line = strtok(NULL, "\n")) {
        const char *t = line ? line + strspn(line, " ") : NULL;
        int n;
        if (t == NULL || strstr(t, "leak of ")) {
            if (head && !expected_leak(head, frame)) {
                return 0;
            }
            if (t == NULL) {
                return records > 0;
            }
            records++;
            head = t;
            memset(frame, 0, sizeof(frame));
        } else if (sscanf(t, "#%d ", &n) == 1) {
            if (head && n >= 0 && n < 6) {
                frame[n] = t;
            }
        } else if (strncmp(t, "=====", 5) != 0 &&
                   strstr(t, "ERROR: LeakSanitizer: detected memory leaks") ==
                       NULL &&
                   strncmp(t, "SUMMARY: AddressSanitizer: ", 27) != 0) {
            return 0; /* any other line: another kind of report */
        }
    }
}

/* Every sanitizer report with content; printed (the start of each). */
static int check_sanitizer_logs(const dss_nginx *n) {
    DIR *dir = opendir(dss_path(n, SANITIZER_DIR));
    if (dir == NULL) {
        return 0;
    }
    int found = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char rel[PATH_MAX];
        snprintf(rel, sizeof(rel), "%s/%s", SANITIZER_DIR, e->d_name);
        size_t len;
        char *text = dss_read_file(dss_path(n, rel), &len);
        char *copy = text && len > 0 ? format("%s", text) : NULL;
        int expected = copy && only_expected_leaks(copy);
        free(copy);
        if (text && len > 0 && !expected) {
            const size_t shown = 32768;
            fprintf(stderr, "harness: sanitizer report %s:\n%.*s%s\n",
                    dss_path(n, rel), (int)(len < shown ? len : shown), text,
                    len > shown ? "\n(cut; the whole report is in the file)"
                                : "");
            name_unloaded_frames(text);
            found++;
        }
        free(text);
    }
    closedir(dir);
    return found;
}

int dss_nginx_check(dss_nginx *n) {
    dss_nginx_stop(n);
    if (!n->prefix[0]) {
        return 0;
    }
    int problems = check_log(n, "logs/error.log", 1) +
                   check_log(n, "logs/stderr.log", 0) + check_sanitizer_logs(n);
    if (n->exit_problem[0] && !allowed(n, n->exit_problem)) {
        fprintf(stderr, "harness: %s\n", n->exit_problem);
        problems++;
    }
    return problems;
}

void dss_nginx_cleanup(dss_nginx *n) {
    int problems = dss_nginx_check(n);
    if (problems > 0) {
        harness_failures++;
        fprintf(stderr,
                "harness: teardown check FAILED: %d problem(s) above; "
                "nginx prefix kept for inspection: %s\n",
                problems, n->prefix);
        return;
    }
    if (n->prefix[0] && getenv("DSS_KEEP_PREFIX") == NULL) {
        nftw(n->prefix, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

int dss_run_group_tests(const char *group_name,
                        const struct CMUnitTest *const tests, size_t num_tests,
                        CMFixtureFunction group_setup,
                        CMFixtureFunction group_teardown) {
    int rc = _cmocka_run_group_tests(group_name, tests, num_tests, group_setup,
                                     group_teardown);
    if (harness_failures > 0) {
        fflush(stderr);
        printf("[  FAILED  ] %s: the harness's teardown check failed for %d "
               "nginx (the \"harness:\" lines above)\n",
               group_name, harness_failures);
        fflush(stdout);
        rc += harness_failures;
    }
    return rc;
}

int dss_nginx_signal(dss_nginx *n, int sig) {
    return kill(n->pid, sig);
}

/* The master's children (its workers) now: their pids, at most max. */
static int workers_of(pid_t master, pid_t *pids, int max) {
    int count = 0;
    DIR *proc = opendir("/proc");
    if (proc == NULL) {
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(proc)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') {
            continue;
        }
        char path[300], stat[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue; /* gone meanwhile */
        }
        size_t got = fread(stat, 1, sizeof(stat) - 1, f);
        fclose(f);
        stat[got] = '\0';
        /* "pid (comm) state ppid ...": comm may hold spaces */
        const char *p = strrchr(stat, ')');
        char state;
        int ppid;
        if (p && sscanf(p + 1, " %c %d", &state, &ppid) == 2 &&
            ppid == (int)master && state != 'Z' && count < max) {
            pids[count++] = (pid_t)atoi(e->d_name);
        }
    }
    closedir(proc);
    return count;
}

int dss_nginx_reload(dss_nginx *n, long timeout_ms) {
    pid_t before[64], now[64];
    int want = n->workers > 0 ? n->workers : 1;
    int old = workers_of(n->pid, before, 64);
    if (old < 0 || dss_nginx_signal(n, SIGHUP) != 0) {
        return -1;
    }
    long long deadline = dss_now_ms() + timeout_ms;
    while (dss_now_ms() < deadline) {
        int count = workers_of(n->pid, now, 64), fresh = 0;
        for (int i = 0; i < count; i++) {
            int seen = 0;
            for (int j = 0; j < old; j++) {
                seen = seen || now[i] == before[j];
            }
            fresh += !seen;
        }
        if (count == want && fresh == want) {
            return 0;
        }
        dss_poll_pause();
    }
    return -1;
}

int dss_nginx_wait_exit(dss_nginx *n, long timeout_ms) {
    if (!n->running) {
        return 0;
    }
    int status = 0;
    if (reap_master(n, timeout_ms, &status) != 0) {
        return -1;
    }
    n->running = 0;
    kill(-n->pid, SIGKILL); /* a worker left behind, if any */
    judge_exit(n, status, NULL);
    return 0;
}

int dss_nginx_test_config(dss_nginx *n, const char *http_block, char *out,
                          size_t out_size) {
    n->port = free_port();
    write_config(n, http_block);
    unlink(dss_path(n, "logs/stderr.log"));
    long log_from = file_size(dss_path(n, "logs/error.log"));
    pid_t pid = spawn_nginx(n, "-t");
    int status = 0;
    waitpid(pid, &status, 0);
    quiet_span(n, log_from);
    size_t len = 0;
    char *text = dss_read_file(dss_path(n, "logs/stderr.log"), &len);
    snprintf(out, out_size, "%s", text ? text : "");
    free(text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int dss_nginx_dump_config(dss_nginx *n, const char *http_block, char *out,
                          size_t out_size) {
    n->port = free_port();
    write_config(n, http_block);
    unlink(dss_path(n, "logs/stderr.log"));
    long log_from = file_size(dss_path(n, "logs/error.log"));
    pid_t pid = spawn_nginx(n, "-T");
    int status = 0;
    waitpid(pid, &status, 0);
    quiet_span(n, log_from);
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

int dss_nginx_worker_pids(const dss_nginx *n, pid_t *pids, int max) {
    int count = 0;
    DIR *proc = opendir("/proc");
    if (proc == NULL) {
        return 0;
    }
    struct dirent *e;
    while ((e = readdir(proc)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') {
            continue;
        }
        char path[300], stat[512], cmd[256];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        size_t got = fread(stat, 1, sizeof(stat) - 1, f);
        fclose(f);
        stat[got] = '\0';
        /* after the name in parentheses: the state, then the parent */
        const char *p = strrchr(stat, ')');
        char st;
        int ppid;
        if (!p || sscanf(p + 1, " %c %d", &st, &ppid) != 2 ||
            ppid != (int)n->pid || st == 'Z') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        got = fread(cmd, 1, sizeof(cmd) - 1, f);
        fclose(f);
        cmd[got] = '\0';
        if (strstr(cmd, "worker process") && !strstr(cmd, "shutting down") &&
            count < max) {
            pids[count++] = (pid_t)atoi(e->d_name);
        }
    }
    closedir(proc);
    return count;
}

/* bad_endpoint: a Bill Provisioning endpoint broken on purpose, one way per
 * route prefix (see bad_endpoint.h). */

#define _GNU_SOURCE /* strcasestr */

#include "bad_endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fault_origin.h"
#include "harness.h"

#define REQUEST_MAX 16384

typedef struct {
    bad_endpoint *b;
    int fd;
    int slot;
} connection;

/* Sleeps ms unless the endpoint stops meanwhile. */
static void nap(bad_endpoint *b, long ms) {
    long long until = dss_now_ms() + ms;
    while (!b->stopping && dss_now_ms() < until) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* The value of a request header (case-insensitive name) into out, or 0. */
static int header(const char *head, const char *name, char *out, size_t size) {
    char pattern[64];
    snprintf(pattern, sizeof(pattern), "\r\n%s:", name);
    const char *at = strcasestr(head, pattern);
    if (at == NULL) {
        return 0;
    }
    at += strlen(pattern);
    while (*at == ' ') {
        at++;
    }
    size_t len = strcspn(at, "\r\n");
    if (len >= size) {
        len = size - 1;
    }
    memcpy(out, at, len);
    out[len] = '\0';
    return 1;
}

static int send_head(int fd, const char *status, const char *extra,
                     long long length) {
    char head[1024];
    if (length >= 0) {
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %s\r\n%sContent-Length: %lld\r\n\r\n", status, extra,
                 length);
    } else {
        snprintf(head, sizeof(head), "HTTP/1.1 %s\r\n%s\r\n", status, extra);
    }
    return dss_send_all(fd, head, strlen(head));
}

static int send_small(int fd, int is_head, const char *status,
                      const char *extra, const char *body) {
    size_t len = strlen(body);
    if (send_head(fd, status, extra, (long long)len) != 0) {
        return -1;
    }
    return is_head || len == 0 ? 0 : dss_send_all(fd, body, len);
}

static int valid_id(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > 64) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || c == '-' || c == '_')) {
            return 0;
        }
    }
    return 1;
}

/* Answers one request; returns 1 to keep the connection, 0 to close it. */
static int answer(bad_endpoint *b, int fd, const char *head) {
    char method[16] = "", path[REQUEST_MAX] = "", value[512];
    if (sscanf(head, "%15s %16383s", method, path) != 2) {
        return 0;
    }
    int is_head = strcmp(method, "HEAD") == 0;
    char mode[32] = "";
    const char *rest = NULL;
    if (path[0] == '/') {
        size_t len = strcspn(path + 1, "/");
        if (len < sizeof(mode)) {
            memcpy(mode, path + 1, len);
            mode[len] = '\0';
            rest = path + 1 + len;
        }
    }
    int close_after = strcmp(mode, "close") == 0 ||
                      (header(head, "Connection", value, sizeof(value)) &&
                       strcasecmp(value, "close") == 0);
    const char *conn = close_after ? "Connection: close\r\n" : "";
    char extra[512];
    int ok = 0;
    if (rest == NULL) {
        return send_small(fd, is_head, "404 Not Found", conn, "") == 0 &&
               !close_after;
    }

    /* ---- health ---- */
    if (strcmp(rest, "/healthcheck") == 0) {
        int authorized =
            header(head, "Authorization", value, sizeof(value)) &&
            strcmp(value, "Basic ZHNzOnNlY3JldA==") == 0; /* dss:secret */
        if (strcmp(mode, "hslow") == 0) {
            /* every fourth: one in any four polls in a row */
            pthread_mutex_lock(&b->lock);
            int slow = b->hslow_served++ % 4 == 3;
            pthread_mutex_unlock(&b->lock);
            if (slow) {
                nap(b, 1500);
            }
        }
        if (!b->healthy || strcmp(mode, "h503") == 0) {
            ok = send_small(fd, is_head, "503 Service Unavailable", conn, "") ==
                 0;
        } else if (strcmp(mode, "hbody") == 0) {
            ok = send_small(fd, is_head, "200 OK", conn, "OK") == 0;
        } else if (strcmp(mode, "hauth") == 0 && !authorized) {
            snprintf(extra, sizeof(extra),
                     "WWW-Authenticate: Basic realm=\"DSS\"\r\n%s", conn);
            ok = send_small(fd, is_head, "401 Unauthorized", extra,
                            "<html>401</html>") == 0;
        } else {
            ok = send_small(fd, is_head, "200 OK", conn, "") == 0;
        }
        return ok && !close_after;
    }
    if (strncmp(rest, "/download/", 10) != 0) {
        return send_small(fd, is_head, "404 Not Found", conn, "") == 0 &&
               !close_after;
    }

    /* ---- download ---- */
    const char *id = rest + 10;
    if (strcmp(mode, "auth") == 0 || strcmp(mode, "hauth") == 0 ||
        strcmp(mode, "wrongauth") == 0) {
        int given = header(head, "Authorization", value, sizeof(value));
        /* wrongauth: any password of user dss (base64 of "dss:" is ZHNzO) */
        int accepted =
            strcmp(mode, "wrongauth") != 0
                ? given && strcmp(value, "Basic ZHNzOnNlY3JldA==") == 0
                : given && strncmp(value, "Basic ZHNzO", 11) == 0;
        if (!accepted) {
            snprintf(extra, sizeof(extra),
                     "WWW-Authenticate: Basic realm=\"DSS\"\r\n%s", conn);
            return send_small(fd, is_head, "401 Unauthorized", extra,
                              "<html>401</html>") == 0 &&
                   !close_after;
        }
    }
    int exists = strcmp(mode, "anyid") == 0 || (valid_id(id) && id[0] == '1');
    if (!exists) {
        return send_small(fd, is_head, "404 Not Found", conn,
                          "<html>404</html>") == 0 &&
               !close_after;
    }
    if (strcmp(mode, "status500") == 0) {
        return send_small(fd, is_head, "500 Internal Server Error", conn,
                          "<html>500</html>") == 0 &&
               !close_after;
    }
    if (strcmp(mode, "redirect") == 0) {
        snprintf(extra, sizeof(extra), "Location: /good/download/%.100s\r\n%s",
                 id, conn);
        return send_small(fd, is_head, "302 Found", extra, "") == 0 &&
               !close_after;
    }
    if (strcmp(mode, "accept") == 0 &&
        !(header(head, "Accept", value, sizeof(value)) &&
          strstr(value, "application/pdf"))) {
        return send_small(fd, is_head, "406 Not Acceptable", conn, "") == 0 &&
               !close_after;
    }
    if (strcmp(mode, "cond") == 0 &&
        header(head, "If-None-Match", value, sizeof(value))) {
        return send_head(fd, "304 Not Modified", "ETag: \"v1\"\r\n", -1) == 0 &&
               !close_after;
    }
    if (strcmp(mode, "slow") == 0) {
        /* only the first download: the checker's plain download */
        pthread_mutex_lock(&b->lock);
        int first = b->slow_served++ == 0;
        pthread_mutex_unlock(&b->lock);
        if (first) {
            nap(b, 5500);
        }
    }

    /* the bill's bytes */
    char tag[128];
    size_t size =
        strcmp(mode, "huge") == 0 ? 6u * 1024 * 1024 : BAD_ENDPOINT_BILL_SIZE;
    snprintf(tag, sizeof(tag), "%.64s", valid_id(id) ? id : "any");
    pthread_mutex_lock(&b->lock);
    unsigned long served = ++b->served;
    b->in_flight++;
    pthread_mutex_unlock(&b->lock);
    if (strcmp(mode, "burst") == 0) {
        nap(b, 150);
        pthread_mutex_lock(&b->lock);
        int crowded = b->in_flight > 1;
        pthread_mutex_unlock(&b->lock);
        if (crowded) {
            snprintf(tag, sizeof(tag), "crowded-%.64s", id);
        }
    } else if (strcmp(mode, "varying") == 0) {
        snprintf(tag, sizeof(tag), "%.64s-%lu", id, served);
    }
    char *bill = fault_origin_bill(tag, size);
    if (bill == NULL) {
        goto done;
    }
    const char *body = bill;
    if (strcmp(mode, "notpdf") == 0) {
        body = "<html><body>Bill service error</body></html>";
        size = strlen(body);
    } else if (strcmp(mode, "noeof") == 0) {
        memcpy(bill + size - 6, "%%END", 5);
    }
    long long from = 0, to = (long long)size - 1;
    const char *status = "200 OK";
    char range[256] = "";
    if (strcmp(mode, "range") == 0 &&
        header(head, "Range", value, sizeof(value)) &&
        sscanf(value, "bytes=%lld-%lld", &from, &to) == 2 && from <= to &&
        to < (long long)size) {
        status = "206 Partial Content";
        snprintf(range, sizeof(range), "Content-Range: bytes %lld-%lld/%zu\r\n",
                 from, to, size);
    } else {
        from = 0;
        to = (long long)size - 1;
    }
    long long length = to - from + 1;
    snprintf(extra, sizeof(extra), "Content-Type: %s\r\n%s%s%s%s",
             strcmp(mode, "ctype") == 0 ? "text/html" : "application/pdf",
             strcmp(mode, "gzip") == 0 ? "Content-Encoding: gzip\r\n" : "",
             strcmp(mode, "cond") == 0 ? "ETag: \"v1\"\r\n" : "", range,
             strcmp(mode, "nolength") == 0 ? "Connection: close\r\n" : conn);
    if (strcmp(mode, "chunked") == 0) {
        strcat(extra, "Transfer-Encoding: chunked\r\n");
        ok = send_head(fd, status, extra, -1) == 0;
        for (long long at = 0; ok && !is_head && at < length; at += 1000) {
            long long n = length - at < 1000 ? length - at : 1000;
            char line[32];
            snprintf(line, sizeof(line), "%llx\r\n", n);
            ok = dss_send_all(fd, line, strlen(line)) == 0 &&
                 dss_send_all(fd, body + from + at, (size_t)n) == 0 &&
                 dss_send_all(fd, "\r\n", 2) == 0;
        }
        ok = ok && (is_head || dss_send_all(fd, "0\r\n\r\n", 5) == 0);
    } else if (strcmp(mode, "nolength") == 0) {
        ok = send_head(fd, status, extra, -1) == 0 &&
             (is_head || dss_send_all(fd, body + from, (size_t)length) == 0);
        close_after = 1;
    } else {
        ok = send_head(fd, status, extra,
                       is_head && strcmp(mode, "head") == 0 ? length + 1
                                                            : length) == 0 &&
             (is_head || dss_send_all(fd, body + from, (size_t)length) == 0);
    }
    free(bill);
done:
    pthread_mutex_lock(&b->lock);
    b->in_flight--;
    pthread_mutex_unlock(&b->lock);
    return ok && !close_after;
}

static void *serve(void *arg) {
    connection *c = arg;
    bad_endpoint *b = c->b;
    char *buf = malloc(REQUEST_MAX + 1);
    size_t have = 0;
    while (buf != NULL && !b->stopping) {
        char *end = NULL;
        buf[have] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")) != NULL) {
            end[2] = '\0'; /* the head, with its last CR LF */
            int keep = answer(b, c->fd, buf);
            size_t used = (size_t)(end + 4 - buf);
            memmove(buf, buf + used, have - used);
            have -= used;
            if (!keep) {
                break;
            }
            continue;
        }
        if (have == REQUEST_MAX) {
            break;
        }
        ssize_t n = recv(c->fd, buf + have, REQUEST_MAX - have, 0);
        if (n <= 0) {
            break;
        }
        have += (size_t)n;
    }
    free(buf);
    pthread_mutex_lock(&b->lock);
    b->fds[c->slot] = -1;
    close(c->fd);
    b->connections--;
    pthread_mutex_unlock(&b->lock);
    free(c);
    return NULL;
}

static void *accept_loop(void *arg) {
    bad_endpoint *b = arg;
    while (!b->stopping) {
        struct pollfd p = {b->listen_fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) {
            continue;
        }
        int fd = accept(b->listen_fd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        connection *c = malloc(sizeof(*c));
        pthread_mutex_lock(&b->lock);
        int slot = -1;
        for (int i = 0; i < BAD_ENDPOINT_MAX_CONNECTIONS && slot < 0; i++) {
            slot = b->fds[i] < 0 ? i : -1;
        }
        pthread_t t;
        if (c == NULL || slot < 0) {
            pthread_mutex_unlock(&b->lock);
            free(c);
            close(fd);
            continue;
        }
        *c = (connection){b, fd, slot};
        b->fds[slot] = fd;
        b->connections++;
        if (pthread_create(&t, NULL, serve, c) != 0) {
            b->fds[slot] = -1;
            b->connections--;
            pthread_mutex_unlock(&b->lock);
            close(fd);
            free(c);
            continue;
        }
        pthread_detach(t);
        pthread_mutex_unlock(&b->lock);
    }
    return NULL;
}

int bad_endpoint_start(bad_endpoint *b) {
    memset(b, 0, sizeof(*b));
    b->healthy = 1;
    pthread_mutex_init(&b->lock, NULL);
    for (int i = 0; i < BAD_ENDPOINT_MAX_CONNECTIONS; i++) {
        b->fds[i] = -1;
    }
    b->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(b->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(b->listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(b->listen_fd, 128) != 0 ||
        getsockname(b->listen_fd, (struct sockaddr *)&a, &len) != 0) {
        close(b->listen_fd);
        return -1;
    }
    b->port = ntohs(a.sin_port);
    if (pthread_create(&b->thread, NULL, accept_loop, b) != 0) {
        close(b->listen_fd);
        return -1;
    }
    return 0;
}

void bad_endpoint_stop(bad_endpoint *b) {
    b->stopping = 1;
    pthread_join(b->thread, NULL);
    close(b->listen_fd);
    /* every connection thread ends: its socket is shut down under it */
    for (int tries = 0; tries < 1000; tries++) {
        pthread_mutex_lock(&b->lock);
        int left = b->connections;
        for (int i = 0; i < BAD_ENDPOINT_MAX_CONNECTIONS; i++) {
            if (b->fds[i] >= 0) {
                shutdown(b->fds[i], SHUT_RDWR);
            }
        }
        pthread_mutex_unlock(&b->lock);
        if (left == 0) {
            return;
        }
        dss_poll_pause();
    }
    fprintf(stderr, "bad_endpoint: connection threads did not end\n");
}

void bad_endpoint_set_health(bad_endpoint *b, int healthy) {
    b->healthy = healthy;
}

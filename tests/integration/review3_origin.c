/* review3_origin: see review3_origin.h. */

#define _GNU_SOURCE

#include "review3_origin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault_origin.h"
#include "harness.h"

typedef struct {
    review3_origin *o;
    int fd;
} conn;

char *review3_bill(const char *id, size_t size) {
    return fault_origin_bill(id, size);
}

static int put(int fd, const void *data, size_t len) {
    return dss_send_all(fd, data, len);
}

static int puts_(int fd, const char *text) {
    return put(fd, text, strlen(text));
}

/* Waits up to ms; 1 early when the peer closed or the origin stops. */
static int peer_gone(conn *c, int ms) {
    long long end = dss_now_ms() + ms;
    char buf[512];
    while (!c->o->stopping) {
        long long left = end - dss_now_ms();
        if (left <= 0) {
            return 0;
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = poll(&p, 1, left > 50 ? 50 : (int)left);
        if (n > 0) {
            ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
            if (r <= 0) {
                return 1;
            }
        }
    }
    return 1;
}

static void head_ok(int fd, long long length, const char *extra) {
    char h[512];
    if (length >= 0) {
        snprintf(h, sizeof(h),
                 "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                 "Content-Length: %lld\r\n%sConnection: close\r\n\r\n",
                 length, extra);
    } else {
        snprintf(h, sizeof(h),
                 "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                 "%sConnection: close\r\n\r\n",
                 extra);
    }
    puts_(fd, h);
}

static void send_chunked(int fd, const char *body, size_t len) {
    static const size_t sizes[] = {1, 7, 4093, 16384, 100, 65536, 3};
    size_t at = 0;
    for (int i = 0; at < len; i++) {
        size_t n = sizes[i % 7];
        if (n > len - at) {
            n = len - at;
        }
        char line[32];
        snprintf(line, sizeof(line), "%zx\r\n", n);
        if (puts_(fd, line) != 0 || put(fd, body + at, n) != 0 ||
            puts_(fd, "\r\n") != 0) {
            return;
        }
        at += n;
    }
    puts_(fd, "0\r\n\r\n");
}

static unsigned long crc32_of(const unsigned char *p, size_t n) {
    unsigned long crc = 0xffffffffUL;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xedb88320UL & (0UL - (crc & 1)));
        }
    }
    return crc ^ 0xffffffffUL;
}

/* A valid gzip stream (one stored deflate block) of a small PDF. */
static void send_gzip(int fd, const char *id) {
    size_t n = 2000;
    char *pdf = review3_bill(id, n);
    unsigned char out[2100];
    size_t at = 0;
    static const unsigned char gz[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    memcpy(out, gz, sizeof(gz));
    at = sizeof(gz);
    out[at++] = 1;
    out[at++] = n & 0xff;
    out[at++] = (n >> 8) & 0xff;
    out[at++] = ~n & 0xff;
    out[at++] = (~n >> 8) & 0xff;
    memcpy(out + at, pdf, n);
    at += n;
    unsigned long crc = crc32_of((unsigned char *)pdf, n);
    for (int i = 0; i < 4; i++) {
        out[at++] = (crc >> (8 * i)) & 0xff;
    }
    for (int i = 0; i < 4; i++) {
        out[at++] = (n >> (8 * i)) & 0xff;
    }
    head_ok(fd, (long long)at, "Content-Encoding: gzip\r\n");
    put(fd, out, at);
    free(pdf);
}

static void serve(conn *c, const char *id, const char *head) {
    int fd = c->fd;
    size_t size = 0;
    char tag[128];
    char *body;

    if (sscanf(id, "ok-%zu-%127s", &size, tag) == 2 ||
        sscanf(id, "held-%zu-%127s", &size, tag) == 2 ||
        sscanf(id, "cont-%zu-%127s", &size, tag) == 2) {
        if (strncmp(id, "held-", 5) == 0) {
            pthread_mutex_lock(&c->o->lock);
            c->o->held++;
            pthread_mutex_unlock(&c->o->lock);
            while (!c->o->gate_open && !c->o->stopping) {
                if (peer_gone(c, 20)) {
                    break;
                }
            }
            pthread_mutex_lock(&c->o->lock);
            c->o->held--;
            pthread_mutex_unlock(&c->o->lock);
        }
        if (strncmp(id, "cont-", 5) == 0) {
            puts_(fd, "HTTP/1.1 100 Continue\r\n\r\n");
        }
        body = review3_bill(id, size);
        if (body == NULL) {
            puts_(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                      "Connection: close\r\n\r\n");
            return;
        }
        head_ok(fd, (long long)size, "");
        put(fd, body, size);
        free(body);
        return;
    }
    if (sscanf(id, "chunked-%zu-%127s", &size, tag) == 2 ||
        sscanf(id, "close-%zu-%127s", &size, tag) == 2) {
        body = review3_bill(id, size);
        if (body == NULL) {
            return;
        }
        if (id[1] == 'h') {
            head_ok(fd, -1, "Transfer-Encoding: chunked\r\n");
            send_chunked(fd, body, size);
        } else {
            head_ok(fd, -1, "");
            put(fd, body, size);
        }
        free(body);
        return;
    }
    if (strncmp(id, "exact-", 6) == 0 || strncmp(id, "overchunked-", 12) == 0) {
        size = REVIEW3_MB5 + (id[0] == 'o' ? 1 : 0);
        body = review3_bill(id, size);
        head_ok(fd, -1, "Transfer-Encoding: chunked\r\n");
        send_chunked(fd, body, size);
        free(body);
        return;
    }
    if (strncmp(id, "over-", 5) == 0) {
        size = REVIEW3_MB5 + 1;
        body = review3_bill(id, size);
        head_ok(fd, (long long)size, "");
        put(fd, body, size);
        free(body);
        return;
    }
    if (strncmp(id, "lielong-", 8) == 0) {
        body = review3_bill(id, 10000);
        head_ok(fd, 20000, "");
        put(fd, body, 10000);
        free(body);
        return;
    }
    if (strncmp(id, "chunkgarbage-", 13) == 0) {
        body = review3_bill(id, 6000);
        head_ok(fd, -1, "Transfer-Encoding: chunked\r\n");
        puts_(fd, "bb8\r\n");
        put(fd, body, 3000);
        puts_(fd, "\r\nzz\r\n");
        put(fd, body + 3000, 3000);
        puts_(fd, "\r\n0\r\n\r\n");
        free(body);
        return;
    }
    if (strncmp(id, "gzip-", 5) == 0) {
        send_gzip(fd, id);
        return;
    }
    if (strncmp(id, "html-", 5) == 0) {
        static const char page[] = "<html><body>Bill viewer</body></html>";
        char h[256];
        snprintf(h, sizeof(h),
                 "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 sizeof(page) - 1, page);
        puts_(fd, h);
        return;
    }
    if (strncmp(id, "hugeheaders-", 12) == 0) {
        size = 3000;
        body = review3_bill(id, size);
        char h[256];
        snprintf(h, sizeof(h),
                 "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n",
                 size);
        puts_(fd, h);
        char line[1024];
        memset(line, 'j', sizeof(line));
        memcpy(line, "X-Junk: ", 8);
        line[sizeof(line) - 2] = '\r';
        line[sizeof(line) - 1] = '\n';
        for (int i = 0; i < 120; i++) {
            if (put(fd, line, sizeof(line)) != 0) {
                break;
            }
        }
        puts_(fd, "\r\n");
        put(fd, body, size);
        free(body);
        return;
    }
    if (strncmp(id, "loop-", 5) == 0) {
        char h[512];
        snprintf(h, sizeof(h),
                 "HTTP/1.1 302 Found\r\nLocation: /%s\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n",
                 id);
        puts_(fd, h);
        return;
    }
    if (strncmp(id, "garbage-", 8) == 0) {
        puts_(fd, "NONSENSE FROM A BROKEN ARCHIVE\r\n\r\n%PDF-1.4 hello\n");
        return;
    }
    if (strncmp(id, "never-", 6) == 0) {
        while (!peer_gone(c, 1000)) {
        }
        return;
    }
    if (strncmp(id, "slowloris-", 10) == 0) {
        size = 4000;
        body = review3_bill(id, size);
        head_ok(fd, (long long)size, "");
        for (size_t i = 0; i < size; i++) {
            if (put(fd, body + i, 1) != 0 || peer_gone(c, 50)) {
                break;
            }
        }
        free(body);
        return;
    }
    int wait_ms;
    if (sscanf(id, "slowfirst-%d-%zu-%127s", &wait_ms, &size, tag) == 3) {
        if (peer_gone(c, wait_ms)) {
            return;
        }
        body = review3_bill(id, size);
        if (body == NULL) {
            return;
        }
        head_ok(fd, (long long)size, "");
        put(fd, body, size);
        free(body);
        return;
    }
    /* an object store that checks the signature's scope: only a request
     * signed for eu-west-1 gets the bill; any other region, a 403 */
    if (sscanf(id, "s3region-%zu-%127s", &size, tag) == 2) {
        if (strstr(head, "/eu-west-1/s3/aws4_request") != NULL) {
            body = review3_bill(id, size);
            if (body == NULL) {
                return;
            }
            head_ok(fd, (long long)size, "");
            put(fd, body, size);
            free(body);
            return;
        }
        static const char mismatch[] =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>"
            "SignatureDoesNotMatch</Code></Error>";
        char h[512];
        snprintf(h, sizeof(h),
                 "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml"
                 "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 sizeof(mismatch) - 1, mismatch);
        puts_(fd, h);
        return;
    }
    if (strncmp(id, "s3denied-", 9) == 0) {
        static const char xml[] =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>"
            "AccessDenied</Code><Message>Access Denied</Message></Error>";
        char h[512];
        snprintf(h, sizeof(h),
                 "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml"
                 "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 sizeof(xml) - 1, xml);
        puts_(fd, h);
        return;
    }
    int status;
    if (sscanf(id, "status-%d-%127s", &status, tag) == 2) {
        char h[256];
        snprintf(h, sizeof(h),
                 "HTTP/1.1 %d Whatever\r\nContent-Type: text/html\r\n"
                 "Content-Length: 9\r\nConnection: close\r\n\r\n<p>no</p>",
                 status);
        puts_(fd, h);
        return;
    }
    puts_(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
              "Connection: close\r\n\r\n");
}

static void *connection_main(void *arg) {
    conn *c = arg;
    char head[8192];
    size_t got = 0;
    head[0] = '\0';
    while (got + 1 < sizeof(head) && strstr(head, "\r\n\r\n") == NULL) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (c->o->stopping || poll(&p, 1, 100) < 0) {
            break;
        }
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) {
            continue;
        }
        ssize_t r = recv(c->fd, head + got, sizeof(head) - 1 - got, 0);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
        head[got] = '\0';
    }
    if (strstr(head, "\r\n\r\n") != NULL) {
        pthread_mutex_lock(&c->o->lock);
        c->o->requests++;
        pthread_mutex_unlock(&c->o->lock);
        char path[512] = "";
        sscanf(head, "%*s %511s", path);
        char *q = strchr(path, '?');
        if (q) {
            *q = '\0';
        }
        char *last = strrchr(path, '/');
        serve(c, last ? last + 1 : path, head);
    }
    shutdown(c->fd, SHUT_WR);
    close(c->fd);
    pthread_mutex_lock(&c->o->lock);
    c->o->open_connections--;
    pthread_mutex_unlock(&c->o->lock);
    free(c);
    return NULL;
}

static void *accept_main(void *arg) {
    review3_origin *o = arg;
    while (!o->stopping) {
        struct pollfd p = {.fd = o->listen_fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) {
            continue;
        }
        int fd = accept4(o->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        conn *c = malloc(sizeof(*c));
        c->o = o;
        c->fd = fd;
        pthread_mutex_lock(&o->lock);
        o->open_connections++;
        pthread_mutex_unlock(&o->lock);
        pthread_t t;
        if (pthread_create(&t, NULL, connection_main, c) != 0) {
            close(fd);
            pthread_mutex_lock(&o->lock);
            o->open_connections--;
            pthread_mutex_unlock(&o->lock);
            free(c);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

int review3_origin_start(review3_origin *o) {
    memset(o, 0, sizeof(*o));
    pthread_mutex_init(&o->lock, NULL);
    o->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (o->listen_fd < 0) {
        return -1;
    }
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(o->listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(o->listen_fd, 512) != 0 ||
        getsockname(o->listen_fd, (struct sockaddr *)&a, &len) != 0) {
        close(o->listen_fd);
        return -1;
    }
    o->port = ntohs(a.sin_port);
    if (pthread_create(&o->thread, NULL, accept_main, o) != 0) {
        close(o->listen_fd);
        return -1;
    }
    return 0;
}

void review3_origin_stop(review3_origin *o) {
    o->stopping = 1;
    pthread_join(o->thread, NULL);
    close(o->listen_fd);
    /* connection threads see "stopping" within 100 ms */
    long long end = dss_now_ms() + 10000;
    while (review3_origin_open(o) > 0 && dss_now_ms() < end) {
        dss_poll_pause();
    }
}

void review3_origin_gate(review3_origin *o, int open) {
    o->gate_open = open;
}

int review3_origin_open(review3_origin *o) {
    pthread_mutex_lock(&o->lock);
    int n = o->open_connections;
    pthread_mutex_unlock(&o->lock);
    return n;
}

int review3_origin_held(review3_origin *o) {
    pthread_mutex_lock(&o->lock);
    int n = o->held;
    pthread_mutex_unlock(&o->lock);
    return n;
}

int review3_origin_requests(review3_origin *o) {
    pthread_mutex_lock(&o->lock);
    int n = o->requests;
    pthread_mutex_unlock(&o->lock);
    return n;
}

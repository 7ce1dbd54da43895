/* fault_origin: see fault_origin.h. */

#define _GNU_SOURCE

#include "fault_origin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char pdf_body[FAULT_ORIGIN_PDF_SIZE + 1];

const char *fault_origin_pdf(void) {
    if (pdf_body[0] == '\0') {
        memset(pdf_body, 'x', FAULT_ORIGIN_PDF_SIZE);
        memcpy(pdf_body, "%PDF-1.4\n", 9);
        memcpy(pdf_body + FAULT_ORIGIN_PDF_SIZE - 6, "%%EOF\n", 6);
        pdf_body[FAULT_ORIGIN_PDF_SIZE] = '\0';
    }
    return pdf_body;
}

typedef struct {
    fault_origin *origin;
    int fd;
} connection;

static int send_all(int fd, const void *data, size_t len) {
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

static int send_text(int fd, const char *text) {
    return send_all(fd, text, strlen(text));
}

/* Waits up to ms, returning early (1) if the peer closed or the origin is
 * stopping. */
static int wait_or_peer_gone(connection *c, int ms) {
    char buf[512];
    while (ms > 0 && !c->origin->stopping) {
        struct pollfd p = {c->fd, POLLIN, 0};
        int slice = ms < 50 ? ms : 50;
        if (poll(&p, 1, slice) > 0) {
            ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
            if (n <= 0) {
                return 1;
            }
        }
        ms -= slice;
    }
    return c->origin->stopping;
}

static void send_pdf(int fd, const char *extra_headers) {
    char head[256];
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
             "Content-Length: %d\r\nConnection: close\r\n%s\r\n",
             FAULT_ORIGIN_PDF_SIZE, extra_headers);
    send_text(fd, head);
    send_all(fd, fault_origin_pdf(), FAULT_ORIGIN_PDF_SIZE);
}

static void respond(connection *c, const char *path) {
    int fd = c->fd;
    const char *pdf = fault_origin_pdf();
    char head[512];

    if (strncmp(path, "/ok-", 4) == 0) {
        send_pdf(fd, "");
    } else if (strncmp(path, "/gated-", 7) == 0) {
        while (!c->origin->gate_open) {
            if (wait_or_peer_gone(c, 50)) {
                return;
            }
        }
        send_pdf(fd, "");
    } else if (strncmp(path, "/chunked-", 9) == 0) {
        send_text(fd,
                  "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                  "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        for (int off = 0; off < FAULT_ORIGIN_PDF_SIZE; off += 700) {
            int n = FAULT_ORIGIN_PDF_SIZE - off < 700
                        ? FAULT_ORIGIN_PDF_SIZE - off
                        : 700;
            snprintf(head, sizeof(head), "%x\r\n", n);
            send_text(fd, head);
            send_all(fd, pdf + off, (size_t)n);
            send_text(fd, "\r\n");
        }
        send_text(fd, "0\r\n\r\n");
    } else if (strncmp(path, "/close-", 7) == 0) {
        send_text(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                      "Connection: close\r\n\r\n");
        send_all(fd, pdf, FAULT_ORIGIN_PDF_SIZE);
    } else if (strncmp(path, "/slow-first-byte-", 17) == 0) {
        if (!wait_or_peer_gone(c, 3000)) {
            send_pdf(fd, "");
        }
    } else if (strncmp(path, "/slow-body-", 11) == 0) {
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
                 FAULT_ORIGIN_PDF_SIZE);
        send_text(fd, head);
        send_all(fd, pdf, 100);
        if (!wait_or_peer_gone(c, 3000)) {
            send_all(fd, pdf + 100, FAULT_ORIGIN_PDF_SIZE - 100);
        }
    } else if (strncmp(path, "/stall-", 7) == 0) {
        send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n");
        send_all(fd, pdf, 1000);
        wait_or_peer_gone(c, 60000);
    } else if (strncmp(path, "/reset-", 7) == 0) {
        send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n");
        send_all(fd, pdf, 1000);
        struct linger hard = {1, 0}; /* close() sends a RST */
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
    } else if (strncmp(path, "/short-", 7) == 0) {
        send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n"
                      "Connection: close\r\n\r\n");
        send_all(fd, pdf, FAULT_ORIGIN_PDF_SIZE);
    } else if (strncmp(path, "/html-", 6) == 0) {
        send_text(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                      "Content-Length: 27\r\nConnection: close\r\n\r\n"
                      "<html>not a bill</html>\r\n\r\n");
    } else if (strncmp(path, "/empty-", 7) == 0) {
        send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                      "Connection: close\r\n\r\n");
    } else if (strncmp(path, "/huge-announced-", 16) == 0) {
        send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n"
                      "Connection: close\r\n\r\n");
        send_all(fd, pdf, 100);
        wait_or_peer_gone(c, 10000);
    } else if (strncmp(path, "/huge-chunked-", 14) == 0) {
        send_text(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                      "Connection: close\r\n\r\n");
        static char block[65536];
        memset(block, 'x', sizeof(block));
        memcpy(block, "%PDF-1.4\n", 9);
        long long sent = 0;
        while (sent < 64LL * 1024 * 1024 && !c->origin->stopping) {
            if (send_text(fd, "10000\r\n") != 0 ||
                send_all(fd, block, sizeof(block)) != 0 ||
                send_text(fd, "\r\n") != 0) {
                break;
            }
            sent += (long long)sizeof(block);
        }
        pthread_mutex_lock(&c->origin->lock);
        c->origin->huge_bytes_sent = sent;
        pthread_mutex_unlock(&c->origin->lock);
    } else if (strncmp(path, "/status-", 8) == 0) {
        int status = atoi(path + 8);
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d Whatever\r\nContent-Type: text/html\r\n"
                 "Content-Length: 16\r\nConnection: close\r\n\r\n"
                 "<html>%03d</html>",
                 status, status);
        send_text(fd, head);
    } else if (strncmp(path, "/redirect-", 10) == 0) {
        snprintf(head, sizeof(head),
                 "HTTP/1.1 302 Found\r\nLocation: /ok-%.64s\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n",
                 path + 10);
        send_text(fd, head);
    } else {
        send_text(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                      "Connection: close\r\n\r\n");
    }
}

static void *serve(void *arg) {
    connection *c = arg;
    char request[4096];
    size_t used = 0;

    while (used < sizeof(request) - 1) {
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, 100) == 0) {
            if (c->origin->stopping) {
                break;
            }
            continue;
        }
        ssize_t n = recv(c->fd, request + used, sizeof(request) - 1 - used, 0);
        if (n <= 0) {
            break;
        }
        used += (size_t)n;
        request[used] = '\0';
        if (strstr(request, "\r\n\r\n")) {
            char method[16], path[2048];
            if (sscanf(request, "%15s %2047s", method, path) == 2) {
                pthread_mutex_lock(&c->origin->lock);
                c->origin->requests++;
                pthread_mutex_unlock(&c->origin->lock);
                respond(c, path);
            }
            break;
        }
    }
    close(c->fd);
    pthread_mutex_lock(&c->origin->lock);
    c->origin->open_connections--;
    pthread_mutex_unlock(&c->origin->lock);
    free(c);
    return NULL;
}

static void *accept_loop(void *arg) {
    fault_origin *o = arg;
    while (!o->stopping) {
        struct pollfd p = {o->listen_fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) {
            continue;
        }
        int fd = accept(o->listen_fd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        connection *c = malloc(sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->origin = o;
        c->fd = fd;
        pthread_mutex_lock(&o->lock);
        o->open_connections++;
        pthread_mutex_unlock(&o->lock);
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (pthread_create(&thread, &attr, serve, c) != 0) {
            close(fd);
            free(c);
            pthread_mutex_lock(&o->lock);
            o->open_connections--;
            pthread_mutex_unlock(&o->lock);
        }
        pthread_attr_destroy(&attr);
    }
    return NULL;
}

int fault_origin_start(fault_origin *o) {
    memset(o, 0, sizeof(*o));
    pthread_mutex_init(&o->lock, NULL);
    o->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(o->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(o->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        listen(o->listen_fd, 512) != 0 ||
        getsockname(o->listen_fd, (struct sockaddr *)&addr, &len) != 0) {
        close(o->listen_fd);
        return -1;
    }
    o->port = ntohs(addr.sin_port);
    return pthread_create(&o->thread, NULL, accept_loop, o) == 0 ? 0 : -1;
}

void fault_origin_stop(fault_origin *o) {
    o->stopping = 1;
    pthread_join(o->thread, NULL);
    close(o->listen_fd);
    /* connection threads notice `stopping` within 50 ms */
    for (int i = 0; i < 200 && fault_origin_open_connections(o) > 0; i++) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

void fault_origin_set_gate(fault_origin *o, int open) {
    o->gate_open = open;
}

int fault_origin_open_connections(fault_origin *o) {
    pthread_mutex_lock(&o->lock);
    int n = o->open_connections;
    pthread_mutex_unlock(&o->lock);
    return n;
}

long long fault_origin_huge_bytes_sent(fault_origin *o) {
    pthread_mutex_lock(&o->lock);
    long long n = o->huge_bytes_sent;
    pthread_mutex_unlock(&o->lock);
    return n;
}

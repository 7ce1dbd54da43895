/* fault_origin: see fault_origin.h. */

#define _GNU_SOURCE

#include "fault_origin.h"
#include "harness.h"

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

void fault_origin_fill_tagged(char *dst, size_t len, const char *id,
                              size_t base) {
    char record[96];
    size_t pos = 0;
    while (pos < len) {
        int n = snprintf(record, sizeof(record), "[%.60s@%zx]", id, base + pos);
        size_t take = (size_t)n < len - pos ? (size_t)n : len - pos;
        memcpy(dst + pos, record, take);
        pos += take;
    }
}

char *fault_origin_bill(const char *id, size_t size) {
    static const char head[] = "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n";
    static const char tail[] = "\n%%EOF\n";
    size_t head_len = sizeof(head) - 1, tail_len = sizeof(tail) - 1;
    if (size < 64) {
        return NULL;
    }
    char *bill = malloc(size);
    if (bill == NULL) {
        return NULL;
    }
    memcpy(bill, head, head_len);
    fault_origin_fill_tagged(bill + head_len, size - head_len - tail_len, id,
                             head_len);
    memcpy(bill + size - tail_len, tail, tail_len);
    return bill;
}

typedef struct {
    fault_origin *origin;
    int fd;
} connection;

static int send_text(int fd, const char *text) {
    return dss_send_all(fd, text, strlen(text));
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
    dss_send_all(fd, fault_origin_pdf(), FAULT_ORIGIN_PDF_SIZE);
}

/* Sends fault_origin_bill(id, size) with a length; the connection stays
 * open unless close_after. */
static int send_bill(int fd, const char *id, size_t size, int close_after) {
    char head[256];
    char *bill = fault_origin_bill(id, size);
    if (bill == NULL) {
        return -1;
    }
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
             "Content-Length: %zu\r\n%s\r\n",
             size, close_after ? "Connection: close\r\n" : "");
    int rc = send_text(fd, head) == 0 && dss_send_all(fd, bill, size) == 0 ? 0 : -1;
    free(bill);
    return rc;
}

/* The response head, then fault_origin_bill(id, FRAMED_SIZE) as is. */
static void send_framed(int fd, const char *head, const char *id) {
    char *bill = fault_origin_bill(id, FAULT_ORIGIN_FRAMED_SIZE);
    if (bill != NULL && send_text(fd, head) == 0) {
        dss_send_all(fd, bill, FAULT_ORIGIN_FRAMED_SIZE);
    }
    free(bill);
}

static void remember(fault_origin *o, const char *id, const char *request) {
    /* header names start a line: "\r\nName:" (case-insensitive) */
    int api_key = 0, authorization = 0;
    for (const char *line = strstr(request, "\r\n"); line != NULL;
         line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "X-Api-Key:", 10) == 0) {
            api_key = 1;
        } else if (strncasecmp(line + 2, "Authorization:", 14) == 0) {
            authorization = 1;
        }
    }
    pthread_mutex_lock(&o->lock);
    if (o->records_used < FAULT_ORIGIN_RECORDS) {
        fault_origin_record *r = &o->records[o->records_used++];
        snprintf(r->id, sizeof(r->id), "%.63s", id);
        r->api_key = api_key;
        r->authorization = authorization;
    }
    pthread_mutex_unlock(&o->lock);
}

long long fault_origin_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Parks the connection while what is held; 1 if its client went away or
 * the origin is stopping meanwhile. */
static int park(connection *c, int what) {
    fault_origin *o = c->origin;
    int gone = 0;
    pthread_mutex_lock(&o->lock);
    o->held++;
    pthread_mutex_unlock(&o->lock);
    while ((o->hold & what) && !gone) {
        gone = wait_or_peer_gone(c, 50);
    }
    pthread_mutex_lock(&o->lock);
    o->held--;
    pthread_mutex_unlock(&o->lock);
    return gone;
}

/* /health and /b/<name>: keep-alive answers for the resilience tests. */
static int respond_probe_or_file(connection *c, const char *path) {
    fault_origin *o = c->origin;
    char head[256];

    if (strcmp(path, "/health") == 0) {
        pthread_mutex_lock(&o->lock);
        if (o->probes < FAULT_ORIGIN_MAX_PROBES) {
            o->probe_at[o->probes] = fault_origin_now_ms();
        }
        o->probes++;
        pthread_mutex_unlock(&o->lock);
        if (park(c, FAULT_ORIGIN_HOLD_HEALTH)) {
            return 0;
        }
        return send_text(c->fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain"
                                "\r\nContent-Length: 2\r\n\r\nok") == 0;
    }

    const char *name = path + 3; /* "/b/" */
    if (strncmp(name, "held", 4) == 0 && park(c, FAULT_ORIGIN_HOLD_BILLS)) {
        return 0;
    }
    char file[8192];
    size_t len = 0;
    char *body = NULL;
    if (strchr(name, '/') == NULL &&
        snprintf(file, sizeof(file), "%s/%s", o->dir, name) <
            (int)sizeof(file)) {
        FILE *f = fopen(file, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            long size = ftell(f);
            rewind(f);
            body = size >= 0 ? malloc((size_t)size + 1) : NULL;
            len = body ? fread(body, 1, (size_t)size, f) : 0;
            fclose(f);
        }
    }
    int rc;
    if (body) {
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                 "Content-Length: %zu\r\n\r\n",
                 len);
        rc = send_text(c->fd, head) == 0 && dss_send_all(c->fd, body, len) == 0;
    } else {
        rc = send_text(c->fd, "HTTP/1.1 404 Not Found\r\n"
                              "Content-Length: 0\r\n\r\n") == 0;
    }
    free(body);
    return rc;
}

/* ---- archive cache tests: /g/, /gh/, /gs/, outages, per-path counts ------ */

void fault_origin_set_tag(fault_origin *o, const char *tag) {
    snprintf(o->tag, sizeof(o->tag), "%s", tag);
}

char *fault_origin_gen_bill_for(fault_origin *o, const char *id,
                                const char *client, size_t *size) {
    char *end = NULL;
    unsigned long n = strtoul(id, &end, 10);
    if (end == id || *end != '-' || n < 64 || n > 64UL * 1024 * 1024) {
        return NULL;
    }
    char name[300];
    snprintf(name, sizeof(name), "%s|%s%s%.*s", o->tag, client ? client : "",
             client && *client ? "|" : "", (int)strcspn(id, "?"), id);
    *size = (size_t)n;
    return fault_origin_bill(name, (size_t)n);
}

char *fault_origin_gen_bill(fault_origin *o, const char *id, size_t *size) {
    return fault_origin_gen_bill_for(o, id, NULL, size);
}

/* The value of request header name (case-insensitive), up to cap-1 bytes;
 * "" when absent. */
static void request_header(const char *request, const char *name, char *out,
                           size_t cap) {
    size_t len = strlen(name);
    out[0] = '\0';
    for (const char *line = strstr(request, "\r\n"); line != NULL;
         line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, name, len) == 0 && line[2 + len] == ':') {
            const char *v = line + 3 + len;
            v += strspn(v, " ");
            snprintf(out, cap, "%.*s", (int)strcspn(v, "\r\n"), v);
        }
    }
}

void fault_origin_outage(fault_origin *o, int mode) {
    o->outage = mode;
}

int fault_origin_path_requests(fault_origin *o, const char *path) {
    int count = 0;
    pthread_mutex_lock(&o->lock);
    for (int i = 0; i < o->paths_used; i++) {
        if (strcmp(o->path_counts[i].path, path) == 0) {
            count = o->path_counts[i].count;
        }
    }
    pthread_mutex_unlock(&o->lock);
    return count;
}

/* Called with o->lock held, for every request. */
static void count_path(fault_origin *o, const char *path) {
    for (int i = 0; i < o->paths_used; i++) {
        if (strcmp(o->path_counts[i].path, path) == 0) {
            o->path_counts[i].count++;
            return;
        }
    }
    if (o->paths_used < FAULT_ORIGIN_PATHS) {
        snprintf(o->path_counts[o->paths_used].path,
                 sizeof(o->path_counts[0].path), "%.119s", path);
        o->path_counts[o->paths_used++].count = 1;
    }
}

/* The outage, /g/, /gh/ and /gs/; -1 for any other request, else what
 * respond returns. */
static int respond_cache_test(connection *c, const char *path,
                              const char *request) {
    fault_origin *o = c->origin;
    char head[256];
    if (o->outage == FAULT_ORIGIN_OUTAGE_RESET) {
        struct linger hard = {1, 0}; /* close() sends a RST */
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
        return 0;
    }
    if (o->outage == FAULT_ORIGIN_OUTAGE_500) {
        send_text(c->fd, "HTTP/1.1 500 Internal Server Error\r\n"
                         "Content-Type: text/html\r\nContent-Length: 16\r\n"
                         "Connection: close\r\n\r\n<html>500</html>");
        return 0;
    }
    int held = strncmp(path, "/gh/", 4) == 0 || strncmp(path, "/gs/", 4) == 0;
    if (!held && strncmp(path, "/g/", 3) != 0) {
        return -1;
    }
    if (held && park(c, FAULT_ORIGIN_HOLD_BILLS)) {
        return 0;
    }
    const char *id = path + (held ? 4 : 3);
    if (strncmp(path, "/gs/", 4) == 0) {
        int status = atoi(id);
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d Whatever\r\nContent-Type: text/html\r\n"
                 "Content-Length: 16\r\nConnection: close\r\n\r\n"
                 "<html>%03d</html>",
                 status, status % 1000);
        send_text(c->fd, head);
        return 0;
    }
    /* the archive's client, as an API key or a Basic user names it */
    char key[96], auth[96], client[256] = "";
    request_header(request, "X-Api-Key", key, sizeof(key));
    request_header(request, "Authorization", auth, sizeof(auth));
    if (key[0] || auth[0]) {
        snprintf(client, sizeof(client), "key=%s,auth=%s", key, auth);
    }
    size_t size = 0;
    char *bill = fault_origin_gen_bill_for(o, id, client, &size);
    if (bill == NULL) {
        send_text(c->fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n");
        return 0;
    }
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             size);
    if (send_text(c->fd, head) == 0) {
        dss_send_all(c->fd, bill, size);
    }
    free(bill);
    return 0;
}

/* ---- end of the archive cache tests' part ---------------------------------- */

/* Answers one request; returns 1 when the connection stays open for the
 * next one. */
static int respond(connection *c, const char *path, const char *request) {
    int fd = c->fd;
    const char *pdf = fault_origin_pdf();
    char head[512];

    int cache_test = respond_cache_test(c, path, request);
    if (cache_test >= 0) {
        return cache_test;
    }

    if (strcmp(path, "/health") == 0 ||
        (strncmp(path, "/b/", 3) == 0 && c->origin->dir[0])) {
        return respond_probe_or_file(c, path);
    }
    if (strncmp(path, "/ka-unsolicited-", 16) == 0) {
        char other[96];
        if (send_bill(fd, path + 16, FAULT_ORIGIN_KA_SIZE, 0) != 0) {
            return 0;
        }
        /* the module has the answer and parks the connection; then one more
         * response nobody asked for arrives on it */
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        snprintf(other, sizeof(other), "E-%.60s", path + 16);
        send_bill(fd, other, FAULT_ORIGIN_KA_SIZE, 0);
        pthread_mutex_lock(&c->origin->lock);
        c->origin->unsolicited_sent++;
        pthread_mutex_unlock(&c->origin->lock);
        return 1;
    } else if (strncmp(path, "/ka-excess-", 11) == 0) {
        /* one more answer nobody asked for, in the same write as the asked
         * one: both arrive before anything else can happen */
        const char *id = path + 11;
        char other[96];
        snprintf(other, sizeof(other), "E-%.60s", id);
        char *first = fault_origin_bill(id, FAULT_ORIGIN_KA_SIZE);
        char *second = fault_origin_bill(other, FAULT_ORIGIN_KA_SIZE);
        size_t cap = 2 * (FAULT_ORIGIN_KA_SIZE + 256), len = 0;
        char *both = malloc(cap);
        int rc = -1;
        if (first && second && both) {
            for (int i = 0; i < 2; i++) {
                len += (size_t)snprintf(
                    both + len, cap - len,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                    "Content-Length: %d\r\n\r\n",
                    FAULT_ORIGIN_KA_SIZE);
                memcpy(both + len, i == 0 ? first : second,
                       FAULT_ORIGIN_KA_SIZE);
                len += FAULT_ORIGIN_KA_SIZE;
            }
            rc = dss_send_all(fd, both, len);
        }
        free(first);
        free(second);
        free(both);
        return rc == 0;
    } else if (strncmp(path, "/ka-late-", 9) == 0) {
        /* one more answer nobody asked for, late: the next request may be
         * on its way already */
        const char *id = path + 9;
        char other[96];
        if (send_bill(fd, id, FAULT_ORIGIN_KA_SIZE, 0) != 0) {
            return 0;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        snprintf(other, sizeof(other), "E-%.60s", id);
        return send_bill(fd, other, FAULT_ORIGIN_KA_SIZE, 0) == 0;
    } else if (strncmp(path, "/ka-", 4) == 0) {
        return send_bill(fd, path + 4, FAULT_ORIGIN_KA_SIZE, 0) == 0;
    } else if (strncmp(path, "/cut-close-", 11) == 0) {
        char *bill = fault_origin_bill(path + 11, FAULT_ORIGIN_FRAMED_SIZE);
        if (bill != NULL &&
            send_text(fd, "HTTP/1.0 200 OK\r\nContent-Type: application/pdf"
                          "\r\n\r\n") == 0) {
            dss_send_all(fd, bill, 8000);
        }
        free(bill);
        return 0; /* a clean close (FIN) after 8000 bytes */
    } else if (strncmp(path, "/dup-length-", 12) == 0) {
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                 "Content-Length: %d\r\nContent-Length: 10\r\n"
                 "Connection: close\r\n\r\n",
                 FAULT_ORIGIN_FRAMED_SIZE);
        send_framed(fd, head, path + 12);
        return 0;
    } else if (strncmp(path, "/dup-same-length-", 17) == 0) {
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                 "Content-Length: %d\r\nContent-Length: %d\r\n"
                 "Connection: close\r\n\r\n",
                 FAULT_ORIGIN_FRAMED_SIZE, FAULT_ORIGIN_FRAMED_SIZE);
        send_framed(fd, head, path + 17);
        return 0;
    } else if (strncmp(path, "/list-length-", 13) == 0) {
        /* one line, two lengths: the body is complete for the first */
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                 "Content-Length: %d, %d\r\nConnection: close\r\n\r\n",
                 FAULT_ORIGIN_FRAMED_SIZE, 2 * FAULT_ORIGIN_FRAMED_SIZE);
        send_framed(fd, head, path + 13);
        return 0;
    } else if (strncmp(path, "/signed-length-", 15) == 0) {
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                 "Content-Length: +%d\r\nConnection: close\r\n\r\n",
                 FAULT_ORIGIN_FRAMED_SIZE);
        send_framed(fd, head, path + 15);
        return 0;
    } else if (strncmp(path, "/cl-chunked-", 12) == 0) {
        char *bill = fault_origin_bill(path + 12, FAULT_ORIGIN_FRAMED_SIZE);
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                 "Content-Length: %d\r\nTransfer-Encoding: chunked\r\n"
                 "Connection: close\r\n\r\n",
                 FAULT_ORIGIN_FRAMED_SIZE);
        if (bill != NULL && send_text(fd, head) == 0) {
            for (int off = 0; off < FAULT_ORIGIN_FRAMED_SIZE; off += 4096) {
                int n = FAULT_ORIGIN_FRAMED_SIZE - off < 4096
                            ? FAULT_ORIGIN_FRAMED_SIZE - off
                            : 4096;
                snprintf(head, sizeof(head), "%x\r\n", n);
                send_text(fd, head);
                dss_send_all(fd, bill + off, (size_t)n);
                send_text(fd, "\r\n");
            }
            send_text(fd, "0\r\n\r\n");
        }
        free(bill);
        return 0;
    } else if (strncmp(path, "/redirect-other-", 16) == 0) {
        snprintf(head, sizeof(head),
                 "HTTP/1.1 302 Found\r\n"
                 "Location: http://localhost:%d/record-%.64s\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n",
                 c->origin->port, path + 16);
        send_text(fd, head);
        return 0;
    } else if (strncmp(path, "/redirect-same-", 15) == 0) {
        snprintf(head, sizeof(head),
                 "HTTP/1.1 302 Found\r\nLocation: /record-%.64s\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n",
                 path + 15);
        send_text(fd, head);
        return 0;
    } else if (strncmp(path, "/record-", 8) == 0) {
        remember(c->origin, path + 8, request);
        send_bill(fd, path + 8, FAULT_ORIGIN_KA_SIZE, 1);
        return 0;
    } else if (strncmp(path, "/ok-", 4) == 0) {
        send_pdf(fd, "");
    } else if (strncmp(path, "/gated-", 7) == 0) {
        while (!c->origin->gate_open) {
            if (wait_or_peer_gone(c, 50)) {
                return 0;
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
            dss_send_all(fd, pdf + off, (size_t)n);
            send_text(fd, "\r\n");
        }
        send_text(fd, "0\r\n\r\n");
    } else if (strncmp(path, "/close-", 7) == 0) {
        send_text(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                      "Connection: close\r\n\r\n");
        dss_send_all(fd, pdf, FAULT_ORIGIN_PDF_SIZE);
    } else if (strncmp(path, "/slow-first-byte-", 17) == 0) {
        if (!wait_or_peer_gone(c, 3000)) {
            send_pdf(fd, "");
        }
    } else if (strncmp(path, "/slow-body-", 11) == 0) {
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
                 FAULT_ORIGIN_PDF_SIZE);
        send_text(fd, head);
        dss_send_all(fd, pdf, 100);
        if (!wait_or_peer_gone(c, 3000)) {
            dss_send_all(fd, pdf + 100, FAULT_ORIGIN_PDF_SIZE - 100);
        }
    } else if (strncmp(path, "/stall-", 7) == 0) {
        send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n");
        dss_send_all(fd, pdf, 1000);
        wait_or_peer_gone(c, 60000);
    } else if (strncmp(path, "/reset-", 7) == 0) {
        send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n");
        dss_send_all(fd, pdf, 1000);
        struct linger hard = {1, 0}; /* close() sends a RST */
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
    } else if (strncmp(path, "/short-", 7) == 0) {
        send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n"
                      "Connection: close\r\n\r\n");
        dss_send_all(fd, pdf, FAULT_ORIGIN_PDF_SIZE);
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
        dss_send_all(fd, pdf, 100);
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
                dss_send_all(fd, block, sizeof(block)) != 0 ||
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
    return 0;
}

static void *serve(void *arg) {
    connection *c = arg;
    char request[4096];
    size_t used = 0;

    while (used < sizeof(request) - 1) {
        char *end = strstr(request, "\r\n\r\n");
        if (used == 0 || end == NULL) {
            struct pollfd p = {c->fd, POLLIN, 0};
            if (poll(&p, 1, 100) == 0) {
                if (c->origin->stopping) {
                    break;
                }
                continue;
            }
            ssize_t n =
                recv(c->fd, request + used, sizeof(request) - 1 - used, 0);
            if (n <= 0) {
                break;
            }
            used += (size_t)n;
            request[used] = '\0';
            continue;
        }
        /* one whole request head (GETs have no body) */
        char method[16], path[2048];
        int keep = 0;
        *end = '\0';
        if (sscanf(request, "%15s %2047s", method, path) == 2) {
            pthread_mutex_lock(&c->origin->lock);
            c->origin->requests++;
            count_path(c->origin, path);
            pthread_mutex_unlock(&c->origin->lock);
            keep = respond(c, path, request);
        }
        if (!keep) {
            break;
        }
        /* a pipelined next request, if any, moves to the front */
        size_t consumed = (size_t)(end + 4 - request);
        memmove(request, request + consumed, used - consumed);
        used -= consumed;
        request[used] = '\0';
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

int fault_origin_unsolicited_sent(fault_origin *o) {
    pthread_mutex_lock(&o->lock);
    int n = o->unsolicited_sent;
    pthread_mutex_unlock(&o->lock);
    return n;
}

int fault_origin_record_seen(fault_origin *o, const char *id, int *api_key,
                             int *authorization) {
    int seen = 0;
    pthread_mutex_lock(&o->lock);
    for (int i = 0; i < o->records_used; i++) {
        if (strcmp(o->records[i].id, id) == 0) {
            seen = 1;
            *api_key = o->records[i].api_key;
            *authorization = o->records[i].authorization;
        }
    }
    pthread_mutex_unlock(&o->lock);
    return seen;
}

long long fault_origin_huge_bytes_sent(fault_origin *o) {
    pthread_mutex_lock(&o->lock);
    long long n = o->huge_bytes_sent;
    pthread_mutex_unlock(&o->lock);
    return n;
}

void fault_origin_serve_dir(fault_origin *o, const char *dir) {
    snprintf(o->dir, sizeof(o->dir), "%s", dir);
}

void fault_origin_hold(fault_origin *o, int what, int on) {
    pthread_mutex_lock(&o->lock);
    o->hold = on ? (o->hold | what) : (o->hold & ~what);
    pthread_mutex_unlock(&o->lock);
}

int fault_origin_held(fault_origin *o) {
    pthread_mutex_lock(&o->lock);
    int held = o->held;
    pthread_mutex_unlock(&o->lock);
    return held;
}

int fault_origin_probes(fault_origin *o) {
    pthread_mutex_lock(&o->lock);
    int n = o->probes;
    pthread_mutex_unlock(&o->lock);
    return n;
}

int fault_origin_probes_between(fault_origin *o, long long from,
                                long long to) {
    int count = 0;
    pthread_mutex_lock(&o->lock);
    int n = o->probes < FAULT_ORIGIN_MAX_PROBES ? o->probes
                                                : FAULT_ORIGIN_MAX_PROBES;
    for (int i = 0; i < n; i++) {
        count += o->probe_at[i] >= from && o->probe_at[i] <= to;
    }
    pthread_mutex_unlock(&o->lock);
    return count;
}

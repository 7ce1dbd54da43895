
/*
 * libcurl inside nginx's event loop: one multi handle per worker, driven
 * by the multi-socket API. curl's sockets become nginx connections with
 * level-triggered read/write events (curl does not promise to read until
 * EAGAIN), curl's timer an nginx timer. Nothing here blocks.
 *
 * The archive connections are opened and closed through callbacks, so each
 * has its nginx connection for its whole life. With dss_bill_upstream_keepalive
 * on, libcurl keeps them for reuse; an idle one that turns readable (a late
 * or unsolicited answer) is closed, as nginx's keepalive module does for its
 * cached upstream connections, and a reused one is checked once more right
 * before its request goes out (D9).
 */


#include "ngx_http_dss_bill.h"

#include <curl/curl.h>
#include <openssl/err.h>


/* An archive connection: its nginx connection, for its whole life. */
typedef struct {
    ngx_connection_t       *connection;
    in_port_t               local_port;   /* 0 until known */
    in_port_t               remote_port;
    ngx_socket_t            same_port;    /* next with this local port */
    dev_t                   dev;          /* which file the descriptor is */
    ino_t                   ino;
    unsigned                idle:1;       /* kept by libcurl, unused */
} ngx_http_dss_bill_socket_t;


typedef struct {
    CURLM                  *multi;
    dss_bill_fetch_pool    *pool;
    ngx_event_t             timer;
    ngx_log_t              *log;

    /* transfers failed outside libcurl (no connection to watch a socket) */
    ngx_event_t             fail;
    ngx_queue_t             failing;

    /* the archive connections, indexed by descriptor, and their
     * descriptors by local port (what libcurl tells a pre-request check;
     * connections to different archives may share one: a chain) */
    ngx_http_dss_bill_socket_t  *sockets;
    ngx_uint_t                   nsockets;
    ngx_socket_t                *by_port;

    /* a socket whose peer is gone: put in place of a poisoned connection */
    ngx_socket_t            dead;
} ngx_http_dss_bill_curl_t;


static curl_socket_t ngx_http_dss_bill_curl_open(void *clientp,
    curlsocktype purpose, struct curl_sockaddr *address);
static int ngx_http_dss_bill_curl_close(void *clientp, curl_socket_t s);
static void ngx_http_dss_bill_curl_identify(ngx_socket_t s);
static ngx_uint_t ngx_http_dss_bill_curl_is_ours(ngx_socket_t s);
static void ngx_http_dss_bill_curl_forget(ngx_socket_t s);
static ngx_int_t ngx_http_dss_bill_curl_register(ngx_socket_t s,
    ngx_connection_t *c);
static ngx_http_dss_bill_socket_t *ngx_http_dss_bill_curl_lookup(
    curl_socket_t s);
static int ngx_http_dss_bill_curl_prereq(void *clientp, char *primary_ip,
    char *local_ip, int primary_port, int local_port);
static ngx_int_t ngx_http_dss_bill_curl_stale(ngx_connection_t *c);
static void ngx_http_dss_bill_curl_unlink_port(ngx_socket_t s);
static int ngx_http_dss_bill_curl_socket(CURL *easy, curl_socket_t s,
    int what, void *userp, void *socketp);
static int ngx_http_dss_bill_curl_timer(CURLM *multi, long timeout_ms,
    void *userp);
static void ngx_http_dss_bill_curl_event(ngx_event_t *ev);
static void ngx_http_dss_bill_curl_timeout(ngx_event_t *ev);
static void ngx_http_dss_bill_curl_act(curl_socket_t s, int action);
static void ngx_http_dss_bill_curl_drain(void);
static void ngx_http_dss_bill_curl_watch(ngx_connection_t *c, int what);
static void ngx_http_dss_bill_curl_idle(ngx_http_dss_bill_socket_t *sock);
static void ngx_http_dss_bill_curl_idle_readable(ngx_event_t *rev);
static void ngx_http_dss_bill_curl_unwatch(ngx_connection_t *c);
static void ngx_http_dss_bill_curl_fail(ngx_http_dss_bill_transfer_t *t);
static void ngx_http_dss_bill_curl_fail_handler(ngx_event_t *ev);


/* per worker: created after the fork, gone at exit */
static ngx_http_dss_bill_curl_t  ngx_http_dss_bill_curl;


ngx_int_t
ngx_http_dss_bill_curl_init(ngx_cycle_t *cycle, size_t memory_budget)
{
    int                        pair[2];
    CURLcode                   rc;
    CURLMcode                  mrc;
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "dss_bill: curl_global_init() failed: %s",
                      curl_easy_strerror(rc));
        return NGX_ERROR;
    }

    dc->log = cycle->log;
    dc->dead = (ngx_socket_t) -1;

    if (socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0, pair) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "dss_bill: socketpair() failed");
        return NGX_ERROR;
    }

    /* reads on the kept end see the end of the stream, forever */
    close(pair[1]);
    dc->dead = pair[0];

    dc->multi = curl_multi_init();
    dc->pool = dss_bill_fetch_pool_create(64, memory_budget);
    dc->by_port = ngx_alloc(65536 * sizeof(ngx_socket_t), cycle->log);

    if (dc->multi == NULL || dc->pool == NULL || dc->by_port == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "dss_bill: cannot create the libcurl multi handle");
        return NGX_ERROR;
    }

    mrc = curl_multi_setopt(dc->multi, CURLMOPT_SOCKETFUNCTION,
                            ngx_http_dss_bill_curl_socket);
    if (mrc == CURLM_OK) {
        mrc = curl_multi_setopt(dc->multi, CURLMOPT_TIMERFUNCTION,
                                ngx_http_dss_bill_curl_timer);
    }

    if (mrc != CURLM_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "dss_bill: curl_multi_setopt() failed: %s",
                      curl_multi_strerror(mrc));
        return NGX_ERROR;
    }

    dc->timer.handler = ngx_http_dss_bill_curl_timeout;
    dc->timer.log = cycle->log;
    dc->timer.data = dc;

    /* requests in flight hold the worker with their own watchdogs */
    dc->timer.cancelable = 1;

    dc->fail.handler = ngx_http_dss_bill_curl_fail_handler;
    dc->fail.log = cycle->log;
    dc->fail.data = dc;

    ngx_queue_init(&dc->failing);

    ngx_memset(dc->by_port, 0xff, 65536 * sizeof(ngx_socket_t));   /* -1 */

    return NGX_OK;
}


void
ngx_http_dss_bill_curl_exit(ngx_cycle_t *cycle)
{
    ngx_socket_t               s;
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    if (dc->multi == NULL) {
        return;
    }

    if (dc->timer.timer_set) {
        ngx_del_timer(&dc->timer);
    }

    if (dc->timer.posted) {
        ngx_delete_posted_event(&dc->timer);
    }

    if (dc->fail.posted) {
        ngx_delete_posted_event(&dc->fail);
    }

    /* closes the cached connections through ngx_http_dss_bill_curl_close() */
    curl_multi_cleanup(dc->multi);
    dc->multi = NULL;
    ERR_clear_error();

    /* what is left was closed by libcurl itself */

    for (s = 0; (ngx_uint_t) s < dc->nsockets; s++) {
        if (dc->sockets[s].connection) {
            ngx_http_dss_bill_curl_forget(s);
        }
    }

    dss_bill_fetch_pool_destroy(dc->pool);
    dc->pool = NULL;

    if (dc->sockets) {
        ngx_free(dc->sockets);
        dc->sockets = NULL;
        dc->nsockets = 0;
    }

    if (dc->by_port) {
        ngx_free(dc->by_port);
        dc->by_port = NULL;
    }

    if (dc->dead != (ngx_socket_t) -1) {
        close(dc->dead);
        dc->dead = (ngx_socket_t) -1;
    }

    curl_global_cleanup();
}


ngx_int_t
ngx_http_dss_bill_transfer_start(ngx_http_dss_bill_transfer_t *t,
    const dss_bill_upstream_options *options, const char *url,
    ngx_uint_t probe, ngx_log_t *log)
{
    char                       err[NGX_HTTP_DSS_BILL_REASON_LEN];
    CURL                      *easy;
    CURLcode                   rc;
    CURLMcode                  mrc;
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    if (dc->multi == NULL) {
        ngx_log_error(NGX_LOG_ALERT, log, 0, "dss_bill: libcurl not ready");
        return NGX_ERROR;
    }

    t->fetch = dss_bill_fetch_start(dc->pool, options, url, probe, err,
                                    sizeof(err));
    if (t->fetch == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "dss_bill: %s", err);
        return NGX_ERROR;
    }

    easy = dss_bill_fetch_easy(t->fetch);

    rc = curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
    if (rc == CURLE_OK) {
        rc = curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION,
                              ngx_http_dss_bill_curl_open);
    }
    if (rc == CURLE_OK) {
        rc = curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION,
                              ngx_http_dss_bill_curl_close);
    }
    if (rc == CURLE_OK) {
        rc = curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION,
                              ngx_http_dss_bill_curl_prereq);
    }
    if (rc == CURLE_OK) {
        rc = curl_easy_setopt(easy, CURLOPT_PREREQDATA, t);
    }

    t->stale = 0;
    t->retried = 0;

    if (rc != CURLE_OK) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "dss_bill: curl_easy_setopt() failed: %s",
                      curl_easy_strerror(rc));
        goto failed;
    }

    mrc = curl_multi_add_handle(dc->multi, easy);
    if (mrc != CURLM_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "dss_bill: curl_multi_add_handle() failed: %s",
                      curl_multi_strerror(mrc));
        goto failed;
    }

    t->active = 1;

    return NGX_OK;

failed:

    dss_bill_fetch_release(t->fetch);
    t->fetch = NULL;

    return NGX_ERROR;
}


/* Takes a transfer in flight out of libcurl (client gone, deadline). */

void
ngx_http_dss_bill_transfer_stop(ngx_http_dss_bill_transfer_t *t)
{
    CURLMcode                  rc;
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    if (t->failing) {
        ngx_queue_remove(&t->queue);
        t->failing = 0;
    }

    if (t->active && dc->multi) {
        /* may close the connection, TLS shutdown included */
        rc = curl_multi_remove_handle(dc->multi,
                                      dss_bill_fetch_easy(t->fetch));
        ERR_clear_error();

        if (rc != CURLM_OK) {
            ngx_log_error(NGX_LOG_ALERT, dc->log, 0,
                          "dss_bill: curl_multi_remove_handle() failed: %s",
                          curl_multi_strerror(rc));
        }
    }

    t->active = 0;
}


void
ngx_http_dss_bill_transfer_cancel(ngx_http_dss_bill_transfer_t *t)
{
    ngx_http_dss_bill_transfer_stop(t);
    ngx_http_dss_bill_transfer_release(t);
}


void
ngx_http_dss_bill_transfer_release(ngx_http_dss_bill_transfer_t *t)
{
    if (t->fetch) {
        dss_bill_fetch_release(t->fetch);
        t->fetch = NULL;
    }
}


/*
 * CURLOPT_OPENSOCKETFUNCTION: the archive connection gets its nginx
 * connection now. Without a free one only this connection attempt fails
 * (T5), never the whole multi handle.
 */

static curl_socket_t
ngx_http_dss_bill_curl_open(void *clientp, curlsocktype purpose,
    struct curl_sockaddr *address)
{
    ngx_socket_t               s;
    ngx_connection_t          *c;
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    s = socket(address->family, address->socktype | SOCK_CLOEXEC,
               address->protocol);
    if (s == (ngx_socket_t) -1) {
        return CURL_SOCKET_BAD;
    }

    if (ngx_http_dss_bill_curl_lookup(s)) {
        /* the number is free again: its socket was closed behind our back */
        ngx_http_dss_bill_curl_forget(s);
    }

    /* logs "worker_connections are not enough" itself */
    c = ngx_get_connection(s, dc->log);
    if (c == NULL) {
        close(s);
        return CURL_SOCKET_BAD;
    }

    if (ngx_http_dss_bill_curl_register(s, c) != NGX_OK) {
        ngx_free_connection(c);
        close(s);
        return CURL_SOCKET_BAD;
    }

    dc->sockets[s].remote_port = ngx_inet_get_port(&address->addr);
    ngx_http_dss_bill_curl_identify(s);

    c->read->handler = ngx_http_dss_bill_curl_event;
    c->write->handler = ngx_http_dss_bill_curl_event;
    c->read->log = dc->log;
    c->write->log = dc->log;

    return s;
}


/* CURLOPT_CLOSESOCKETFUNCTION: the end of an archive connection. */

static int
ngx_http_dss_bill_curl_close(void *clientp, curl_socket_t s)
{
    ngx_http_dss_bill_socket_t  *sock;

    sock = ngx_http_dss_bill_curl_lookup(s);

    if (sock) {
        ngx_http_dss_bill_curl_unwatch(sock->connection);

        if (sock->local_port) {
            ngx_http_dss_bill_curl_unlink_port(s);
        }

        ngx_memzero(sock, sizeof(ngx_http_dss_bill_socket_t));
    }

    return close(s);
}


static ngx_int_t
ngx_http_dss_bill_curl_register(ngx_socket_t s, ngx_connection_t *c)
{
    ngx_uint_t                   n;
    ngx_http_dss_bill_curl_t    *dc = &ngx_http_dss_bill_curl;
    ngx_http_dss_bill_socket_t  *sockets;

    if ((ngx_uint_t) s >= dc->nsockets) {
        n = ngx_max(dc->nsockets * 2, (ngx_uint_t) s + 1);
        n = ngx_max(n, 1024);

        sockets = ngx_calloc(n * sizeof(ngx_http_dss_bill_socket_t), dc->log);
        if (sockets == NULL) {
            return NGX_ERROR;
        }

        if (dc->sockets) {
            ngx_memcpy(sockets, dc->sockets,
                       dc->nsockets * sizeof(ngx_http_dss_bill_socket_t));
            ngx_free(dc->sockets);
        }

        dc->sockets = sockets;
        dc->nsockets = n;
    }

    ngx_memzero(&dc->sockets[s], sizeof(ngx_http_dss_bill_socket_t));
    dc->sockets[s].connection = c;
    dc->sockets[s].same_port = (ngx_socket_t) -1;

    return NGX_OK;
}


static ngx_http_dss_bill_socket_t *
ngx_http_dss_bill_curl_lookup(curl_socket_t s)
{
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    if (s < 0 || (ngx_uint_t) s >= dc->nsockets
        || dc->sockets[s].connection == NULL)
    {
        return NULL;
    }

    return &dc->sockets[s];
}


static void
ngx_http_dss_bill_curl_unlink_port(ngx_socket_t s)
{
    ngx_socket_t               *link;
    ngx_http_dss_bill_curl_t   *dc = &ngx_http_dss_bill_curl;

    link = &dc->by_port[dc->sockets[s].local_port];

    while (*link != (ngx_socket_t) -1 && *link != s) {
        link = &dc->sockets[*link].same_port;
    }

    if (*link == s) {
        *link = dc->sockets[s].same_port;
    }
}


/*
 * CURLOPT_PREREQFUNCTION: libcurl is about to send a request on the
 * connection with this local port. A kept connection that has anything to
 * read before the request even went out holds a late or unsolicited answer,
 * which libcurl would take for this request's (D9): the transfer is
 * aborted, libcurl closes the connection, and the fetch starts again once.
 */

static int
ngx_http_dss_bill_curl_prereq(void *clientp, char *primary_ip,
    char *local_ip, int primary_port, int local_port)
{
    ngx_socket_t                   s;
    ngx_http_dss_bill_curl_t      *dc = &ngx_http_dss_bill_curl;
    ngx_http_dss_bill_socket_t    *sock;
    ngx_http_dss_bill_transfer_t  *t = clientp;

    if (local_port <= 0 || local_port > 65535) {
        return CURL_PREREQFUNC_OK;
    }

    /* connections to different archives may share a local port */

    for (s = dc->by_port[local_port];
         s != (ngx_socket_t) -1 && dc->sockets[s].remote_port != primary_port;
         s = dc->sockets[s].same_port)
    {
        /* void */
    }

    sock = ngx_http_dss_bill_curl_lookup(s);

    /* a new connection, or one some transfer uses: nothing kept to check */

    if (sock == NULL || !sock->idle
        || ngx_http_dss_bill_curl_stale(sock->connection) != NGX_OK)
    {
        return CURL_PREREQFUNC_OK;
    }

    ngx_log_error(NGX_LOG_INFO, dc->log, 0,
                  "dss_bill: a kept archive connection had unread bytes "
                  "before its next request; fetching on a new one");

    t->stale = 1;

    return CURL_PREREQFUNC_ABORT;
}


/* NGX_OK when c has something to read (bytes, or the end of the stream). */

static ngx_int_t
ngx_http_dss_bill_curl_stale(ngx_connection_t *c)
{
    u_char     byte;
    ssize_t    n;
    ngx_err_t  err;

    n = recv(c->fd, &byte, 1, MSG_PEEK|MSG_DONTWAIT);
    err = ngx_socket_errno;

    if (n == -1 && (err == NGX_EAGAIN || err == NGX_EINTR)) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static int
ngx_http_dss_bill_curl_socket(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp)
{
    CURLMcode                      rc;
    socklen_t                      len;
    ngx_sockaddr_t                 sa;
    ngx_connection_t              *c;
    ngx_http_dss_bill_socket_t    *sock;
    ngx_http_dss_bill_transfer_t  *t;
    ngx_http_dss_bill_curl_t      *dc = &ngx_http_dss_bill_curl;

    /* an archive connection; else a socket of libcurl's own, such as its
     * resolver's, watched only while libcurl asks */

    sock = ngx_http_dss_bill_curl_lookup(s);

    if (what == CURL_POLL_REMOVE) {
        if (sock && !ngx_http_dss_bill_curl_is_ours(s)) {
            /* closed by libcurl itself, not kept: nothing to watch */
            ngx_http_dss_bill_curl_forget(s);

        } else if (sock) {
            /* no transfer uses it now: libcurl keeps it for reuse */
            ngx_http_dss_bill_curl_idle(sock);

        } else if (socketp) {
            ngx_http_dss_bill_curl_unwatch(socketp);
            (void) curl_multi_assign(dc->multi, s, NULL);
        }

        return 0;
    }

    c = socketp;

    if (sock) {
        c = sock->connection;
        sock->idle = 0;

        /* connected (or connecting): its local port is bound now */

        if (sock->local_port == 0) {
            len = sizeof(ngx_sockaddr_t);

            if (getsockname(s, &sa.sockaddr, &len) == 0) {
                sock->local_port = ngx_inet_get_port(&sa.sockaddr);
                sock->same_port = dc->by_port[sock->local_port];
                dc->by_port[sock->local_port] = s;
            }
        }
    }

    if (c == NULL) {
        c = ngx_get_connection(s, dc->log);

        if (c == NULL) {
            /*
             * worker_connections exhausted: returning -1 would make libcurl
             * abort every transfer of the multi handle; fail this one
             */
            t = NULL;
            (void) curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &t);

            if (t) {
                ngx_http_dss_bill_curl_fail(t);
            }

            return 0;
        }

        c->read->log = dc->log;
        c->write->log = dc->log;

        rc = curl_multi_assign(dc->multi, s, c);
        if (rc != CURLM_OK) {
            ngx_log_error(NGX_LOG_ALERT, dc->log, 0,
                          "dss_bill: curl_multi_assign() failed: %s",
                          curl_multi_strerror(rc));
        }
    }

    /* back from idle, if it was */
    c->read->handler = ngx_http_dss_bill_curl_event;
    c->write->handler = ngx_http_dss_bill_curl_event;

    ngx_http_dss_bill_curl_watch(c, what);

    return 0;
}


static void
ngx_http_dss_bill_curl_watch(ngx_connection_t *c, int what)
{
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    if ((what & CURL_POLL_IN) && !c->read->active) {
        if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, dc->log, 0,
                          "dss_bill: cannot watch an archive socket");
        }

    } else if (!(what & CURL_POLL_IN) && c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if ((what & CURL_POLL_OUT) && !c->write->active) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, dc->log, 0,
                          "dss_bill: cannot watch an archive socket");
        }

    } else if (!(what & CURL_POLL_OUT) && c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


/*
 * D9: an idle archive connection has nothing to say. Bytes (or the end of
 * the stream) arriving now would be read by the next transfer as its own
 * answer: watch for them.
 */

static void
ngx_http_dss_bill_curl_idle(ngx_http_dss_bill_socket_t *sock)
{
    ngx_connection_t  *c = sock->connection;

    sock->idle = 1;

    ngx_http_dss_bill_curl_watch(c, CURL_POLL_IN);

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    /* a read event already posted is checked again by the new handler */
    c->read->handler = ngx_http_dss_bill_curl_idle_readable;

    /* what arrived with (or right after) the last answer is there now */
    ngx_http_dss_bill_curl_idle_readable(c->read);
}


/*
 * The idle connection turned readable: take it from libcurl by putting a
 * socket whose peer is gone in place of its descriptor. The TCP connection
 * closes at once, and libcurl's check before any reuse finds the
 * descriptor at the end of its stream and closes it.
 */

static void
ngx_http_dss_bill_curl_idle_readable(ngx_event_t *rev)
{
    ngx_connection_t          *c = rev->data;
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    if (ngx_http_dss_bill_curl_stale(c) != NGX_OK) {
        return;     /* a stale event: nothing arrived */
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, dc->log, 0,
                   "dss_bill: an idle archive connection turned readable");

    /* out of the event set first: after dup2() the descriptor is another
     * file, which epoll_ctl() would not find */

    ngx_http_dss_bill_curl_watch(c, 0);

    if (rev->posted) {
        ngx_delete_posted_event(rev);
    }

    if (dup2(dc->dead, c->fd) == -1) {
        ngx_log_error(NGX_LOG_ALERT, dc->log, ngx_errno,
                      "dss_bill: dup2() over an idle archive connection "
                      "failed");
        (void) shutdown(c->fd, SHUT_RDWR);
        return;
    }

    /* the descriptor is the dead socket now, and still ours */
    ngx_http_dss_bill_curl_identify(c->fd);
}


/*
 * libcurl 7.88 closes a socket that never finished connecting with close(),
 * not through CURLOPT_CLOSESOCKETFUNCTION (cf-socket.c, cf_socket_close(),
 * "not active"), e.g. after a connect timeout. Its number may then come
 * back as another file: the registry remembers which file each descriptor
 * was, so that such a socket is forgotten rather than watched.
 */

static void
ngx_http_dss_bill_curl_identify(ngx_socket_t s)
{
    struct stat                  st;
    ngx_http_dss_bill_socket_t  *sock;

    sock = ngx_http_dss_bill_curl_lookup(s);

    if (sock && fstat(s, &st) == 0) {
        sock->dev = st.st_dev;
        sock->ino = st.st_ino;
    }
}


static ngx_uint_t
ngx_http_dss_bill_curl_is_ours(ngx_socket_t s)
{
    struct stat                  st;
    ngx_http_dss_bill_socket_t  *sock;

    sock = ngx_http_dss_bill_curl_lookup(s);

    return sock && fstat(s, &st) == 0
           && st.st_dev == sock->dev && st.st_ino == sock->ino;
}


static void
ngx_http_dss_bill_curl_forget(ngx_socket_t s)
{
    ngx_connection_t            *c;
    ngx_http_dss_bill_socket_t  *sock;
    ngx_http_dss_bill_curl_t    *dc = &ngx_http_dss_bill_curl;

    sock = &dc->sockets[s];
    c = sock->connection;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, dc->log, 0,
                   "dss_bill: archive socket %d was closed by libcurl", s);

    /* closing it took it out of the event set: only the flags are left */

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    if (sock->local_port) {
        ngx_http_dss_bill_curl_unlink_port(s);
    }

    ngx_memzero(sock, sizeof(ngx_http_dss_bill_socket_t));
}


/*
 * Takes the socket out of the event set and gives the connection structure
 * back, but never closes the descriptor: it is libcurl's.
 */

static void
ngx_http_dss_bill_curl_unwatch(ngx_connection_t *c)
{
    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
}


static int
ngx_http_dss_bill_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    if (timeout_ms < 0) {
        if (dc->timer.timer_set) {
            ngx_del_timer(&dc->timer);
        }

        return 0;
    }

    if (timeout_ms == 0) {
        /* act soon, but not from inside libcurl's own callback */
        if (dc->timer.timer_set) {
            ngx_del_timer(&dc->timer);
        }

        ngx_post_event(&dc->timer, &ngx_posted_events);

        return 0;
    }

    ngx_add_timer(&dc->timer, (ngx_msec_t) timeout_ms);

    return 0;
}


static void
ngx_http_dss_bill_curl_event(ngx_event_t *ev)
{
    int                action;
    ngx_connection_t  *c = ev->data;

    action = ev->write ? CURL_CSELECT_OUT : CURL_CSELECT_IN;

    /* may call back REMOVE for this very connection: c is not used after */
    ngx_http_dss_bill_curl_act(c->fd, action);
}


static void
ngx_http_dss_bill_curl_timeout(ngx_event_t *ev)
{
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    if (dc->multi == NULL) {
        return;
    }

    ngx_http_dss_bill_curl_act(CURL_SOCKET_TIMEOUT, 0);
}


static void
ngx_http_dss_bill_curl_act(curl_socket_t s, int action)
{
    int                        running;
    CURLMcode                  rc;
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    rc = curl_multi_socket_action(dc->multi, s, action, &running);

    /*
     * libcurl's TLS and nginx's share this thread's OpenSSL error queue:
     * what curl leaves there would surface as "stale global SSL error"
     * alerts on the next TLS client of nginx
     */

    ERR_clear_error();

    if (rc != CURLM_OK) {
        ngx_log_error(NGX_LOG_ALERT, dc->log, 0,
                      "dss_bill: curl_multi_socket_action() failed: %s",
                      curl_multi_strerror(rc));
    }

    ngx_http_dss_bill_curl_drain();
}


/* Hands every finished transfer to its owner, or on to a redirect. */

static void
ngx_http_dss_bill_curl_drain(void)
{
    int                            left;
    CURL                          *easy;
    CURLMsg                       *msg;
    CURLcode                       result;
    CURLMcode                      rc;
    dss_bill_outcome               outcome;
    ngx_http_dss_bill_curl_t      *dc = &ngx_http_dss_bill_curl;
    ngx_http_dss_bill_transfer_t  *t;

    while ((msg = curl_multi_info_read(dc->multi, &left)) != NULL) {

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        /* msg is invalid once the handle is removed */
        easy = msg->easy_handle;
        result = msg->data.result;

        t = NULL;
        (void) curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &t);

        rc = curl_multi_remove_handle(dc->multi, easy);
        if (rc != CURLM_OK) {
            ngx_log_error(NGX_LOG_ALERT, dc->log, 0,
                          "dss_bill: curl_multi_remove_handle() failed: %s",
                          curl_multi_strerror(rc));
        }

        if (t == NULL) {
            continue;
        }

        /* again, once, on a new connection (see the pre-request check);
         * or on to a redirect's target */

        if ((result == CURLE_ABORTED_BY_CALLBACK && t->stale && !t->retried)
            || dss_bill_fetch_redirected(t->fetch, result))
        {
            t->retried |= t->stale;
            t->stale = 0;

            rc = curl_multi_add_handle(dc->multi, easy);
            if (rc == CURLM_OK) {
                continue;
            }

            ngx_log_error(NGX_LOG_ERR, dc->log, 0,
                          "dss_bill: curl_multi_add_handle() failed: %s",
                          curl_multi_strerror(rc));
        }

        if (t->failing) {
            ngx_queue_remove(&t->queue);
            t->failing = 0;
        }

        t->active = 0;
        outcome = dss_bill_fetch_finish(t->fetch, result);

        t->done(t, outcome);
    }
}


/* Fails one transfer from a posted event: not from inside libcurl. */

static void
ngx_http_dss_bill_curl_fail(ngx_http_dss_bill_transfer_t *t)
{
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    if (t->failing) {
        return;
    }

    t->failing = 1;
    ngx_queue_insert_tail(&dc->failing, &t->queue);

    ngx_post_event(&dc->fail, &ngx_posted_events);
}


static void
ngx_http_dss_bill_curl_fail_handler(ngx_event_t *ev)
{
    ngx_queue_t                   *q;
    ngx_http_dss_bill_curl_t      *dc = &ngx_http_dss_bill_curl;
    ngx_http_dss_bill_transfer_t  *t;

    while (!ngx_queue_empty(&dc->failing)) {
        q = ngx_queue_head(&dc->failing);
        t = ngx_queue_data(q, ngx_http_dss_bill_transfer_t, queue);

        ngx_http_dss_bill_transfer_stop(t);

        ngx_log_error(NGX_LOG_ERR, dc->log, 0,
                      "dss_bill: no free connection to watch an archive "
                      "transfer (worker_connections)");

        t->done(t, DSS_BILL_UPSTREAM_CONNECT);
    }
}


/*
 * libcurl inside nginx's event loop: one multi handle per worker, driven
 * by the multi-socket API. curl's sockets become nginx connections with
 * level-triggered read/write events (curl does not promise to read until
 * EAGAIN), curl's timer an nginx timer. Nothing here blocks.
 */


#include "ngx_http_dss_bill.h"

#include <curl/curl.h>
#include <openssl/err.h>


typedef struct {
    CURLM                  *multi;
    dss_bill_fetch_pool    *pool;
    ngx_event_t             timer;
    ngx_log_t              *log;
} ngx_http_dss_bill_curl_t;


static int ngx_http_dss_bill_curl_socket(CURL *easy, curl_socket_t s,
    int what, void *userp, void *socketp);
static int ngx_http_dss_bill_curl_timer(CURLM *multi, long timeout_ms,
    void *userp);
static void ngx_http_dss_bill_curl_event(ngx_event_t *ev);
static void ngx_http_dss_bill_curl_timeout(ngx_event_t *ev);
static void ngx_http_dss_bill_curl_act(curl_socket_t s, int action);
static void ngx_http_dss_bill_curl_drain(void);
static void ngx_http_dss_bill_curl_watch(ngx_connection_t *c, int what);
static void ngx_http_dss_bill_curl_unwatch(ngx_connection_t *c);


/* per worker: created after the fork, gone at exit */
static ngx_http_dss_bill_curl_t  ngx_http_dss_bill_curl;


ngx_int_t
ngx_http_dss_bill_curl_init(ngx_cycle_t *cycle, size_t memory_budget)
{
    CURLcode                   rc;
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "dss_bill: curl_global_init() failed: %s",
                      curl_easy_strerror(rc));
        return NGX_ERROR;
    }

    dc->log = cycle->log;

    dc->multi = curl_multi_init();
    dc->pool = dss_bill_fetch_pool_create(64, memory_budget);

    if (dc->multi == NULL || dc->pool == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "dss_bill: cannot create the libcurl multi handle");
        return NGX_ERROR;
    }

    curl_multi_setopt(dc->multi, CURLMOPT_SOCKETFUNCTION,
                      ngx_http_dss_bill_curl_socket);
    curl_multi_setopt(dc->multi, CURLMOPT_TIMERFUNCTION,
                      ngx_http_dss_bill_curl_timer);

    dc->timer.handler = ngx_http_dss_bill_curl_timeout;
    dc->timer.log = cycle->log;
    dc->timer.data = dc;

    /* requests in flight hold the worker with their own watchdogs */
    dc->timer.cancelable = 1;

    return NGX_OK;
}


void
ngx_http_dss_bill_curl_exit(ngx_cycle_t *cycle)
{
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

    /* closes the cached connections, handing their sockets back first */
    curl_multi_cleanup(dc->multi);
    dc->multi = NULL;
    ERR_clear_error();

    dss_bill_fetch_pool_destroy(dc->pool);
    dc->pool = NULL;

    curl_global_cleanup();
}


ngx_int_t
ngx_http_dss_bill_transfer_start(ngx_http_dss_bill_transfer_t *t,
    const dss_bill_upstream_options *options, const char *url,
    ngx_uint_t probe, ngx_log_t *log)
{
    char                       err[NGX_HTTP_DSS_BILL_REASON_LEN];
    CURL                      *easy;
    CURLMcode                  rc;
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
    curl_easy_setopt(easy, CURLOPT_PRIVATE, t);

    rc = curl_multi_add_handle(dc->multi, easy);
    if (rc != CURLM_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "dss_bill: curl_multi_add_handle() failed: %s",
                      curl_multi_strerror(rc));
        dss_bill_fetch_release(t->fetch);
        t->fetch = NULL;
        return NGX_ERROR;
    }

    t->active = 1;

    return NGX_OK;
}


/* Stops a transfer in flight (the client went away, a deadline passed). */

void
ngx_http_dss_bill_transfer_cancel(ngx_http_dss_bill_transfer_t *t)
{
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    if (t->active && dc->multi) {
        /* may close the connection, TLS shutdown included */
        curl_multi_remove_handle(dc->multi, dss_bill_fetch_easy(t->fetch));
        ERR_clear_error();
    }

    t->active = 0;

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


static int
ngx_http_dss_bill_curl_socket(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp)
{
    ngx_connection_t          *c = socketp;
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    if (what == CURL_POLL_REMOVE) {
        if (c) {
            ngx_http_dss_bill_curl_unwatch(c);
            curl_multi_assign(dc->multi, s, NULL);
        }

        return 0;
    }

    if (c == NULL) {
        c = ngx_get_connection(s, dc->log);
        if (c == NULL) {
            /* worker_connections exhausted: curl fails this transfer */
            return -1;
        }

        c->read->handler = ngx_http_dss_bill_curl_event;
        c->write->handler = ngx_http_dss_bill_curl_event;
        c->read->log = dc->log;
        c->write->log = dc->log;

        curl_multi_assign(dc->multi, s, c);
    }

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
 * The socket stays libcurl's (it may keep it for the next request): take it
 * out of the event set and give the connection structure back, but never
 * close the descriptor.
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
    ngx_http_dss_bill_curl_t  *dc = &ngx_http_dss_bill_curl;

    curl_multi_socket_action(dc->multi, s, action, &running);

    /*
     * libcurl's TLS and nginx's share this thread's OpenSSL error queue:
     * what curl leaves there would surface as "stale global SSL error"
     * alerts on the next TLS client of nginx
     */

    ERR_clear_error();

    ngx_http_dss_bill_curl_drain();
}


/* Hands every finished transfer to its owner. */

static void
ngx_http_dss_bill_curl_drain(void)
{
    int                            left;
    CURL                          *easy;
    CURLMsg                       *msg;
    CURLcode                       result;
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
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &t);
        curl_multi_remove_handle(dc->multi, easy);

        if (t == NULL) {
            continue;
        }

        t->active = 0;
        outcome = dss_bill_fetch_finish(t->fetch, result);

        t->done(t, outcome);
    }
}

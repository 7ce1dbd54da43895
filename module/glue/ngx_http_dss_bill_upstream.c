
/*
 * The archive source: fetches a bill from dss_bill_upstream without
 * blocking, and answers only once the whole body is in hand and checked
 * (all-or-nothing delivery, D3 and D8).
 */


#include "ngx_http_dss_bill.h"


#define NGX_HTTP_DSS_BILL_DEADLINE_SLACK  1000    /* ms after curl's own */


typedef struct {
    ngx_http_request_t            *request;
    ngx_http_dss_bill_transfer_t   transfer;
    ngx_event_t                    deadline;
    ngx_str_t                      id;
    ngx_str_t                      url;           /* NUL-terminated */
} ngx_http_dss_bill_fetch_ctx_t;


static void ngx_http_dss_bill_upstream_done(ngx_http_dss_bill_transfer_t *t,
    dss_bill_outcome outcome);
static ngx_int_t ngx_http_dss_bill_upstream_respond(ngx_http_request_t *r,
    ngx_http_dss_bill_fetch_ctx_t *ctx, dss_bill_outcome outcome);
static void ngx_http_dss_bill_upstream_deadline(ngx_event_t *ev);
static void ngx_http_dss_bill_upstream_cleanup(void *data);
static void ngx_http_dss_bill_upstream_release(void *data);


static ngx_str_t  ngx_http_dss_bill_temp_name =
    ngx_string("dss_bill temporary file");


/* Fetches the bill from bctx->url (resolved by ngx_http_dss_bill_archive). */

ngx_int_t
ngx_http_dss_bill_upstream_fetch(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_ctx_t *bctx)
{
    ngx_pool_cleanup_t             *pcln;
    ngx_http_cleanup_t             *cln;
    ngx_http_dss_bill_fetch_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_dss_bill_fetch_ctx_t));
    if (ctx == NULL) {
        ngx_http_dss_bill_cache_abandon(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->id = bctx->bill_id;
    ctx->url = bctx->url;

    /* runs however the request ends: done, client gone, or terminated */

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        ngx_http_dss_bill_cache_abandon(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * D9: the body (memory or file) goes back to the pool only with the
     * request's pool: an output chain, a thread sending the file, or the
     * socket itself may reference it until then
     */

    pcln = ngx_pool_cleanup_add(r->pool, 0);
    if (pcln == NULL) {
        ngx_http_dss_bill_cache_abandon(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pcln->handler = ngx_http_dss_bill_upstream_release;
    pcln->data = ctx;

    ctx->transfer.done = ngx_http_dss_bill_upstream_done;
    ctx->transfer.data = ctx;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dss_bill fetch: \"%V\"", &ctx->url);

    if (ngx_http_dss_bill_transfer_start(&ctx->transfer,
                                         &dlcf->upstream_options,
                                         (const char *) ctx->url.data, 0,
                                         r->connection->log)
        != NGX_OK)
    {
        ngx_http_dss_bill_cache_abandon(r, 0);      /* a local fault */
        return ngx_http_dss_bill_fail(r, DSS_BILL_INTERNAL_ERROR, &ctx->id,
                                      "url", &ctx->url,
                                      "cannot start the fetch", 0);
    }

    cln->handler = ngx_http_dss_bill_upstream_cleanup;
    cln->data = ctx;

    /*
     * curl enforces the timeout; this watchdog is the safety net, and, as a
     * timer that is not cancelable, it keeps a gracefully stopping worker
     * alive until the fetch is answered
     */

    ctx->deadline.handler = ngx_http_dss_bill_upstream_deadline;
    ctx->deadline.data = ctx;
    ctx->deadline.log = r->connection->log;

    ngx_add_timer(&ctx->deadline,
                  dlcf->upstream_timeout + NGX_HTTP_DSS_BILL_DEADLINE_SLACK);

    r->main->count++;

    ngx_http_dss_bill_fetch_begin(r);

    /* notice a client that goes away, and cancel its fetch */

    if (!r->discard_body) {
        r->read_event_handler = ngx_http_test_reading;
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    r->connection->log->action = "fetching bill from archive";

    return NGX_DONE;
}


static void
ngx_http_dss_bill_upstream_done(ngx_http_dss_bill_transfer_t *t,
    dss_bill_outcome outcome)
{
    ngx_int_t                       rc;
    ngx_connection_t               *c;
    ngx_http_request_t             *r;
    ngx_http_dss_bill_fetch_ctx_t  *ctx = t->data;

    r = ctx->request;
    c = r->connection;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    ngx_http_dss_bill_fetch_end(r, t->fetch, 1);

    rc = ngx_http_dss_bill_upstream_respond(r, ctx, outcome);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_dss_bill_upstream_respond(ngx_http_request_t *r,
    ngx_http_dss_bill_fetch_ctx_t *ctx, dss_bill_outcome outcome)
{
    ngx_buf_t      *b;
    dss_bill_body   body;

    if (outcome != DSS_BILL_OK) {
        /*
         * requests waiting for this fetch get the same answer when it is
         * the archive's; a fault of this location's own (its temporary
         * file, the module) is not kept: another request fetches (D6)
         */
        ngx_http_dss_bill_cache_abandon(r,
            (outcome == DSS_BILL_TEMP_FILE_ERROR
             || outcome == DSS_BILL_INTERNAL_ERROR)
            ? 0 : dss_bill_outcome_status(outcome));

        return ngx_http_dss_bill_fail(r, outcome, &ctx->id, "url", &ctx->url,
                                      dss_bill_fetch_detail(ctx->transfer.fetch),
                                      0);
    }

    /* D3, D8: checked complete, within the limit, a PDF; now it goes out */

    body = dss_bill_fetch_body(ctx->transfer.fetch);

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (body.fd >= 0) {
        b->file = ngx_pcalloc(r->pool, sizeof(ngx_file_t));
        if (b->file == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->file->fd = body.fd;
        b->file->name = ngx_http_dss_bill_temp_name;
        b->file->log = r->connection->log;

        b->in_file = 1;
        b->file_pos = 0;
        b->file_last = body.size;

    } else {
        b->pos = (u_char *) body.data;
        b->last = b->pos + body.size;
        b->memory = 1;
    }

    /* into the cache first: once a client has the bill, so has the cache */

    ngx_http_dss_bill_cache_store(r, &body);

    return ngx_http_dss_bill_send(r, &ctx->id, b, body.size);
}


static void
ngx_http_dss_bill_upstream_deadline(ngx_event_t *ev)
{
    ngx_int_t                       rc;
    ngx_connection_t               *c;
    ngx_http_request_t             *r;
    ngx_http_dss_bill_fetch_ctx_t  *ctx = ev->data;

    r = ctx->request;
    c = r->connection;

    ngx_http_dss_bill_transfer_stop(&ctx->transfer);
    ngx_http_dss_bill_cache_abandon(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    ngx_http_dss_bill_fetch_end(r, ctx->transfer.fetch, 1);

    rc = ngx_http_dss_bill_fail(r, DSS_BILL_UPSTREAM_TIMEOUT, &ctx->id, "url",
                                &ctx->url, "the fetch outlived its deadline",
                                0);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_dss_bill_upstream_cleanup(void *data)
{
    ngx_http_dss_bill_fetch_ctx_t  *ctx = data;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    if (ctx->transfer.active) {
        ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                      "dss_bill: fetch of bill id \"%V\" cancelled",
                      &ctx->id);
    }

    /* out of the multi handle before anything it writes to is freed */

    ngx_http_dss_bill_transfer_stop(&ctx->transfer);

    /* a client gone mid-fetch: a waiting request takes the fetch over */
    ngx_http_dss_bill_cache_abandon(ctx->request, 0);
    ngx_http_dss_bill_fetch_end(ctx->request, ctx->transfer.fetch, 0);
}


static void
ngx_http_dss_bill_upstream_release(void *data)
{
    ngx_http_dss_bill_fetch_ctx_t  *ctx = data;

    /* the request's cleanup ran before: the transfer is stopped */

    ngx_http_dss_bill_transfer_cancel(&ctx->transfer);
}

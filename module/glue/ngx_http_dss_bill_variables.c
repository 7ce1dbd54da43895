
/*
 * What a request to a dss_bill location ended as: recorded in its context
 * where the module decides (one call at each outcome point), and shown by
 * the outcome variables, for log_format, map and headers: the outcome,
 * where the bill came from, what the archive said and took. Not found ("-"
 * in a log) where nothing applies. The counters read the same record.
 */


#include "ngx_http_dss_bill.h"


static ngx_int_t ngx_http_dss_bill_outcome_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_dss_bill_source_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_dss_bill_archive_status_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_dss_bill_archive_time_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_dss_bill_size_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_dss_bill_outcome_vars[] = {

    { ngx_string("dss_bill_outcome"), NULL,
      ngx_http_dss_bill_outcome_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dss_bill_source"), NULL,
      ngx_http_dss_bill_source_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dss_bill_archive_status"), NULL,
      ngx_http_dss_bill_archive_status_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dss_bill_archive_time"), NULL,
      ngx_http_dss_bill_archive_time_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dss_bill_size"), NULL,
      ngx_http_dss_bill_size_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/* ---- the request's outcome, set where the module decides it ------------ */


/* Marks the request's context in its pool: an internal redirect
 * (error_page) wipes module contexts, not the pool's cleanups. */

static void
ngx_http_dss_bill_ctx_mark(void *data)
{
    /* nothing to release: the context lives in the pool */
}


/*
 * The request's context, also after an internal redirect took the request
 * elsewhere (an error_page of a dss_bill answer): what it ended as is
 * still shown in the log and counted once.
 */

ngx_http_dss_bill_ctx_t *
ngx_http_dss_bill_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_dss_bill_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_dss_bill_module);

    if (ctx || !(r->internal || r->filter_finalize)) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_dss_bill_ctx_mark) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_dss_bill_module);
            return ctx;
        }
    }

    return NULL;
}


/* The request's context, created as the content handler starts. */

ngx_http_dss_bill_ctx_t *
ngx_http_dss_bill_begin(ngx_http_request_t *r, dss_bill_route_kind route)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_dss_bill_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_dss_bill_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_dss_bill_ctx_t));
        if (ctx == NULL) {
            return NULL;
        }

        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NULL;
        }

        cln->handler = ngx_http_dss_bill_ctx_mark;
        cln->data = ctx;

        ngx_http_set_ctx(r, ctx, ngx_http_dss_bill_module);
    }

    switch (route) {

    case DSS_BILL_ROUTE_DOWNLOAD:
        ctx->route = DSS_BILL_METRIC_ROUTE_DOWNLOAD;
        break;

    case DSS_BILL_ROUTE_HEALTH:
        ctx->route = DSS_BILL_METRIC_ROUTE_HEALTH;
        break;

    default:
        ctx->route = DSS_BILL_METRIC_ROUTE_OTHER;
        break;
    }

    return ctx;
}


/* A bill's outcome: the 200 with its size, or the failure (D3-D6). */

void
ngx_http_dss_bill_decided(ngx_http_request_t *r, dss_bill_outcome outcome,
    off_t size)
{
    ngx_http_dss_bill_ctx_t  *ctx;

    ctx = ngx_http_dss_bill_ctx(r);

    if (ctx == NULL) {
        return;
    }

    ctx->outcome = outcome;
    ctx->size = size;
    ctx->decided = 1;
}


void
ngx_http_dss_bill_set_source(ngx_http_request_t *r, dss_bill_source source)
{
    ngx_http_dss_bill_ctx_t  *ctx;

    ctx = ngx_http_dss_bill_ctx(r);

    if (ctx) {
        ctx->source = source;
    }
}


/*
 * What the request ended as, from what the module decided and what nginx
 * did: $dss_bill_outcome and the outcome label. A client that left before
 * the end is "client_gone" whatever had been decided.
 */

ngx_int_t
ngx_http_dss_bill_result(ngx_http_request_t *r, ngx_http_dss_bill_ctx_t *ctx)
{
    ngx_uint_t  status;

    status = r->headers_out.status;

    if (r->connection->error || status == NGX_HTTP_CLIENT_CLOSED_REQUEST) {
        return DSS_BILL_RESULT_CLIENT_GONE;
    }

    if (ctx->decided) {
        return ctx->outcome;
    }

    if (status == NGX_HTTP_NOT_ALLOWED) {
        return DSS_BILL_RESULT_METHOD_NOT_ALLOWED;     /* D7 */
    }

    switch (ctx->route) {

    case DSS_BILL_METRIC_ROUTE_OTHER:
        if (status == NGX_HTTP_NOT_FOUND) {
            return DSS_BILL_RESULT_NO_ROUTE;
        }
        break;

    case DSS_BILL_METRIC_ROUTE_HEALTH:
        if (status == NGX_HTTP_OK) {
            return DSS_BILL_RESULT_HEALTHY;             /* H2 */
        }

        if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
            return DSS_BILL_RESULT_UNHEALTHY;           /* H3 */
        }
        break;
    }

    return DSS_BILL_RESULT_OTHER;
}


/* ---- the variables ------------------------------------------------------ */


ngx_int_t
ngx_http_dss_bill_variables_add(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_dss_bill_outcome_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_dss_bill_variable_text(ngx_http_variable_value_t *v, const char *text)
{
    if (text == NULL || text[0] == '\0') {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_strlen(text);
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = (u_char *) text;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dss_bill_outcome_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_dss_bill_ctx_t  *ctx;

    ctx = ngx_http_dss_bill_ctx(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_dss_bill_variable_text(v,
                           dss_bill_result_name(ngx_http_dss_bill_result(r, ctx)));
}


static ngx_int_t
ngx_http_dss_bill_source_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_dss_bill_ctx_t  *ctx;

    ctx = ngx_http_dss_bill_ctx(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_dss_bill_variable_text(v,
                                   dss_bill_source_name(ctx->source));
}


static ngx_int_t
ngx_http_dss_bill_archive_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    ngx_http_dss_bill_ctx_t  *ctx;

    ctx = ngx_http_dss_bill_ctx(r);

    if (ctx == NULL || ctx->archive_status == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%ui", ctx->archive_status) - p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


/* Seconds with milliseconds, like $upstream_response_time. */

static ngx_int_t
ngx_http_dss_bill_archive_time_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    ngx_msec_t                ms;
    ngx_http_dss_bill_ctx_t  *ctx;

    ctx = ngx_http_dss_bill_ctx(r);

    if (ctx == NULL || !(ctx->fetched || ctx->fetching)) {
        v->not_found = 1;
        return NGX_OK;
    }

    ms = ctx->fetched ? ctx->archive_time
                      : ngx_current_msec - ctx->archive_start;

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN + 4);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%T.%03M", (time_t) ms / 1000, ms % 1000) - p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


/* The bill's size in bytes, for a 200 (its Content-Length, D3). */

static ngx_int_t
ngx_http_dss_bill_size_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    ngx_http_dss_bill_ctx_t  *ctx;

    ctx = ngx_http_dss_bill_ctx(r);

    if (ctx == NULL || !ctx->decided || ctx->outcome != DSS_BILL_OK) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_OFF_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%O", ctx->size) - p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}

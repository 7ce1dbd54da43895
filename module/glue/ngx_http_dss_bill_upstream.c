
/*
 * The archive source: fetches a bill from dss_bill_upstream without
 * blocking, and answers only once the whole body is in hand and checked
 * (all-or-nothing delivery, D3 and D8). Also the directives' checks and the
 * options derived from them at configuration time.
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
static char *ngx_http_dss_bill_upstream_file(ngx_conf_t *cf, ngx_str_t *name,
    const char **out);


static ngx_str_t  ngx_http_dss_bill_temp_name =
    ngx_string("dss_bill temporary file");


ngx_int_t
ngx_http_dss_bill_upstream_fetch(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_str_t *id)
{
    ngx_str_t                       url;
    ngx_http_cleanup_t             *cln;
    ngx_http_dss_bill_fetch_ctx_t  *ctx;

    if (ngx_http_complex_value(r, dlcf->upstream, &url) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_dss_bill_fetch_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->url.data = ngx_pnalloc(r->pool, url.len + 1);
    if (ctx->url.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(ctx->url.data, url.data, url.len);
    ctx->url.data[url.len] = '\0';
    ctx->url.len = url.len;

    ctx->request = r;
    ctx->id = *id;

    /* runs however the request ends: done, client gone, or terminated */

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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
        return ngx_http_dss_bill_fail(r, DSS_BILL_INTERNAL_ERROR, id, "url",
                                      &ctx->url, "cannot start the fetch", 0);
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

    ngx_http_dss_bill_transfer_cancel(&ctx->transfer);

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

    /* removes the handle from the multi handle before anything is freed,
     * then closes the temporary file the body was sent from */

    ngx_http_dss_bill_transfer_cancel(&ctx->transfer);
}


/* ---- configuration ------------------------------------------------------- */


char *
ngx_http_dss_bill_upstream_merge(ngx_conf_t *cf,
    ngx_http_dss_bill_loc_conf_t *prev, ngx_http_dss_bill_loc_conf_t *conf)
{
    char                            err[NGX_HTTP_DSS_BILL_REASON_LEN];
    u_char                         *base;
    size_t                          len;
    ngx_str_t                      *header, raw;
    ngx_uint_t                      i;
    const char                    **lines;
    dss_bill_upstream_options      *o;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_dss_bill_main_conf_t  *dmcf;

    if (conf->upstream == NULL) {
        conf->upstream = prev->upstream;
    }

    /* T4: DSS waits 5 s for the response to start, and the response starts
     * only once the whole bill is fetched */

    ngx_conf_merge_msec_value(conf->upstream_connect_timeout,
                              prev->upstream_connect_timeout, 2000);
    ngx_conf_merge_msec_value(conf->upstream_timeout,
                              prev->upstream_timeout, 4000);
    ngx_conf_merge_size_value(conf->upstream_buffer_size,
                              prev->upstream_buffer_size, 32 * 1024);
    ngx_conf_merge_value(conf->upstream_redirects, prev->upstream_redirects,
                         0);
    ngx_conf_merge_value(conf->upstream_ssl_verify, prev->upstream_ssl_verify,
                         1);
    ngx_conf_merge_str_value(conf->upstream_ssl_trusted_certificate,
                             prev->upstream_ssl_trusted_certificate, "");
    ngx_conf_merge_str_value(conf->upstream_ssl_certificate,
                             prev->upstream_ssl_certificate, "");
    ngx_conf_merge_str_value(conf->upstream_ssl_certificate_key,
                             prev->upstream_ssl_certificate_key, "");
    ngx_conf_merge_str_value(conf->upstream_basic_auth,
                             prev->upstream_basic_auth, "");
    ngx_conf_merge_str_value(conf->upstream_temp_path,
                             prev->upstream_temp_path, "");
    ngx_conf_merge_str_value(conf->upstream_health_url,
                             prev->upstream_health_url, "");

    if (conf->upstream_headers == NULL) {
        conf->upstream_headers = prev->upstream_headers;
    }

    if (!conf->enabled || conf->upstream == NULL) {
        return NGX_CONF_OK;
    }

    if (conf->upstream_connect_timeout > conf->upstream_timeout) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dss_bill_upstream_connect_timeout\" exceeds "
                      "\"dss_bill_upstream_timeout\" in location \"%V\"",
                      &conf->location);
        return NGX_CONF_ERROR;
    }

    if ((conf->upstream_ssl_certificate.len == 0)
        != (conf->upstream_ssl_certificate_key.len == 0))
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dss_bill_upstream_ssl_certificate\" and "
                      "\"dss_bill_upstream_ssl_certificate_key\" go together "
                      "in location \"%V\"", &conf->location);
        return NGX_CONF_ERROR;
    }

    o = &conf->upstream_options;

    o->connect_timeout_ms = conf->upstream_connect_timeout;
    o->timeout_ms = conf->upstream_timeout;
    o->max_size = conf->max_size;
    o->buffer_size = conf->upstream_buffer_size;
    o->ssl_verify = conf->upstream_ssl_verify;
    o->max_redirects = conf->upstream_redirects;
    o->basic_auth = conf->upstream_basic_auth.len
                    ? (const char *) conf->upstream_basic_auth.data : NULL;

    if (ngx_http_dss_bill_upstream_file(cf,
                                        &conf->upstream_ssl_trusted_certificate,
                                        &o->ssl_trusted_certificate)
        != NGX_CONF_OK
        || ngx_http_dss_bill_upstream_file(cf, &conf->upstream_ssl_certificate,
                                           &o->ssl_certificate)
           != NGX_CONF_OK
        || ngx_http_dss_bill_upstream_file(cf,
                                           &conf->upstream_ssl_certificate_key,
                                           &o->ssl_certificate_key)
           != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* a body larger than the buffer spills next to nginx's own temp files */

    if (conf->upstream_temp_path.len) {
        if (ngx_conf_full_name(cf->cycle, &conf->upstream_temp_path, 0)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        o->temp_dir = (const char *) conf->upstream_temp_path.data;

    } else {
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
        o->temp_dir = (const char *) clcf->client_body_temp_path->name.data;
    }

    /* the request headers, as a NULL-terminated array of C strings */

    if (conf->upstream_headers) {
        lines = ngx_palloc(cf->pool,
                           (conf->upstream_headers->nelts + 1) * sizeof(char *));
        if (lines == NULL) {
            return NGX_CONF_ERROR;
        }

        header = conf->upstream_headers->elts;

        for (i = 0; i < conf->upstream_headers->nelts; i++) {
            lines[i] = (const char *) header[i].data;
        }

        lines[i] = NULL;
        o->headers = lines;
    }

    /* H3: the archive's probe, by default its base URL */

    raw = conf->upstream->value;

    if (conf->upstream_health_url.len == 0) {
        len = raw.len + 2;

        base = ngx_pnalloc(cf->pool, len);
        if (base == NULL) {
            return NGX_CONF_ERROR;
        }

        conf->upstream_health_url.len =
            dss_bill_upstream_url_base((const char *) raw.data, raw.len,
                                       (char *) base, len);
        conf->upstream_health_url.data = base;

        if (conf->upstream_health_url.len == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "the archive's host in \"dss_bill_upstream\" holds "
                          "variables: set \"dss_bill_upstream_health_url\" "
                          "(or \"off\") in location \"%V\"", &conf->location);
            return NGX_CONF_ERROR;
        }

    } else if (ngx_strcmp(conf->upstream_health_url.data, "off") != 0
               && dss_bill_upstream_url_check(
                      (const char *) conf->upstream_health_url.data,
                      conf->upstream_health_url.len, err, sizeof(err))
                  != 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "invalid \"dss_bill_upstream_health_url\" \"%V\": %s",
                      &conf->upstream_health_url, err);
        return NGX_CONF_ERROR;
    }

    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_dss_bill_module);
    dmcf->uses_curl = 1;

    return NGX_CONF_OK;
}


/* A file named in a directive, made absolute (relative to the conf dir). */

static char *
ngx_http_dss_bill_upstream_file(ngx_conf_t *cf, ngx_str_t *name,
    const char **out)
{
    if (name->len == 0) {
        *out = NULL;
        return NGX_CONF_OK;
    }

    if (ngx_conf_full_name(cf->cycle, name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    *out = (const char *) name->data;

    return NGX_CONF_OK;
}


char *
ngx_http_dss_bill_upstream_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dss_bill_loc_conf_t *dlcf = conf;

    char                               err[NGX_HTTP_DSS_BILL_REASON_LEN];
    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (dlcf->upstream) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (dss_bill_upstream_url_check((const char *) value[1].data,
                                    value[1].len, err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"dss_bill_upstream\" \"%V\": %s",
                           &value[1], err);
        return NGX_CONF_ERROR;
    }

    dlcf->upstream = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (dlcf->upstream == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = dlcf->upstream;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_dss_bill_upstream_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_dss_bill_loc_conf_t *dlcf = conf;

    u_char     *p;
    ngx_str_t  *value, *line;

    value = cf->args->elts;

    if (value[1].len == 0
        || ngx_strlchr(value[1].data, value[1].data + value[1].len, ':')
        || ngx_strlchr(value[1].data, value[1].data + value[1].len, ' '))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid header name \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_strlchr(value[2].data, value[2].data + value[2].len, CR)
        || ngx_strlchr(value[2].data, value[2].data + value[2].len, LF))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value of header \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (dlcf->upstream_headers == NULL) {
        dlcf->upstream_headers = ngx_array_create(cf->pool, 4,
                                                  sizeof(ngx_str_t));
        if (dlcf->upstream_headers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    line = ngx_array_push(dlcf->upstream_headers);
    if (line == NULL) {
        return NGX_CONF_ERROR;
    }

    /* "Name: value" and a NUL, as libcurl takes it */

    line->len = value[1].len + 2 + value[2].len;
    line->data = ngx_pnalloc(cf->pool, line->len + 1);
    if (line->data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_cpymem(line->data, value[1].data, value[1].len);
    *p++ = ':';
    *p++ = ' ';
    p = ngx_cpymem(p, value[2].data, value[2].len);
    *p = '\0';

    return NGX_CONF_OK;
}


char *
ngx_http_dss_bill_upstream_basic_auth(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char       *rv;
    ngx_str_t  *value;

    value = cf->args->elts;

    if (ngx_strlchr(value[1].data, value[1].data + value[1].len, ':')
        == NULL)
    {
        return "expects \"user:password\"";
    }

    rv = ngx_conf_set_str_slot(cf, cmd, conf);

    return rv;
}

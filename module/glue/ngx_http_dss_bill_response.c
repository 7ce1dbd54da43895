
/*
 * What the module answers: the 200 with its headers (D3), the logged
 * failure with its status (D5, D6), and the filters it switches off or
 * corrects.
 */


#include "ngx_http_dss_bill.h"


static ngx_int_t ngx_http_dss_bill_header_filter(ngx_http_request_t *r);
static ngx_uint_t ngx_http_dss_bill_header_is(ngx_table_elt_t *h,
    ngx_str_t *name);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;

static ngx_str_t  ngx_http_dss_bill_cache_control_key =
    ngx_string("Cache-Control");
static ngx_str_t  ngx_http_dss_bill_expires = ngx_string("Expires");


/*
 * nginx's filters that rewrite a body or its type, and so drop the
 * Content-Length or change the bytes when configured for every type
 * ("sub_filter_types *", "ssi_types *", "addition_types *"...)
 */

static const char  *ngx_http_dss_bill_rewriting_filters[] = {
    "ngx_http_addition_filter_module",
    "ngx_http_sub_filter_module",
    "ngx_http_ssi_filter_module",
    "ngx_http_charset_filter_module",
    "ngx_http_xslt_filter_module",
    "ngx_http_image_filter_module",
    NULL
};

static ngx_str_t  ngx_http_dss_bill_pdf_type = ngx_string("application/pdf");
static ngx_str_t  ngx_http_dss_bill_private = ngx_string("private, no-store");
static ngx_str_t  ngx_http_dss_bill_nosniff_key =
    ngx_string("X-Content-Type-Options");
static ngx_str_t  ngx_http_dss_bill_nosniff = ngx_string("nosniff");
static ngx_str_t  ngx_http_dss_bill_disposition =
    ngx_string("Content-Disposition");


/*
 * D3: status 200, application/pdf, the exact Content-Length, then the body
 * b (a file or memory buffer, size bytes, already checked: D8).
 */

ngx_int_t
ngx_http_dss_bill_send(ngx_http_request_t *r, ngx_str_t *id, ngx_buf_t *b,
    off_t size)
{
    u_char       *p;
    ngx_int_t     rc;
    ngx_str_t     disposition;
    ngx_chain_t   out;

    r->connection->log->action = "sending bill to client";

    ngx_http_dss_bill_decided(r, DSS_BILL_OK, size);

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = size;
    r->headers_out.content_type = ngx_http_dss_bill_pdf_type;
    r->headers_out.content_type_len = ngx_http_dss_bill_pdf_type.len;

    ngx_http_dss_bill_suppress_transforms(r);

    /* we need to allocate all before the header would be sent */

    disposition.len = sizeof("inline; filename=\".pdf\"") - 1 + id->len;
    disposition.data = ngx_pnalloc(r->pool, disposition.len);
    if (disposition.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(disposition.data, "inline; filename=\"",
                   sizeof("inline; filename=\"") - 1);
    p = ngx_cpymem(p, id->data, id->len);
    ngx_memcpy(p, ".pdf\"", sizeof(".pdf\"") - 1);

    if (ngx_http_dss_bill_set_cache_control(r, &ngx_http_dss_bill_private)
        != NGX_OK
        || ngx_http_dss_bill_add_header(r, &ngx_http_dss_bill_nosniff_key,
                                        &ngx_http_dss_bill_nosniff)
           == NULL
        || ngx_http_dss_bill_add_header(r, &ngx_http_dss_bill_disposition,
                                        &disposition)
           == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    /*
     * D8: if the file shrinks or a write fails from here on, nginx closes
     * the connection, so the client sees a short body, never a wrong one.
     */

    return ngx_http_output_filter(r, &out);
}


/*
 * Logs the outcome with its reason, the bill id, what was read ("file" or
 * "url", where) and a detail, and returns its status (D5, D6).
 */

ngx_int_t
ngx_http_dss_bill_fail(ngx_http_request_t *r, dss_bill_outcome outcome,
    ngx_str_t *id, const char *what, ngx_str_t *where, const char *detail,
    ngx_err_t err)
{
    u_char                     line[NGX_MAX_ERROR_STR], *p, *last;
    ngx_uint_t                 level;
    ngx_http_core_loc_conf_t  *clcf;

    ngx_http_dss_bill_decided(r, outcome, 0);

    switch (dss_bill_outcome_severity(outcome)) {

    case DSS_BILL_SEVERITY_NOT_FOUND:
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
        level = clcf->log_not_found ? NGX_LOG_ERR : 0;
        break;

    case DSS_BILL_SEVERITY_ERROR:
        level = NGX_LOG_ERR;
        break;

    case DSS_BILL_SEVERITY_CRIT:
        level = NGX_LOG_CRIT;
        break;

    default:
        level = 0;
        break;
    }

    if (level == 0 || level > r->connection->log->log_level) {
        return dss_bill_outcome_status(outcome);
    }

    last = line + sizeof(line);

    p = ngx_slprintf(line, last, "%s", dss_bill_outcome_reason(outcome));

    if (detail && detail[0]) {
        p = ngx_slprintf(p, last, " (%s)", detail);
    }

    /* a rejected id may hold anything: it stays out of the log line */

    if (id) {
        p = ngx_slprintf(p, last, ", bill id \"%V\"", id);
    }

    if (what && where && where->len) {
        p = ngx_slprintf(p, last, ", %s \"%V\"", what, where);
    }

    ngx_log_error(level, r->connection->log, err, "dss_bill: %*s",
                  p - line, line);

    return dss_bill_outcome_status(outcome);
}


/*
 * D3, H2: the location's configuration as the module's own answers see it:
 * the same, except that the filters above have their defaults (off). Built
 * here, at configuration time; the handler switches r->loc_conf to it.
 */

char *
ngx_http_dss_bill_filters_off(ngx_conf_t *cf,
    ngx_http_dss_bill_loc_conf_t *dlcf)
{
    void                 **loc_conf, *parent, *child;
    ngx_uint_t             i, m;
    ngx_module_t          *module;
    ngx_http_module_t     *ctx;
    ngx_http_conf_ctx_t   *hctx;

    /* during the merge, cf->ctx holds this very location's configuration */

    hctx = cf->ctx;

    loc_conf = ngx_palloc(cf->pool, ngx_http_max_module * sizeof(void *));
    if (loc_conf == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(loc_conf, hctx->loc_conf, ngx_http_max_module * sizeof(void *));

    for (m = 0; cf->cycle->modules[m]; m++) {
        module = cf->cycle->modules[m];

        if (module->type != NGX_HTTP_MODULE) {
            continue;
        }

        for (i = 0; ngx_http_dss_bill_rewriting_filters[i]; i++) {
            if (ngx_strcmp(module->name, ngx_http_dss_bill_rewriting_filters[i])
                == 0)
            {
                break;
            }
        }

        ctx = module->ctx;

        if (ngx_http_dss_bill_rewriting_filters[i] == NULL
            || ctx->create_loc_conf == NULL)
        {
            continue;
        }

        parent = ctx->create_loc_conf(cf);
        child = ctx->create_loc_conf(cf);

        if (parent == NULL || child == NULL) {
            return NGX_CONF_ERROR;
        }

        if (ctx->merge_loc_conf
            && ctx->merge_loc_conf(cf, parent, child) != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }

        loc_conf[module->ctx_index] = child;
    }

    dlcf->loc_conf = loc_conf;

    return NGX_CONF_OK;
}


/*
 * D3: nothing downstream may compress the body, drop its length, or turn
 * the answer into a 304 or 412.
 */

void
ngx_http_dss_bill_suppress_transforms(ngx_http_request_t *r)
{
    ngx_http_dss_bill_loc_conf_t  *dlcf;

    /* the body-rewriting filters at their defaults (off) */

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dss_bill_module);

    if (dlcf->loc_conf) {
        r->loc_conf = dlcf->loc_conf;
    }

    r->disable_not_modified = 1;
    r->allow_ranges = 0;

#if (NGX_HTTP_GZIP)
    r->gzip_tested = 1;
    r->gzip_ok = 0;
#endif
}


ngx_table_elt_t *
ngx_http_dss_bill_add_header(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key = *key;
    h->value = *value;
    h->lowcase_key = NULL;

    return h;
}


/*
 * The module's Cache-Control, remembered so that the header filter keeps it
 * as the only one.
 */

ngx_int_t
ngx_http_dss_bill_set_cache_control(ngx_http_request_t *r, ngx_str_t *value)
{
    ngx_http_dss_bill_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_dss_bill_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_dss_bill_ctx_t));
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_dss_bill_module);
    }

    ctx->cache_control = ngx_http_dss_bill_add_header(r,
                                          &ngx_http_dss_bill_cache_control_key,
                                          value);

    return ctx->cache_control ? NGX_OK : NGX_ERROR;
}


/*
 * The module is loaded just before ngx_http_headers_filter_module
 * (module/config), so this filter runs after it: "expires" and
 * "add_header" may have added a Cache-Control or an Expires to a bill or
 * health answer; a bill is never cacheable, and carries exactly one
 * Cache-Control (D3).
 */

ngx_int_t
ngx_http_dss_bill_header_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_dss_bill_header_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dss_bill_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t                i;
    ngx_list_part_t          *part;
    ngx_table_elt_t          *h;
    ngx_http_dss_bill_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_dss_bill_module);

    if (ctx == NULL || ctx->cache_control == NULL) {
        return ngx_http_next_header_filter(r);
    }

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0 || &h[i] == ctx->cache_control) {
            continue;
        }

        if (ngx_http_dss_bill_header_is(&h[i],
                                        &ngx_http_dss_bill_cache_control_key)
            || ngx_http_dss_bill_header_is(&h[i], &ngx_http_dss_bill_expires)
            || &h[i] == r->headers_out.expires)
        {
            h[i].hash = 0;
        }
    }

    r->headers_out.expires = NULL;

    return ngx_http_next_header_filter(r);
}


static ngx_uint_t
ngx_http_dss_bill_header_is(ngx_table_elt_t *h, ngx_str_t *name)
{
    return h->key.len == name->len
           && ngx_strncasecmp(h->key.data, name->data, name->len) == 0;
}


/*
 * The content handler of a "dss_bill" location: routes the request, then
 * serves a bill from the document root (D1-D8).
 */


#include "ngx_http_dss_bill.h"


typedef struct {
    ngx_str_t                  path;
    ngx_open_file_info_t       of;
} ngx_http_dss_bill_file_t;


static ngx_int_t ngx_http_dss_bill_download(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_str_t *id);
static dss_bill_outcome ngx_http_dss_bill_open(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_file_t *file,
    ngx_err_t *err);
static ngx_int_t ngx_http_dss_bill_send_file(ngx_http_request_t *r,
    ngx_http_dss_bill_file_t *file, ngx_str_t *id);


ngx_str_t  ngx_http_dss_bill_cache_control_key = ngx_string("Cache-Control");

static ngx_str_t  ngx_http_dss_bill_pdf_type = ngx_string("application/pdf");

static ngx_str_t  ngx_http_dss_bill_allow = ngx_string("Allow");
static ngx_str_t  ngx_http_dss_bill_get_head = ngx_string("GET, HEAD");
static ngx_str_t  ngx_http_dss_bill_private = ngx_string("private, no-store");
static ngx_str_t  ngx_http_dss_bill_nosniff_key =
    ngx_string("X-Content-Type-Options");
static ngx_str_t  ngx_http_dss_bill_nosniff = ngx_string("nosniff");
static ngx_str_t  ngx_http_dss_bill_disposition =
    ngx_string("Content-Disposition");


ngx_int_t
ngx_http_dss_bill_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      id;
    dss_bill_route                 route;
    ngx_http_dss_bill_loc_conf_t  *dlcf;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dss_bill_module);

    route = dss_bill_route_parse((const char *) r->uri.data, r->uri.len,
                                 dlcf->route_base);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dss_bill route %d for \"%V\"", route.kind, &r->uri);

    if (route.kind == DSS_BILL_ROUTE_NONE) {
        return NGX_HTTP_NOT_FOUND;
    }

    /* D7: GET and HEAD only */

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        if (ngx_http_dss_bill_add_header(r, &ngx_http_dss_bill_allow,
                                         &ngx_http_dss_bill_get_head)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (route.kind == DSS_BILL_ROUTE_HEALTH) {
        return ngx_http_dss_bill_health_handler(r, dlcf);
    }

    id.data = (u_char *) route.id;
    id.len = route.id_len;

    return ngx_http_dss_bill_download(r, dlcf, &id);
}


static ngx_int_t
ngx_http_dss_bill_download(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_str_t *id)
{
    ngx_err_t                  err;
    dss_bill_outcome           outcome;
    ngx_http_dss_bill_ctx_t   *ctx;
    ngx_http_dss_bill_file_t   file;

    /* D5: an id that cannot be valid is simply not found */

    if (!dss_bill_id_is_valid(&dlcf->id_rule, (const char *) id->data,
                              id->len))
    {
        return ngx_http_dss_bill_fail(r, DSS_BILL_INVALID_ID, NULL, NULL, NULL,
                                      NULL, 0);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_dss_bill_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->bill_id = *id;
    ngx_http_set_ctx(r, ctx, ngx_http_dss_bill_module);

    if (dlcf->root.len == 0) {
        return ngx_http_dss_bill_upstream_fetch(r, dlcf, id);
    }

    err = 0;
    ngx_str_null(&file.path);

    outcome = ngx_http_dss_bill_open(r, dlcf, &file, &err);

    if (outcome == DSS_BILL_OK) {
        return ngx_http_dss_bill_send_file(r, &file, id);
    }

    /* the root is tried first, the archive only on a miss */

    if (outcome == DSS_BILL_ABSENT && dlcf->upstream) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "dss_bill: \"%V\" not in the root, asking the archive",
                       id);

        return ngx_http_dss_bill_upstream_fetch(r, dlcf, id);
    }

    return ngx_http_dss_bill_fail(r, outcome, id, "file", &file.path, NULL,
                                  err);
}


/*
 * Opens the bill through the open-file cache (so open_file_cache and
 * disable_symlinks apply) and checks it: regular file, 0 < size <= limit,
 * "%PDF-" signature.
 */

static dss_bill_outcome
ngx_http_dss_bill_open(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_file_t *file,
    ngx_err_t *err)
{
    u_char                     head[DSS_BILL_PDF_SIGNATURE_LEN];
    size_t                     size;
    ssize_t                    n;
    ngx_str_t                  rel;
    ngx_file_t                 probe;
    dss_bill_outcome           outcome;
    ngx_open_file_info_t      *of;
    ngx_http_core_loc_conf_t  *clcf;

    if (ngx_http_complex_value(r, dlcf->path, &rel) != NGX_OK) {
        return DSS_BILL_INTERNAL_ERROR;
    }

    if (!dss_bill_relative_path_is_safe((const char *) rel.data, rel.len)) {
        file->path = rel;
        return DSS_BILL_UNSAFE_PATH;
    }

    size = dlcf->root.len + 1 + rel.len + 1;

    file->path.data = ngx_pnalloc(r->pool, size);
    if (file->path.data == NULL) {
        return DSS_BILL_INTERNAL_ERROR;
    }

    file->path.len = dss_bill_join_path((const char *) dlcf->root.data,
                                        dlcf->root.len,
                                        (const char *) rel.data, rel.len,
                                        (char *) file->path.data, size);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dss_bill file: \"%V\"", &file->path);

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    of = &file->of;
    ngx_memzero(of, sizeof(ngx_open_file_info_t));

    of->read_ahead = clcf->read_ahead;
    of->directio = clcf->directio;
    of->valid = clcf->open_file_cache_valid;
    of->min_uses = clcf->open_file_cache_min_uses;
    of->errors = clcf->open_file_cache_errors;
    of->events = clcf->open_file_cache_events;

    if (ngx_http_set_disable_symlinks(r, clcf, &file->path, of) != NGX_OK) {
        return DSS_BILL_INTERNAL_ERROR;
    }

    if (ngx_open_cached_file(clcf->open_file_cache, &file->path, of, r->pool)
        != NGX_OK)
    {
        *err = of->err;

        return of->err ? dss_bill_outcome_from_open_errno(of->err)
                       : DSS_BILL_INTERNAL_ERROR;
    }

    outcome = dss_bill_check_file(of->is_file, of->size, dlcf->max_size);
    if (outcome != DSS_BILL_OK) {
        return outcome;
    }

    /* D8: a 200 only for a PDF; five bytes, usually from the page cache */

    ngx_memzero(&probe, sizeof(ngx_file_t));
    probe.fd = of->fd;
    probe.name = file->path;
    probe.log = r->connection->log;

    n = ngx_read_file(&probe, head, sizeof(head), 0);

    if (n == NGX_ERROR) {
        *err = ngx_errno;
        return DSS_BILL_STORAGE_ERROR;
    }

    if (!dss_bill_is_pdf_signature(head, n)) {
        return DSS_BILL_NOT_PDF;
    }

    return DSS_BILL_OK;
}


/* The body as a file buffer, so that sendfile serves it. */

static ngx_int_t
ngx_http_dss_bill_send_file(ngx_http_request_t *r,
    ngx_http_dss_bill_file_t *file, ngx_str_t *id)
{
    ngx_buf_t  *b;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->file = ngx_pcalloc(r->pool, sizeof(ngx_file_t));
    if (b->file == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->file_pos = 0;
    b->file_last = file->of.size;
    b->in_file = 1;

    b->file->fd = file->of.fd;
    b->file->name = file->path;
    b->file->log = r->connection->log;
    b->file->directio = file->of.is_directio;

    return ngx_http_dss_bill_send(r, id, b, file->of.size);
}


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

    if (ngx_http_dss_bill_add_header(r, &ngx_http_dss_bill_cache_control_key,
                                     &ngx_http_dss_bill_private)
        != NGX_OK
        || ngx_http_dss_bill_add_header(r, &ngx_http_dss_bill_nosniff_key,
                                        &ngx_http_dss_bill_nosniff)
           != NGX_OK
        || ngx_http_dss_bill_add_header(r, &ngx_http_dss_bill_disposition,
                                        &disposition)
           != NGX_OK)
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
 * D3: nothing downstream may compress the body, drop its length, or turn
 * the answer into a 304 or 412.
 */

void
ngx_http_dss_bill_suppress_transforms(ngx_http_request_t *r)
{
    r->disable_not_modified = 1;
    r->allow_ranges = 0;

#if (NGX_HTTP_GZIP)
    r->gzip_tested = 1;
    r->gzip_ok = 0;
#endif
}


ngx_int_t
ngx_http_dss_bill_add_header(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key = *key;
    h->value = *value;
    h->lowcase_key = NULL;

    return NGX_OK;
}

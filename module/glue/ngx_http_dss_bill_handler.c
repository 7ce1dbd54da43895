
/*
 * The content handler of a "dss_bill" location: routes the request, then
 * serves a bill from the document root (D1-D8), or hands it to the archive.
 */


#include "ngx_http_dss_bill.h"


static ngx_int_t ngx_http_dss_bill_download(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_str_t *id);
static dss_bill_outcome ngx_http_dss_bill_open(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_str_t *id,
    ngx_http_dss_bill_file_t *file, ngx_err_t *err);
static dss_bill_outcome ngx_http_dss_bill_check_pdf(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_file_t *file,
    ngx_err_t *err);
static ngx_int_t ngx_http_dss_bill_read_at(ngx_http_request_t *r,
    ngx_http_dss_bill_file_t *file, u_char *to, size_t len, off_t offset,
    ngx_err_t *err);


static ngx_str_t  ngx_http_dss_bill_allow = ngx_string("Allow");
static ngx_str_t  ngx_http_dss_bill_get_head = ngx_string("GET, HEAD");


ngx_int_t
ngx_http_dss_bill_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      id;
    dss_bill_route                 route;
    ngx_http_dss_bill_loc_conf_t  *dlcf;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dss_bill_module);

    if (!dlcf->enabled) {
        /* a block whose configuration the merge did not derive */
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "dss_bill: no bill configuration in this block");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    route = dss_bill_route_parse((const char *) r->uri.data, r->uri.len,
                                 dlcf->route_base);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dss_bill route %d for \"%V\"", route.kind, &r->uri);

    if (ngx_http_dss_bill_begin(r, route.kind) == NULL) {     /* metrics */
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (route.kind == DSS_BILL_ROUTE_NONE) {
        return NGX_HTTP_NOT_FOUND;
    }

    /* D7: GET and HEAD only */

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        if (ngx_http_dss_bill_add_header(r, &ngx_http_dss_bill_allow,
                                         &ngx_http_dss_bill_get_head)
            == NULL)
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

    ctx = ngx_http_get_module_ctx(r, ngx_http_dss_bill_module);  /* begin */

    ctx->bill_id = *id;

    if (dlcf->root.len == 0) {
        return ngx_http_dss_bill_archive(r, dlcf, ctx);
    }

    err = 0;
    ngx_str_null(&file.path);
    file.start = 0;
    ctx->source = DSS_BILL_SOURCE_ROOT;

    outcome = ngx_http_dss_bill_open(r, dlcf, id, &file, &err);

    if (outcome == DSS_BILL_OK) {
        return ngx_http_dss_bill_send_file(r, &file, id);
    }

    /* the root is tried first, the archive only on a miss */

    if (outcome == DSS_BILL_ABSENT && dlcf->upstream) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "dss_bill: \"%V\" not in the root, asking the archive",
                       id);

        return ngx_http_dss_bill_archive(r, dlcf, ctx);
    }

    return ngx_http_dss_bill_fail(r, outcome, id, "file", &file.path, NULL,
                                  err);
}


/*
 * Opens the bill through the open-file cache (so open_file_cache and
 * disable_symlinks apply) and checks it: regular file, 0 < size <= limit,
 * a (complete) PDF.
 */

static dss_bill_outcome
ngx_http_dss_bill_open(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_str_t *id,
    ngx_http_dss_bill_file_t *file, ngx_err_t *err)
{
    u_char                     name[DSS_BILL_ID_LIMIT + sizeof(".pdf")], *p;
    size_t                     size;
    ngx_str_t                  rel;
    ngx_open_file_info_t      *of;
    ngx_http_core_loc_conf_t  *clcf;

    if (dlcf->path_is_default) {
        /* "$dss_bill_id.pdf" without the script engine (the common case);
         * the id rule caps the id at DSS_BILL_ID_LIMIT */
        p = ngx_cpymem(name, id->data, id->len);
        p = ngx_cpymem(p, ".pdf", sizeof(".pdf") - 1);

        rel.data = name;
        rel.len = p - name;

    } else if (ngx_http_complex_value(r, dlcf->path, &rel) != NGX_OK) {
        return DSS_BILL_INTERNAL_ERROR;
    }

    if (!dss_bill_relative_path_is_safe((const char *) rel.data, rel.len)) {
        if (!dlcf->path_is_default) {
            file->path = rel;   /* for the log; name[] is gone after return */
        }

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

    return ngx_http_dss_bill_check_file(r, dlcf, file, err);
}


/* D4, D8: a bill in a file: a regular one, 0 < size <= limit, a PDF. */

dss_bill_outcome
ngx_http_dss_bill_check_file(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_file_t *file,
    ngx_err_t *err)
{
    dss_bill_outcome  outcome;

    outcome = dss_bill_check_file(file->of.is_file, file->of.size,
                                  dlcf->max_size);
    if (outcome != DSS_BILL_OK) {
        return outcome;
    }

    return ngx_http_dss_bill_check_pdf(r, dlcf, file, err);
}


/*
 * D8: a 200 only for a PDF, and by default a complete one: its first five
 * bytes and its last 1024, usually from the page cache. A print job still
 * writing the file fails the second check.
 */

static dss_bill_outcome
ngx_http_dss_bill_check_pdf(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_file_t *file,
    ngx_err_t *err)
{
    u_char     head[DSS_BILL_PDF_SIGNATURE_LEN];
    u_char     tail[DSS_BILL_PDF_TAIL_LEN];
    off_t      size, tail_offset;
    size_t     head_len, tail_len;
    ngx_int_t  rc;

    size = file->of.size;
    head_len = ngx_min(size, DSS_BILL_PDF_SIGNATURE_LEN);
    tail_offset = dss_bill_pdf_tail_offset(size);
    tail_len = size - tail_offset;

    rc = ngx_http_dss_bill_read_at(r, file, head, head_len, 0, err);

    if (rc == NGX_OK && dlcf->pdf_check == DSS_BILL_PDF_CHECK_COMPLETE
        && dss_bill_is_pdf_signature(head, head_len))
    {
        rc = ngx_http_dss_bill_read_at(r, file, tail, tail_len, tail_offset,
                                       err);
    }

    if (rc == NGX_ERROR) {
        return DSS_BILL_STORAGE_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return DSS_BILL_INCOMPLETE_PDF;     /* shorter than stat() said */
    }

    return dss_bill_pdf_verdict(dlcf->pdf_check, size, head, head_len,
                                tail, tail_len);
}


/*
 * Reads exactly len bytes at offset (from the bill's start): NGX_OK, NGX_DECLINED when the file
 * ends first, NGX_ERROR with *err. With directio the descriptor is O_DIRECT,
 * which takes only aligned reads: they go through an aligned buffer.
 */

static ngx_int_t
ngx_http_dss_bill_read_at(ngx_http_request_t *r,
    ngx_http_dss_bill_file_t *file, u_char *to, size_t len, off_t offset,
    ngx_err_t *err)
{
    u_char                    *buf;
    off_t                      start;
    size_t                     align, span;
    ssize_t                    n;
    ngx_file_t                 f;
    ngx_http_core_loc_conf_t  *clcf;

    ngx_memzero(&f, sizeof(ngx_file_t));
    f.fd = file->of.fd;
    f.name = file->path;
    f.log = r->connection->log;

    if (len == 0) {
        return NGX_OK;
    }

    offset += file->start;

    if (!file->of.is_directio) {
        n = ngx_read_file(&f, to, len, offset);

        if (n == NGX_ERROR) {
            *err = ngx_errno;
            return NGX_ERROR;
        }

        return (size_t) n == len ? NGX_OK : NGX_DECLINED;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    align = clcf->directio_alignment;

    start = offset - offset % align;
    span = offset + len - start;
    span = (span + align - 1) / align * align;

    buf = ngx_pmemalign(r->pool, span, align);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    n = ngx_read_file(&f, buf, span, start);

    if (n == NGX_ERROR) {
        *err = ngx_errno;
        return NGX_ERROR;
    }

    if ((off_t) n < offset - start + (off_t) len) {
        return NGX_DECLINED;
    }

    ngx_memcpy(to, buf + (offset - start), len);

    return NGX_OK;
}


/* The body as a file buffer, so that sendfile serves it. */

ngx_int_t
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

    b->file_pos = file->start;
    b->file_last = file->start + file->of.size;
    b->in_file = 1;

    b->file->fd = file->of.fd;
    b->file->name = file->path;
    b->file->log = r->connection->log;
    b->file->directio = file->of.is_directio;

    return ngx_http_dss_bill_send(r, id, b, file->of.size);
}

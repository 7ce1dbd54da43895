
/*
 * The archive cache (dss_bill_cache_path, dss_bill_cache): bills fetched
 * from the archive kept on local disk by nginx's own file cache, so its
 * keys zone, its lock (one fetch for many requests, as proxy_cache_lock),
 * its cache manager (max_size, inactive, min_free) and its cache loader all
 * apply. A hit is checked and served like a document-root bill.
 *
 * An entry is nginx's cache header, the key (the resolved archive URL and
 * the client's identity), zeros up to the next page boundary, and the bill.
 */


#include "ngx_http_dss_bill.h"

#include <ngx_md5.h>


/* the header keeps its offsets in 16 bits; real archive URLs are short */
#define NGX_HTTP_DSS_BILL_CACHE_KEY_MAX      4096

/* an issued bill never changes: entries leave by max_size and inactive */
#define NGX_HTTP_DSS_BILL_CACHE_VALID        (NGX_MAX_TIME_T_VALUE / 2)

/* how long a failed fetch's status answers its waiters and newcomers, s */
#define NGX_HTTP_DSS_BILL_CACHE_ERROR_VALID  1

/* after a fetch may take this long (ms), another request may take over */
#define NGX_HTTP_DSS_BILL_CACHE_LOCK_SLACK   1000

/* at most one write-error line per worker in this many seconds */
#define NGX_HTTP_DSS_BILL_CACHE_LOG_EVERY    10

/*
 * The bill starts on a page boundary of its cache file: sendfile() from an
 * unaligned offset leaves the response's last partial segment waiting for
 * the client's delayed ACK (tcp_nopush on, which nginx then never pairs
 * with TCP_NODELAY on Linux): 40 ms per small bill, measured
 */
#define NGX_HTTP_DSS_BILL_CACHE_ALIGN        4096


static ngx_int_t ngx_http_dss_bill_cache_setup(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_ctx_t *ctx);
static ngx_int_t ngx_http_dss_bill_cache_lookup(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_ctx_t *ctx);
static void ngx_http_dss_bill_cache_wake(ngx_http_request_t *r);
static ngx_int_t ngx_http_dss_bill_cache_hit(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_ctx_t *ctx);
static void ngx_http_dss_bill_cache_remove(ngx_http_request_t *r,
    ngx_http_cache_t *c);
static void ngx_http_dss_bill_cache_missed(ngx_http_request_t *r,
    ngx_http_dss_bill_ctx_t *ctx);
static void ngx_http_dss_bill_cache_write_failed(ngx_http_request_t *r,
    const char *what, u_char *name, ngx_err_t err);
static ngx_int_t ngx_http_dss_bill_cache_identity(ngx_conf_t *cf,
    ngx_http_dss_bill_loc_conf_t *conf);


/*
 * The archive path of a download: resolves the archive URL, then answers
 * from the cache, waits for another request's fetch of the same bill, or
 * fetches.
 */

ngx_int_t
ngx_http_dss_bill_archive(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_ctx_t *ctx)
{
    ngx_int_t  rc;
    ngx_str_t  url;

    if (ngx_http_complex_value(r, dlcf->upstream, &url) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->url.data = ngx_pnalloc(r->pool, url.len + 1);
    if (ctx->url.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(ctx->url.data, url.data, url.len);
    ctx->url.data[url.len] = '\0';
    ctx->url.len = url.len;

    if (dlcf->cache == NULL) {
        return ngx_http_dss_bill_upstream_fetch(r, dlcf, ctx);
    }

    if (url.len > NGX_HTTP_DSS_BILL_CACHE_KEY_MAX) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "dss_bill: archive URL too long to cache (%uz bytes), "
                      "fetching bill id \"%V\" past the cache",
                      url.len, &ctx->bill_id);

        return ngx_http_dss_bill_upstream_fetch(r, dlcf, ctx);
    }

    if (ngx_http_dss_bill_cache_setup(r, dlcf, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_dss_bill_cache_lookup(r, dlcf, ctx);

    if (rc == NGX_BUSY) {
        /* nginx's cache calls r->write_event_handler when it is our turn */
        r->main->count++;
        r->write_event_handler = ngx_http_dss_bill_cache_wake;

        return NGX_DONE;
    }

    return rc;
}


/* The request's entry of the location's cache: key, layout, lock. */

static ngx_int_t
ngx_http_dss_bill_cache_setup(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_ctx_t *ctx)
{
    ngx_str_t         *key;
    ngx_http_cache_t  *c;

    if (ngx_http_file_cache_new(r) != NGX_OK) {
        return NGX_ERROR;
    }

    c = r->cache;

    /* the key: who fetches how (fixed length), then the whole resolved URL,
     * so two archives or two clients never share bills */

    key = ngx_array_push(&c->keys);
    if (key == NULL) {
        return NGX_ERROR;
    }

    *key = dlcf->cache_identity;

    key = ngx_array_push(&c->keys);
    if (key == NULL) {
        return NGX_ERROR;
    }

    key->data = ctx->url.data;
    key->len = ctx->url.len;

    c->file_cache = dlcf->cache->data;

    ngx_http_file_cache_create_key(r);

    c->body_start = ngx_align(c->header_start, NGX_HTTP_DSS_BILL_CACHE_ALIGN);
    c->min_uses = 1;

    /* others wait for one fetch, as long as that fetch may take */

    c->lock = 1;
    c->lock_timeout = dlcf->upstream_timeout
                      + NGX_HTTP_DSS_BILL_CACHE_LOCK_SLACK / 2;
    c->lock_age = dlcf->upstream_timeout + NGX_HTTP_DSS_BILL_CACHE_LOCK_SLACK;

    return NGX_OK;
}


/*
 * Answers from the cache, or starts the fetch: returns what a content
 * handler returns (NGX_AGAIN included: a hit still being sent), or NGX_BUSY
 * while another request's fetch of the bill (or a read) is awaited.
 */

static ngx_int_t
ngx_http_dss_bill_cache_lookup(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_ctx_t *ctx)
{
    ngx_int_t  rc;

    rc = ngx_http_file_cache_open(r);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dss_bill cache open: %i", rc);

    switch (rc) {

    case NGX_OK:
    case NGX_HTTP_CACHE_UPDATING:    /* entries never expire: still good */
        return ngx_http_dss_bill_cache_hit(r, dlcf, ctx);

    case NGX_AGAIN:                  /* another request is fetching it */
        return NGX_BUSY;

    case NGX_DECLINED:               /* a miss: this request fetches */
    case NGX_HTTP_CACHE_STALE:
        ngx_http_dss_bill_cache_missed(r, ctx);
        return ngx_http_dss_bill_upstream_fetch(r, dlcf, ctx);

    case NGX_HTTP_CACHE_SCARCE:      /* that fetch outlasted our wait */
        ngx_http_dss_bill_cache_missed(r, ctx);
        return ngx_http_dss_bill_fail(r, DSS_BILL_UPSTREAM_TIMEOUT,
                                      &ctx->bill_id, "url", &ctx->url,
                                      "waiting for another request's fetch "
                                      "of this bill", 0);

    case NGX_ERROR:
        /* the cache cannot help (nginx said why): fetch past it */
        r->cache = NULL;
        ngx_http_dss_bill_cache_missed(r, ctx);
        return ngx_http_dss_bill_upstream_fetch(r, dlcf, ctx);

    default:
        /* the status of another request's fetch that failed just now */
        ngx_http_dss_bill_cache_missed(r, ctx);
        return ngx_http_dss_bill_fail(r,
                                      rc == NGX_HTTP_NOT_FOUND
                                      ? DSS_BILL_UPSTREAM_NOT_FOUND
                                      : DSS_BILL_UPSTREAM_ERROR,
                                      &ctx->bill_id, "url", &ctx->url,
                                      "as another request's fetch of this "
                                      "bill did just now", 0);
    }
}


static void
ngx_http_dss_bill_cache_wake(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_http_dss_bill_ctx_t       *ctx;
    ngx_http_dss_bill_loc_conf_t  *dlcf;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_dss_bill_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_dss_bill_module);

    r->write_event_handler = ngx_http_request_empty_handler;

    rc = ngx_http_dss_bill_cache_lookup(r, dlcf, ctx);

    if (rc == NGX_BUSY) {
        r->write_event_handler = ngx_http_dss_bill_cache_wake;
        return;
    }

    /*
     * as the content handler's return: the wait's reference ended with it
     * (NGX_DONE); a fetch started now holds its own, a hit still being
     * sent (NGX_AGAIN) goes on with nginx's writer
     */

    ngx_http_finalize_request(r, rc);
}


/*
 * D4, D8: a cache file is a bill like any other: checked before it is
 * served; one that fails the checks is removed and the bill fetched again.
 */

static ngx_int_t
ngx_http_dss_bill_cache_hit(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_ctx_t *ctx)
{
    off_t                      stored;
    ngx_err_t                  err;
    const char                *reason;
    dss_bill_outcome           outcome;
    ngx_http_cache_t          *c;
    ngx_http_dss_bill_file_t   file;

    c = r->cache;

    ngx_memzero(&file, sizeof(ngx_http_dss_bill_file_t));

    file.path = c->file.name;
    file.of.fd = c->file.fd;
    file.of.is_file = 1;
    file.of.size = c->length - (off_t) c->body_start;
    file.start = c->body_start;

    err = 0;

    /* the bill's size when it was stored: a file cut short or grown since
     * is caught whatever its last bytes */

    stored = c->etag.len ? ngx_atoof(c->etag.data, c->etag.len) : NGX_ERROR;

    if (stored != file.of.size) {
        reason = "not the size of the bill stored";
        goto unusable;
    }

    outcome = ngx_http_dss_bill_check_file(r, dlcf, &file, &err);

    if (outcome == DSS_BILL_OK || outcome == DSS_BILL_TOO_LARGE) {
        ctx->cache_status = NGX_HTTP_DSS_BILL_CACHE_HIT;
        ngx_http_dss_bill_set_source(r, DSS_BILL_SOURCE_CACHE);
        ngx_http_dss_bill_count_cache(r, DSS_BILL_CACHE_HIT);
    }

    if (outcome == DSS_BILL_OK) {
        return ngx_http_dss_bill_send_file(r, &file, &ctx->bill_id);
    }

    if (outcome == DSS_BILL_TOO_LARGE) {
        /* a good entry, over this location's limit (D4): a fetch would
         * bring the same bill */
        return ngx_http_dss_bill_fail(r, outcome, &ctx->bill_id, "file",
                                      &file.path, "cached", 0);
    }

    reason = dss_bill_outcome_reason(outcome);

unusable:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, err,
                  "dss_bill: cache file \"%s\" is unusable (%s), removed; "
                  "fetching bill id \"%V\" again",
                  c->file.name.data, reason, &ctx->bill_id);

    ngx_http_dss_bill_cache_remove(r, c);
    ngx_http_dss_bill_count_cache(r, DSS_BILL_CACHE_UNUSABLE);

    if (!ctx->cache_retried) {
        /*
         * once more through the keys zone, now that the file is gone: one
         * request of a crowd fetches, the others wait for it (an open-file
         * cache may still hand out the removed file: the second time, the
         * request fetches past the lock)
         */
        ctx->cache_retried = 1;
        ngx_http_file_cache_free(c, NULL);

        if (ngx_http_dss_bill_cache_setup(r, dlcf, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_dss_bill_cache_lookup(r, dlcf, ctx);
    }

    ngx_http_dss_bill_cache_missed(r, ctx);

    return ngx_http_dss_bill_upstream_fetch(r, dlcf, ctx);
}


static void
ngx_http_dss_bill_cache_missed(ngx_http_request_t *r,
    ngx_http_dss_bill_ctx_t *ctx)
{
    ctx->cache_status = NGX_HTTP_DSS_BILL_CACHE_MISS;
    ngx_http_dss_bill_count_cache(r, DSS_BILL_CACHE_MISS);
}


/*
 * Deletes the cache file just found unusable, unless the name already holds
 * another file (an open-file cache entry can outlive a file that a
 * concurrent request has replaced since).
 */

static void
ngx_http_dss_bill_cache_remove(ngx_http_request_t *r, ngx_http_cache_t *c)
{
    ngx_file_info_t  fi;

    if (ngx_file_info(c->file.name.data, &fi) == NGX_FILE_ERROR
        || ngx_file_uniq(&fi) != c->uniq)
    {
        return;
    }

    if (ngx_delete_file(c->file.name.data) == NGX_FILE_ERROR
        && ngx_errno != NGX_ENOENT)
    {
        ngx_log_error(NGX_LOG_CRIT, r->connection->log, ngx_errno,
                      ngx_delete_file_n " \"%s\" failed", c->file.name.data);
    }
}


/*
 * A fetched bill, checked (D3, D8), enters the cache: written once into a
 * temporary file in the cache directory, then renamed into place. A failure
 * here never fails the download.
 */

void
ngx_http_dss_bill_cache_store(ngx_http_request_t *r, dss_bill_body *body)
{
    int                rc;
    u_char            *header, *size;
    ngx_log_t          quiet;
    ngx_temp_file_t   *tf;
    ngx_http_cache_t  *c;

    c = r->cache;

    if (c == NULL || c->updated || c->node == NULL) {
        return;
    }

    c->body_start = ngx_align(c->header_start, NGX_HTTP_DSS_BILL_CACHE_ALIGN);
    c->valid_sec = NGX_HTTP_DSS_BILL_CACHE_VALID;
    c->date = ngx_time();
    c->last_modified = -1;

    /* the header's etag field holds the bill's size, checked on every hit */

    size = ngx_pnalloc(r->pool, NGX_OFF_T_LEN);
    header = ngx_pcalloc(r->pool, c->body_start);     /* zero padding */
    tf = ngx_pcalloc(r->pool, sizeof(ngx_temp_file_t));

    if (size == NULL || header == NULL || tf == NULL) {
        ngx_http_file_cache_free(c, NULL);
        return;
    }

    c->etag.data = size;
    c->etag.len = ngx_sprintf(size, "%O", (off_t) body->size) - size;

    if (ngx_http_file_cache_set_header(r, header) != NGX_OK) {
        ngx_http_file_cache_free(c, NULL);
        return;
    }

    /* on a full disk nginx would log this once per request: we do, less */

    quiet = *r->connection->log;
    quiet.log_level = NGX_LOG_STDERR;

    tf->file.fd = NGX_INVALID_FILE;
    tf->file.log = &quiet;
    tf->path = c->file_cache->path;
    tf->pool = r->pool;
    tf->persistent = 1;
    tf->access = NGX_FILE_OWNER_ACCESS;

    if (ngx_create_temp_file(&tf->file, tf->path, tf->pool, tf->persistent,
                             tf->clean, tf->access)
        != NGX_OK)
    {
        ngx_http_dss_bill_cache_write_failed(r, "cannot create a file in",
                                             tf->path->name.data, ngx_errno);
        ngx_http_dss_bill_count_cache(r, DSS_BILL_CACHE_STORE_FAILED);
        ngx_http_file_cache_free(c, NULL);
        return;
    }

    tf->file.log = r->connection->log;

    rc = dss_bill_cache_write(tf->file.fd, header, c->body_start, body);

    if (rc != 0) {
        ngx_http_dss_bill_cache_write_failed(r, "cannot write",
                                             tf->file.name.data, rc);
        ngx_http_dss_bill_count_cache(r, DSS_BILL_CACHE_STORE_FAILED);

        if (ngx_delete_file(tf->file.name.data) == NGX_FILE_ERROR) {
            ngx_log_error(NGX_LOG_CRIT, r->connection->log, ngx_errno,
                          ngx_delete_file_n " \"%s\" failed",
                          tf->file.name.data);
        }

        ngx_http_file_cache_free(c, NULL);
        return;
    }

    /* the rename, and the keys zone learns the file (and wakes waiters) */

    ngx_http_file_cache_update(r, tf);
    ngx_http_dss_bill_count_cache(r, DSS_BILL_CACHE_STORED);
}


/*
 * The fetch failed (status: what this request answers) or was cancelled
 * (0): requests waiting for it wake up, and get that status too.
 */

void
ngx_http_dss_bill_cache_abandon(ngx_http_request_t *r, ngx_uint_t status)
{
    ngx_http_cache_t  *c;

    c = r->cache;

    if (c == NULL || c->updated) {
        return;
    }

    if (status) {
        c->error = status;
        c->valid_sec = ngx_time() + NGX_HTTP_DSS_BILL_CACHE_ERROR_VALID;
    }

    ngx_http_file_cache_free(c, NULL);
}


static void
ngx_http_dss_bill_cache_write_failed(ngx_http_request_t *r, const char *what,
    u_char *name, ngx_err_t err)
{
    time_t                          now;
    ngx_http_dss_bill_ctx_t        *ctx;
    ngx_http_dss_bill_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dss_bill_module);
    now = ngx_time();

    if (dmcf->cache_error_logged
        && now - dmcf->cache_error_logged < NGX_HTTP_DSS_BILL_CACHE_LOG_EVERY)
    {
        dmcf->cache_errors_unlogged++;
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_dss_bill_module);

    ngx_log_error(NGX_LOG_ERR, r->connection->log, err,
                  "dss_bill: cannot cache bill id \"%V\": %s \"%s\" "
                  "(served all the same; %ui more such errors in this worker "
                  "since the last line)",
                  &ctx->bill_id, what, name, dmcf->cache_errors_unlogged);

    dmcf->cache_error_logged = now;
    dmcf->cache_errors_unlogged = 0;
}


/* dss_bill_cache name | off; the zone may be declared further down */

char *
ngx_http_dss_bill_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dss_bill_loc_conf_t *dlcf = conf;

    ngx_str_t  *value;

    if (dlcf->cache != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    dlcf->cache_file = cf->conf_file->file.name.data;
    dlcf->cache_line = cf->conf_file->line;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        dlcf->cache = NULL;
        return NGX_CONF_OK;
    }

    dlcf->cache = ngx_shared_memory_add(cf, &value[1], 0,
                                        &ngx_http_dss_bill_module);
    if (dlcf->cache == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_dss_bill_cache_merge(ngx_conf_t *cf,
    ngx_http_dss_bill_loc_conf_t *prev, ngx_http_dss_bill_loc_conf_t *conf)
{
    if (conf->cache == NGX_CONF_UNSET_PTR) {
        conf->cache = (prev->cache == NGX_CONF_UNSET_PTR) ? NULL : prev->cache;
        conf->cache_file = prev->cache_file;
        conf->cache_line = prev->cache_line;
    }

    ngx_conf_merge_uint_value(conf->health_archive, prev->health_archive,
                              NGX_HTTP_DSS_BILL_HEALTH_ARCHIVE_REQUIRED);

    /* cf points past the http block here: name the directive's line */

    if (conf->cache && conf->cache->data == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "unknown \"dss_bill_cache\" zone \"%V\" (declare it "
                      "with \"dss_bill_cache_path ... keys_zone=%V:size\") "
                      "in %s:%ui", &conf->cache->shm.name,
                      &conf->cache->shm.name, conf->cache_file,
                      conf->cache_line);
        return NGX_CONF_ERROR;
    }

    if (conf->cache && conf->upstream
        && ngx_http_dss_bill_cache_identity(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (conf->enabled && conf->upstream && conf->cache == NULL
        && conf->health_archive == NGX_HTTP_DSS_BILL_HEALTH_ARCHIVE_CACHE)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dss_bill_health_archive cache\" needs "
                      "\"dss_bill_cache\" in location \"%V\" in %s:%ui",
                      &conf->location, conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The key's first part, fixed-length so that no URL can imitate it: a
 * digest of everything besides the URL that decides which bytes a location
 * fetches and accepts. Locations that reach the same URL as different
 * clients (API key, Basic auth user, client certificate, object-store key:
 * an archive may answer each tenant with its own bill), that trust the
 * archive's certificate differently, or that check bills differently
 * (dss_bill_pdf_check, dss_bill_max_size, the timeouts, the reading of
 * S3's 403) never share entries, nor the failures kept for waiters. A digest: no credential goes into a file.
 */

static void
ngx_http_dss_bill_md5_part(ngx_md5_t *md5, const void *data, size_t len)
{
    /* each part with its length: "ab" + "c" differs from "a" + "bc" */
    ngx_md5_update(md5, &len, sizeof(len));
    ngx_md5_update(md5, data, len);
}


static ngx_int_t
ngx_http_dss_bill_cache_identity(ngx_conf_t *cf,
    ngx_http_dss_bill_loc_conf_t *conf)
{
    u_char                     digest[16], *p;
    ngx_str_t                 *header;
    ngx_uint_t                 i, n;
    ngx_md5_t                  md5;
    const dss_bill_s3_options *s3;

    ngx_md5_init(&md5);

    ngx_http_dss_bill_md5_part(&md5, "dss_bill cache key 1",
                               sizeof("dss_bill cache key 1") - 1);
    ngx_http_dss_bill_md5_part(&md5, conf->upstream_basic_auth.data,
                               conf->upstream_basic_auth.len);

    n = conf->upstream_headers ? conf->upstream_headers->nelts : 0;
    ngx_http_dss_bill_md5_part(&md5, &n, sizeof(n));

    if (n) {
        header = conf->upstream_headers->elts;

        for (i = 0; i < n; i++) {
            ngx_http_dss_bill_md5_part(&md5, header[i].data, header[i].len);
        }
    }

    ngx_http_dss_bill_md5_part(&md5, conf->upstream_ssl_certificate.path.data,
                               conf->upstream_ssl_certificate.path.len);
    ngx_http_dss_bill_md5_part(&md5,
                               conf->upstream_ssl_trusted_certificate.path.data,
                               conf->upstream_ssl_trusted_certificate.path.len);
    ngx_http_dss_bill_md5_part(&md5, &conf->upstream_ssl_verify,
                               sizeof(conf->upstream_ssl_verify));
    ngx_http_dss_bill_md5_part(&md5, &conf->upstream_redirects,
                               sizeof(conf->upstream_redirects));
    ngx_http_dss_bill_md5_part(&md5, &conf->pdf_check, sizeof(conf->pdf_check));
    ngx_http_dss_bill_md5_part(&md5, &conf->max_size, sizeof(conf->max_size));

    /* how long it waits: a failure kept for waiters is its timeout's */
    ngx_http_dss_bill_md5_part(&md5, &conf->upstream_connect_timeout,
                               sizeof(conf->upstream_connect_timeout));
    ngx_http_dss_bill_md5_part(&md5, &conf->upstream_timeout,
                               sizeof(conf->upstream_timeout));

    /* an object store's key: who asks (the key id), not its secret */

    s3 = conf->upstream_options.s3;

    if (s3) {
        ngx_http_dss_bill_md5_part(&md5, s3->access_key_id,
                                   ngx_strlen(s3->access_key_id));

        /* where it signs for: a wrong region's 403, kept for waiters, must
         * not answer a location that signs right (D6) */
        ngx_http_dss_bill_md5_part(&md5, s3->region, ngx_strlen(s3->region));
        ngx_http_dss_bill_md5_part(&md5, s3->service,
                                   ngx_strlen(s3->service));

        /* and how it reads S3's answers: a failure kept for waiters is
         * one location's 404 and the other's 500 (D5, D6) */
        ngx_http_dss_bill_md5_part(&md5, &s3->access_denied_is_missing,
                                   sizeof(s3->access_denied_is_missing));
    }

    ngx_md5_final(digest, &md5);

    p = ngx_pnalloc(cf->pool, 2 * sizeof(digest) + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    conf->cache_identity.data = p;
    p = ngx_hex_dump(p, digest, sizeof(digest));
    *p++ = ' ';
    conf->cache_identity.len = p - conf->cache_identity.data;

    return NGX_OK;
}


/*
 * ngx_http_dss_bill_module: the module table, its directives, configuration
 * and variables. Request handling lives in ngx_http_dss_bill_handler.c, the
 * health check in ngx_http_dss_bill_health.c.
 */


#include "ngx_http_dss_bill.h"


#define NGX_HTTP_DSS_BILL_DEFAULT_MAX_SIZE  (5 * 1024 * 1024)   /* D4 */


static ngx_int_t ngx_http_dss_bill_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_dss_bill_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_dss_bill_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_dss_bill_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_dss_bill_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_dss_bill_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_dss_bill_init_process(ngx_cycle_t *cycle);
static void ngx_http_dss_bill_exit_process(ngx_cycle_t *cycle);


static ngx_int_t ngx_http_dss_bill_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_dss_bill_cache_status_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);


static ngx_conf_post_handler_pt  ngx_http_dss_bill_positive_size_post =
    ngx_http_dss_bill_check_positive_size;
static ngx_conf_post_handler_pt  ngx_http_dss_bill_positive_msec_post =
    ngx_http_dss_bill_check_positive_msec;

static ngx_conf_num_bounds_t  ngx_http_dss_bill_buffer_size_bounds = {
    ngx_conf_check_num_bounds, 64, 16 * 1024 * 1024
};

static ngx_conf_num_bounds_t  ngx_http_dss_bill_redirects_bounds = {
    ngx_conf_check_num_bounds, 0, 10
};


static ngx_conf_enum_t  ngx_http_dss_bill_health_archive_values[] = {
    { ngx_string("required"), NGX_HTTP_DSS_BILL_HEALTH_ARCHIVE_REQUIRED },
    { ngx_string("cache"), NGX_HTTP_DSS_BILL_HEALTH_ARCHIVE_CACHE },
    { ngx_null_string, 0 }
};


/* what each of the archive's TLS files must hold */
static dss_bill_tls_kind  ngx_http_dss_bill_tls_ca = DSS_BILL_TLS_CA_BUNDLE;
static dss_bill_tls_kind  ngx_http_dss_bill_tls_certificate =
    DSS_BILL_TLS_CERTIFICATE;
static dss_bill_tls_kind  ngx_http_dss_bill_tls_key = DSS_BILL_TLS_PRIVATE_KEY;


static ngx_command_t  ngx_http_dss_bill_commands[] = {

    { ngx_string("dss_bill"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_dss_bill,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dss_bill_root"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dss_bill_root,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dss_bill_path"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dss_bill_path,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, path),
      NULL },

    { ngx_string("dss_bill_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, max_size),
      &ngx_http_dss_bill_positive_size_post },

    { ngx_string("dss_bill_pdf_check"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dss_bill_pdf_check,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dss_bill_id_chars"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dss_bill_id_chars,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dss_bill_id_length"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_dss_bill_id_length,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dss_bill_health_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, health_interval),
      &ngx_http_dss_bill_positive_msec_post },

    { ngx_string("dss_bill_upstream"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dss_bill_upstream_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dss_bill_upstream_memory"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_main_conf_t, upstream_memory),
      NULL },

    { ngx_string("dss_bill_upstream_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, upstream_connect_timeout),
      &ngx_http_dss_bill_positive_msec_post },

    { ngx_string("dss_bill_upstream_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, upstream_timeout),
      &ngx_http_dss_bill_positive_msec_post },

    { ngx_string("dss_bill_upstream_buffer_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, upstream_buffer_size),
      &ngx_http_dss_bill_buffer_size_bounds },

    { ngx_string("dss_bill_upstream_redirects"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, upstream_redirects),
      &ngx_http_dss_bill_redirects_bounds },

    { ngx_string("dss_bill_upstream_keepalive"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, upstream_keepalive),
      NULL },

    { ngx_string("dss_bill_upstream_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, upstream_ssl_verify),
      NULL },

    { ngx_string("dss_bill_upstream_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dss_bill_upstream_tls_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, upstream_ssl_trusted_certificate),
      &ngx_http_dss_bill_tls_ca },

    { ngx_string("dss_bill_upstream_ssl_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dss_bill_upstream_tls_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, upstream_ssl_certificate),
      &ngx_http_dss_bill_tls_certificate },

    { ngx_string("dss_bill_upstream_ssl_certificate_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dss_bill_upstream_tls_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, upstream_ssl_certificate_key),
      &ngx_http_dss_bill_tls_key },

    { ngx_string("dss_bill_upstream_basic_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dss_bill_upstream_basic_auth,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, upstream_basic_auth),
      NULL },

    { ngx_string("dss_bill_upstream_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_dss_bill_upstream_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dss_bill_upstream_temp_path"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, upstream_temp_path),
      NULL },

    { ngx_string("dss_bill_upstream_health_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dss_bill_upstream_health_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, upstream_health_url),
      NULL },

    { ngx_string("dss_bill_upstream_s3"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_dss_bill_upstream_s3,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dss_bill_upstream_s3_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_dss_bill_upstream_s3_credentials,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dss_bill_upstream_s3_access_denied"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dss_bill_upstream_s3_access_denied,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /* nginx's own cache: proxy_cache_path's parser, zone tagged as ours */
    { ngx_string("dss_bill_cache_path"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_file_cache_set_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_main_conf_t, caches),
      &ngx_http_dss_bill_module },

    { ngx_string("dss_bill_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dss_bill_cache,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dss_bill_health_archive"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dss_bill_loc_conf_t, health_archive),
      &ngx_http_dss_bill_health_archive_values },

    /* observability (ngx_http_dss_bill_metrics.c) */

    { ngx_string("dss_bill_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_dss_bill_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dss_bill_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_dss_bill_metrics_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_dss_bill_module_ctx = {
    ngx_http_dss_bill_add_variables,       /* preconfiguration */
    ngx_http_dss_bill_postconfiguration,   /* postconfiguration */

    ngx_http_dss_bill_create_main_conf,    /* create main configuration */
    ngx_http_dss_bill_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_dss_bill_create_loc_conf,     /* create location configuration */
    ngx_http_dss_bill_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_dss_bill_module = {
    NGX_MODULE_V1,
    &ngx_http_dss_bill_module_ctx,         /* module context */
    ngx_http_dss_bill_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_dss_bill_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_dss_bill_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_dss_bill_vars[] = {

    { ngx_string("dss_bill_id"), NULL, ngx_http_dss_bill_id_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dss_bill_cache_status"), NULL,
      ngx_http_dss_bill_cache_status_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_dss_bill_default_path =
    ngx_string("$dss_bill_id.pdf");


static ngx_int_t
ngx_http_dss_bill_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_dss_bill_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return ngx_http_dss_bill_variables_add(cf);     /* $dss_bill_outcome... */
}


static ngx_int_t
ngx_http_dss_bill_postconfiguration(ngx_conf_t *cf)
{
    if (ngx_http_dss_bill_header_filter_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_dss_bill_metrics_init(cf);
}


static ngx_int_t
ngx_http_dss_bill_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_dss_bill_ctx_t  *ctx;

    ctx = ngx_http_dss_bill_ctx(r);

    if (ctx == NULL || ctx->bill_id.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->bill_id.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = ctx->bill_id.data;

    return NGX_OK;
}


static ngx_str_t  ngx_http_dss_bill_cache_statuses[] = {
    ngx_null_string,
    ngx_string("MISS"),
    ngx_string("HIT"),
};


static ngx_int_t
ngx_http_dss_bill_cache_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                *status;
    ngx_http_dss_bill_ctx_t  *ctx;

    ctx = ngx_http_dss_bill_ctx(r);

    if (ctx == NULL || ctx->cache_status == NGX_HTTP_DSS_BILL_CACHE_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    status = &ngx_http_dss_bill_cache_statuses[ctx->cache_status];

    v->len = status->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = status->data;

    return NGX_OK;
}


static void *
ngx_http_dss_bill_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_dss_bill_main_conf_t  *dmcf;

    dmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_dss_bill_main_conf_t));
    if (dmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&dmcf->healths, cf->pool, 4,
                       sizeof(ngx_http_dss_bill_health_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&dmcf->caches, cf->pool, 4,
                       sizeof(ngx_http_file_cache_t *))
        != NGX_OK)
    {
        return NULL;
    }

    dmcf->upstream_memory = NGX_CONF_UNSET_SIZE;

    return dmcf;
}


static char *
ngx_http_dss_bill_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_dss_bill_main_conf_t *dmcf = conf;

    /* a few bills in flight stay in memory; a flood spills to files */
    ngx_conf_init_size_value(dmcf->upstream_memory, 8 * 1024 * 1024);

    return NGX_CONF_OK;
}


static void *
ngx_http_dss_bill_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_dss_bill_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_dss_bill_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->enabled = 0;
     *     conf->location = { 0, NULL };
     *     conf->root = { 0, NULL };
     *     conf->path = NULL;
     *     conf->id_chars = { 0, NULL };
     *     conf->upstream = NULL;
     *     conf->upstream_* strings = { 0, NULL };
     *     conf->upstream_headers = NULL;
     *     conf->upstream_options = { 0 };
     *     conf->health = NULL;
     */

    conf->max_size = NGX_CONF_UNSET;
    conf->pdf_check = NGX_CONF_UNSET_UINT;
    conf->id_min_length = NGX_CONF_UNSET_UINT;
    conf->id_max_length = NGX_CONF_UNSET_UINT;
    conf->health_interval = NGX_CONF_UNSET_MSEC;
    conf->upstream_connect_timeout = NGX_CONF_UNSET_MSEC;
    conf->upstream_timeout = NGX_CONF_UNSET_MSEC;
    conf->upstream_buffer_size = NGX_CONF_UNSET_SIZE;
    conf->upstream_redirects = NGX_CONF_UNSET;
    conf->upstream_keepalive = NGX_CONF_UNSET;
    conf->upstream_ssl_verify = NGX_CONF_UNSET;
    conf->cache = NGX_CONF_UNSET_PTR;
    conf->health_archive = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_dss_bill_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_dss_bill_loc_conf_t *prev = parent;
    ngx_http_dss_bill_loc_conf_t *conf = child;

    char                               err[NGX_HTTP_DSS_BILL_REASON_LEN];
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_dss_bill_health_t       **health;
    ngx_http_dss_bill_main_conf_t     *dmcf;
    ngx_http_compile_complex_value_t   ccv;

    /*
     * "if" and "limit_except" blocks are bill locations too: the same
     * routes and, since the sources cannot be set inside them, the same
     * health. An "if" block keeps its location's content handler; a
     * "limit_except" block gets it here (else nginx's static module would
     * answer the methods it names, D7)
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (!conf->enabled && prev->enabled && clcf->noname) {
        clcf->handler = ngx_http_dss_bill_handler;
        conf->enabled = 1;
        conf->location = prev->location;
        conf->route_base = prev->route_base;
        conf->file = prev->file;
        conf->line = prev->line;
        conf->health = prev->health;
    }

    ngx_conf_merge_str_value(conf->root, prev->root, "");
    ngx_conf_merge_off_value(conf->max_size, prev->max_size,
                             NGX_HTTP_DSS_BILL_DEFAULT_MAX_SIZE);
    /* D8: a 200 only for a PDF that also ends like one, unless relaxed */
    ngx_conf_merge_uint_value(conf->pdf_check, prev->pdf_check,
                              DSS_BILL_PDF_CHECK_COMPLETE);
    ngx_conf_merge_str_value(conf->id_chars, prev->id_chars,
                             DSS_BILL_ID_DEFAULT_CHARS);
    ngx_conf_merge_uint_value(conf->id_min_length, prev->id_min_length,
                              DSS_BILL_ID_DEFAULT_MIN);
    ngx_conf_merge_uint_value(conf->id_max_length, prev->id_max_length,
                              DSS_BILL_ID_DEFAULT_MAX);
    ngx_conf_merge_msec_value(conf->health_interval, prev->health_interval,
                              5000);

    if (conf->path == NULL) {
        conf->path = prev->path;
    }

    /* everything below is derived once, here, not per request */

    if (ngx_http_dss_bill_upstream_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_dss_bill_cache_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (!conf->enabled) {
        return NGX_CONF_OK;
    }

    if (conf->root.len == 0 && conf->upstream == NULL) {
        /* cf points past the http block here: name the "dss_bill" line */
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dss_bill\" in location \"%V\" has no bill source: "
                      "set \"dss_bill_root\" or \"dss_bill_upstream\" "
                      "in %s:%ui", &conf->location, conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    if (conf->path == NULL) {
        conf->path_is_default = 1;

        conf->path = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
        if (conf->path == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &ngx_http_dss_bill_default_path;
        ccv.complex_value = conf->path;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    /* both were checked when set; their combination is checked here */

    dss_bill_id_rule_default(&conf->id_rule);

    if (dss_bill_id_rule_set_chars(&conf->id_rule,
                                   (const char *) conf->id_chars.data,
                                   conf->id_chars.len, err, sizeof(err))
        != 0
        || dss_bill_id_rule_set_length(&conf->id_rule, conf->id_min_length,
                                       conf->id_max_length, err, sizeof(err))
           != 0)
    {
        /* cf points past the http block here: name the "dss_bill" line */
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "invalid bill id rule for location \"%V\": %s "
                      "in %s:%ui", &conf->location, err, conf->file,
                      conf->line);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_dss_bill_filters_off(cf, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->health) {
        return NGX_CONF_OK;     /* the block's location probes already */
    }

    conf->health = ngx_http_dss_bill_health_create(cf, conf);
    if (conf->health == NULL) {
        return NGX_CONF_ERROR;
    }

    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_dss_bill_module);

    health = ngx_array_push(&dmcf->healths);
    if (health == NULL) {
        return NGX_CONF_ERROR;
    }

    *health = conf->health;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_dss_bill_init_process(ngx_cycle_t *cycle)
{
    ngx_http_dss_bill_main_conf_t  *dmcf;

    /* the cache manager and loader run this hook too: only workers fetch
     * and probe */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    dmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_dss_bill_module);
    if (dmcf == NULL) {
        return NGX_OK;
    }

    ngx_http_dss_bill_metrics_worker_start(cycle);

    if (dmcf->uses_curl
        && ngx_http_dss_bill_curl_init(cycle, dmcf->upstream_memory) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_dss_bill_health_start(cycle, &dmcf->healths);
}


static void
ngx_http_dss_bill_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_dss_bill_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_dss_bill_module);
    if (dmcf == NULL) {
        return;
    }

    ngx_http_dss_bill_health_stop(&dmcf->healths);

    if (dmcf->uses_curl) {
        ngx_http_dss_bill_curl_exit(cycle);
    }

    ngx_http_dss_bill_metrics_worker_exit(cycle);
}

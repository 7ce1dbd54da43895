
/*
 * Shared declarations of the nginx glue of ngx_http_dss_bill_module.
 * Only the glue includes nginx headers; the core is reached through
 * dss_bill.h.
 */


#ifndef _NGX_HTTP_DSS_BILL_H_INCLUDED_
#define _NGX_HTTP_DSS_BILL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "dss_bill.h"


#define NGX_HTTP_DSS_BILL_REASON_LEN  256


/* One libcurl transfer driven by the worker's multi handle. */
typedef struct ngx_http_dss_bill_transfer_s  ngx_http_dss_bill_transfer_t;

typedef void (*ngx_http_dss_bill_transfer_done_pt)(
    ngx_http_dss_bill_transfer_t *t, dss_bill_outcome outcome);

struct ngx_http_dss_bill_transfer_s {
    dss_bill_fetch                      *fetch;
    ngx_http_dss_bill_transfer_done_pt   done;
    void                                *data;
    ngx_queue_t                          queue;     /* while failing */
    unsigned                             active:1;  /* in the multi handle */
    unsigned                             failing:1;
    unsigned                             stale:1;   /* its kept connection
                                                       had unread bytes */
    unsigned                             retried:1;
};


/* Cached health of one location's sources (H3, H4), per worker. */
typedef struct {
    ngx_event_t                   timer;
    ngx_msec_t                    interval;
    ngx_log_t                    *log;

    ngx_str_t                     root;          /* NUL-terminated, or empty */
    ngx_flag_t                    root_healthy;
    ngx_flag_t                    root_probed;
    u_char                        reason[NGX_HTTP_DSS_BILL_REASON_LEN];

    /* the archive, probed with a non-blocking GET */
    ngx_str_t                     probe_url;     /* NUL-terminated, or empty */
    const dss_bill_upstream_options  *options;
    ngx_http_dss_bill_transfer_t  probe;
    ngx_flag_t                    archive_healthy;
    ngx_flag_t                    archive_probed;
    ngx_flag_t                    archive_optional; /* a cache covers it */

    ngx_str_t                     location;      /* for dss_bill_source_up */
} ngx_http_dss_bill_health_t;


typedef struct {
    ngx_array_t                   healths;       /* ngx_http_dss_bill_health_t * */
    ngx_flag_t                    uses_curl;
    size_t                        upstream_memory;   /* dss_bill_upstream_memory */
    ngx_array_t                   caches;    /* ngx_http_file_cache_t *,
                                                dss_bill_cache_path */
    time_t                        cache_error_logged;   /* per worker */
    ngx_uint_t                    cache_errors_unlogged;

    /* observability (ngx_http_dss_bill_metrics.c) */
    ngx_flag_t                    metrics;       /* some dss_bill_metrics */
    ssize_t                       metrics_zone_size;   /* 0: default */
    ngx_shm_zone_t               *metrics_zone;
} ngx_http_dss_bill_main_conf_t;


/* A TLS file of the archive, read and checked at configuration time. */
typedef struct {
    ngx_str_t                     path;          /* absolute */
    dss_bill_pem                  pem;
    u_char                       *conf_file;     /* where it was set */
    ngx_uint_t                    conf_line;
} ngx_http_dss_bill_tls_file_t;


/* An object-store archive's signing (dss_bill_upstream_s3*). */
typedef struct {
    ngx_str_t                     region;        /* NUL-terminated */
    ngx_str_t                     service;       /* NUL-terminated */
    ngx_str_t                     credentials;   /* the file, for messages */
    ngx_uint_t                    access_denied; /* 0 unset, 1 error, 2 missing */
    dss_bill_s3_options           options;       /* the keys, once read */
} ngx_http_dss_bill_s3_conf_t;


typedef struct {
    /* set by "dss_bill" in this very location; not inherited */
    ngx_flag_t                    enabled;
    ngx_str_t                     location;      /* the location's name */
    size_t                        route_base;    /* its part the routes hang off */
    u_char                       *file;          /* where "dss_bill" was set */
    ngx_uint_t                    line;

    ngx_str_t                     root;          /* dss_bill_root, NUL-terminated */
    ngx_http_complex_value_t     *path;          /* dss_bill_path */
    ngx_flag_t                    path_is_default;  /* $dss_bill_id.pdf */
    off_t                         max_size;      /* dss_bill_max_size */
    ngx_uint_t                    pdf_check;     /* dss_bill_pdf_check */
    ngx_str_t                     id_chars;      /* dss_bill_id_chars */
    ngx_uint_t                    id_min_length; /* dss_bill_id_length */
    ngx_uint_t                    id_max_length;
    ngx_msec_t                    health_interval;

    /* the archive source */
    ngx_http_complex_value_t     *upstream;      /* dss_bill_upstream */
    u_char                       *upstream_file; /* where it was set */
    ngx_uint_t                    upstream_line;
    ngx_msec_t                    upstream_connect_timeout;
    ngx_msec_t                    upstream_timeout;
    size_t                        upstream_buffer_size;
    ngx_int_t                     upstream_redirects;
    ngx_flag_t                    upstream_keepalive;
    ngx_flag_t                    upstream_ssl_verify;
    ngx_http_dss_bill_tls_file_t  upstream_ssl_trusted_certificate;
    ngx_http_dss_bill_tls_file_t  upstream_ssl_certificate;
    ngx_http_dss_bill_tls_file_t  upstream_ssl_certificate_key;
    ngx_str_t                     upstream_basic_auth;
    ngx_array_t                  *upstream_headers;     /* ngx_str_t, NUL-terminated */
    ngx_str_t                     upstream_temp_path;
    ngx_str_t                     upstream_health_url;  /* "off": no probe */
    ngx_http_dss_bill_s3_conf_t   s3;            /* dss_bill_upstream_s3* */

    /* the archive cache */
    ngx_shm_zone_t               *cache;         /* dss_bill_cache, or NULL */
    ngx_str_t                     cache_identity;   /* the key's credential
                                                       part, or empty */
    u_char                       *cache_file;    /* where it was set */
    ngx_uint_t                    cache_line;
    ngx_uint_t                    health_archive;   /* dss_bill_health_archive */

    /* derived at configuration time */
    void                        **loc_conf;      /* rewriting filters off */
    dss_bill_id_rule              id_rule;
    dss_bill_upstream_options     upstream_options;
    ngx_http_dss_bill_health_t   *health;
} ngx_http_dss_bill_loc_conf_t;


#define NGX_HTTP_DSS_BILL_HEALTH_ARCHIVE_REQUIRED  0
#define NGX_HTTP_DSS_BILL_HEALTH_ARCHIVE_CACHE     1

#define NGX_HTTP_DSS_BILL_CACHE_NONE  0
#define NGX_HTTP_DSS_BILL_CACHE_MISS  1
#define NGX_HTTP_DSS_BILL_CACHE_HIT   2


/* Per request: what the variables show, and the header filter keeps. */
typedef struct {
    ngx_str_t                     bill_id;
    ngx_table_elt_t              *cache_control;  /* the module's own */
    ngx_str_t                     url;           /* the archive's, resolved,
                                                    NUL-terminated */
    ngx_uint_t                    cache_status;  /* NGX_HTTP_DSS_BILL_CACHE_* */
    unsigned                      cache_retried:1;  /* an unusable file was
                                                       removed once */

    /* what the request ended as ($dss_bill_outcome..., the counters) */
    dss_bill_outcome              outcome;
    off_t                         size;          /* the bill's, for a 200 */
    ngx_msec_t                    archive_start;
    ngx_msec_t                    archive_time;
    ngx_uint_t                    archive_status;
    unsigned                      route:2;       /* dss_bill_metric_route */
    unsigned                      source:2;      /* dss_bill_source */
    unsigned                      decided:1;     /* outcome is set */
    unsigned                      fetching:1;    /* counted in flight */
    unsigned                      fetched:1;     /* archive_time is set */
} ngx_http_dss_bill_ctx_t;


/* A bill in a file: the document root's, or the body of a cache file. */
typedef struct {
    ngx_str_t                     path;
    ngx_open_file_info_t          of;        /* of.size: the bill's size */
    off_t                         start;     /* where the bill starts */
} ngx_http_dss_bill_file_t;


ngx_int_t ngx_http_dss_bill_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_dss_bill_fail(ngx_http_request_t *r,
    dss_bill_outcome outcome, ngx_str_t *id, const char *what,
    ngx_str_t *where, const char *detail, ngx_err_t err);
ngx_int_t ngx_http_dss_bill_send(ngx_http_request_t *r, ngx_str_t *id,
    ngx_buf_t *b, off_t size);

dss_bill_outcome ngx_http_dss_bill_check_file(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_file_t *file,
    ngx_err_t *err);
ngx_int_t ngx_http_dss_bill_send_file(ngx_http_request_t *r,
    ngx_http_dss_bill_file_t *file, ngx_str_t *id);

ngx_int_t ngx_http_dss_bill_archive(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_ctx_t *ctx);
ngx_int_t ngx_http_dss_bill_upstream_fetch(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf, ngx_http_dss_bill_ctx_t *ctx);

char *ngx_http_dss_bill_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_dss_bill_cache_merge(ngx_conf_t *cf,
    ngx_http_dss_bill_loc_conf_t *prev, ngx_http_dss_bill_loc_conf_t *conf);
void ngx_http_dss_bill_cache_store(ngx_http_request_t *r,
    dss_bill_body *body);
void ngx_http_dss_bill_cache_abandon(ngx_http_request_t *r,
    ngx_uint_t status);
char *ngx_http_dss_bill_upstream_merge(ngx_conf_t *cf,
    ngx_http_dss_bill_loc_conf_t *prev, ngx_http_dss_bill_loc_conf_t *conf);
char *ngx_http_dss_bill(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_dss_bill_root(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_dss_bill_path(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_dss_bill_id_chars(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_dss_bill_pdf_check(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_dss_bill_id_length(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_dss_bill_check_positive_size(ngx_conf_t *cf, void *post,
    void *data);
char *ngx_http_dss_bill_check_positive_msec(ngx_conf_t *cf, void *post,
    void *data);
char *ngx_http_dss_bill_upstream_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_dss_bill_upstream_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_dss_bill_upstream_health_url(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_dss_bill_upstream_basic_auth(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_dss_bill_upstream_tls_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_dss_bill_upstream_s3(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_dss_bill_upstream_s3_credentials(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_dss_bill_upstream_s3_access_denied(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_dss_bill_s3_merge(ngx_conf_t *cf,
    ngx_http_dss_bill_loc_conf_t *prev, ngx_http_dss_bill_loc_conf_t *conf);

ngx_int_t ngx_http_dss_bill_curl_init(ngx_cycle_t *cycle,
    size_t memory_budget);
void ngx_http_dss_bill_curl_exit(ngx_cycle_t *cycle);
ngx_int_t ngx_http_dss_bill_transfer_start(ngx_http_dss_bill_transfer_t *t,
    const dss_bill_upstream_options *options, const char *url,
    ngx_uint_t probe, ngx_log_t *log);
void ngx_http_dss_bill_transfer_stop(ngx_http_dss_bill_transfer_t *t);
void ngx_http_dss_bill_transfer_cancel(ngx_http_dss_bill_transfer_t *t);
void ngx_http_dss_bill_transfer_release(ngx_http_dss_bill_transfer_t *t);

ngx_int_t ngx_http_dss_bill_health_handler(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf);
ngx_http_dss_bill_health_t *ngx_http_dss_bill_health_create(ngx_conf_t *cf,
    ngx_http_dss_bill_loc_conf_t *dlcf);
ngx_int_t ngx_http_dss_bill_health_start(ngx_cycle_t *cycle,
    ngx_array_t *healths);
void ngx_http_dss_bill_health_stop(ngx_array_t *healths);

void ngx_http_dss_bill_suppress_transforms(ngx_http_request_t *r);
char *ngx_http_dss_bill_filters_off(ngx_conf_t *cf,
    ngx_http_dss_bill_loc_conf_t *dlcf);
ngx_table_elt_t *ngx_http_dss_bill_add_header(ngx_http_request_t *r,
    ngx_str_t *key, ngx_str_t *value);
ngx_int_t ngx_http_dss_bill_set_cache_control(ngx_http_request_t *r,
    ngx_str_t *value);
ngx_int_t ngx_http_dss_bill_header_filter_init(ngx_conf_t *cf);

/* observability: outcome points, variables, counters, the endpoint */
ngx_http_dss_bill_ctx_t *ngx_http_dss_bill_ctx(ngx_http_request_t *r);
ngx_http_dss_bill_ctx_t *ngx_http_dss_bill_begin(ngx_http_request_t *r,
    dss_bill_route_kind route);
void ngx_http_dss_bill_decided(ngx_http_request_t *r,
    dss_bill_outcome outcome, off_t size);
void ngx_http_dss_bill_set_source(ngx_http_request_t *r,
    dss_bill_source source);
void ngx_http_dss_bill_metrics_worker_start(ngx_cycle_t *cycle);
void ngx_http_dss_bill_metrics_worker_exit(ngx_cycle_t *cycle);
void ngx_http_dss_bill_fetch_begin(ngx_http_request_t *r);
void ngx_http_dss_bill_count_cache(ngx_http_request_t *r,
    dss_bill_cache_event event);
void ngx_http_dss_bill_fetch_end(ngx_http_request_t *r, dss_bill_fetch *fetch,
    ngx_uint_t observe);
ngx_int_t ngx_http_dss_bill_result(ngx_http_request_t *r,
    ngx_http_dss_bill_ctx_t *ctx);
ngx_int_t ngx_http_dss_bill_variables_add(ngx_conf_t *cf);
ngx_int_t ngx_http_dss_bill_metrics_init(ngx_conf_t *cf);
char *ngx_http_dss_bill_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_dss_bill_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


extern ngx_module_t  ngx_http_dss_bill_module;


#endif /* _NGX_HTTP_DSS_BILL_H_INCLUDED_ */


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


/* Cached health of one location's document root (H3, H4), per worker. */
typedef struct {
    ngx_event_t                   timer;
    ngx_str_t                     root;          /* NUL-terminated */
    ngx_msec_t                    interval;
    ngx_flag_t                    healthy;
    ngx_flag_t                    probed;
    u_char                        reason[NGX_HTTP_DSS_BILL_REASON_LEN];
} ngx_http_dss_bill_health_t;


typedef struct {
    ngx_array_t                   healths;       /* ngx_http_dss_bill_health_t * */
} ngx_http_dss_bill_main_conf_t;


typedef struct {
    /* set by "dss_bill" in this very location; not inherited */
    ngx_flag_t                    enabled;
    ngx_str_t                     location;      /* the location's name */
    size_t                        route_base;    /* its part the routes hang off */
    u_char                       *file;          /* where "dss_bill" was set */
    ngx_uint_t                    line;

    ngx_str_t                     root;          /* dss_bill_root, NUL-terminated */
    ngx_http_complex_value_t     *path;          /* dss_bill_path */
    off_t                         max_size;      /* dss_bill_max_size */
    ngx_str_t                     id_chars;      /* dss_bill_id_chars */
    ngx_uint_t                    id_min_length; /* dss_bill_id_length */
    ngx_uint_t                    id_max_length;
    ngx_msec_t                    health_interval;

    /* derived at configuration time */
    dss_bill_id_rule              id_rule;
    ngx_http_dss_bill_health_t   *health;
} ngx_http_dss_bill_loc_conf_t;


/* Per request: what the variables show. */
typedef struct {
    ngx_str_t                     bill_id;
} ngx_http_dss_bill_ctx_t;


ngx_int_t ngx_http_dss_bill_handler(ngx_http_request_t *r);

ngx_int_t ngx_http_dss_bill_health_handler(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf);
ngx_http_dss_bill_health_t *ngx_http_dss_bill_health_create(ngx_conf_t *cf,
    ngx_str_t *root, ngx_msec_t interval);
ngx_int_t ngx_http_dss_bill_health_start(ngx_cycle_t *cycle,
    ngx_array_t *healths);

void ngx_http_dss_bill_suppress_transforms(ngx_http_request_t *r);
ngx_int_t ngx_http_dss_bill_add_header(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *value);


extern ngx_str_t  ngx_http_dss_bill_cache_control_key;


extern ngx_module_t  ngx_http_dss_bill_module;


#endif /* _NGX_HTTP_DSS_BILL_H_INCLUDED_ */

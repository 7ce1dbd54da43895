
/*
 * The health check (H1-H4): answers from a per-worker cached result that a
 * timer refreshes in the background, so a request never waits on storage.
 */


#include "ngx_http_dss_bill.h"


static void ngx_http_dss_bill_health_refresh(ngx_event_t *ev);
static void ngx_http_dss_bill_health_probe(ngx_http_dss_bill_health_t *health,
    ngx_log_t *log);


static ngx_str_t  ngx_http_dss_bill_no_store = ngx_string("no-store");


ngx_int_t
ngx_http_dss_bill_health_handler(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf)
{
    ngx_int_t  rc;

    /* H3: the cached verdict; no storage access on the request path (H4) */

    if (!dlcf->health->healthy) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    if (ngx_http_dss_bill_add_header(r, &ngx_http_dss_bill_cache_control_key,
                                     &ngx_http_dss_bill_no_store)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* H2: 200 with Content-Length: 0 and no body */

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    ngx_http_dss_bill_suppress_transforms(r);

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    return ngx_http_send_special(r, NGX_HTTP_LAST);
}


ngx_http_dss_bill_health_t *
ngx_http_dss_bill_health_create(ngx_conf_t *cf, ngx_str_t *root,
    ngx_msec_t interval)
{
    ngx_http_dss_bill_health_t  *health;

    health = ngx_pcalloc(cf->pool, sizeof(ngx_http_dss_bill_health_t));
    if (health == NULL) {
        return NULL;
    }

    health->root = *root;
    health->interval = interval;

    return health;
}


/* Runs in each worker after the fork: probe once now, then on a timer. */

ngx_int_t
ngx_http_dss_bill_health_start(ngx_cycle_t *cycle, ngx_array_t *healths)
{
    ngx_uint_t                    i;
    ngx_http_dss_bill_health_t  **health;

    health = healths->elts;

    for (i = 0; i < healths->nelts; i++) {
        ngx_http_dss_bill_health_probe(health[i], cycle->log);

        health[i]->timer.handler = ngx_http_dss_bill_health_refresh;
        health[i]->timer.data = health[i];
        health[i]->timer.log = cycle->log;

        /* a pending probe must not hold up a graceful shutdown */
        health[i]->timer.cancelable = 1;

        ngx_add_timer(&health[i]->timer, health[i]->interval);
    }

    return NGX_OK;
}


static void
ngx_http_dss_bill_health_refresh(ngx_event_t *ev)
{
    ngx_http_dss_bill_health_t  *health = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_http_dss_bill_health_probe(health, ev->log);

    ngx_add_timer(ev, health->interval);
}


static void
ngx_http_dss_bill_health_probe(ngx_http_dss_bill_health_t *health,
    ngx_log_t *log)
{
    ngx_flag_t  healthy;

    healthy = dss_bill_probe_root((const char *) health->root.data,
                                  (char *) health->reason,
                                  sizeof(health->reason));

    /* log transitions only: a probe runs every few seconds */

    if (healthy && health->probed && !health->healthy) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "dss_bill: document root \"%V\" is healthy again",
                      &health->root);

    } else if (!healthy && (!health->probed || health->healthy)) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "dss_bill: document root \"%V\" is unhealthy: %s",
                      &health->root, health->reason);
    }

    health->healthy = healthy;
    health->probed = 1;
}

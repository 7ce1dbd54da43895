
/*
 * The health check (H1-H4): answers from a per-worker cached verdict that a
 * timer refreshes in the background, so a request never waits on storage or
 * on the archive. The archive is probed with a non-blocking GET through the
 * worker's libcurl multi handle.
 */


#include "ngx_http_dss_bill.h"


static void ngx_http_dss_bill_health_refresh(ngx_event_t *ev);
static void ngx_http_dss_bill_health_probe_root(
    ngx_http_dss_bill_health_t *health);
static void ngx_http_dss_bill_health_probe_archive(
    ngx_http_dss_bill_health_t *health);
static void ngx_http_dss_bill_health_archive_done(
    ngx_http_dss_bill_transfer_t *t, dss_bill_outcome outcome);


static ngx_str_t  ngx_http_dss_bill_no_store = ngx_string("no-store");


ngx_int_t
ngx_http_dss_bill_health_handler(ngx_http_request_t *r,
    ngx_http_dss_bill_loc_conf_t *dlcf)
{
    ngx_int_t                    rc;
    ngx_http_dss_bill_health_t  *health = dlcf->health;

    /* H3: the cached verdicts; no storage or archive access here (H4) */

    if ((health->root.len && !health->root_healthy)
        || (health->probe_url.len && !health->archive_healthy
            && !health->archive_optional))
    {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    if (ngx_http_dss_bill_set_cache_control(r, &ngx_http_dss_bill_no_store)
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
ngx_http_dss_bill_health_create(ngx_conf_t *cf,
    ngx_http_dss_bill_loc_conf_t *dlcf)
{
    ngx_http_dss_bill_health_t  *health;

    health = ngx_pcalloc(cf->pool, sizeof(ngx_http_dss_bill_health_t));
    if (health == NULL) {
        return NULL;
    }

    health->root = dlcf->root;
    health->interval = dlcf->health_interval;
    health->location = dlcf->location;

    if (dlcf->upstream
        && ngx_strcmp(dlcf->upstream_health_url.data, "off") != 0)
    {
        health->probe_url = dlcf->upstream_health_url;
        health->options = &dlcf->upstream_options;
    }

    /* dss_bill_health_archive cache: the cache serves through an outage */

    health->archive_optional =
        (dlcf->cache
         && dlcf->health_archive == NGX_HTTP_DSS_BILL_HEALTH_ARCHIVE_CACHE);

    /* until a probe says otherwise, a new worker serves (zero-downtime
     * reloads must not flap a load balancer) */

    health->archive_healthy = 1;

    return health;
}


/* Runs in each worker after the fork: probe at once, then on a timer. */

ngx_int_t
ngx_http_dss_bill_health_start(ngx_cycle_t *cycle, ngx_array_t *healths)
{
    ngx_uint_t                    i;
    ngx_http_dss_bill_health_t  **health, *h;

    health = healths->elts;

    for (i = 0; i < healths->nelts; i++) {
        h = health[i];

        h->log = cycle->log;

        h->timer.handler = ngx_http_dss_bill_health_refresh;
        h->timer.data = h;
        h->timer.log = cycle->log;

        /* a pending probe must not hold up a graceful shutdown */
        h->timer.cancelable = 1;

        h->probe.done = ngx_http_dss_bill_health_archive_done;
        h->probe.data = h;

        /* the root now, so that the first health answer is true */
        ngx_http_dss_bill_health_probe_root(h);

        /*
         * the archive from the event loop, at once: started here, the
         * probe's first step would wait, as a posted event, until
         * something woke the worker (until then the archive counts as up)
         */

        ngx_add_timer(&h->timer, 0);
    }

    return NGX_OK;
}


void
ngx_http_dss_bill_health_stop(ngx_array_t *healths)
{
    ngx_uint_t                    i;
    ngx_http_dss_bill_health_t  **health;

    health = healths->elts;

    for (i = 0; i < healths->nelts; i++) {
        ngx_http_dss_bill_transfer_cancel(&health[i]->probe);
    }
}


static void
ngx_http_dss_bill_health_refresh(ngx_event_t *ev)
{
    ngx_http_dss_bill_health_t  *health = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_http_dss_bill_health_probe_root(health);
    ngx_http_dss_bill_health_probe_archive(health);

    ngx_add_timer(ev, health->interval);
}


static void
ngx_http_dss_bill_health_probe_root(ngx_http_dss_bill_health_t *health)
{
    ngx_flag_t  healthy;

    if (health->root.len == 0) {
        return;
    }

    healthy = dss_bill_probe_root((const char *) health->root.data,
                                  (char *) health->reason,
                                  sizeof(health->reason));

    /* log transitions only: a probe runs every few seconds */

    if (healthy && health->root_probed && !health->root_healthy) {
        ngx_log_error(NGX_LOG_NOTICE, health->log, 0,
                      "dss_bill: document root \"%V\" is healthy again",
                      &health->root);

    } else if (!healthy && (!health->root_probed || health->root_healthy)) {
        ngx_log_error(NGX_LOG_ERR, health->log, 0,
                      "dss_bill: document root \"%V\" is unhealthy: %s",
                      &health->root, health->reason);
    }

    health->root_healthy = healthy;
    health->root_probed = 1;
}


static void
ngx_http_dss_bill_health_probe_archive(ngx_http_dss_bill_health_t *health)
{
    if (health->probe_url.len == 0 || health->probe.active) {
        return;
    }

    /* the previous probe's fetch goes back to the pool first */

    ngx_http_dss_bill_transfer_release(&health->probe);

    if (ngx_http_dss_bill_transfer_start(&health->probe, health->options,
                                         (const char *) health->probe_url.data,
                                         1, health->log)
        != NGX_OK)
    {
        health->archive_healthy = 0;
    }
}


/* Any HTTP answer below 500 means the archive is up and serving. */

static void
ngx_http_dss_bill_health_archive_done(ngx_http_dss_bill_transfer_t *t,
    dss_bill_outcome outcome)
{
    long                         status;
    ngx_flag_t                   healthy;
    ngx_http_dss_bill_health_t  *health = t->data;

    status = dss_bill_fetch_status(t->fetch);
    healthy = (status > 0 && status < 500);

    /* a signed probe's 403 is a signature, clock or key failure */
    if (health->options->s3) {
        healthy = (status >= 200 && status < 300);
    }

    if (healthy && health->archive_probed && !health->archive_healthy) {
        ngx_log_error(NGX_LOG_NOTICE, health->log, 0,
                      "dss_bill: archive \"%V\" is healthy again",
                      &health->probe_url);

    } else if (!healthy && (!health->archive_probed || health->archive_healthy))
    {
        ngx_log_error(NGX_LOG_ERR, health->log, 0,
                      "dss_bill: archive \"%V\" is unhealthy: %s",
                      &health->probe_url, dss_bill_fetch_detail(t->fetch));
    }

    health->archive_healthy = healthy;
    health->archive_probed = 1;

    ngx_http_dss_bill_transfer_release(t);
}

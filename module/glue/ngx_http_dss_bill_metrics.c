
/*
 * Metrics: the counters in a shared-memory zone (exact across workers and
 * reloads), counted once per request in the log phase from what the request
 * ended as (ngx_http_dss_bill_variables.c), and the "dss_bill_metrics"
 * endpoint that renders them for Prometheus. On the request path: atomic
 * increments only, no lock, no allocation.
 */


#include "ngx_http_dss_bill.h"

#include <nginx.h>


#define NGX_HTTP_DSS_BILL_METRICS_ZONE_SIZE  (128 * 1024)
#define NGX_HTTP_DSS_BILL_FLIGHT_SLOTS       64
#define NGX_HTTP_DSS_BILL_METRICS_MAGIC                                      \
    (0x4453534d00000000ULL + (NGX_HTTP_DSS_BILL_FLIGHT_SLOTS << 20)         \
     + DSS_BILL_M_COUNT)                           /* "DSSM" and the layout */


/*
 * A worker's fetches in flight, in a slot of its own: a worker that dies
 * mid-fetch (killed, crashed) takes its count with it instead of leaving
 * the gauge high for good.
 */
typedef struct {
    ngx_atomic_t                  pid;           /* 0: free */
    ngx_atomic_t                  in_flight;
} ngx_http_dss_bill_flight_slot_t;


/* The zone's content: the core's counter layout, as atomics. */
typedef struct {
    uint64_t                         magic;
    ngx_atomic_t                     values[DSS_BILL_M_COUNT];
    ngx_http_dss_bill_flight_slot_t  flights[NGX_HTTP_DSS_BILL_FLIGHT_SLOTS];
} ngx_http_dss_bill_counters_t;


static ngx_int_t ngx_http_dss_bill_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_dss_bill_metrics_log(ngx_http_request_t *r);
static ngx_int_t ngx_http_dss_bill_metrics_handler(ngx_http_request_t *r);
static ngx_http_dss_bill_counters_t *ngx_http_dss_bill_counters(
    ngx_http_request_t *r);
static ngx_atomic_t *ngx_http_dss_bill_in_flight(
    ngx_http_dss_bill_counters_t *counters);


/* this worker's slot for its fetches in flight (per process, as nginx's
 * lifecycle goes); -1: none, the zone's shared count is used */
static ngx_int_t  ngx_http_dss_bill_flight_slot = -1;


static ngx_str_t  ngx_http_dss_bill_metrics_zone_name =
    ngx_string("dss_bill_metrics");
static ngx_str_t  ngx_http_dss_bill_metrics_type =
    ngx_string("text/plain; version=0.0.4; charset=utf-8");
static ngx_str_t  ngx_http_dss_bill_metrics_no_store = ngx_string("no-store");
static ngx_str_t  ngx_http_dss_bill_cache_control = ngx_string("Cache-Control");


/* ---- archive fetches: in flight, and how long they took ---------------- */


/* An archive fetch started: counted in flight until it ends. */

void
ngx_http_dss_bill_fetch_begin(ngx_http_request_t *r)
{
    ngx_http_dss_bill_ctx_t       *ctx;
    ngx_http_dss_bill_counters_t  *counters;

    ctx = ngx_http_dss_bill_ctx(r);

    if (ctx == NULL || ctx->fetching) {
        return;
    }

    ctx->source = DSS_BILL_SOURCE_ARCHIVE;
    ctx->archive_start = ngx_current_msec;
    ctx->fetching = 1;

    counters = ngx_http_dss_bill_counters(r);

    if (counters) {
        (void) ngx_atomic_fetch_add(
                      ngx_http_dss_bill_in_flight(counters), 1);
    }
}


/*
 * The fetch ended: with a verdict (observe: its duration goes into the
 * histogram), or cancelled because the client went away.
 */

void
ngx_http_dss_bill_fetch_end(ngx_http_request_t *r, dss_bill_fetch *fetch,
    ngx_uint_t observe)
{
    ngx_msec_t                     ms;
    ngx_http_dss_bill_ctx_t       *ctx;
    ngx_http_dss_bill_counters_t  *counters;

    ctx = ngx_http_dss_bill_ctx(r);

    if (ctx == NULL || !ctx->fetching) {
        return;
    }

    ms = ngx_current_msec - ctx->archive_start;

    ctx->fetching = 0;
    ctx->fetched = 1;
    ctx->archive_time = ms;
    ctx->archive_status = fetch ? (ngx_uint_t) dss_bill_fetch_status(fetch)
                                : 0;

    counters = ngx_http_dss_bill_counters(r);

    if (counters == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(ngx_http_dss_bill_in_flight(counters), -1);

    if (observe) {
        (void) ngx_atomic_fetch_add(
                      &counters->values[DSS_BILL_M_FETCH_BUCKETS
                                        + dss_bill_fetch_bucket(ms)], 1);
        (void) ngx_atomic_fetch_add(
                      &counters->values[DSS_BILL_M_FETCH_SUM_MS], ms);
    }
}


/*
 * A worker takes a slot for its fetches in flight: a free one, or one whose
 * worker is gone (it died with fetches in flight: they ended with it).
 */

void
ngx_http_dss_bill_metrics_worker_start(ngx_cycle_t *cycle)
{
    ngx_pid_t                         pid;
    ngx_uint_t                        i;
    ngx_http_dss_bill_counters_t     *counters;
    ngx_http_dss_bill_main_conf_t    *dmcf;
    ngx_http_dss_bill_flight_slot_t  *slot;

    ngx_http_dss_bill_flight_slot = -1;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_dss_bill_module);
    if (dmcf == NULL || dmcf->metrics_zone == NULL
        || dmcf->metrics_zone->data == NULL)
    {
        return;
    }

    counters = dmcf->metrics_zone->data;

    for (i = 0; i < NGX_HTTP_DSS_BILL_FLIGHT_SLOTS; i++) {
        slot = &counters->flights[i];
        pid = (ngx_pid_t) slot->pid;

        if (pid != 0 && (kill(pid, 0) == 0 || ngx_errno != NGX_ESRCH)) {
            continue;                               /* a live worker's */
        }

        if (ngx_atomic_cmp_set(&slot->pid, (ngx_atomic_uint_t) pid,
                               (ngx_atomic_uint_t) ngx_pid))
        {
            slot->in_flight = 0;
            ngx_http_dss_bill_flight_slot = i;
            return;
        }
    }

    ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                  "dss_bill: all %d metrics slots for fetches in flight are "
                  "taken (workers of many reloads still running); this "
                  "worker counts in the shared one",
                  NGX_HTTP_DSS_BILL_FLIGHT_SLOTS);
}


/* An exiting worker gives its slot back (its fetches ended before). */

void
ngx_http_dss_bill_metrics_worker_exit(ngx_cycle_t *cycle)
{
    ngx_http_dss_bill_counters_t     *counters;
    ngx_http_dss_bill_main_conf_t    *dmcf;
    ngx_http_dss_bill_flight_slot_t  *slot;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_dss_bill_module);

    if (ngx_http_dss_bill_flight_slot < 0 || dmcf == NULL
        || dmcf->metrics_zone == NULL || dmcf->metrics_zone->data == NULL)
    {
        return;
    }

    counters = dmcf->metrics_zone->data;
    slot = &counters->flights[ngx_http_dss_bill_flight_slot];

    ngx_http_dss_bill_flight_slot = -1;

    if (slot->pid == (ngx_atomic_uint_t) ngx_pid) {
        slot->in_flight = 0;
        (void) ngx_atomic_cmp_set(&slot->pid, (ngx_atomic_uint_t) ngx_pid, 0);
    }
}


/* Where this worker counts its fetches in flight. */

static ngx_atomic_t *
ngx_http_dss_bill_in_flight(ngx_http_dss_bill_counters_t *counters)
{
    if (ngx_http_dss_bill_flight_slot < 0) {
        return &counters->values[DSS_BILL_M_FETCHES_IN_FLIGHT];
    }

    return &counters->flights[ngx_http_dss_bill_flight_slot].in_flight;
}


/* The fetches in flight now: the live workers' slots, and the shared one. */

static uint64_t
ngx_http_dss_bill_in_flight_now(ngx_http_dss_bill_counters_t *counters)
{
    int64_t                           sum;
    ngx_pid_t                         pid;
    ngx_uint_t                        i;
    ngx_http_dss_bill_flight_slot_t  *slot;

    sum = (int64_t) counters->values[DSS_BILL_M_FETCHES_IN_FLIGHT];

    for (i = 0; i < NGX_HTTP_DSS_BILL_FLIGHT_SLOTS; i++) {
        slot = &counters->flights[i];
        pid = (ngx_pid_t) slot->pid;

        if (pid == 0 || (kill(pid, 0) == -1 && ngx_errno == NGX_ESRCH)) {
            continue;                               /* a dead worker's */
        }

        sum += (int64_t) slot->in_flight;
    }

    return (uint64_t) sum;
}


/* ---- counting: once per request, in the log phase ---------------------- */


static ngx_http_dss_bill_counters_t *
ngx_http_dss_bill_counters(ngx_http_request_t *r)
{
    ngx_http_dss_bill_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dss_bill_module);

    if (dmcf == NULL || dmcf->metrics_zone == NULL) {
        return NULL;
    }

    return dmcf->metrics_zone->data;
}


static ngx_int_t
ngx_http_dss_bill_metrics_log(ngx_http_request_t *r)
{
    off_t                          sent;
    ngx_int_t                      result;
    ngx_http_dss_bill_ctx_t       *ctx;
    ngx_http_dss_bill_counters_t  *counters;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_dss_bill_ctx(r);

    if (ctx == NULL) {
        return NGX_OK;      /* not a dss_bill request */
    }

    counters = ngx_http_dss_bill_counters(r);

    if (counters == NULL) {
        return NGX_OK;
    }

    result = ngx_http_dss_bill_result(r, ctx);

    (void) ngx_atomic_fetch_add(
                  &counters->values[DSS_BILL_M_REQUEST(ctx->route, result,
                        dss_bill_metric_status_index(r->headers_out.status))],
                  1);

    /* a bill's bytes as $body_bytes_sent counts them (D3) */

    if (ctx->decided && ctx->outcome == DSS_BILL_OK && ctx->source) {
        sent = r->connection->sent - r->header_size;

        if (sent > 0) {
            (void) ngx_atomic_fetch_add(
                          &counters->values[DSS_BILL_M_BYTES + ctx->source],
                          sent);
        }
    }

    return NGX_OK;
}


/* ---- configuration: directives, the zone, the log-phase handler -------- */


char *
ngx_http_dss_bill_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dss_bill_loc_conf_t *dlcf = conf;

    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_dss_bill_main_conf_t  *dmcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_http_dss_bill_metrics_handler) {
        return "is duplicate";
    }

    if (dlcf->enabled || clcf->handler) {
        return "needs a location of its own, without \"dss_bill\" or "
               "another content handler";
    }

    clcf->handler = ngx_http_dss_bill_metrics_handler;

    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_dss_bill_module);
    dmcf->metrics = 1;

    return NGX_CONF_OK;
}


char *
ngx_http_dss_bill_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_dss_bill_main_conf_t *dmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (dmcf->metrics_zone_size) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dss_bill_metrics_zone\" has an invalid size "
                           "\"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dss_bill_metrics_zone\" of %V is too small: "
                           "at least %uz", &value[1], 8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    dmcf->metrics_zone_size = size;

    return NGX_CONF_OK;
}


/*
 * Postconfiguration: with a "dss_bill_metrics" anywhere, the zone (nginx
 * keeps a zone of the same name, size and tag across a reload, and hands
 * the old counters to the init below) and the log-phase counter. Without
 * one, nothing is counted at all.
 */

ngx_int_t
ngx_http_dss_bill_metrics_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt            *h;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_dss_bill_main_conf_t  *dmcf;

    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_dss_bill_module);

    if (!dmcf->metrics) {
        return NGX_OK;
    }

    if (dmcf->metrics_zone_size == 0) {     /* 0: not set */
        dmcf->metrics_zone_size = NGX_HTTP_DSS_BILL_METRICS_ZONE_SIZE;
    }

    dmcf->metrics_zone = ngx_shared_memory_add(cf,
                                       &ngx_http_dss_bill_metrics_zone_name,
                                       dmcf->metrics_zone_size,
                                       &ngx_http_dss_bill_module);
    if (dmcf->metrics_zone == NULL) {
        return NGX_ERROR;
    }

    dmcf->metrics_zone->init = ngx_http_dss_bill_metrics_init_zone;
    dmcf->metrics_zone->data = NULL;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_dss_bill_metrics_log;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dss_bill_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_dss_bill_counters_t *ocounters = data;

    ngx_slab_pool_t               *shpool;
    ngx_http_dss_bill_counters_t  *counters;

    /* a reload: the same zone, the counters go on */

    if (ocounters && ocounters->magic == NGX_HTTP_DSS_BILL_METRICS_MAGIC) {
        shm_zone->data = ocounters;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists && shpool->data) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    counters = ngx_slab_calloc(shpool, sizeof(ngx_http_dss_bill_counters_t));
    if (counters == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "\"dss_bill_metrics_zone\" of %uz is too small for "
                      "the counters", shm_zone->shm.size);
        return NGX_ERROR;
    }

    counters->magic = NGX_HTTP_DSS_BILL_METRICS_MAGIC;

    shpool->data = counters;
    shm_zone->data = counters;

    return NGX_OK;
}


/* ---- the archive cache's events, and its zones' sizes ------------------ */


void
ngx_http_dss_bill_count_cache(ngx_http_request_t *r,
    dss_bill_cache_event event)
{
    ngx_http_dss_bill_counters_t  *counters;

    counters = ngx_http_dss_bill_counters(r);

    if (counters) {
        (void) ngx_atomic_fetch_add(
                      &counters->values[DSS_BILL_M_CACHE + event], 1);
    }
}


/* Each dss_bill_cache_path zone as its keys zone says now (sizes there are
 * in file-system blocks). */

static dss_bill_cache_state *
ngx_http_dss_bill_cache_states(ngx_http_request_t *r,
    ngx_http_dss_bill_main_conf_t *dmcf)
{
    off_t                    max_blocks;
    ngx_uint_t               i;
    dss_bill_cache_state    *states;
    ngx_http_file_cache_t  **caches, *cache;

    states = ngx_pcalloc(r->pool,
                         (dmcf->caches.nelts + 1) * sizeof(dss_bill_cache_state));
    if (states == NULL) {
        return NULL;
    }

    caches = dmcf->caches.elts;

    for (i = 0; i < dmcf->caches.nelts; i++) {
        cache = caches[i];

        states[i].zone = (const char *) cache->shm_zone->shm.name.data;
        states[i].zone_len = cache->shm_zone->shm.name.len;

        if (cache->sh == NULL || cache->bsize == 0) {
            continue;
        }

        max_blocks = NGX_MAX_OFF_T_VALUE / (off_t) cache->bsize;
        states[i].max_size_bytes = (cache->max_size >= max_blocks)
                                   ? 0
                                   : (unsigned long long) cache->max_size
                                     * cache->bsize;

        ngx_shmtx_lock(&cache->shpool->mutex);
        states[i].size_bytes = (unsigned long long) cache->sh->size
                               * cache->bsize;
        states[i].entries = cache->sh->count;
        ngx_shmtx_unlock(&cache->shpool->mutex);
    }

    return states;
}


/* ---- the endpoint: "dss_bill_metrics" ---------------------------------- */


static ngx_int_t
ngx_http_dss_bill_metrics_handler(ngx_http_request_t *r)
{
    size_t                          len, n;
    uint64_t                       *values;
    ngx_int_t                       rc;
    ngx_uint_t                      i;
    ngx_buf_t                      *b;
    ngx_chain_t                     out;
    dss_bill_source_state          *src;
    dss_bill_metrics_snapshot       snapshot;
    ngx_http_dss_bill_health_t    **health;
    ngx_http_dss_bill_counters_t   *counters;
    ngx_http_dss_bill_main_conf_t  *dmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dss_bill_module);
    counters = ngx_http_dss_bill_counters(r);

    if (counters == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a copy: each counter is read once, atomically, without a lock */

    values = ngx_palloc(r->pool, DSS_BILL_M_COUNT * sizeof(uint64_t));
    if (values == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < DSS_BILL_M_COUNT; i++) {
        values[i] = counters->values[i];
    }

    values[DSS_BILL_M_FETCHES_IN_FLIGHT] =
                                 ngx_http_dss_bill_in_flight_now(counters);

    /* the sources as this worker's probes see them (what its health
     * route answers from) */

    src = ngx_pcalloc(r->pool,
                      (dmcf->healths.nelts + 1) * sizeof(dss_bill_source_state));
    if (src == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    health = dmcf->healths.elts;

    for (i = 0; i < dmcf->healths.nelts; i++) {
        src[i].location = (const char *) health[i]->location.data;
        src[i].location_len = health[i]->location.len;
        src[i].has_root = health[i]->root.len != 0;
        src[i].root_up = health[i]->root_healthy != 0;
        src[i].has_archive = health[i]->probe_url.len != 0;
        src[i].archive_up = health[i]->archive_healthy != 0;
    }

    snapshot.values = values;
    snapshot.sources = src;
    snapshot.source_count = dmcf->healths.nelts;
    snapshot.caches = ngx_http_dss_bill_cache_states(r, dmcf);
    snapshot.cache_count = dmcf->caches.nelts;

    if (snapshot.caches == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    snapshot.server_version = NGINX_VERSION;

    len = dss_bill_metrics_render(&snapshot, NULL, 0);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = dss_bill_metrics_render(&snapshot, (char *) b->pos, len);
    if (n != len) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = b->pos + len;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    if (ngx_http_dss_bill_add_header(r, &ngx_http_dss_bill_cache_control,
                                     &ngx_http_dss_bill_metrics_no_store)
        == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type = ngx_http_dss_bill_metrics_type;
    r->headers_out.content_type_len = ngx_http_dss_bill_metrics_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}

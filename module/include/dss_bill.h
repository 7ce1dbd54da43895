/*
 * dss_bill.h: the C boundary between the nginx glue and the C++ core.
 *
 * Plain C types only: no nginx types, no C++ types. Every function is
 * implemented in C++ and never lets an exception out. Nothing here allocates:
 * callers own every buffer.
 */

#ifndef DSS_BILL_H
#define DSS_BILL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- bill-id rule (D2, D5) ------------------------------------------- */

#define DSS_BILL_ID_DEFAULT_CHARS "A-Za-z0-9_-"
#define DSS_BILL_ID_DEFAULT_MIN 1
#define DSS_BILL_ID_DEFAULT_MAX 64
/* An id is one path segment inside a file name: never longer than this. */
#define DSS_BILL_ID_LIMIT 200

typedef struct {
    uint8_t allowed[32]; /* bitmap over byte values */
    size_t min_length;
    size_t max_length;
} dss_bill_id_rule;

/* The default rule: 1 to 64 characters of A-Z a-z 0-9 - _. */
void dss_bill_id_rule_default(dss_bill_id_rule *rule);

/*
 * Sets the allowed characters from a class such as "A-Za-z0-9_-" (ranges and
 * single characters; a '-' first or last is literal). An id is used in a
 * file name and a URL path without escaping, so only letters, digits and
 * -_~!$&'()*+,;=:@ may be allowed; anything else ('/', '.', '%', '?', '#',
 * quotes, brackets, space, controls, non-ASCII) is refused. Returns 0, or -1
 * with a reason in err.
 */
int dss_bill_id_rule_set_chars(dss_bill_id_rule *rule, const char *spec,
                               size_t spec_len, char *err, size_t err_size);

/* Sets the length bounds: 1 <= min <= max <= DSS_BILL_ID_LIMIT. */
int dss_bill_id_rule_set_length(dss_bill_id_rule *rule, size_t min_length,
                                size_t max_length, char *err, size_t err_size);

/* 1 when id (not NUL-terminated, may contain NUL) satisfies the rule. */
int dss_bill_id_is_valid(const dss_bill_id_rule *rule, const char *id,
                         size_t id_len);

/* ---- routes under a dss_bill location --------------------------------- */

typedef enum {
    DSS_BILL_ROUTE_NONE = 0, /* anything else: 404 */
    DSS_BILL_ROUTE_HEALTH,   /* <prefix>/healthcheck */
    DSS_BILL_ROUTE_DOWNLOAD  /* <prefix>/download/<id> */
} dss_bill_route_kind;

typedef struct {
    dss_bill_route_kind kind;
    const char *id; /* DOWNLOAD: points into the uri; not validated */
    size_t id_len;
} dss_bill_route;

/*
 * The part of a location's name that the routes hang off: the name itself,
 * less a trailing "healthcheck" or "download/" so that an exact location
 * such as "= /dss/bill/healthcheck" (kept outside auth_basic, H1) routes
 * like the prefix location "/dss/bill/".
 */
size_t dss_bill_route_base_len(const char *location, size_t location_len);

/*
 * Classifies a decoded request path below the route base. The id is
 * everything after "download/", so "download/a/b" yields the id "a/b", which
 * the id rule then refuses.
 */
dss_bill_route dss_bill_route_parse(const char *uri, size_t uri_len,
                                    size_t base_len);

/* ---- file path under the document root --------------------------------- */

/*
 * 1 when a relative path produced by dss_bill_path is safe to append to the
 * root: not empty, no NUL, no backslash, no "." or ".." segment, not
 * absolute.
 */
int dss_bill_relative_path_is_safe(const char *rel, size_t rel_len);

/*
 * Checks a dss_bill_path value as configured: relative, no backslash, at
 * least one variable (else every bill id names the same file), and no
 * segment without a variable that is empty, "." or "..". Segments with a
 * variable are checked per request by dss_bill_relative_path_is_safe().
 * Returns 0, or -1 with a reason.
 */
int dss_bill_path_template_check(const char *value, size_t value_len,
                                 char *err, size_t err_size);

/*
 * Writes root + '/' + rel + NUL into out (out_size >= root_len + rel_len + 2)
 * with exactly one slash between them. Returns the length without the NUL,
 * or 0 when out is too small.
 */
size_t dss_bill_join_path(const char *root, size_t root_len, const char *rel,
                          size_t rel_len, char *out, size_t out_size);

/* ---- outcomes: what happened -> status + reason (D3-D7) ---------------- */

typedef enum {
    DSS_BILL_OK = 0,
    /* 404: no bill document for that id (D5) */
    DSS_BILL_INVALID_ID,
    DSS_BILL_ABSENT,
    DSS_BILL_NOT_REGULAR_FILE,
    DSS_BILL_SYMLINK_REFUSED,
    DSS_BILL_UNSAFE_PATH,
    /* 500: anything else (D4, D6) */
    DSS_BILL_UNREADABLE,
    DSS_BILL_STORAGE_ERROR,
    DSS_BILL_EMPTY,
    DSS_BILL_TOO_LARGE,
    DSS_BILL_NOT_PDF,
    DSS_BILL_INTERNAL_ERROR,
    /* archive source (dss_bill_upstream) */
    DSS_BILL_UPSTREAM_NOT_FOUND,    /* 404: the archive said 404 or 410 */
    DSS_BILL_UPSTREAM_STATUS,       /* 500: any other status */
    DSS_BILL_UPSTREAM_REDIRECT,     /* 500: 3xx not followed */
    DSS_BILL_UPSTREAM_TIMEOUT,      /* 500 */
    DSS_BILL_UPSTREAM_CONNECT,      /* 500: refused, unreachable */
    DSS_BILL_UPSTREAM_RESOLVE,      /* 500: DNS */
    DSS_BILL_UPSTREAM_TLS,          /* 500: handshake, verification */
    DSS_BILL_UPSTREAM_TRUNCATED,    /* 500: reset, short body */
    DSS_BILL_UPSTREAM_ERROR,        /* 500: anything else libcurl reports */
    DSS_BILL_TEMP_FILE_ERROR,       /* 500: cannot buffer the body */
    DSS_BILL_INCOMPLETE_PDF,        /* 500: no %%EOF near the end (D8) */
    DSS_BILL_UPSTREAM_FRAMING       /* 500: duplicate or conflicting
                                       Content-Length / chunked (D8) */
} dss_bill_outcome;

#define DSS_BILL_OUTCOME_LAST DSS_BILL_UPSTREAM_FRAMING

typedef enum {
    DSS_BILL_SEVERITY_NONE = 0, /* nothing to log */
    DSS_BILL_SEVERITY_NOT_FOUND, /* logged unless log_not_found is off */
    DSS_BILL_SEVERITY_ERROR,     /* operator must look: bad data */
    DSS_BILL_SEVERITY_CRIT       /* storage itself is failing */
} dss_bill_severity;

/* The HTTP status the contract gives the outcome: 200, 404 or 500. */
int dss_bill_outcome_status(dss_bill_outcome outcome);

/* A short reason for the error log, e.g. "bill exceeds dss_bill_max_size". */
const char *dss_bill_outcome_reason(dss_bill_outcome outcome);

dss_bill_severity dss_bill_outcome_severity(dss_bill_outcome outcome);

/* Maps the errno of a failed open of the bill file. */
dss_bill_outcome dss_bill_outcome_from_open_errno(int err);

/* Checks what stat said about an opened bill against the size limit. */
dss_bill_outcome dss_bill_check_file(int is_file, long long size,
                                     long long max_size);

/* ---- PDF checks (D8) --------------------------------------------------- */

#define DSS_BILL_PDF_SIGNATURE_LEN 5
/* "%%EOF" must stand within this many bytes of the end (what PDF readers
 * accept as the end of a file). */
#define DSS_BILL_PDF_TAIL_LEN 1024

typedef enum {
    DSS_BILL_PDF_CHECK_SIGNATURE = 0, /* starts with "%PDF-" */
    DSS_BILL_PDF_CHECK_COMPLETE       /* and "%%EOF" in the last 1024 bytes */
} dss_bill_pdf_check;

/* 1 when the first bytes are "%PDF-". */
int dss_bill_is_pdf_signature(const unsigned char *head, size_t len);

/* Where the tail that dss_bill_pdf_verdict() wants starts in a body of
 * size bytes: max(0, size - DSS_BILL_PDF_TAIL_LEN). */
long long dss_bill_pdf_tail_offset(long long size);

/*
 * The verdict on a body of size bytes from its first head_len bytes and its
 * last tail_len bytes (tail_len must be size - dss_bill_pdf_tail_offset(),
 * else the body counts as incomplete): DSS_BILL_OK, DSS_BILL_EMPTY,
 * DSS_BILL_NOT_PDF or DSS_BILL_INCOMPLETE_PDF.
 */
dss_bill_outcome dss_bill_pdf_verdict(dss_bill_pdf_check check,
                                      long long size,
                                      const unsigned char *head,
                                      size_t head_len,
                                      const unsigned char *tail,
                                      size_t tail_len);

/* ---- archive source: one fetch around a libcurl easy handle ----------- */

/* ---- the archive's TLS files (nginx -t) --------------------------------- */

typedef enum {
    DSS_BILL_TLS_CA_BUNDLE = 0, /* at least one certificate */
    DSS_BILL_TLS_CERTIFICATE,   /* a certificate (chain) */
    DSS_BILL_TLS_PRIVATE_KEY    /* an unencrypted private key */
} dss_bill_tls_kind;

/* PEM text read from a file, kept in memory (not NUL-terminated). */
typedef struct {
    const unsigned char *data; /* NULL: not configured */
    size_t len;
} dss_bill_pem;

/* Checks that pem holds what kind needs. Returns 0, or -1 with a reason. */
int dss_bill_tls_check(dss_bill_tls_kind kind, const unsigned char *pem,
                       size_t len, char *err, size_t err_size);

/* Checks that the key belongs to the (first) certificate. 0 or -1. */
int dss_bill_tls_check_pair(const unsigned char *cert, size_t cert_len,
                            const unsigned char *key, size_t key_len,
                            char *err, size_t err_size);

/* ---- archive options ----------------------------------------------------- */

/* Options of a dss_bill_upstream location, fixed at configuration time. */
typedef struct {
    long connect_timeout_ms;
    long timeout_ms;          /* the whole fetch */
    long long max_size;       /* dss_bill_max_size */
    size_t buffer_size;       /* body bytes held in memory before spilling */
    const char *temp_dir;     /* where a larger body spills (unnamed file) */
    int ssl_verify;           /* verify the archive's certificate and name */
    dss_bill_pem ssl_trusted_certificate; /* CAs; none: the system store */
    dss_bill_pem ssl_certificate;         /* client certificate, or none */
    dss_bill_pem ssl_certificate_key;     /* its key, or none */
    const char *basic_auth;   /* "user:password", or NULL */
    const char *const *headers; /* NULL-terminated "Name: value" lines */
    long max_redirects;       /* 0: redirects are an error */
    int keepalive;            /* reuse connections (D9: see the README) */
    dss_bill_pdf_check pdf_check; /* dss_bill_pdf_check */
    const struct dss_bill_s3_options_s *s3; /* SigV4 signing, or NULL */
} dss_bill_upstream_options;

/* Checks a dss_bill_upstream URL as written in the configuration: http or
 * https, a host, no credentials in it. Returns 0, or -1 with a reason. */
int dss_bill_upstream_url_check(const char *url, size_t url_len, char *err,
                                size_t err_size);

/* The archive's base ("https://host:port/") from a configured URL, for the
 * default health probe. Returns its length, or 0 when the scheme or host
 * holds a variable ('$') or out is too small. */
size_t dss_bill_upstream_url_base(const char *url, size_t url_len, char *out,
                                  size_t out_size);

/* 1 when both URLs have the same origin (scheme, host, port; default ports
 * filled in), 0 otherwise or when either does not parse (D9). */
int dss_bill_same_origin(const char *a, const char *b);

typedef struct dss_bill_fetch_s dss_bill_fetch;

/*
 * A per-worker pool of fetches: easy handles, buffers and temporary files
 * are reused. Bodies may grow in memory beyond their buffer_size while, all
 * together (pooled fetches keep what they grew), they hold less than
 * memory_budget bytes more; past that they spill to temporary files.
 */
typedef struct dss_bill_fetch_pool_s dss_bill_fetch_pool;

dss_bill_fetch_pool *dss_bill_fetch_pool_create(size_t max_idle,
                                                size_t memory_budget);
void dss_bill_fetch_pool_destroy(dss_bill_fetch_pool *pool);

/* Takes a fetch from the pool, set up for url (NUL-terminated). Returns NULL
 * on failure with a reason in err. */
dss_bill_fetch *dss_bill_fetch_start(dss_bill_fetch_pool *pool,
                                     const dss_bill_upstream_options *options,
                                     const char *url, int probe, char *err,
                                     size_t err_size);

/* The libcurl easy handle (CURL *) to add to the multi handle. */
void *dss_bill_fetch_easy(dss_bill_fetch *fetch);

/*
 * After a transfer ended (result: its CURLcode): 1 when it was a redirect
 * that this fetch follows (dss_bill_upstream_redirects). The fetch is then
 * aimed at the target, without the archive's headers and credentials when
 * the target is another origin (D9), and the caller adds the easy handle
 * to the multi handle again. 0 otherwise.
 */
int dss_bill_fetch_redirected(dss_bill_fetch *fetch, int result);

/* Classifies a finished transfer (result: its CURLcode), checking a 200's
 * body with the options' pdf_check (D8). */
dss_bill_outcome dss_bill_fetch_finish(dss_bill_fetch *fetch, int result);

/* The archive's HTTP status (0 if none was received). */
long dss_bill_fetch_status(const dss_bill_fetch *fetch);

/* One line for the error log about what went wrong (libcurl's reason, the
 * archive's status), never credentials. */
const char *dss_bill_fetch_detail(const dss_bill_fetch *fetch);

/* The body after a DSS_BILL_OK finish: in memory (fd < 0, data/size) or in
 * an unnamed temporary file (fd >= 0, bytes 0..size). Both stay untouched
 * until dss_bill_fetch_release(): a file is never reused, since sendfile
 * leaves its pages referenced by the socket after nginx is done (D9). */
typedef struct {
    const unsigned char *data;
    int fd;
    long long size;
} dss_bill_body;

dss_bill_body dss_bill_fetch_body(const dss_bill_fetch *fetch);

/* Returns the fetch to its pool (closes its temporary file). Call it only
 * when nothing references the body any more (the request's pool is being
 * destroyed). */
void dss_bill_fetch_release(dss_bill_fetch *fetch);

/* ---- object stores: S3 Signature V4 (dss_bill_upstream_s3) ------------ */

/* How an archive fetch signs its requests (AWS Signature Version 4). */
typedef struct dss_bill_s3_options_s {
    const char *region;            /* e.g. "eu-west-1" */
    const char *service;           /* "s3" */
    const char *access_key_id;
    const char *secret_access_key;
    const char *token_header;      /* "x-amz-security-token: ...", or NULL */
    int access_denied_is_missing;  /* 403 AccessDenied answers 404 */
} dss_bill_s3_options;

/* A part of a caller's text (not NUL-terminated). */
typedef struct {
    const char *data; /* NULL: absent */
    size_t len;
} dss_bill_text;

/* The keys of one profile, pointing into the parsed text. */
typedef struct {
    dss_bill_text access_key_id;
    dss_bill_text secret_access_key;
    dss_bill_text session_token;   /* optional */
} dss_bill_s3_credentials;

/*
 * Parses an AWS shared-credentials file ("[profile]" sections of
 * "key = value" lines; '#' and ';' start comment lines) and finds profile's
 * aws_access_key_id, aws_secret_access_key and aws_session_token. Returns 0,
 * or -1 with a reason in err that never quotes a value from the text.
 */
int dss_bill_s3_credentials_parse(const char *text, size_t len,
                                  const char *profile, size_t profile_len,
                                  dss_bill_s3_credentials *out, char *err,
                                  size_t err_size);

/* Checks a region or service name: 1 to 64 of a-z 0-9 '-' '_'. 0 or -1. */
int dss_bill_s3_name_check(const char *name, size_t len, char *err,
                           size_t err_size);

/* Checks a dss_bill_upstream URL for signing: no query, no fragment, no
 * '%' (keys are encoded by the module). 0 or -1 with a reason. */
int dss_bill_s3_url_check(const char *url, size_t url_len, char *err,
                          size_t err_size);

/*
 * Writes url with its path encoded the way SigV4 canonicalises it (every
 * byte but A-Z a-z 0-9 - . _ ~ and '/' as %XX, upper-case hex), so that the
 * path sent is the path signed; a query (from '?') is left as it is. Returns the length written (plus a
 * NUL), or 0 when out is too small (3 * url_len + 1 always suffices).
 */
size_t dss_bill_s3_encode_url(const char *url, size_t url_len, char *out,
                              size_t out_size);

/*
 * The bucket's URL for the health probe from a configured object URL, with
 * "?max-keys=0" (an empty listing): "https://b.s3.r.amazonaws.com/..."
 * (virtual-hosted: the host names the bucket) gives "https://b.s3.r...com/",
 * "https://host/bucket/..." (path-style) gives "https://host/bucket".
 * Returns the length, or 0 when the bucket part holds a variable or out is
 * too small.
 */
size_t dss_bill_s3_probe_url(const char *url, size_t url_len, char *out,
                             size_t out_size);

/*
 * The Authorization header's value that SigV4 gives a GET of url (its path
 * as dss_bill_s3_encode_url writes it) at amz_date ("YYYYMMDDTHHMMSSZ"),
 * signing host, x-amz-content-sha256 (the empty payload), x-amz-date, the
 * session token and the "Name: value" lines of headers (NULL-terminated,
 * may be NULL; an x-amz-date among them replaces amz_date). What every
 * archive fetch of a dss_bill_upstream_s3 location sends. Returns the
 * length written (plus a NUL), or 0.
 */
size_t dss_bill_s3_authorization(const dss_bill_s3_options *s3,
                                 const char *url, const char *amz_date,
                                 const char *const *headers, char *out,
                                 size_t out_size);

/*
 * Extracts <Code> and <Message> from an S3 error body (at most the first
 * len bytes are looked at), NUL-terminated and truncated to the buffers,
 * with anything but printable ASCII replaced by '?'. Returns 1 when a Code
 * was found, else 0 (code and message then empty).
 */
int dss_bill_s3_error_parse(const char *body, size_t len, char *code,
                            size_t code_size, char *message,
                            size_t message_size);
/* ---- archive cache entries (issue 9) ----------------------------------- */

/*
 * Writes a cache entry into the new file fd: header (header_len bytes) at
 * offset 0, then the bill's size bytes from body (memory or its file, which
 * is read from offset 0 and not moved). Returns 0, or an errno value (ENOSPC
 * on a full disk; ENODATA when the body's file is shorter than its size).
 */
int dss_bill_cache_write(int fd, const unsigned char *header,
                         size_t header_len, const dss_bill_body *body);

/* ---- document-root health probe (H3) ----------------------------------- */

/*
 * Checks that path is a directory this process can list and enter. Returns 1
 * when healthy; otherwise 0 with the reason in reason.
 */
int dss_bill_probe_root(const char *path, char *reason, size_t reason_size);

/* ---- observability: outcome labels, counters, exposition --------------- */

/* The module's version, as the package's (dss_bill_build_info). */
#define DSS_BILL_VERSION "0.1.0"

/* Where a bill came from ($dss_bill_source, response bytes by source). */
typedef enum {
    DSS_BILL_SOURCE_NONE = 0, /* no source was asked (bad id, no route) */
    DSS_BILL_SOURCE_ROOT,     /* dss_bill_root */
    DSS_BILL_SOURCE_ARCHIVE,  /* dss_bill_upstream */
    DSS_BILL_SOURCE_CACHE,    /* reserved: the archive cache (issue 9) */
    DSS_BILL_SOURCE_COUNT
} dss_bill_source;

/* "", "root", "archive", "cache". */
const char *dss_bill_source_name(dss_bill_source source);

/*
 * What a request to a dss_bill location ended as ($dss_bill_outcome, the
 * outcome label): every dss_bill_outcome (0 .. DSS_BILL_OUTCOME_LAST), then
 * the endings that are not a bill's.
 */
typedef enum {
    DSS_BILL_RESULT_HEALTHY = DSS_BILL_OUTCOME_LAST + 1, /* health 200 */
    DSS_BILL_RESULT_UNHEALTHY,          /* health 503 (H3) */
    DSS_BILL_RESULT_METHOD_NOT_ALLOWED, /* 405 (D7) */
    DSS_BILL_RESULT_NO_ROUTE,           /* 404: neither route */
    DSS_BILL_RESULT_CLIENT_GONE,        /* the client left before the end */
    DSS_BILL_RESULT_OTHER,              /* nginx ended it (bad body...) */
    DSS_BILL_RESULT_COUNT
} dss_bill_result;

/* The label of a result: "ok", "not_found", ..., "client_gone". */
const char *dss_bill_result_name(int result);

typedef enum {
    DSS_BILL_METRIC_ROUTE_DOWNLOAD = 0,
    DSS_BILL_METRIC_ROUTE_HEALTH,
    DSS_BILL_METRIC_ROUTE_OTHER, /* below the prefix, neither route */
    DSS_BILL_METRIC_ROUTE_COUNT
} dss_bill_metric_route;

/* The statuses the requests counter tells apart; any other counts as
 * "other" (the last index). */
#define DSS_BILL_METRIC_STATUS_COUNT 9

/* The status's index, 0 .. DSS_BILL_METRIC_STATUS_COUNT - 1. */
int dss_bill_metric_status_index(int status);

/* Archive fetch duration histogram: upper bounds in milliseconds (0.05 s to
 * 5 s, DSS's budget before the response must start, T4), then +Inf. */
#define DSS_BILL_FETCH_BUCKET_COUNT 10 /* 9 bounds and +Inf */

/* The bucket (not cumulative) a fetch of ms milliseconds falls into. */
int dss_bill_fetch_bucket(long long ms);

/* What the archive cache counts (issue 9). */
typedef enum {
    DSS_BILL_CACHE_HIT = 0,      /* served from a cache file */
    DSS_BILL_CACHE_MISS,         /* not there: fetched (or a fetch's failure) */
    DSS_BILL_CACHE_STORED,       /* a fetched bill entered the cache */
    DSS_BILL_CACHE_STORE_FAILED, /* it could not be written */
    DSS_BILL_CACHE_UNUSABLE,     /* a cache file failed the checks: removed */
    DSS_BILL_CACHE_EVENT_COUNT
} dss_bill_cache_event;

/* One cache zone (dss_bill_cache_path) as its keys zone says now. */
typedef struct {
    const char *zone; /* its name, not NUL-terminated */
    size_t zone_len;
    unsigned long long size_bytes; /* the files, as the manager counts them */
    unsigned long long max_size_bytes; /* 0: no max_size */
    unsigned long long entries;
} dss_bill_cache_state;

/*
 * The counters: one flat array of unsigned 64-bit values, laid out by these
 * indexes (the glue keeps the same layout in shared memory).
 */
#define DSS_BILL_M_REQUESTS 0 /* [route][result][status] */
#define DSS_BILL_M_REQUEST(route, result, status_index)                       \
    (DSS_BILL_M_REQUESTS                                                      \
     + ((route) * DSS_BILL_RESULT_COUNT + (result))                           \
           * DSS_BILL_METRIC_STATUS_COUNT                                     \
     + (status_index))
#define DSS_BILL_M_BYTES                                                      \
    (DSS_BILL_M_REQUESTS                                                      \
     + DSS_BILL_METRIC_ROUTE_COUNT * DSS_BILL_RESULT_COUNT                    \
           * DSS_BILL_METRIC_STATUS_COUNT) /* [source] */
#define DSS_BILL_M_FETCH_BUCKETS (DSS_BILL_M_BYTES + DSS_BILL_SOURCE_COUNT)
#define DSS_BILL_M_FETCH_SUM_MS                                               \
    (DSS_BILL_M_FETCH_BUCKETS + DSS_BILL_FETCH_BUCKET_COUNT)
#define DSS_BILL_M_FETCHES_IN_FLIGHT (DSS_BILL_M_FETCH_SUM_MS + 1) /* signed */
#define DSS_BILL_M_CACHE (DSS_BILL_M_FETCHES_IN_FLIGHT + 1) /* [event] */
#define DSS_BILL_M_COUNT (DSS_BILL_M_CACHE + DSS_BILL_CACHE_EVENT_COUNT)

/* One location's sources as this worker's health probes see them. */
typedef struct {
    const char *location; /* its name, not NUL-terminated */
    size_t location_len;
    int has_root, root_up;
    int has_archive, archive_up;
} dss_bill_source_state;

typedef struct {
    const uint64_t *values; /* DSS_BILL_M_COUNT counters */
    const dss_bill_source_state *sources;
    size_t source_count;
    const char *server_version; /* e.g. "1.22.1" */
    const dss_bill_cache_state *caches; /* the archive cache's zones */
    size_t cache_count;
} dss_bill_metrics_snapshot;

/*
 * Writes the Prometheus text exposition (format 0.0.4) of a snapshot into
 * out and returns its full length; when that is more than out_size, out
 * holds only a prefix and the caller calls again with a larger buffer
 * (out may be NULL with out_size 0 to measure).
 */
size_t dss_bill_metrics_render(const dss_bill_metrics_snapshot *snapshot,
                               char *out, size_t out_size);

#ifdef __cplusplus
}
#endif

#endif /* DSS_BILL_H */

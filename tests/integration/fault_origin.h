/* fault_origin: an HTTP/1.1 origin inside the test process that misbehaves
 * on request, for the archive faults a stock nginx cannot produce. Listens
 * on 127.0.0.1, one thread per connection, one response per connection.
 *
 * Paths (the last segment is what the module puts after the base URL):
 *   /ok-<id>             200, a PDF body of 2000 bytes with Content-Length
 *   /gated-<id>          the same once the test opens the gate (for
 *                        concurrency tests: every fetch parks there)
 *   /chunked-<id>        200, the PDF chunked
 *   /close-<id>          200, the PDF without a length, ended by close
 *   /slow-first-byte-<id> nothing for 3 s, then the PDF
 *   /slow-body-<id>      headers and 100 bytes, then 3 s of silence
 *   /stall-<id>          headers (1 MB announced), 1000 bytes, then silence
 *                        until the client goes away
 *   /reset-<id>          headers (1 MB announced), 1000 bytes, then a reset
 *   /short-<id>          announces 5000 bytes, sends 2000, closes
 *   /html-<id>           200 text/html
 *   /empty-<id>          200 with Content-Length: 0
 *   /huge-announced-<id> 200 announcing 10 MB, sends nothing more
 *   /huge-chunked-<id>   200 chunked, sends up to 64 MB until the client
 *                        stops reading
 *   /status-NNN-<id>     that status with a small HTML body
 *   /redirect-<id>       302 to /ok-<id>
 *
 * Keep-alive, framing and credential faults (bodies from fault_origin_bill:
 * distinct bytes for every id):
 *   /health              200 "ok", keep-alive; counted with its time, parked
 *                        while FAULT_ORIGIN_HOLD_HEALTH is held
 *   /b/<name>            the file <name> of fault_origin_serve_dir's folder,
 *                        keep-alive, or 404; a name starting with "held" is
 *                        parked while FAULT_ORIGIN_HOLD_BILLS is held
 *   /ka-<id>             200, fault_origin_bill(<id>, FAULT_ORIGIN_KA_SIZE)
 *                        with Content-Length; the connection stays open
 *                        for further requests
 *   /ka-excess-<id>      the same and one more complete, unsolicited 200
 *                        (bill "E-<id>"), in one write
 *   /ka-late-<id>        the same, the unsolicited 200 ~20 ms later
 *   /ka-unsolicited-<id> the same, then ~50 ms later one more complete,
 *                        unsolicited 200 (bill "E-<id>") on the same
 *                        connection, which stays open for further requests
 *                        (fault_origin_unsolicited_sent counts them)
 *   /cut-close-<id>      HTTP/1.0 200 without a length: the first 8000 bytes
 *                        of fault_origin_bill(<id>, 20000), then a clean close
 *   /dup-length-<id>     Content-Length: 20000 and Content-Length: 10, then
 *                        the 20000 bytes
 *   /dup-same-length-<id> Content-Length: 20000 twice, then the 20000 bytes
 *   /list-length-<id>    Content-Length: 20000, 40000 (one line), then the
 *                        20000 bytes
 *   /signed-length-<id>  Content-Length: +20000, then the 20000 bytes
 *   /cl-chunked-<id>     Content-Length: 20000 and Transfer-Encoding:
 *                        chunked, the 20000 bytes chunked
 *   /redirect-other-<id> 302 to http://localhost:<port>/record-<id> (another
 *                        host name: another origin)
 *   /redirect-same-<id>  302 to /record-<id> (the same origin)
 *   /record-<id>         200, fault_origin_bill(<id>, FAULT_ORIGIN_KA_SIZE);
 *                        remembers whether X-Api-Key and Authorization came
 *
 * Archive cache tests (test_cache.c):
 *   /g/<size>-<name>     200, fault_origin_gen_bill(o, "<size>-<name>"): a
 *                        bill of exactly <size> bytes whose bytes name the
 *                        origin's tag and the id (two origins with distinct
 *                        tags answer the same id with the same size and
 *                        different bytes, and so do requests with distinct
 *                        X-Api-Key or Authorization values: see
 *                        fault_origin_gen_bill_for); Connection: close. A query
 *                        string is ignored (but counted as part of the path)
 *   /gh/<size>-<name>    the same, parked while FAULT_ORIGIN_HOLD_BILLS is
 *                        held
 *   /gs/<NNN>-<name>     parked while FAULT_ORIGIN_HOLD_BILLS is held, then
 *                        status NNN with a small HTML body
 *   fault_origin_outage: every request (any path, /health too) answered 500,
 *                        or every connection reset without an answer
 *   fault_origin_path_requests: requests per exact path (query included)
 */

#ifndef DSS_FAULT_ORIGIN_H
#define DSS_FAULT_ORIGIN_H

#include <pthread.h>
#include <stddef.h>

#define FAULT_ORIGIN_PDF_SIZE 2000
#define FAULT_ORIGIN_KA_SIZE 3000
#define FAULT_ORIGIN_FRAMED_SIZE 20000
#define FAULT_ORIGIN_RECORDS 32
#define FAULT_ORIGIN_MAX_PROBES 8192
#define FAULT_ORIGIN_HOLD_HEALTH 1 /* park /health */
#define FAULT_ORIGIN_PATHS 1024        /* distinct paths counted */
#define FAULT_ORIGIN_OUTAGE_NONE 0
#define FAULT_ORIGIN_OUTAGE_500 1   /* every request answered 500 */
#define FAULT_ORIGIN_OUTAGE_RESET 2 /* every connection reset, no answer */
#define FAULT_ORIGIN_HOLD_BILLS 2  /* park /b/held*, /gh/, /gs/ */

typedef struct {
    char id[64];
    int api_key;       /* an X-Api-Key header arrived */
    int authorization; /* an Authorization header arrived */
} fault_origin_record;

typedef struct {
    int port;
    int listen_fd;
    pthread_t thread;
    volatile int stopping;
    volatile int gate_open;

    pthread_mutex_t lock;
    int open_connections;      /* connections being served now */
    long long huge_bytes_sent; /* by /huge-chunked, before the peer quit */
    int requests;
    int unsolicited_sent; /* by /ka-unsolicited */
    int records_used;
    fault_origin_record records[FAULT_ORIGIN_RECORDS];

    /* /health and /b/<name> (fault_origin_serve_dir) */
    char dir[4096];
    volatile int hold; /* FAULT_ORIGIN_HOLD_* bits */
    int held;          /* requests parked now */
    int probes;
    long long probe_at[FAULT_ORIGIN_MAX_PROBES]; /* fault_origin_now_ms() */

    /* archive cache tests (fault_origin_set_tag, _outage, _path_requests) */
    char tag[16];
    volatile int outage; /* FAULT_ORIGIN_OUTAGE_* */
    int paths_used;
    struct {
        char path[120];
        int count;
    } path_counts[FAULT_ORIGIN_PATHS];
} fault_origin;

int fault_origin_start(fault_origin *o);
void fault_origin_stop(fault_origin *o);

int fault_origin_open_connections(fault_origin *o);
void fault_origin_set_gate(fault_origin *o, int open);
long long fault_origin_huge_bytes_sent(fault_origin *o);

/* CLOCK_MONOTONIC in milliseconds: the clock of the probes' times. */
long long fault_origin_now_ms(void);

/* /b/<name> answers the file dir/<name> (keep-alive), or 404. */
void fault_origin_serve_dir(fault_origin *o, const char *dir);

/* Parks (what: FAULT_ORIGIN_HOLD_* bits) requests until released, or until
 * their client goes away or the origin stops. */
void fault_origin_hold(fault_origin *o, int what, int on);

/* Requests parked now. */
int fault_origin_held(fault_origin *o);

/* /health requests so far, and those that arrived in [from, to]. */
int fault_origin_probes(fault_origin *o);
int fault_origin_probes_between(fault_origin *o, long long from,
                                long long to);

/* The body /ok-<id> and friends send. */
const char *fault_origin_pdf(void);

/* Responses /ka-unsolicited-<id> has written after its answer. */
int fault_origin_unsolicited_sent(fault_origin *o);

/*
 * What /record-<id> saw: 1 if it was requested (then *api_key and
 * *authorization say whether those headers came), 0 if not.
 */
int fault_origin_record_seen(fault_origin *o, const char *id, int *api_key,
                             int *authorization);

/*
 * Fills dst with records "[<id>@<offset>]" (offset = base + position, in
 * hex), so that every block of bytes names the bill and the place it
 * belongs to: a block carried into another response cannot match.
 */
void fault_origin_fill_tagged(char *dst, size_t len, const char *id,
                              size_t base);

/*
 * A PDF-like bill of exactly size bytes (size >= 64): "%PDF-1.4", tagged
 * filler, "%%EOF" at the end. Distinct bytes for every id. malloc'd.
 */
char *fault_origin_bill(const char *id, size_t size);

/* ---- archive cache tests ---------------------------------------------------
 */

/* A tag (up to 15 characters) that goes into every /g/ bill's bytes. */
void fault_origin_set_tag(fault_origin *o, const char *tag);

/*
 * What /g/<id> answers for id "<size>-<name>": malloc'd, *size set; NULL
 * for an id without a size of at least 64.
 */
char *fault_origin_gen_bill(fault_origin *o, const char *id, size_t *size);

/*
 * The same for the archive client a request named: /g/ bills differ per
 * X-Api-Key and Authorization value; client is "key=<X-Api-Key>,auth=
 * <Authorization>" (each value as sent, "" when absent), or NULL / "" when
 * the request had neither.
 */
char *fault_origin_gen_bill_for(fault_origin *o, const char *id,
                                const char *client, size_t *size);

/* FAULT_ORIGIN_OUTAGE_*: from now on every request / connection. */
void fault_origin_outage(fault_origin *o, int mode);

/* Requests so far for exactly this path (query included). */
int fault_origin_path_requests(fault_origin *o, const char *path);

#endif

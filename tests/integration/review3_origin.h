/* review3_origin: the hostile archive of the third review's tests
 * (test_review3*.c). An HTTP/1.1 origin in a thread of the test process,
 * one thread per connection, one answer per connection (Connection: close),
 * whose last path segment says how to misbehave:
 *
 *   /ok-<size>-<tag>        200, review3_bill("ok-<size>-<tag>", size), with
 *                           Content-Length
 *   /chunked-<size>-<tag>   the same, chunked in odd-sized chunks
 *   /close-<size>-<tag>     the same, no length, ended by a close
 *   /held-<size>-<tag>      as ok-, once the test opens the gate
 *   /cont-<size>-<tag>      "100 Continue" first, then as ok-
 *   /exact-<tag>            chunked, exactly 5 MB (5 * 1024 * 1024 bytes)
 *   /over-<tag>             Content-Length 5 MB + 1, a PDF of that size
 *   /overchunked-<tag>      chunked, a PDF of 5 MB + 1
 *   /lielong-<tag>          announces 20000, sends a complete PDF of 10000
 *                           (starts %PDF-, ends %%EOF), then closes
 *   /chunkgarbage-<tag>     chunked: 3000 bytes of a PDF, then "zz" as the
 *                           next chunk size
 *   /gzip-<tag>             200, Content-Encoding: gzip, a gzip stream
 *   /html-<tag>             200 text/html
 *   /hugeheaders-<tag>      200 with 120 KB of headers, then ok-'s body for
 *                           size 3000
 *   /loop-<tag>             302 to itself
 *   /garbage-<tag>          a reply that is not HTTP at all
 *   /never-<tag>            reads the request, never answers
 *   /slowloris-<tag>        200 announcing 4000 bytes, one byte per 50 ms
 *   /status-<NNN>-<tag>     that status, small HTML body
 *   /s3denied-<tag>         S3's 403 AccessDenied (XML error body)
 *   /slowfirst-<ms>-<size>-<tag>  nothing for <ms>, then as ok-
 *
 * Every body of a 200 is distinct per path (bytes name the id and their
 * offset), so a body delivered to the wrong request cannot match.
 */

#ifndef DSS_REVIEW3_ORIGIN_H
#define DSS_REVIEW3_ORIGIN_H

#include <pthread.h>
#include <stddef.h>

#define REVIEW3_MB5 (5 * 1024 * 1024)

typedef struct {
    int port;
    int listen_fd;
    pthread_t thread;
    volatile int stopping;
    volatile int gate_open;
    pthread_mutex_t lock;
    int open_connections; /* connection threads running now */
    int held;             /* /held- requests parked now */
    int requests;
} review3_origin;

int review3_origin_start(review3_origin *o);
void review3_origin_stop(review3_origin *o);
void review3_origin_gate(review3_origin *o, int open);
int review3_origin_open(review3_origin *o);
int review3_origin_held(review3_origin *o);
int review3_origin_requests(review3_origin *o);

/* The bill the origin sends for id (the whole last path segment): size
 * bytes, "%PDF-" first, "%%EOF" last, bytes naming the id. malloc'd. */
char *review3_bill(const char *id, size_t size);

#endif

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
 */

#ifndef DSS_FAULT_ORIGIN_H
#define DSS_FAULT_ORIGIN_H

#include <pthread.h>
#include <stddef.h>

#define FAULT_ORIGIN_PDF_SIZE 2000

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
} fault_origin;

int fault_origin_start(fault_origin *o);
void fault_origin_stop(fault_origin *o);

int fault_origin_open_connections(fault_origin *o);
void fault_origin_set_gate(fault_origin *o, int open);
long long fault_origin_huge_bytes_sent(fault_origin *o);

/* The body /ok-<id> and friends send. */
const char *fault_origin_pdf(void);

#endif

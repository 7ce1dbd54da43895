/* bad_endpoint: a plain-HTTP Bill Provisioning endpoint inside the test
 * process, broken on purpose in one way per route prefix, so that every
 * check of dss-bill-check is shown to fail when it should. Listens on
 * 127.0.0.1, one thread per connection, keep-alive.
 *
 * Routes: /<mode>/download/<id> and /<mode>/healthcheck. A bill exists
 * when its id starts with "1" (its bytes: fault_origin_bill(id, 3000));
 * other ids are 404. Mode "good" answers as the contract says; every other
 * mode is "good" but for one thing:
 *
 *   status500  a bill is 500          ctype      Content-Type: text/html
 *   nolength   no Content-Length      chunked    Transfer-Encoding: chunked
 *   gzip       Content-Encoding: gzip notpdf     a 200 body "<html>..."
 *   noeof      no %%EOF at the end    huge       a 6 MiB bill
 *   slow       the first download in this mode starts after 5.5 s
 *   varying    new bytes on every fetch
 *   burst      other bytes while another download is in flight
 *   head       HEAD's Content-Length is one more than GET's
 *   accept     406 unless Accept: application/pdf
 *   range      Range honoured (206)   cond       If-None-Match -> 304
 *   anyid      every id is a bill (missing, hostile ids: 200)
 *   redirect   a bill is 302          close      Connection: close always
 *   h503       health 503             hbody      health 200 with "OK"
 *   hslow      every 4th health poll answers after 1.5 s
 *   hauth      health (and downloads) need dss:secret
 *   auth       downloads need dss:secret (correct)
 *   noauth     downloads never ask for credentials
 *   wrongauth  downloads accept any password
 *
 * bad_endpoint_set_health(b, 0) makes every health route answer 503.
 */

#ifndef DSS_BAD_ENDPOINT_H
#define DSS_BAD_ENDPOINT_H

#include <pthread.h>

#define BAD_ENDPOINT_BILL_SIZE 3000
#define BAD_ENDPOINT_MAX_CONNECTIONS 256

typedef struct {
    int port;
    int listen_fd;
    pthread_t thread;
    volatile int stopping;
    volatile int healthy;

    pthread_mutex_t lock;
    int connections; /* connection threads alive */
    int fds[BAD_ENDPOINT_MAX_CONNECTIONS];
    int in_flight;        /* downloads being answered (mode burst) */
    unsigned long served; /* downloads answered (mode varying) */
    int hslow_served;     /* health polls in mode hslow */
    int slow_served;      /* downloads in mode slow (only the first is) */
} bad_endpoint;

int bad_endpoint_start(bad_endpoint *b);

/* Stops accepting, shuts every connection down and waits for its thread. */
void bad_endpoint_stop(bad_endpoint *b);

void bad_endpoint_set_health(bad_endpoint *b, int healthy);

#endif

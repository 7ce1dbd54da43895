/* client_job: one HTTP client in a thread of its own (libcurl easy), for
 * tests that need requests in flight at the same time: many views of one
 * bill waiting for the same fetch, slow readers, HTTP/2 streams. */

#ifndef DSS_CLIENT_JOB_H
#define DSS_CLIENT_JOB_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>

typedef struct {
    /* set before dss_job_start */
    char url[512];
    long timeout_ms;       /* the whole transfer; 0: 60 s */
    long max_speed;        /* bytes/s the client reads at most; 0: no limit */
    int h2;                /* HTTP/2 over TLS, the server checked with cafile */
    char cafile[PATH_MAX]; /* with h2 */

    /* the answer, once joined */
    long status;
    long version; /* CURLINFO_HTTP_VERSION */
    int curl_code;
    char *body; /* malloc'd (free it), len bytes */
    size_t len, cap;
    char cache[32]; /* the X-Cache header's value, "" without one */

    pthread_t thread;
} dss_job;

/* Starts the GET of j->url in a new thread (fails the test when it cannot).
 * curl_global_init must have run (any dss_request does it). */
void dss_job_start(dss_job *j);

/* Waits for the job's thread. */
void dss_job_join(dss_job *j);

#endif

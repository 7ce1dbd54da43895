/* client_job: see client_job.h. */

#include "client_job.h"

/* cmocka and what it needs first */
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static size_t job_body(char *data, size_t size, size_t nmemb, void *arg) {
    dss_job *j = arg;
    size_t n = size * nmemb;
    if (j->len + n > j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 65536;
        while (cap < j->len + n) {
            cap *= 2;
        }
        char *p = realloc(j->body, cap);
        if (p == NULL) {
            return 0;
        }
        j->body = p;
        j->cap = cap;
    }
    memcpy(j->body + j->len, data, n);
    j->len += n;
    return n;
}

static size_t job_header(char *data, size_t size, size_t nmemb, void *arg) {
    dss_job *j = arg;
    size_t n = size * nmemb;
    if (n > 8 && strncasecmp(data, "X-Cache:", 8) == 0) {
        size_t from = 8;
        while (from < n && data[from] == ' ') {
            from++;
        }
        size_t to = n;
        while (to > from && (data[to - 1] == '\r' || data[to - 1] == '\n')) {
            to--;
        }
        snprintf(j->cache, sizeof(j->cache), "%.*s", (int)(to - from),
                 data + from);
    }
    return n;
}

static void *job_run(void *arg) {
    dss_job *j = arg;
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        return NULL;
    }
    curl_easy_setopt(curl, CURLOPT_URL, j->url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, job_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, job_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                     j->timeout_ms ? j->timeout_ms : 60000L);
    if (j->max_speed) {
        curl_easy_setopt(curl, CURLOPT_MAX_RECV_SPEED_LARGE,
                         (curl_off_t)j->max_speed);
    }
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (j->h2) {
        curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(curl, CURLOPT_CAINFO, j->cafile);
    }
    j->curl_code = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &j->status);
    curl_easy_getinfo(curl, CURLINFO_HTTP_VERSION, &j->version);
    curl_easy_cleanup(curl);
    return NULL;
}

void dss_job_start(dss_job *j) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    assert_int_equal(pthread_create(&j->thread, &attr, job_run, j), 0);
    pthread_attr_destroy(&attr);
}

void dss_job_join(dss_job *j) {
    pthread_join(j->thread, NULL);
}

/* fetch_exchange: see fetch_exchange.h. */

#define _GNU_SOURCE /* accept4, strcasestr */

#include "fetch_exchange.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

dss_bill_outcome fetch_exchange(dss_bill_fetch_pool *shared_pool,
                                const dss_bill_upstream_options *options,
                                const char *url, const char *host_port,
                                const char *response, char *request,
                                size_t request_size, char *detail,
                                size_t detail_size) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);

    char err[128];
    dss_bill_fetch_pool *pool =
        shared_pool ? shared_pool : dss_bill_fetch_pool_create(1, 0);
    dss_bill_fetch *fetch =
        dss_bill_fetch_start(pool, options, url, 0, err, sizeof(err));
    assert_non_null(fetch);
    CURL *easy = dss_bill_fetch_easy(fetch);
    char connect_to[256];
    snprintf(connect_to, sizeof(connect_to), "%s:127.0.0.1:%d", host_port,
             ntohs(a.sin_port));
    struct curl_slist *to = curl_slist_append(NULL, connect_to);
    curl_easy_setopt(easy, CURLOPT_CONNECT_TO, to);

    CURLM *multi = curl_multi_init();
    curl_multi_add_handle(multi, easy);
    int cfd = -1, running = 1, answered = 0;
    size_t got = 0;
    int result = -1;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    request[0] = '\0';

    for (;;) {
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg == CURLMSG_DONE) {
                result = msg->data.result;
            }
        }
        if (result >= 0) {
            break;
        }
        if (cfd < 0) {
            cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        }
        if (cfd >= 0 && !answered) {
            ssize_t r = recv(cfd, request + got, request_size - 1 - got, 0);
            if (r > 0) {
                got += (size_t)r;
                request[got] = '\0';
                if (strstr(request, "\r\n\r\n")) {
                    assert_int_equal(
                        send(cfd, response, strlen(response), MSG_NOSIGNAL),
                        (ssize_t)strlen(response));
                    shutdown(cfd, SHUT_WR);
                    answered = 1;
                }
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        assert_true(now.tv_sec - start.tv_sec < 10); /* bounded */
        curl_multi_poll(multi, NULL, 0, 10, NULL);
    }
    curl_multi_remove_handle(multi, easy);
    dss_bill_outcome outcome = dss_bill_fetch_finish(fetch, result);
    snprintf(detail, detail_size, "%s", dss_bill_fetch_detail(fetch));
    dss_bill_fetch_release(fetch);
    if (pool != shared_pool) {
        dss_bill_fetch_pool_destroy(pool);
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(to);
    if (cfd >= 0) {
        close(cfd);
    }
    close(lfd);
    return outcome;
}

const char *fetch_header_value(const char *request, const char *name, char *out,
                               size_t out_size) {
    char key[64];
    snprintf(key, sizeof(key), "\r\n%s: ", name);
    const char *p = strcasestr(request, key);
    if (p == NULL) {
        return NULL;
    }
    p += strlen(key);
    size_t n = strcspn(p, "\r");
    snprintf(out, out_size, "%.*s", (int)n, p);
    return out;
}

/* One archive fetch through the core (dss_bill_fetch_*) against a loopback
 * listener, for the unit tests of what libcurl sends (SigV4 headers) and of
 * how an answer is read. Fails the calling CMocka test on a setup error or
 * after 10 s. */
#ifndef DSS_BILL_TESTS_FETCH_EXCHANGE_H
#define DSS_BILL_TESTS_FETCH_EXCHANGE_H

#include <stddef.h>

#include "dss_bill.h"

/* Fetches url with options from a listener standing in for host_port
 * ("host:port"), captures the request into request (NUL-terminated), answers
 * with response, and returns the outcome (its detail into detail). The fetch
 * comes from shared_pool, or from a pool of its own when NULL. */
dss_bill_outcome fetch_exchange(dss_bill_fetch_pool *shared_pool,
                                const dss_bill_upstream_options *options,
                                const char *url, const char *host_port,
                                const char *response, char *request,
                                size_t request_size, char *detail,
                                size_t detail_size);

/* The value of the request header name (case-insensitive) into out, or NULL
 * when the request has none. */
const char *fetch_header_value(const char *request, const char *name, char *out,
                               size_t out_size);

#endif

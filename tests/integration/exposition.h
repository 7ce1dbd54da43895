/* exposition: reading the Prometheus text that dss_bill_metrics serves, and
 * linting it with promtool (Debian's prometheus package). */

#ifndef DSS_EXPOSITION_H
#define DSS_EXPOSITION_H

#include "harness.h"

/* The value of the series whose line starts with "name{labels} " (head is
 * "name{labels}" or a bare name), or -1 when there is no such line. */
long long dss_series(const char *text, const char *head);

/* The sum of every dss_bill_requests_total series. */
long long dss_requests_sum(const char *text);

/* Writes text to <n's prefix>/<name> and fails the test unless
 * "promtool check metrics" accepts it (its complaints in the message). */
void dss_promtool_check(const dss_nginx *n, const char *text,
                        const char *name);

#endif

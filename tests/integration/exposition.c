/* exposition: see exposition.h. */

#define _GNU_SOURCE /* asprintf */

#include "exposition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long long dss_series(const char *text, const char *head) {
    size_t n = strlen(head);
    for (const char *p = text; (p = strstr(p, head)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ') {
            return atoll(p + n + 1);
        }
    }
    return -1;
}

long long dss_requests_sum(const char *text) {
    long long sum = 0;
    for (const char *p = text;
         (p = strstr(p, "\ndss_bill_requests_total{"));) {
        p++;
        const char *sp = strchr(p, ' ');
        assert_non_null(sp);
        sum += atoll(sp + 1);
    }
    return sum;
}

void dss_promtool_check(const dss_nginx *n, const char *text,
                        const char *name) {
    char *file, *cmd;
    assert_true(asprintf(&file, "%s/%s", n->prefix, name) > 0);
    dss_write_file(file, text, strlen(text));
    assert_true(asprintf(&cmd, "promtool check metrics < '%s' 2>&1", file) > 0);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    /* the first 4 KB of its complaints shown; the rest read too, so that
     * promtool never writes into a closed pipe */
    char out[4096], rest[4096];
    size_t got = fread(out, 1, sizeof(out) - 1, p);
    while (fread(rest, 1, sizeof(rest), p) > 0) {
    }
    out[got] = '\0';
    int status = pclose(p);
    free(cmd);
    free(file);
    if (status != 0) {
        fail_msg("promtool check metrics (status %d): %s", status, out);
    }
}

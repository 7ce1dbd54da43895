/* fuzz_core: throws arbitrary bytes at the core's request-path functions and
 * checks their invariants. Built two ways: as a libFuzzer target
 * (LLVMFuzzerTestOneInput, with clang -fsanitize=fuzzer) and, by default, as
 * a standalone program that feeds it a fixed number of pseudo-random inputs
 * from a fixed seed, run by ctest (under ASan in the sanitizer build). */

#define _GNU_SOURCE /* memmem */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dss_bill.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "invariant broken: %s (line %d)\n", #cond,         \
                    __LINE__);                                                 \
            abort();                                                           \
        }                                                                      \
    } while (0)

static int is_url_and_file_safe(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || strchr("-_~!$&'()*+,;=:@", c) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;

    /* D2, D5: whatever the rule, an accepted id is harmless in a path or a
     * URL, and a class that is accepted never admits a separator */
    dss_bill_id_rule rule;
    dss_bill_id_rule_default(&rule);
    char err[128];
    size_t split = size > 0 ? data[0] % (size + 1) : 0;
    if (dss_bill_id_rule_set_chars(&rule, text, split, err, sizeof(err)) == 0) {
        for (int c = 0; c < 256; c++) {
            if ((rule.allowed[c >> 3] >> (c & 7)) & 1) {
                CHECK(is_url_and_file_safe((unsigned char)c));
            }
        }
    }
    const char *id = text + split;
    size_t id_len = size - split;
    if (dss_bill_id_is_valid(&rule, id, id_len)) {
        CHECK(id_len >= 1 && id_len <= DSS_BILL_ID_LIMIT);
        for (size_t i = 0; i < id_len; i++) {
            CHECK(is_url_and_file_safe((unsigned char)id[i]));
        }
    }

    /* routing never points outside the uri */
    size_t base = size > 0 ? data[size - 1] % (size + 2) : 0;
    dss_bill_route route = dss_bill_route_parse(text, size, base);
    if (route.kind == DSS_BILL_ROUTE_DOWNLOAD) {
        CHECK(route.id >= text && route.id + route.id_len <= text + size);
    }
    CHECK(dss_bill_route_base_len(text, size) <= size);

    /* a safe relative path never climbs out of the root */
    if (dss_bill_relative_path_is_safe(text, size)) {
        CHECK(size > 0 && text[0] != '/');
        CHECK(memchr(text, '\0', size) == NULL);
        for (size_t i = 0; i + 1 < size; i++) {
            CHECK(!(text[i] == '.' && text[i + 1] == '.' &&
                    (i == 0 || text[i - 1] == '/') &&
                    (i + 2 == size || text[i + 2] == '/')));
        }
        char out[512];
        size_t n =
            dss_bill_join_path("/srv/bills", 10, text, size, out, sizeof(out));
        CHECK(n == 0 ||
              (n == 11 + size && memcmp(out, "/srv/bills/", 11) == 0));
    }

    /* URL checks and the derived probe base stay inside their buffers */
    (void)dss_bill_upstream_url_check(text, size, err, sizeof(err));
    CHECK(strlen(err) < sizeof(err));
    char base_url[64];
    size_t len =
        dss_bill_upstream_url_base(text, size, base_url, sizeof(base_url));
    CHECK(len < sizeof(base_url));
    if (len > 0) {
        CHECK(base_url[len - 1] == '/' && base_url[len] == '\0');
    }

    CHECK(dss_bill_is_pdf_signature(data, size) ==
          (size >= 5 && memcmp(data, "%PDF-", 5) == 0));

    /* D8: "complete" only with the signature and %%EOF in the last 1024 */
    long long tail = dss_bill_pdf_tail_offset((long long)size);
    dss_bill_outcome verdict = dss_bill_pdf_verdict(
        DSS_BILL_PDF_CHECK_COMPLETE, (long long)size, data,
        size < 5 ? size : 5, data + tail, size - (size_t)tail);
    int has_end = memmem(data + tail, size - (size_t)tail, "%%EOF", 5) != NULL;
    CHECK((verdict == DSS_BILL_OK) ==
          (dss_bill_is_pdf_signature(data, size) && has_end));
    return 0;
}

#ifndef DSS_LIBFUZZER
/* Inputs biased towards the interesting bytes: separators, dots, percent
 * signs, NULs and the route words. */
int main(int argc, char **argv) {
    long iterations = argc > 1 ? atol(argv[1]) : 200000;
    static const char alphabet[] = "/..%\\\0aZ9-_~@:$'\"<>{}# \n\x7f\xc3";
    static const char *const words[] = {"download/", "healthcheck", "..",
                                        "https://",  "http://",     "%PDF-",
                                        "/dss/bill/"};
    uint8_t buf[300];
    srand(20261128);
    for (long i = 0; i < iterations; i++) {
        size_t size = (size_t)(rand() % (int)sizeof(buf));
        for (size_t j = 0; j < size;) {
            if (rand() % 8 == 0) {
                const char *w = words[rand() % 7];
                size_t n = strlen(w);
                if (j + n > size) {
                    n = size - j;
                }
                memcpy(buf + j, w, n);
                j += n;
            } else if (rand() % 2) {
                buf[j++] = (uint8_t)alphabet[rand() % (sizeof(alphabet) - 1)];
            } else {
                buf[j++] = (uint8_t)rand();
            }
        }
        LLVMFuzzerTestOneInput(buf, size);
    }
    printf("%ld inputs, every invariant held\n", iterations);
    return 0;
}
#endif

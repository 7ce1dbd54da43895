/* dss-make-bill: writes sample bill PDFs.
 *   dss-make-bill FILE BILL_ID [SIZE_BYTES]
 */

#include "sample_pdf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4 || strcmp(argv[1], "--help") == 0) {
        fprintf(stderr,
                "usage: %s FILE BILL_ID [SIZE_BYTES]\n"
                "Writes a one-page PDF showing BILL_ID, padded to exactly\n"
                "SIZE_BYTES when given.\n",
                argv[0]);
        return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    size_t size = 0;
    if (argc == 4) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(argv[3], &end, 10);
        if (errno != 0 || *end != '\0') {
            fprintf(stderr, "%s: invalid size \"%s\"\n", argv[0], argv[3]);
            return 2;
        }
        size = (size_t)v;
    }
    if (sample_pdf_write(argv[1], argv[2], size) != 0) {
        fprintf(stderr, "%s: cannot write \"%s\": %s\n", argv[0], argv[1],
                strerror(errno));
        return 1;
    }
    return 0;
}

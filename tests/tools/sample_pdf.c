/* sample_pdf: see sample_pdf.h. Byte offsets in the xref table are computed,
 * so the files open in any PDF reader. */

#include "sample_pdf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} buffer;

static int buffer_append(buffer *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->data, cap);
        if (p == NULL) {
            return -1;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int buffer_printf(buffer *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int buffer_printf(buffer *b, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        return -1;
    }
    return buffer_append(b, tmp, (size_t)n);
}

/* Builds the document with `pad` filler bytes; returns 0 or -1. */
static int build(buffer *b, const char *bill_id, size_t pad) {
    size_t offsets[7];
    char content[512];
    int n = snprintf(content, sizeof(content),
                     "BT /F1 24 Tf 72 720 Td (Utility bill) Tj ET\n"
                     "BT /F1 14 Tf 72 680 Td (Bill ID: %s) Tj ET\n"
                     "BT /F1 12 Tf 72 650 Td (Sample document generated "
                     "for ngx_http_dss_bill_module.) Tj ET\n",
                     bill_id);
    if (n < 0 || (size_t)n >= sizeof(content)) {
        return -1;
    }

    b->len = 0;
    /* the binary comment line marks the file as binary for transfer tools */
    if (buffer_printf(b, "%%PDF-1.4\n%%\xE2\xE3\xCF\xD3\n") != 0) {
        return -1;
    }
    offsets[1] = b->len;
    buffer_printf(b, "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
    offsets[2] = b->len;
    buffer_printf(b, "2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\n"
                     "endobj\n");
    offsets[3] = b->len;
    buffer_printf(b, "3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox "
                     "[0 0 612 792] /Contents 4 0 R /Resources << /Font "
                     "<< /F1 5 0 R >> >> >>\nendobj\n");
    offsets[4] = b->len;
    buffer_printf(b, "4 0 obj\n<< /Length %d >>\nstream\n", n);
    buffer_append(b, content, (size_t)n);
    buffer_printf(b, "endstream\nendobj\n");
    offsets[5] = b->len;
    buffer_printf(b, "5 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont "
                     "/Helvetica >>\nendobj\n");
    offsets[6] = b->len;
    buffer_printf(b, "6 0 obj\n<< /Length %zu >>\nstream\n", pad);
    for (size_t i = 0; i < pad; i += 64) {
        static const char filler[] =
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";
        size_t chunk = pad - i < 64 ? pad - i : 64;
        if (buffer_append(b, filler, chunk) != 0) {
            return -1;
        }
    }
    buffer_printf(b, "\nendstream\nendobj\n");

    size_t xref = b->len;
    buffer_printf(b, "xref\n0 7\n0000000000 65535 f \n");
    for (int i = 1; i <= 6; i++) {
        buffer_printf(b, "%010zu 00000 n \n", offsets[i]);
    }
    return buffer_printf(b,
                         "trailer\n<< /Size 7 /Root 1 0 R >>\nstartxref\n%zu\n"
                         "%%%%EOF\n",
                         xref);
}

int sample_pdf_write(const char *path, const char *bill_id, size_t size) {
    buffer b = {NULL, 0, 0};
    size_t pad = 0;

    if (build(&b, bill_id, pad) != 0) {
        free(b.data);
        errno = ENOMEM;
        return -1;
    }
    /* the startxref number may gain a digit: converge in a few passes */
    for (int pass = 0; size > 0 && b.len != size && pass < 4; pass++) {
        if (b.len > size && pad < b.len - size) {
            free(b.data);
            errno = EINVAL;
            return -1;
        }
        pad = pad + size - b.len;
        if (build(&b, bill_id, pad) != 0) {
            free(b.data);
            errno = ENOMEM;
            return -1;
        }
    }
    if (size > 0 && b.len != size) {
        free(b.data);
        errno = EINVAL;
        return -1;
    }

    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        free(b.data);
        return -1;
    }
    size_t written = fwrite(b.data, 1, b.len, f);
    int closed = fclose(f);
    free(b.data);
    if (written != b.len || closed != 0) {
        return -1;
    }
    return chmod(path, 0644);
}

/* sample_pdf: writes small, valid one-page PDF bills for tests, the demo and
 * the benchmark. */

#ifndef DSS_SAMPLE_PDF_H
#define DSS_SAMPLE_PDF_H

#include <stddef.h>

/*
 * Writes a one-page PDF that shows the bill id to path (mode 0644). With
 * size > 0 the file is padded with an unreferenced stream to exactly size
 * bytes (sizes below about 700 bytes cannot be met and fail). Returns 0, or
 * -1 with errno set.
 */
int sample_pdf_write(const char *path, const char *bill_id, size_t size);

#endif

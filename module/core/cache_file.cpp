// Writes an archive-cache entry (issue 9): the glue's header block, then the
// bill exactly as the fetch holds it (memory, or its temporary file). One
// extra write of the bill, never a second fetch; a file body is copied by
// the kernel (copy_file_range) where the two files allow it.

#include "dss_bill.h"

#include <cerrno>
#include <cstddef>
#include <sys/types.h>
#include <unistd.h>

namespace {

constexpr size_t kCopyChunk = 64 * 1024;

// 0, or the errno of the write that failed (ENOSPC on a full disk)
int write_all(int fd, const unsigned char *data, size_t len, off_t offset) {
    while (len > 0) {
        ssize_t n = pwrite(fd, data, len, offset);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        if (n == 0) {
            return EIO;
        }
        data += n;
        len -= static_cast<size_t>(n);
        offset += n;
    }
    return 0;
}

// The fallback: through a buffer, for files copy_file_range cannot pair.
int copy_through_buffer(int from, off_t from_offset, int to, off_t to_offset,
                        long long len) {
    unsigned char buf[kCopyChunk];
    while (len > 0) {
        size_t want = len < static_cast<long long>(sizeof(buf))
                          ? static_cast<size_t>(len)
                          : sizeof(buf);
        ssize_t n = pread(from, buf, want, from_offset);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        if (n == 0) {
            return ENODATA; // the body is shorter than the fetch said
        }
        if (int err = write_all(to, buf, static_cast<size_t>(n), to_offset)) {
            return err;
        }
        from_offset += n;
        to_offset += n;
        len -= n;
    }
    return 0;
}

int copy_file(int from, int to, off_t to_offset, long long len) {
    off_t in = 0;
    off_t out = to_offset;
    while (len > 0) {
        ssize_t n = copy_file_range(from, &in, to, &out,
                                    static_cast<size_t>(len), 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
                errno == EOPNOTSUPP || errno == EPERM) {
                // another file system, or one without the call
                return copy_through_buffer(from, in, to, out, len);
            }
            return errno;
        }
        if (n == 0) {
            return ENODATA;
        }
        len -= n;
    }
    return 0;
}

} // namespace

extern "C" {

int dss_bill_cache_write(int fd, const unsigned char *header,
                         size_t header_len, const dss_bill_body *body) {
    if (fd < 0 || body == nullptr || body->size <= 0 ||
        (body->fd < 0 && body->data == nullptr)) {
        return EINVAL;
    }
    if (int err = write_all(fd, header, header_len, 0)) {
        return err;
    }
    const off_t at = static_cast<off_t>(header_len);
    if (body->fd >= 0) {
        return copy_file(body->fd, fd, at, body->size);
    }
    return write_all(fd, body->data, static_cast<size_t>(body->size), at);
}

} // extern "C"

// Document-root probe for the health check (H3). Runs from a worker timer,
// never from a request, so a slow file system cannot delay a health answer.

#include "dss_bill.h"
#include "error_text.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

// Owns one descriptor; closes it on every path out.
class FileDescriptor {
  public:
    explicit FileDescriptor(int fd) : fd_(fd) {}
    ~FileDescriptor() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    FileDescriptor(const FileDescriptor &) = delete;
    FileDescriptor &operator=(const FileDescriptor &) = delete;

    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }

  private:
    int fd_;
};

} // namespace

extern "C" int dss_bill_probe_root(const char *path, char *reason,
                                   size_t reason_size) {
    dss_bill::ErrorText error(reason, reason_size);

    FileDescriptor dir(::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir.valid()) {
        int err = errno;
        error.set("cannot open the document root: ", std::strerror(err));
        return 0;
    }

    // Bills are opened by name below the root: the worker needs search
    // permission on it, which open() for reading does not prove.
    if (::faccessat(dir.get(), ".", X_OK, 0) != 0) {
        int err = errno;
        error.set("cannot enter the document root: ", std::strerror(err));
        return 0;
    }
    return 1;
}

// BodySink: see body_sink.hpp.

#include "body_sink.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace dss_bill {

namespace {

// A temporary file up to this size is kept as it is for the next body.
constexpr long long kKeepFileSize = 1024 * 1024;

} // namespace

void UniqueFd::reset(int fd) {
    if (fd_ >= 0) {
        ::close(fd_);
    }
    fd_ = fd;
}

void BodySink::reset(size_t buffer_size, long long max_size,
                     const char *temp_dir) {
    // at least the signature must fit in memory
    buffer_size = std::max<size_t>(buffer_size, 16);
    if (capacity_ < buffer_size) {
        memory_.reset(new unsigned char[buffer_size]);
        capacity_ = buffer_size;
    }
    buffer_size_ = buffer_size;
    max_size_ = max_size;
    temp_dir_ = temp_dir;
    size_ = 0;
    spilled_ = false;
    if (file_.valid() && file_dir_ != temp_dir) {
        file_.reset(); // kept from a location with another temp path
    }
    state_ = State::Ok;
    file_error_ = "";
}

bool BodySink::write(const char *data, size_t size) {
    if (state_ != State::Ok) {
        return false;
    }
    // D4: stop as soon as the body passes the limit, whatever the archive
    // announced
    if (size_ + static_cast<long long>(size) > max_size_) {
        state_ = State::TooLarge;
        return false;
    }
    if (!spilled_ && size_ + size <= buffer_size_) {
        std::memcpy(memory_.get() + size_, data, size);
        size_ += static_cast<long long>(size);
        return true;
    }
    if (!spilled_ && !spill()) {
        return false;
    }
    if (!write_file(data, size)) {
        return false;
    }
    size_ += static_cast<long long>(size);
    return true;
}

// Moves what memory holds into an unnamed file in temp_dir: the kept one,
// or a new one.
bool BodySink::spill() {
    spilled_ = true;
    if (file_.valid()) {
        return write_file(reinterpret_cast<const char *>(memory_.get()),
                          static_cast<size_t>(size_));
    }
    int fd = ::open(temp_dir_, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR)) {
        // file systems without O_TMPFILE: a named file, unlinked at once
        std::string name = std::string(temp_dir_) + "/dss-bill-XXXXXX";
        fd = ::mkostemp(name.data(), O_CLOEXEC);
        if (fd >= 0) {
            ::unlink(name.c_str());
        }
    }
    if (fd < 0) {
        state_ = State::FileError;
        file_error_ = std::strerror(errno);
        return false;
    }
    file_.reset(fd);
    file_dir_ = temp_dir_;
    return write_file(reinterpret_cast<const char *>(memory_.get()),
                      static_cast<size_t>(size_));
}

bool BodySink::write_file(const char *data, size_t size) {
    while (size > 0) {
        ssize_t n = ::write(file_.get(), data, size);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            state_ = State::FileError;
            file_error_ = n < 0 ? std::strerror(errno) : "short write";
            return false;
        }
        data += n;
        size -= static_cast<size_t>(n);
    }
    return true;
}

std::string_view BodySink::head(size_t n) const {
    size_t available = std::min<size_t>(
        {n, buffer_size_, static_cast<size_t>(std::max<long long>(size_, 0))});
    return {reinterpret_cast<const char *>(memory_.get()), available};
}

void BodySink::clear() {
    // The next body overwrites this one from the start: pages already in the
    // page cache are cheaper to overwrite than to free and allocate again.
    // Only a large file is emptied, so an idle pooled sink holds little.
    if (spilled_ &&
        ((size_ > kKeepFileSize && ::ftruncate(file_.get(), 0) != 0) ||
         ::lseek(file_.get(), 0, SEEK_SET) != 0)) {
        file_.reset();
    }
    spilled_ = false;
    size_ = 0;
    state_ = State::Ok;
}

} // namespace dss_bill

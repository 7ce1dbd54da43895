// BodySink: see body_sink.hpp.

#include "body_sink.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <new>
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

bool Memory::resize(size_t size) {
    void *p = std::realloc(data_, size);
    if (p == nullptr) {
        return false;
    }
    data_ = static_cast<unsigned char *>(p);
    size_ = size;
    return true;
}

void BodySink::reset(size_t buffer_size, long long max_size,
                     const char *temp_dir, MemoryBudget *budget) {
    // at least the signature must fit in memory
    buffer_size = std::max<size_t>(buffer_size, 16);
    if (memory_.size() < buffer_size && !memory_.resize(buffer_size)) {
        throw std::bad_alloc();
    }
    buffer_size_ = buffer_size;
    max_size_ = max_size;
    temp_dir_ = temp_dir;
    if (budget_ != budget) {
        shrink();
        budget_ = budget;
    }
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
    size_t needed = static_cast<size_t>(size_) + size;
    if (!spilled_ && (needed <= memory_.size() || grow(needed))) {
        std::memcpy(memory_.data() + size_, data, size);
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

// Doubles the memory towards needed if the worker's budget allows.
bool BodySink::grow(size_t needed) {
    if (budget_ == nullptr) {
        return false;
    }
    size_t size = std::max(memory_.size() * 2, needed);
    size = std::min(size, static_cast<size_t>(max_size_));
    size_t beyond = size > buffer_size_ ? size - buffer_size_ : 0;
    size_t more = beyond > reserved_ ? beyond - reserved_ : 0;
    if (budget_->used + more > budget_->limit || !memory_.resize(size)) {
        return false;
    }
    budget_->used += more;
    reserved_ += more;
    return true;
}

// Back to buffer_size (the first bytes stay), and the budget back too.
void BodySink::shrink() {
    if (reserved_ == 0 || budget_ == nullptr) {
        return;
    }
    (void)memory_.resize(buffer_size_); // a failed shrink keeps the block
    budget_->used -= reserved_;
    reserved_ = 0;
}

// Moves what memory holds into an unnamed file in temp_dir: the kept one,
// or a new one.
bool BodySink::spill() {
    spilled_ = true;
    if (file_.valid()) {
        return write_memory();
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
    return write_memory();
}

// Writes what memory holds to the file, then returns the memory grown
// beyond buffer_size to the budget.
bool BodySink::write_memory() {
    bool ok = write_file(reinterpret_cast<const char *>(memory_.data()),
                         static_cast<size_t>(size_));
    shrink();
    return ok;
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
    return {reinterpret_cast<const char *>(memory_.data()), available};
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
    // grown memory stays, still counted in the budget: freeing and growing
    // it again per bill costs page faults that dwarf the copy itself
    spilled_ = false;
    size_ = 0;
    state_ = State::Ok;
}

BodySink::~BodySink() {
    shrink();
}

} // namespace dss_bill

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
    file_.reset();
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

// Moves what memory holds into a new unnamed file in temp_dir.
bool BodySink::spill() {
    spilled_ = true;
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

bool BodySink::read_file(unsigned char *to, size_t size, long long offset) {
    while (size > 0) {
        ssize_t n = ::pread(file_.get(), to, size, offset);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            state_ = State::FileError;
            file_error_ = n < 0 ? std::strerror(errno) : "short read";
            return false;
        }
        to += n;
        size -= static_cast<size_t>(n);
        offset += n;
    }
    return true;
}

dss_bill_outcome BodySink::verdict(dss_bill_pdf_check check) {
    const long long tail_offset = dss_bill_pdf_tail_offset(size_);
    const size_t tail_len = static_cast<size_t>(size_ - tail_offset);
    const size_t head_len = static_cast<size_t>(
        std::min<long long>(size_, DSS_BILL_PDF_SIGNATURE_LEN));

    if (!spilled_) {
        const unsigned char *body = memory_.data();
        return dss_bill_pdf_verdict(check, size_, body, head_len,
                                    body + tail_offset, tail_len);
    }
    unsigned char head[DSS_BILL_PDF_SIGNATURE_LEN];
    unsigned char tail[DSS_BILL_PDF_TAIL_LEN];
    if (!read_file(head, head_len, 0) ||
        !read_file(tail, tail_len, tail_offset)) {
        return DSS_BILL_TEMP_FILE_ERROR;
    }
    return dss_bill_pdf_verdict(check, size_, head, head_len, tail, tail_len);
}

void BodySink::clear() {
    // the socket may still send this file's pages: never write it again
    file_.reset();
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

// BodySink: collects an archive's response body within bounded memory.
// Each body may hold buffer_size bytes in memory; beyond that it grows in
// memory only while the worker's shared MemoryBudget allows, else the whole
// body moves to an unnamed temporary file. So a few bills in flight stay in
// memory (no file I/O), and a thousand stalled fetches cost at most
// buffer_size each plus the budget. Enforces the size limit while bytes
// arrive.
// A pooled sink keeps its memory for the next body, never its file: once
// nginx has handed a file to sendfile, the socket still references the
// file's pages, and overwriting them would change what that client
// receives (D9). Each spilled body gets a new unnamed file.

#ifndef DSS_BILL_BODY_SINK_HPP
#define DSS_BILL_BODY_SINK_HPP

#include "dss_bill.h"

#include <cstddef>
#include <cstdlib>

namespace dss_bill {

// Owns one file descriptor.
class UniqueFd {
  public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    ~UniqueFd() { reset(); }
    UniqueFd(UniqueFd &&other) noexcept : fd_(other.release()) {}
    UniqueFd &operator=(UniqueFd &&other) noexcept {
        if (this != &other) {
            reset(other.release());
        }
        return *this;
    }
    UniqueFd(const UniqueFd &) = delete;
    UniqueFd &operator=(const UniqueFd &) = delete;

    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }
    int release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    void reset(int fd = -1);

  private:
    int fd_ = -1;
};

// Memory that the bodies of one worker may hold beyond their buffer_size.
struct MemoryBudget {
    size_t limit = 0;
    size_t used = 0;
};

// A malloc'd block that can grow and shrink in place (realloc).
class Memory {
  public:
    Memory() = default;
    ~Memory() { std::free(data_); }
    Memory(const Memory &) = delete;
    Memory &operator=(const Memory &) = delete;

    // false when out of memory; the block is unchanged then.
    bool resize(size_t size);
    unsigned char *data() const { return data_; }
    size_t size() const { return size_; }

  private:
    unsigned char *data_ = nullptr;
    size_t size_ = 0;
};

class BodySink {
  public:
    enum class State { Ok, TooLarge, FileError };

    BodySink() = default;
    ~BodySink();
    BodySink(const BodySink &) = delete;
    BodySink &operator=(const BodySink &) = delete;

    // Prepares for a new body; keeps the memory buffer when it is big
    // enough already, so a pooled sink allocates nothing. budget may be
    // NULL (no growth beyond buffer_size).
    void reset(size_t buffer_size, long long max_size, const char *temp_dir,
               MemoryBudget *budget);

    // Appends bytes; false when the body must stop (state() says why).
    bool write(const char *data, size_t size);

    State state() const { return state_; }
    long long size() const { return size_; }
    bool in_file() const { return spilled_; }
    int fd() const { return file_.get(); }
    const unsigned char *memory() const { return memory_.data(); }

    // D8: the verdict on the body as stored (memory or file), never on a
    // copy taken on the way; a file that cannot be read back is a
    // FileError.
    dss_bill_outcome verdict(dss_bill_pdf_check check);

    // Empties the sink and closes its temporary file; its memory (grown
    // memory stays counted in the budget) stays for reuse.
    void clear();

    // The reason of a FileError, for the log.
    const char *file_error() const { return file_error_; }

  private:
    bool grow(size_t needed);
    void shrink();
    bool spill();
    bool write_memory();
    bool write_file(const char *data, size_t size);
    bool read_file(unsigned char *to, size_t size, long long offset);

    Memory memory_;
    size_t buffer_size_ = 0;
    MemoryBudget *budget_ = nullptr;
    size_t reserved_ = 0; // taken from budget_
    long long max_size_ = 0;
    const char *temp_dir_ = nullptr;
    long long size_ = 0;
    bool spilled_ = false;
    UniqueFd file_;
    State state_ = State::Ok;
    const char *file_error_ = "";
};

} // namespace dss_bill

#endif

// BodySink: collects an archive's response body within a fixed memory
// budget. The first buffer_size bytes stay in memory; past that the whole
// body moves to an unnamed temporary file, so memory per fetch is bounded
// whatever the bill's size. Enforces the size limit while bytes arrive.
// A pooled sink keeps its (emptied) file for the next body: creating and
// dropping a file per bill costs more than the bill's own writes.

#ifndef DSS_BILL_BODY_SINK_HPP
#define DSS_BILL_BODY_SINK_HPP

#include <cstddef>
#include <memory>
#include <string_view>

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

class BodySink {
  public:
    enum class State { Ok, TooLarge, FileError };

    // Prepares for a new body; keeps the memory buffer when it is big
    // enough already, so a pooled sink allocates nothing.
    void reset(size_t buffer_size, long long max_size, const char *temp_dir);

    // Appends bytes; false when the body must stop (state() says why).
    bool write(const char *data, size_t size);

    State state() const { return state_; }
    long long size() const { return size_; }
    bool in_file() const { return spilled_; }
    int fd() const { return file_.get(); }
    const unsigned char *memory() const { return memory_.get(); }

    // The first bytes, for the signature check (kept in memory even after a
    // spill).
    std::string_view head(size_t n) const;

    // Empties the sink; the memory buffer and the (truncated) temporary
    // file stay for reuse.
    void clear();

    // The reason of a FileError, for the log.
    const char *file_error() const { return file_error_; }

  private:
    bool spill();
    bool write_file(const char *data, size_t size);

    std::unique_ptr<unsigned char[]> memory_;
    size_t capacity_ = 0;
    size_t buffer_size_ = 0;
    long long max_size_ = 0;
    const char *temp_dir_ = nullptr;
    long long size_ = 0;
    bool spilled_ = false;
    UniqueFd file_;
    const char *file_dir_ = nullptr; // where file_ was created
    State state_ = State::Ok;
    const char *file_error_ = "";
};

} // namespace dss_bill

#endif

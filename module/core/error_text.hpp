// ErrorText: writes a configuration error into a caller's fixed buffer, so
// the C boundary can report reasons without allocating or throwing.

#ifndef DSS_BILL_ERROR_TEXT_HPP
#define DSS_BILL_ERROR_TEXT_HPP

#include <cstddef>
#include <string_view>
#include <type_traits>

namespace dss_bill {

class ErrorText {
  public:
    ErrorText(char *buf, size_t size) : buf_(buf), size_(size) {
        if (size_ > 0) {
            buf_[0] = '\0';
        }
    }

    // Writes the parts, truncating if needed, and returns -1 so that
    // `return error.set(...)` reads as a failure.
    template <typename... Parts> int set(const Parts &...parts) {
        used_ = 0;
        (append(parts), ...);
        if (size_ > 0) {
            buf_[used_] = '\0';
        }
        return -1;
    }

  private:
    void append(std::string_view s) {
        for (char c : s) {
            if (used_ + 1 >= size_) {
                return;
            }
            buf_[used_++] = c;
        }
    }

    template <typename Int,
              typename = std::enable_if_t<std::is_integral_v<Int>>>
    void append(Int value) {
        char digits[24];
        size_t n = 0;
        auto v = static_cast<unsigned long long>(value);
        do {
            digits[n++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v != 0);
        char text[24];
        for (size_t i = 0; i < n; ++i) {
            text[i] = digits[n - 1 - i];
        }
        append(std::string_view(text, n));
    }

    void append(const char *s) { append(std::string_view(s)); }

    char *buf_;
    size_t size_;
    size_t used_ = 0;
};

} // namespace dss_bill

#endif

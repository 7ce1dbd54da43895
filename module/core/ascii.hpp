// ASCII case-insensitive comparisons for protocol tokens (URL schemes, host
// names, header names) and blank trimming: locale-free, unlike <cctype>.

#ifndef DSS_BILL_ASCII_HPP
#define DSS_BILL_ASCII_HPP

#include <cstddef>
#include <string_view>

namespace dss_bill {

constexpr char ascii_lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

constexpr bool starts_with_nocase(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) {
        return false;
    }
    for (size_t i = 0; i < prefix.size(); ++i) {
        if (ascii_lower(s[i]) != ascii_lower(prefix[i])) {
            return false;
        }
    }
    return true;
}

constexpr bool equal_nocase(std::string_view a, std::string_view b) {
    return a.size() == b.size() && starts_with_nocase(a, b);
}

// Without the blanks around it: spaces, tabs and line ends (a header
// value, a line of a credentials file).
constexpr bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

constexpr std::string_view trim_blanks(std::string_view s) {
    while (!s.empty() && is_blank(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_blank(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

} // namespace dss_bill

#endif

// Bill-id rule (contract D2, D5): which ids can name a bill at all.
//
// An id ends up inside a file name and a URL, so the rule is a whitelist of
// characters plus length bounds, checked before the id touches anything.

#include "dss_bill.h"
#include "error_text.hpp"

#include <string_view>

namespace {

class CharSet {
  public:
    explicit CharSet(uint8_t *bits) : bits_(bits) {}

    void clear() {
        for (int i = 0; i < 32; ++i) {
            bits_[i] = 0;
        }
    }
    void add(unsigned char c) { bits_[c >> 3] |= uint8_t(1u << (c & 7)); }

  private:
    uint8_t *bits_;
};

bool contains(const dss_bill_id_rule &rule, unsigned char c) {
    return (rule.allowed[c >> 3] >> (c & 7)) & 1u;
}

// An id becomes part of a file name and of a URL path without escaping, so
// only characters that are literal in both may be allowed: letters, digits
// and the URL path characters that have no meaning to a file system.
bool is_forbidden(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9')) {
        return false;
    }
    return std::string_view("-_~!$&'()*+,;=:@").find(static_cast<char>(c)) ==
           std::string_view::npos;
}

} // namespace

extern "C" {

void dss_bill_id_rule_default(dss_bill_id_rule *rule) {
    static constexpr std::string_view chars = DSS_BILL_ID_DEFAULT_CHARS;
    (void)dss_bill_id_rule_set_chars(rule, chars.data(), chars.size(), nullptr,
                                     0);
    rule->min_length = DSS_BILL_ID_DEFAULT_MIN;
    rule->max_length = DSS_BILL_ID_DEFAULT_MAX;
}

int dss_bill_id_rule_set_chars(dss_bill_id_rule *rule, const char *spec,
                               size_t spec_len, char *err, size_t err_size) {
    std::string_view s(spec, spec_len);
    dss_bill::ErrorText error(err, err_size);

    if (s.empty()) {
        return error.set("the character class is empty");
    }

    uint8_t bits[32];
    CharSet set(bits);
    set.clear();

    for (size_t i = 0; i < s.size(); ++i) {
        auto first = static_cast<unsigned char>(s[i]);
        auto last = first;
        bool range = i + 2 < s.size() && s[i + 1] == '-';
        if (range) {
            last = static_cast<unsigned char>(s[i + 2]);
            if (last < first) {
                return error.set("the range \"", s.substr(i, 3),
                                 "\" is reversed");
            }
            i += 2;
        }
        for (unsigned c = first; c <= last; ++c) {
            auto ch = static_cast<unsigned char>(c);
            if (ch == ' ') {
                return error.set("the character class allows a space");
            }
            if (ch < 0x21 || ch > 0x7e) {
                return error.set(
                    "the character class allows a control or non-ASCII byte");
            }
            if (is_forbidden(ch)) {
                char text = static_cast<char>(ch);
                return error.set("the character class allows '",
                                 std::string_view(&text, 1),
                                 "', which could change a path or URL");
            }
            set.add(ch);
        }
    }

    for (int i = 0; i < 32; ++i) {
        rule->allowed[i] = bits[i];
    }
    return 0;
}

int dss_bill_id_rule_set_length(dss_bill_id_rule *rule, size_t min_length,
                                size_t max_length, char *err, size_t err_size) {
    dss_bill::ErrorText error(err, err_size);

    if (min_length < 1) {
        return error.set("the minimum length must be at least 1");
    }
    if (max_length > DSS_BILL_ID_LIMIT) {
        return error.set("the maximum length must not exceed ",
                         DSS_BILL_ID_LIMIT);
    }
    if (min_length > max_length) {
        return error.set("the minimum length exceeds the maximum");
    }
    rule->min_length = min_length;
    rule->max_length = max_length;
    return 0;
}

int dss_bill_id_is_valid(const dss_bill_id_rule *rule, const char *id,
                         size_t id_len) {
    if (id_len < rule->min_length || id_len > rule->max_length) {
        return 0;
    }
    for (size_t i = 0; i < id_len; ++i) {
        if (!contains(*rule, static_cast<unsigned char>(id[i]))) {
            return 0;
        }
    }
    return 1;
}

} // extern "C"

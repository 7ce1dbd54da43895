// Checks of a dss_bill_upstream URL as configured, and the archive base
// derived from it for the default health probe.

#include "dss_bill.h"
#include "error_text.hpp"

#include <cstring>
#include <string_view>

namespace {

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) {
        return false;
    }
    for (size_t i = 0; i < prefix.size(); ++i) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
        if (c != prefix[i]) {
            return false;
        }
    }
    return true;
}

// The scheme's length including "://", or 0 if not http or https.
size_t scheme_length(std::string_view url) {
    if (starts_with_nocase(url, "https://")) {
        return 8;
    }
    if (starts_with_nocase(url, "http://")) {
        return 7;
    }
    return 0;
}

std::string_view authority(std::string_view url, size_t scheme_len) {
    std::string_view rest = url.substr(scheme_len);
    return rest.substr(0, rest.find_first_of("/?#"));
}

} // namespace

extern "C" {

int dss_bill_upstream_url_check(const char *url, size_t url_len, char *err,
                                size_t err_size) {
    dss_bill::ErrorText error(err, err_size);
    std::string_view u(url, url_len);

    size_t scheme_len = scheme_length(u);
    if (scheme_len == 0) {
        return error.set("the URL must start with \"http://\" or "
                         "\"https://\"");
    }
    std::string_view host = authority(u, scheme_len);
    if (host.empty()) {
        return error.set("the URL has no host");
    }
    // credentials would end up in logs: they have their own directive
    if (host.find('@') != std::string_view::npos) {
        return error.set("the URL must not hold credentials; use "
                         "\"dss_bill_upstream_basic_auth\"");
    }
    return 0;
}

size_t dss_bill_upstream_url_base(const char *url, size_t url_len, char *out,
                                  size_t out_size) {
    std::string_view u(url, url_len);
    size_t scheme_len = scheme_length(u);
    if (scheme_len == 0) {
        return 0;
    }
    std::string_view host = authority(u, scheme_len);
    if (host.empty() || host.find('$') != std::string_view::npos) {
        return 0;
    }
    size_t len = scheme_len + host.size() + 1;
    if (out_size < len + 1) {
        return 0;
    }
    std::memcpy(out, url, scheme_len + host.size());
    out[len - 1] = '/';
    out[len] = '\0';
    return len;
}

} // extern "C"

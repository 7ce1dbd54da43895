// Checks of a dss_bill_upstream URL as configured, and the archive base
// derived from it for the default health probe.

#include "ascii.hpp"
#include "dss_bill.h"
#include "error_text.hpp"

#include <curl/curl.h>

#include <cstring>
#include <memory>
#include <string_view>

namespace {

using dss_bill::equal_nocase;
using dss_bill::starts_with_nocase;

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

struct UrlDeleter {
    void operator()(CURLU *url) const { curl_url_cleanup(url); }
};
using Url = std::unique_ptr<CURLU, UrlDeleter>;

struct CurlStringDeleter {
    void operator()(char *s) const { curl_free(s); }
};
using CurlString = std::unique_ptr<char, CurlStringDeleter>;

// One part of a parsed URL, or null when absent.
CurlString url_part(CURLU *url, CURLUPart what, unsigned int flags) {
    char *part = nullptr;
    if (curl_url_get(url, what, &part, flags) != CURLUE_OK) {
        return nullptr;
    }
    return CurlString(part);
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

int dss_bill_same_origin(const char *a, const char *b) {
    Url ua(curl_url()), ub(curl_url());
    if (!ua || !ub || curl_url_set(ua.get(), CURLUPART_URL, a, 0) != CURLUE_OK ||
        curl_url_set(ub.get(), CURLUPART_URL, b, 0) != CURLUE_OK) {
        return 0;
    }
    for (CURLUPart part : {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT}) {
        CurlString pa = url_part(ua.get(), part, CURLU_DEFAULT_PORT);
        CurlString pb = url_part(ub.get(), part, CURLU_DEFAULT_PORT);
        // host names compare case-insensitively
        if (!pa || !pb || !equal_nocase(pa.get(), pb.get())) {
            return 0;
        }
    }
    return 1;
}

} // extern "C"

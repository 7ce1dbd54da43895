// The object URL of a signed archive: the checks of its configured form,
// the path encoding SigV4 wants, and the bucket URL the health probe uses.

#include "ascii.hpp"
#include "dss_bill.h"
#include "error_text.hpp"

#include <string_view>

namespace {

// "https://" or "http://" (any case), else 0.
size_t scheme_length(std::string_view url) {
    if (dss_bill::starts_with_nocase(url, "https://")) {
        return 8;
    }
    if (dss_bill::starts_with_nocase(url, "http://")) {
        return 7;
    }
    return 0;
}

// RFC 3986 unreserved: the only bytes SigV4 leaves unencoded in a path.
constexpr bool is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

// Virtual-hosted style: the bucket is the host's first label, followed by
// an S3 service label ("b.s3.eu-west-1.amazonaws.com",
// "b.s3-eu-west-1.amazonaws.com", "b.s3.amazonaws.com").
bool virtual_hosted(std::string_view host) {
    size_t dot = host.find('.');
    if (dot == 0 || dot == host.npos) {
        return false;
    }
    std::string_view rest = host.substr(dot + 1);
    return dss_bill::starts_with_nocase(rest, "s3.") ||
           dss_bill::starts_with_nocase(rest, "s3-");
}

} // namespace

extern "C" {

int dss_bill_s3_url_check(const char *url, size_t url_len, char *err,
                          size_t err_size) {
    dss_bill::ErrorText error(err, err_size);
    std::string_view u(url, url_len);
    if (u.find_first_of("?#") != u.npos) {
        return error.set("a signed archive URL names one object: no query "
                         "string, no fragment");
    }
    if (u.find('%') != u.npos) {
        return error.set("write the object key unencoded (no \"%\"): it is "
                         "encoded for signing");
    }
    return 0;
}

size_t dss_bill_s3_encode_url(const char *url, size_t url_len, char *out,
                              size_t out_size) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string_view u(url, url_len);
    size_t scheme = scheme_length(u);
    size_t path = u.find('/', scheme);
    if (path == u.npos) {
        path = u.size();
    }
    size_t used = 0;
    auto put = [&](char c) {
        if (used + 1 < out_size) {
            out[used] = c;
        }
        ++used;
    };
    for (size_t i = 0; i < path; ++i) {
        put(u[i]);
    }
    // the path only: a query (the probe's "max-keys=0") is sent as it is
    size_t query = u.find('?', path);
    if (query == u.npos) {
        query = u.size();
    }
    for (size_t i = path; i < u.size(); ++i) {
        auto c = static_cast<unsigned char>(u[i]);
        if (i >= query || c == '/' || is_unreserved(c)) {
            put(static_cast<char>(c));
        } else {
            put('%');
            put(hex[c >> 4]);
            put(hex[c & 0x0f]);
        }
    }
    if (used + 1 > out_size) {
        return 0;
    }
    out[used] = '\0';
    return used;
}

size_t dss_bill_s3_probe_url(const char *url, size_t url_len, char *out,
                             size_t out_size) {
    static constexpr std::string_view query = "?max-keys=0";
    std::string_view u(url, url_len);
    size_t scheme = scheme_length(u);
    if (scheme == 0) {
        return 0;
    }
    size_t path = u.find('/', scheme);
    if (path == u.npos) {
        return 0; // no object in the URL: nothing to derive from
    }
    std::string_view host = u.substr(scheme, path - scheme);
    size_t end = path + 1; // virtual-hosted: "scheme://host/"
    if (!virtual_hosted(host)) {
        size_t slash = u.find('/', path + 1);
        if (slash == u.npos || slash == path + 1) {
            return 0; // path-style needs "/bucket/key"
        }
        end = slash; // "scheme://host/bucket", as the SDKs list it
    }
    std::string_view bucket_url = u.substr(0, end);
    if (bucket_url.find('$') != bucket_url.npos ||
        bucket_url.size() + query.size() + 1 > out_size) {
        return 0;
    }
    size_t n = 0;
    for (char c : bucket_url) {
        out[n++] = c;
    }
    for (char c : query) {
        out[n++] = c;
    }
    out[n] = '\0';
    return n;
}

} // extern "C"

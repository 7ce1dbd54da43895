// The bill's file path: root + '/' + the evaluated dss_bill_path.
//
// The id rule already keeps ids clean; this is the second fence, for values
// that come from maps or other variables inside dss_bill_path.

#include "dss_bill.h"

#include <cstring>
#include <string_view>

extern "C" {

int dss_bill_relative_path_is_safe(const char *rel, size_t rel_len) {
    std::string_view path(rel, rel_len);

    if (path.empty() || path.front() == '/') {
        return 0;
    }
    if (path.find('\0') != std::string_view::npos ||
        path.find('\\') != std::string_view::npos) {
        return 0;
    }

    while (!path.empty()) {
        size_t slash = path.find('/');
        std::string_view segment = path.substr(0, slash);
        if (segment.empty() || segment == "." || segment == "..") {
            return 0;
        }
        if (slash == std::string_view::npos) {
            break;
        }
        path.remove_prefix(slash + 1);
        if (path.empty()) {
            return 0; // trailing slash names a directory
        }
    }
    return 1;
}

size_t dss_bill_join_path(const char *root, size_t root_len, const char *rel,
                          size_t rel_len, char *out, size_t out_size) {
    while (root_len > 1 && root[root_len - 1] == '/') {
        --root_len;
    }
    bool need_slash = !(root_len == 1 && root[0] == '/');
    size_t total = root_len + (need_slash ? 1 : 0) + rel_len;

    if (out_size < total + 1) {
        return 0;
    }
    std::memcpy(out, root, root_len);
    size_t pos = root_len;
    if (need_slash) {
        out[pos++] = '/';
    }
    std::memcpy(out + pos, rel, rel_len);
    out[total] = '\0';
    return total;
}

} // extern "C"

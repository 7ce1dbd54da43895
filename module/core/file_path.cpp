// The bill's file path: root + '/' + the evaluated dss_bill_path.
//
// The id rule already keeps ids clean; this is the second fence, for values
// that come from maps or other variables inside dss_bill_path.

#include "dss_bill.h"
#include "error_text.hpp"

#include <cstring>
#include <string_view>

namespace {

// Calls on_segment for each '/'-separated segment, a trailing empty one
// included; stops early when it returns false.
template <typename OnSegment>
bool each_segment(std::string_view path, OnSegment on_segment) {
    for (;;) {
        size_t slash = path.find('/');
        if (!on_segment(path.substr(0, slash))) {
            return false;
        }
        if (slash == std::string_view::npos) {
            return true;
        }
        path.remove_prefix(slash + 1);
    }
}

bool names_no_file(std::string_view segment) {
    return segment.empty() || segment == "." || segment == "..";
}

} // namespace

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
    // a trailing slash names a directory: its empty last segment fails too
    return each_segment(path, [](std::string_view segment) {
        return !names_no_file(segment);
    });
}

int dss_bill_path_template_check(const char *value, size_t value_len,
                                 char *err, size_t err_size) {
    dss_bill::ErrorText error(err, err_size);
    std::string_view path(value, value_len);

    if (path.empty()) {
        return error.set("is empty");
    }
    if (path.front() == '/') {
        return error.set("must be relative to \"dss_bill_root\"");
    }
    if (path.find('\\') != std::string_view::npos) {
        return error.set("must not hold a backslash");
    }
    // D9: a value without variables names the same file for every bill
    if (path.find('$') == std::string_view::npos) {
        return error.set("holds no variable: every bill id would get the "
                         "same file; use $dss_bill_id");
    }
    // a segment with a variable is judged per request, once it is known
    bool ok = each_segment(path, [](std::string_view segment) {
        return segment.find('$') != std::string_view::npos ||
               !names_no_file(segment);
    });
    if (!ok) {
        return error.set("has an empty, \".\" or \"..\" segment");
    }
    return 0;
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

// The AWS shared-credentials file (~/.aws/credentials) as every AWS tool
// reads it: "[profile]" sections of "key = value" lines. Parsed at
// configuration time; a reason for a failure never quotes the file's text,
// since that text is a secret.

#include "ascii.hpp"
#include "dss_bill.h"
#include "error_text.hpp"

#include <string_view>

namespace {


// A value is one token of printable ASCII: keys, secrets and session
// tokens are base64-like text. Anything else is a damaged file.
bool printable_token(std::string_view value) {
    for (char c : value) {
        if (c <= ' ' || c > '~') {
            return false;
        }
    }
    return !value.empty();
}

dss_bill_text text_of(std::string_view s) {
    return dss_bill_text{s.data(), s.size()};
}

} // namespace

extern "C" {

int dss_bill_s3_credentials_parse(const char *text, size_t len,
                                  const char *profile, size_t profile_len,
                                  dss_bill_s3_credentials *out, char *err,
                                  size_t err_size) {
    dss_bill::ErrorText error(err, err_size);
    *out = dss_bill_s3_credentials{};

    const std::string_view wanted(profile, profile_len);
    std::string_view rest(text, len);
    bool in_profile = false;
    bool seen_profile = false;
    size_t line_no = 0;

    while (!rest.empty()) {
        size_t eol = rest.find('\n');
        std::string_view line = dss_bill::trim_blanks(rest.substr(0, eol));
        rest = eol == std::string_view::npos ? std::string_view()
                                             : rest.substr(eol + 1);
        ++line_no;

        if (line.empty() || line.front() == '#' || line.front() == ';') {
            continue;
        }
        if (line.front() == '[') {
            if (line.back() != ']') {
                return error.set("line ", line_no, ": a section header "
                                 "without \"]\"");
            }
            std::string_view name =
                dss_bill::trim_blanks(line.substr(1, line.size() - 2));
            in_profile = name == wanted;
            if (in_profile && seen_profile) {
                return error.set("profile \"", wanted, "\" appears twice");
            }
            seen_profile = seen_profile || in_profile;
            continue;
        }
        size_t eq = line.find('=');
        if (eq == std::string_view::npos) {
            return error.set("line ", line_no, ": expected \"key = value\"");
        }
        if (!in_profile) {
            continue;
        }
        std::string_view key = dss_bill::trim_blanks(line.substr(0, eq));
        std::string_view value = dss_bill::trim_blanks(line.substr(eq + 1));
        dss_bill_text *slot = nullptr;
        if (dss_bill::equal_nocase(key, "aws_access_key_id")) {
            slot = &out->access_key_id;
        } else if (dss_bill::equal_nocase(key, "aws_secret_access_key")) {
            slot = &out->secret_access_key;
        } else if (dss_bill::equal_nocase(key, "aws_session_token")) {
            slot = &out->session_token;
        } else {
            continue; // region, output, ... belong to other tools
        }
        if (!printable_token(value)) {
            // the key's name only: the value may be (part of) a secret
            return error.set("line ", line_no, ": \"", key,
                             "\" is empty or has spaces or control "
                             "characters");
        }
        // D9: the key id goes into every request's Authorization header
        if (slot == &out->access_key_id && value.find('/') != value.npos) {
            return error.set("line ", line_no,
                             ": \"aws_access_key_id\" holds a \"/\"");
        }
        // as the AWS tools do: a key set twice in a profile is an error,
        // not "the last one wins"
        if (slot->data != nullptr) {
            return error.set("line ", line_no, ": \"", key,
                             "\" is set twice in profile \"", wanted, "\"");
        }
        *slot = text_of(value);
    }

    if (!seen_profile) {
        return error.set("no profile \"", wanted, "\"");
    }
    if (out->access_key_id.data == nullptr) {
        return error.set("profile \"", wanted,
                         "\" has no \"aws_access_key_id\"");
    }
    if (out->secret_access_key.data == nullptr) {
        return error.set("profile \"", wanted,
                         "\" has no \"aws_secret_access_key\"");
    }
    return 0;
}

int dss_bill_s3_name_check(const char *name, size_t len, char *err,
                           size_t err_size) {
    dss_bill::ErrorText error(err, err_size);
    if (len == 0 || len > 64) {
        return error.set("must have 1 to 64 characters");
    }
    for (size_t i = 0; i < len; ++i) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok) {
            return error.set("may hold only a-z, 0-9, \"-\" and \"_\"");
        }
    }
    return 0;
}

} // extern "C"

// dss-bill-check's command line: parsing and validation (no network).

#ifndef DSS_CHECK_OPTIONS_H
#define DSS_CHECK_OPTIONS_H

#include <string>
#include <vector>

namespace dss_check {

struct Options {
    std::string base_url; // scheme://host[:port], without a trailing slash
    std::string prefix = "/dss/bill";
    std::vector<std::string> bills;
    std::string missing;
    std::string user;
    std::string password_file;
    std::string password_env;
    std::string cacert;
    bool insecure = false;
    bool json = false;
    bool watch = false;
    double interval_s = 10; // --interval, DSS's poll period by default
    long count = 0;         // --count: polls; 0 = until interrupted
    bool help = false;
    bool version = false;
};

// Parses argv; returns "" or the usage error (which never quotes a
// password: none can be on the command line).
std::string parse_options(int argc, const char *const *argv, Options &o);

// "10s", "500ms", "2m", "1.5" (seconds) -> seconds; false if invalid.
bool parse_interval(const std::string &text, double *seconds);

// A bill id as D2 describes it: letters, digits, '-' and '_', 1..200.
bool plausible_bill_id(const std::string &id);

// Reads the password from --password-file (its first line) or the
// environment variable --password-env names. Returns "" or the error.
std::string read_password(const Options &o, std::string *password);

// The --help text: usage, options, every check in the contract's words,
// exit statuses.
std::string help_text();

} // namespace dss_check

#endif

// dss-bill-check's command line: parsing, validation and --help.

#include "options.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>

#include "check.h"

namespace dss_check {

bool parse_interval(const std::string &text, double *seconds) {
    std::size_t digits = 0;
    bool dot = false;
    while (digits < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[digits])) ||
            (text[digits] == '.' && !dot))) {
        dot = dot || text[digits] == '.';
        digits++;
    }
    if (digits == 0 || digits > 12 || text[0] == '.') {
        return false;
    }
    double value = std::strtod(text.substr(0, digits).c_str(), nullptr);
    std::string unit = text.substr(digits);
    if (unit == "ms") {
        value /= 1000;
    } else if (unit == "m") {
        value *= 60;
    } else if (unit == "h") {
        value *= 3600;
    } else if (!unit.empty() && unit != "s") {
        return false;
    }
    if (value < 0.01 || value > 86400) {
        return false;
    }
    *seconds = value;
    return true;
}

bool plausible_bill_id(const std::string &id) {
    return !id.empty() && id.size() <= 200 &&
           std::all_of(id.begin(), id.end(), [](unsigned char c) {
               return std::isalnum(c) || c == '-' || c == '_';
           });
}

namespace {

// Validates and normalises BASE_URL: http(s)://host[:port][/].
std::string check_base_url(std::string &url) {
    std::string rest;
    if (url.compare(0, 8, "https://") == 0) {
        rest = url.substr(8);
    } else if (url.compare(0, 7, "http://") == 0) {
        rest = url.substr(7);
    } else {
        return "BASE_URL must start with https:// (or http://)";
    }
    if (!rest.empty() && rest.back() == '/') {
        rest.pop_back();
        url.pop_back();
    }
    if (rest.find('@') != std::string::npos) {
        // not quoted back: it holds a password
        return "BASE_URL must not hold credentials: use --user with "
               "--password-file "
               "or --password-env";
    }
    if (rest.empty() || rest.find_first_of("/?# ") != std::string::npos) {
        return "BASE_URL is the scheme, host and port only (the routes are "
               "under --prefix)";
    }
    return "";
}

} // namespace

std::string parse_options(int argc, const char *const *argv, Options &o) {
    std::vector<std::string> positional;
    bool interval_given = false, count_given = false;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&](std::string &out) -> bool {
            if (i + 1 >= argc) {
                return false;
            }
            out = argv[++i];
            return true;
        };
        std::string v;
        if (a == "-h" || a == "--help") {
            o.help = true;
        } else if (a == "--version") {
            o.version = true;
        } else if (a == "--insecure" || a == "-k") {
            o.insecure = true;
        } else if (a == "--json") {
            o.json = true;
        } else if (a == "--watch") {
            o.watch = true;
        } else if (a == "--password" || a.compare(0, 11, "--password=") == 0) {
            return "passwords are not taken on the command line: use "
                   "--password-file "
                   "or --password-env";
        } else if (a == "--bill" || a == "--missing" || a == "--user" ||
                   a == "--cacert" || a == "--prefix" ||
                   a == "--password-file" || a == "--password-env" ||
                   a == "--interval" || a == "--count") {
            if (!value(v)) {
                return a + " needs a value";
            }
            if (a == "--bill") {
                if (!plausible_bill_id(v)) {
                    return "--bill " + v +
                           ": a bill id is letters, digits, - and _ (D2)";
                }
                o.bills.push_back(v);
            } else if (a == "--missing") {
                if (!plausible_bill_id(v)) {
                    return "--missing " + v +
                           ": a bill id is letters, digits, - and _ (D2)";
                }
                o.missing = v;
            } else if (a == "--user") {
                if (v.empty() || v.find(':') != std::string::npos) {
                    return "--user: a user name without ':'";
                }
                o.user = v;
            } else if (a == "--cacert") {
                o.cacert = v;
            } else if (a == "--prefix") {
                while (v.size() > 1 && v.back() == '/') {
                    v.pop_back();
                }
                if (v.empty() || v[0] != '/' ||
                    v.find_first_of("?# ") != std::string::npos) {
                    return "--prefix must be a path starting with /";
                }
                o.prefix = v == "/" ? "" : v;
            } else if (a == "--password-file") {
                o.password_file = v;
            } else if (a == "--password-env") {
                o.password_env = v;
            } else if (a == "--interval") {
                if (!parse_interval(v, &o.interval_s)) {
                    return "--interval " + v +
                           ": a time such as 10s, 500ms or 1m";
                }
                interval_given = true;
            } else if (a == "--count") {
                char *end = nullptr;
                o.count = std::strtol(v.c_str(), &end, 10);
                if (v.empty() || *end != '\0' || o.count < 1 ||
                    o.count > 100000000) {
                    return "--count " + v + ": a number of polls, 1 or more";
                }
                count_given = true;
            }
        } else if (!a.empty() && a[0] == '-') {
            return "unknown option " + a;
        } else {
            positional.push_back(a);
        }
    }
    if (o.help || o.version) {
        return "";
    }
    if (positional.size() != 1) {
        return positional.empty() ? "BASE_URL is missing" : "only one BASE_URL";
    }
    o.base_url = positional[0];
    std::string err = check_base_url(o.base_url);
    if (!err.empty()) {
        return err;
    }
    if (o.bills.empty() && !o.watch) {
        return "at least one --bill is needed (or --watch)";
    }
    if (!o.user.empty() && o.password_file.empty() == o.password_env.empty()) {
        return "--user needs exactly one of --password-file and --password-env";
    }
    if (o.user.empty() &&
        (!o.password_file.empty() || !o.password_env.empty())) {
        return "--password-file and --password-env need --user";
    }
    if (o.insecure && !o.cacert.empty()) {
        return "--cacert and --insecure exclude each other";
    }
    if ((interval_given || count_given) && !o.watch) {
        return "--interval and --count go with --watch";
    }
    return "";
}

std::string read_password(const Options &o, std::string *password) {
    if (!o.password_env.empty()) {
        const char *v = std::getenv(o.password_env.c_str());
        if (!v || !*v) {
            return "--password-env " + o.password_env +
                   ": the variable is not set or empty";
        }
        *password = v;
        return "";
    }
    if (!o.password_file.empty()) {
        std::ifstream in(o.password_file, std::ios::binary);
        std::string line;
        if (!in || !std::getline(in, line)) {
            return "--password-file " + o.password_file + ": cannot read it";
        }
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        if (line.empty()) {
            return "--password-file " + o.password_file +
                   ": its first line is empty";
        }
        *password = line;
    }
    return "";
}

std::string help_text() {
    std::string h =
        "usage: dss-bill-check BASE_URL --bill ID [--bill ID ...] [--missing "
        "ID]\n"
        "           [--user U (--password-file F | --password-env VAR)]\n"
        "           [--cacert F | --insecure] [--prefix /dss/bill] [--json]\n"
        "           [--watch [--interval 10s] [--count N]]\n"
        "\n"
        "Plays Oracle DSS against a Bill Provisioning endpoint (this module, "
        "an nginx\n"
        "configuration, any vendor's service) and reports, per rule of the DSS "
        "bill\n"
        "contract, PASS, WARN, FAIL or SKIP with a reason and what was "
        "observed.\n"
        "\n"
        "  BASE_URL             scheme, host and port: "
        "https://bills.example:443\n"
        "  --prefix P           the routes' prefix (default /dss/bill):\n"
        "                       P/download/{bill_id} and P/healthcheck\n"
        "  --bill ID            a bill that exists (repeatable); its download "
        "is checked\n"
        "  --missing ID         a bill id that has no bill: must be 404\n"
        "  --user U             Basic-auth user; the password comes from\n"
        "  --password-file F    the first line of F, or\n"
        "  --password-env VAR   the environment variable VAR (never the "
        "command line;\n"
        "                       never printed)\n"
        "  --cacert F           trust the CA (or self-signed certificate) in "
        "F\n"
        "  --insecure, -k       do not verify the certificate (its expiry is "
        "still checked)\n"
        "  --json               one JSON document instead of lines\n"
        "  --watch              then poll the health check like DSS, printing "
        "a\n"
        "                       timestamped line on every change and a "
        "summary\n"
        "  --interval T         time between polls (default 10s; 500ms, 1m "
        "...)\n"
        "  --count N            stop after N polls (default: until "
        "interrupted)\n"
        "\n"
        "Checks (rule ids of the DSS bill contract):\n";
    for (const Check &c : checks()) {
        // "  D3 name", then the title wrapped at 79 columns, indented
        h += std::string("  ") + c.rule + " " + c.name + "\n";
        std::string line = "      ";
        std::string title = c.title;
        for (std::size_t pos = 0; pos < title.size();) {
            std::size_t end = title.find(' ', pos);
            end = end == std::string::npos ? title.size() : end;
            std::string word = title.substr(pos, end - pos);
            if (line.size() > 6 && line.size() + 1 + word.size() > 79) {
                h += line + "\n";
                line = "      ";
            }
            line += (line.size() > 6 ? " " : "") + word;
            pos = end + 1;
        }
        h += line + "\n";
    }
    h += "\n"
         "Exit status: 0 when no check failed (warnings allowed), 1 when a "
         "check (or,\n"
         "with --watch, a poll) failed, 2 for a usage error or when BASE_URL "
         "cannot\n"
         "be reached at all.\n";
    return h;
}

} // namespace dss_check

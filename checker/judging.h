// Shared by the judges (judges.cpp, judges_download.cpp): building
// outcomes, describing exchanges, and the two shapes most verdicts take
// (over each bill answered 200; against the plain download of each bill).

#ifndef DSS_CHECK_JUDGING_H
#define DSS_CHECK_JUDGING_H

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "check.h"

namespace dss_check {
namespace judging {

inline Outcome pass(std::string reason, std::string observed) {
    return {Verdict::pass, std::move(reason), std::move(observed)};
}
inline Outcome warn(std::string reason, std::string observed) {
    return {Verdict::warn, std::move(reason), std::move(observed)};
}
inline Outcome fail(std::string reason, std::string observed) {
    return {Verdict::fail, std::move(reason), std::move(observed)};
}
inline Outcome skip(std::string reason) {
    return {Verdict::skip, std::move(reason), ""};
}

// Collects per-exchange observations, and keeps the report line short.
struct Notes {
    std::vector<std::string> items;
    void add(const std::string &s) { items.push_back(s); }
    std::string join() const {
        std::string out;
        std::size_t shown = std::min<std::size_t>(items.size(), 4);
        for (std::size_t i = 0; i < shown; i++) {
            out += (i ? "; " : "") + items[i];
        }
        if (items.size() > shown) {
            out += "; and " + std::to_string(items.size() - shown) + " more";
        }
        return out;
    }
};

// "404", or "no response: <error>"
inline std::string status_of(const Exchange &e) {
    if (!e.responded) {
        return "no response (" + e.error + ")";
    }
    std::string s = std::to_string(e.status);
    if (e.short_body) {
        s += ", body cut short (" + e.error + ")";
    }
    return s;
}

inline bool is_200(const Exchange &e) {
    return e.responded && e.status == 200 && !e.short_body;
}

inline std::string ms(double seconds) {
    char buf[32];
    if (seconds < 0.01) {
        std::snprintf(buf, sizeof buf, "%.1f ms", seconds * 1000);
    } else if (seconds < 1) {
        std::snprintf(buf, sizeof buf, "%.0f ms", seconds * 1000);
    } else {
        std::snprintf(buf, sizeof buf, "%.1f s", seconds);
    }
    return buf;
}

// The first bytes of a body, printable.
inline std::string start_of(const std::string &body) {
    std::string out;
    for (std::size_t i = 0; i < body.size() && i < 16; i++) {
        unsigned char c = static_cast<unsigned char>(body[i]);
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out += static_cast<char>(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    return "\"" + out + "\"";
}

// "identical", or where two bodies first differ.
inline std::string difference(const std::string &a, const std::string &b) {
    if (a == b) {
        return "identical";
    }
    std::size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) {
        i++;
    }
    return describe_size(a.size()) + " vs " + describe_size(b.size()) +
           ", first difference at byte " + std::to_string(i);
}

inline const std::vector<Exchange> &probe(const Evidence &ev, std::size_t i) {
    static const std::vector<Exchange> none;
    return i < ev.size() ? ev[i] : none;
}

// The first exchange of a probe, or a stand-in saying nothing came back.
inline const Exchange &first(const Evidence &ev, std::size_t i) {
    static const Exchange nothing = [] {
        Exchange e;
        e.error = "not sent";
        return e;
    }();
    const auto &p = probe(ev, i);
    return p.empty() ? nothing : p.front();
}

// Runs fn over each 200 of the plain download; SKIP when there is none.
template <typename Fn>
inline Outcome over_bills(const Evidence &ev, const char *pass_reason, Fn fn) {
    Notes bad, good;
    std::size_t seen = 0;
    std::string first_problem;
    for (const auto &e : probe(ev, 0)) {
        if (!is_200(e)) {
            continue;
        }
        seen++;
        std::string problem, observed;
        fn(e, problem, observed);
        if (problem.empty()) {
            good.add(e.label + ": " + observed);
        } else {
            bad.add(e.label + ": " + problem);
            if (first_problem.empty()) {
                first_problem = problem;
            }
        }
    }
    if (seen == 0) {
        return skip("no bill was answered 200 (see D3 download-status)");
    }
    if (!bad.items.empty()) {
        return fail(first_problem, bad.join());
    }
    return pass(pass_reason, good.join());
}

// Compares a probe's answers with the plain download of the same bill
// (exchanges are in --bill order; `per` copies per bill).
template <typename Fn>
inline Outcome against_plain(const Evidence &ev, std::size_t i, std::size_t per,
                             const char *pass_reason, Fn fn) {
    const auto &plain = probe(ev, 0);
    const auto &other = probe(ev, i);
    if (plain.empty()) {
        return skip("no bill was fetched");
    }
    Notes bad, good;
    std::string first_problem;
    for (std::size_t b = 0; b < plain.size(); b++) {
        for (std::size_t k = 0; k < per && b * per + k < other.size(); k++) {
            const Exchange &e = other[b * per + k];
            std::string problem = fn(plain[b], e);
            if (!problem.empty()) {
                bad.add(e.label + ": " + problem);
                if (first_problem.empty()) {
                    first_problem = problem;
                }
            } else if (k == 0 && e.method == "HEAD") {
                const std::string *cl = e.header("content-length");
                good.add(e.label + ": " + status_of(e) +
                         ", Content-Length: " + (cl ? *cl : "none"));
            } else if (k == 0) {
                good.add(e.label + ": " + status_of(e) + ", " +
                         describe_size(e.body.size()));
            }
        }
    }
    if (!bad.items.empty()) {
        return fail(first_problem, bad.join());
    }
    return pass(pass_reason, good.join());
}

// The answer must be the plain download's: same status, same bytes.
inline std::string same_answer(const Exchange &plain, const Exchange &e) {
    if (!e.responded || e.status != plain.status || e.short_body) {
        return "status " + status_of(e) + " where the plain download got " +
               status_of(plain);
    }
    if (e.body != plain.body) {
        return "different bytes: " + difference(plain.body, e.body);
    }
    return "";
}

} // namespace judging
} // namespace dss_check

#endif

// The verdicts: plain functions from the exchanges a check's probes brought
// back (and DSS's limits) to PASS, WARN, FAIL or SKIP, a one-line reason
// and what was observed. No I/O: unit-tested with made-up exchanges.

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>

#include "check.h"
#include "judging.h"

namespace dss_check {

const std::string *Exchange::header(const std::string &name) const {
    for (const auto &h : headers) {
        if (h.first == name) {
            return &h.second;
        }
    }
    return nullptr;
}

std::size_t Exchange::header_count(const std::string &name) const {
    return static_cast<std::size_t>(
        std::count_if(headers.begin(), headers.end(),
                      [&](const auto &h) { return h.first == name; }));
}

std::string media_type(const std::string &content_type) {
    std::string t = content_type.substr(0, content_type.find(';'));
    auto not_space = [](unsigned char c) { return !std::isspace(c); };
    t.erase(t.begin(), std::find_if(t.begin(), t.end(), not_space));
    t.erase(std::find_if(t.rbegin(), t.rend(), not_space).base(), t.end());
    std::transform(t.begin(), t.end(), t.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    return t;
}

bool parse_content_length(const Exchange &e, unsigned long long *out) {
    bool found = false;
    unsigned long long value = 0;
    for (const auto &h : e.headers) {
        if (h.first != "content-length") {
            continue;
        }
        const std::string &v = h.second;
        if (v.empty() || v.size() > 18 ||
            !std::all_of(v.begin(), v.end(),
                         [](unsigned char c) { return std::isdigit(c); })) {
            return false;
        }
        unsigned long long n = std::stoull(v);
        if (found && n != value) {
            return false; // two different lengths: ambiguous framing
        }
        found = true;
        value = n;
    }
    if (found) {
        *out = value;
    }
    return found;
}

std::string describe_size(unsigned long long bytes) {
    return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
}

using namespace judging;

// ---- transport -------------------------------------------------------------
Outcome judge_https(const Evidence &, const Settings &s) {
    if (s.https) {
        return pass("BASE_URL is https", "https");
    }
    return fail("DSS calls the Bill Provisioning Service over HTTPS only",
                "http");
}

Outcome judge_tls_version(const Evidence &ev, const Settings &) {
    const Exchange &e = first(ev, 0);
    if (e.tls_failed) {
        return fail("no TLS 1.2 (or newer) connection could be made", e.error);
    }
    if (!e.responded) {
        return fail("no response", e.error);
    }
    if (e.tls_version == "TLSv1.2" || e.tls_version == "TLSv1.3") {
        return pass("TLS 1.2 or newer was negotiated", e.tls_version);
    }
    if (e.tls_version.empty()) {
        // the client offers nothing older than 1.2 (runner.cpp)
        return pass("a TLS 1.2 or newer connection was made",
                    "version not reported");
    }
    return fail("an older TLS version was negotiated", e.tls_version);
}

Outcome judge_certificate(const Evidence &ev, const Settings &s) {
    const Exchange &e = first(ev, 0);
    if (e.tls_failed) {
        return fail("the certificate (or TLS handshake) was refused", e.error);
    }
    if (e.cert_not_after == 0) {
        return skip("the certificate's expiry could not be read");
    }
    char date[64];
    struct tm tm;
    gmtime_r(&e.cert_not_after, &tm);
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (e.cert_not_after <= s.now) {
        return fail("the certificate has expired",
                    std::string("expired ") + date);
    }
    long long days = (static_cast<long long>(e.cert_not_after) - s.now) / 86400;
    std::string observed = std::string("valid until ") + date + ", " +
                           std::to_string(days) +
                           (days == 1 ? " day" : " days") + " left";
    if (days < s.cert_warn_days) {
        return warn("the certificate expires within " +
                        std::to_string(s.cert_warn_days) +
                        " days: renew it and give DSS the new one",
                    observed);
    }
    return pass("the certificate is valid for more than " +
                    std::to_string(s.cert_warn_days) + " days",
                observed);
}

Outcome judge_basic_auth(const Evidence &ev, const Settings &) {
    Notes bad, good;
    const char *how[] = {"without credentials", "with a wrong password"};
    for (std::size_t i = 0; i < 2; i++) {
        for (const auto &e : probe(ev, i)) {
            std::string what = e.label + " " + how[i] + ": " + status_of(e);
            if (e.responded && e.status == 401) {
                good.add(what);
            } else if (e.responded && e.status >= 200 && e.status < 300) {
                bad.add(what + " (a bill was served " + how[i] + ")");
            } else {
                bad.add(what + " (expected 401)");
            }
        }
    }
    if (!bad.items.empty()) {
        return fail("Basic authentication is not enforced on downloads",
                    bad.join());
    }
    if (good.items.empty()) {
        return skip("nothing was sent");
    }
    return pass(
        "downloads without credentials or with a wrong password are 401",
        good.join());
}

// ---- health ----------------------------------------------------------------
// "" when e is a healthy answer (H2), else why not.
static std::string health_problem(const Exchange &e) {
    unsigned long long length = 0;
    if (!e.responded) {
        return "no response: " + e.error;
    }
    if (e.status != 200) {
        return "status " + std::to_string(e.status) + " (healthy is 200)";
    }
    if (e.header("transfer-encoding")) {
        return "chunked (Transfer-Encoding: " + *e.header("transfer-encoding") +
               "), not Content-Length: 0";
    }
    if (!parse_content_length(e, &length)) {
        return "no valid Content-Length (expected Content-Length: 0)";
    }
    if (length != 0 || !e.body.empty()) {
        return "a body of " +
               describe_size(
                   std::max<unsigned long long>(length, e.body.size())) +
               " " + start_of(e.body) +
               " (expected Content-Length: 0 and no body)";
    }
    return "";
}

Outcome judge_health(const Evidence &ev, const Settings &) {
    const Exchange &e = first(ev, 0);
    std::string problem = health_problem(e);
    if (!problem.empty()) {
        return fail("the health check does not say healthy: " + problem,
                    status_of(e));
    }
    return pass("healthy: 200 with Content-Length: 0",
                "200, Content-Length: 0");
}

Outcome judge_health_open(const Evidence &ev, const Settings &) {
    const Exchange &e = first(ev, 0);
    if (!e.responded) {
        return fail("no response without credentials", e.error);
    }
    if (e.status == 200) {
        return pass("the health check answers without credentials", "200");
    }
    std::string observed = std::to_string(e.status);
    if (const std::string *www = e.header("www-authenticate")) {
        observed += ", WWW-Authenticate: " + *www;
    }
    if (e.status == 401 || e.status == 403) {
        return warn("the health check requires credentials: DSS nodes and load "
                    "balancers "
                    "probing without them see the service down (keep it "
                    "outside Basic auth)",
                    observed);
    }
    return warn("without credentials the health check is not 200", observed);
}

Outcome judge_health_fast(const Evidence &ev, const Settings &s) {
    const auto &series = probe(ev, 0);
    if (series.empty()) {
        return skip("nothing was sent");
    }
    double slowest = 0;
    for (const auto &e : series) {
        if (!e.responded) {
            return fail("a health poll got no response", e.error);
        }
        slowest = std::max(slowest, e.first_byte_s);
    }
    std::string observed =
        "slowest of " + std::to_string(series.size()) + ": " + ms(slowest);
    if (slowest > s.health_limit_s) {
        return fail("the health check took longer than " + ms(s.health_limit_s),
                    observed);
    }
    return pass("every health poll answered within " + ms(s.health_limit_s),
                observed);
}

// ---- not found -------------------------------------------------------------

Outcome judge_missing(const Evidence &ev, const Settings &) {
    const Exchange &e = first(ev, 0);
    if (e.responded && e.status == 404) {
        return pass("a bill that does not exist is 404", e.label + ": 404");
    }
    if (e.responded && e.status == 200) {
        return fail("a bill that does not exist was answered 200",
                    e.label + ": 200, " + describe_size(e.body.size()));
    }
    return fail("a bill that does not exist is not 404",
                e.label + ": " + status_of(e));
}

Outcome judge_hostile(const Evidence &ev, const Settings &) {
    Notes bad;
    long first_bad = 0;
    std::map<std::string, int> counts;
    for (const auto &e : probe(ev, 0)) {
        std::string st = e.responded ? std::to_string(e.status) : "no response";
        counts[st]++;
        if (e.responded && e.status >= 200 && e.status < 300) {
            first_bad = first_bad ? first_bad : e.status;
            bad.add(e.label + ": " + std::to_string(e.status) + ", " +
                    describe_size(e.body.size()));
        }
    }
    std::string observed;
    for (const auto &c : counts) {
        observed += (observed.empty() ? "" : ", ") + c.first + " x " +
                    std::to_string(c.second);
    }
    if (!bad.items.empty()) {
        return fail("an id that cannot be valid was answered " +
                        std::to_string(first_bad),
                    bad.join());
    }
    if (counts.empty()) {
        return skip("nothing was sent");
    }
    return pass("no hostile id was answered 200", observed);
}

Outcome judge_statuses(const Evidence &ev, const Settings &) {
    Notes bad;
    std::map<long, int> counts;
    for (const auto &p : ev) {
        for (const auto &e : p) {
            if (!e.responded) {
                continue; // a transport failure is judged by the checks above
            }
            counts[e.status]++;
            if (e.status != 200 && e.status != 404 && e.status != 500) {
                bad.add(e.label + " (" + e.method +
                        "): " + std::to_string(e.status));
            }
        }
    }
    std::string observed;
    for (const auto &c : counts) {
        observed += (observed.empty() ? "" : ", ") + std::to_string(c.first) +
                    " x " + std::to_string(c.second);
    }
    if (!bad.items.empty()) {
        return fail(
            "a status other than 200, 404 or 500 (DSS counts it as a 500)",
            bad.join() + " [" + observed + "]");
    }
    if (counts.empty()) {
        return skip("no response");
    }
    return pass("only 200, 404 and 500", observed);
}

// ---- connections -----------------------------------------------------------

Outcome judge_keepalive(const Evidence &ev, const Settings &) {
    const auto &series = probe(ev, 0);
    if (series.size() < 2) {
        return skip("fewer than two requests were sent");
    }
    long opened = 0;
    for (const auto &e : series) {
        if (!e.responded) {
            return fail("a request got no response", e.error);
        }
        opened += e.new_connections;
    }
    std::string observed = std::to_string(series.size()) + " requests over " +
                           std::to_string(opened) +
                           (opened == 1 ? " connection" : " connections");
    if (opened >= static_cast<long>(series.size())) {
        return fail("no connection was reused: each request opened a new one",
                    observed);
    }
    return pass("connections are reused", observed);
}

} // namespace dss_check

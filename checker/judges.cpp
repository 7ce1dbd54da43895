// The verdicts: plain functions from the exchanges a check's probes brought
// back (and DSS's limits) to PASS, WARN, FAIL or SKIP, a one-line reason
// and what was observed. No I/O: unit-tested with made-up exchanges.

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>

#include "check.h"

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

namespace {

Outcome pass(std::string reason, std::string observed) {
    return {Verdict::pass, std::move(reason), std::move(observed)};
}
Outcome warn(std::string reason, std::string observed) {
    return {Verdict::warn, std::move(reason), std::move(observed)};
}
Outcome fail(std::string reason, std::string observed) {
    return {Verdict::fail, std::move(reason), std::move(observed)};
}
Outcome skip(std::string reason) {
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
std::string status_of(const Exchange &e) {
    if (!e.responded) {
        return "no response (" + e.error + ")";
    }
    std::string s = std::to_string(e.status);
    if (e.short_body) {
        s += ", body cut short (" + e.error + ")";
    }
    return s;
}

bool is_200(const Exchange &e) {
    return e.responded && e.status == 200 && !e.short_body;
}

std::string ms(double seconds) {
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
std::string start_of(const std::string &body) {
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
std::string difference(const std::string &a, const std::string &b) {
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

const std::vector<Exchange> &probe(const Evidence &ev, std::size_t i) {
    static const std::vector<Exchange> none;
    return i < ev.size() ? ev[i] : none;
}

// The first exchange of a probe, or a stand-in saying nothing came back.
const Exchange &first(const Evidence &ev, std::size_t i) {
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
Outcome over_bills(const Evidence &ev, const char *pass_reason, Fn fn) {
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
Outcome against_plain(const Evidence &ev, std::size_t i, std::size_t per,
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
std::string same_answer(const Exchange &plain, const Exchange &e) {
    if (!e.responded || e.status != plain.status || e.short_body) {
        return "status " + status_of(e) + " where the plain download got " +
               status_of(plain);
    }
    if (e.body != plain.body) {
        return "different bytes: " + difference(plain.body, e.body);
    }
    return "";
}

} // namespace

// ---- transport
// ---------------------------------------------------------------

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

// ---- health
// --------------------------------------------------------------------

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

// ---- download
// ------------------------------------------------------------------

Outcome judge_download_status(const Evidence &ev, const Settings &) {
    Notes bad, good;
    for (const auto &e : probe(ev, 0)) {
        std::string what = e.label + ": " + status_of(e);
        if (is_200(e)) {
            good.add(what + ", " + describe_size(e.body.size()));
        } else {
            bad.add(what);
        }
    }
    if (!bad.items.empty()) {
        return fail("a bill was not answered 200", bad.join());
    }
    return pass("every bill was answered 200", good.join());
}

Outcome judge_content_type(const Evidence &ev, const Settings &) {
    return over_bills(
        ev, "every bill is application/pdf",
        [](const Exchange &e, std::string &problem, std::string &observed) {
            const std::string *t = e.header("content-type");
            observed = t ? *t : "no Content-Type";
            if (!t || media_type(*t) != "application/pdf") {
                problem = "Content-Type is " + (t ? *t : "missing") +
                          ", not application/pdf";
            }
        });
}

Outcome judge_content_length(const Evidence &ev, const Settings &) {
    return over_bills(
        ev, "Content-Length equals the bytes received",
        [](const Exchange &e, std::string &problem, std::string &observed) {
            unsigned long long n = 0;
            observed = "Content-Length: " + std::to_string(e.body.size());
            if (e.header_count("content-length") == 0) {
                problem = "no Content-Length (" + describe_size(e.body.size()) +
                          " received)";
            } else if (!parse_content_length(e, &n)) {
                problem = "invalid or conflicting Content-Length";
            } else if (n != e.body.size()) {
                problem = "Content-Length: " + std::to_string(n) + " but " +
                          describe_size(e.body.size()) + " received";
            }
        });
}

Outcome judge_framing(const Evidence &ev, const Settings &) {
    return over_bills(
        ev, "neither chunked nor compressed",
        [](const Exchange &e, std::string &problem, std::string &observed) {
            observed = "identity";
            if (const std::string *te = e.header("transfer-encoding")) {
                problem = "Transfer-Encoding: " + *te;
            } else if (const std::string *ce = e.header("content-encoding")) {
                if (media_type(*ce) != "identity") {
                    problem = "Content-Encoding: " + *ce;
                }
            }
        });
}

Outcome judge_pdf(const Evidence &ev, const Settings &) {
    bool tail_missing = false;
    Outcome o = over_bills(
        ev, "every bill starts with %PDF-",
        [&](const Exchange &e, std::string &problem, std::string &observed) {
            observed = "starts " + start_of(e.body.substr(0, 8));
            if (e.body.compare(0, 5, "%PDF-") != 0) {
                problem =
                    "the body is not a PDF: it starts " + start_of(e.body);
                return;
            }
            std::size_t from = e.body.size() > 1024 ? e.body.size() - 1024 : 0;
            if (e.body.find("%%EOF", from) == std::string::npos) {
                tail_missing = true;
                observed += ", no %%EOF in its last 1,024 bytes";
            }
        });
    if (o.verdict == Verdict::pass && tail_missing) {
        o.verdict = Verdict::warn;
        o.reason = "a bill has no %%EOF in its last 1,024 bytes: readers may "
                   "call it damaged "
                   "or cut short";
    }
    return o;
}

Outcome judge_max_size(const Evidence &ev, const Settings &s) {
    return over_bills(
        ev, "every bill is within 5 MB",
        [&](const Exchange &e, std::string &problem, std::string &observed) {
            observed = describe_size(e.body.size());
            if (e.over_cap || e.body.size() > s.max_size) {
                problem = (e.over_cap ? "more than " : "") + observed +
                          ", over DSS's " + describe_size(s.max_size);
            }
        });
}

Outcome judge_timing(const Evidence &ev, const Settings &s) {
    Notes bad, good;
    for (const auto &e : probe(ev, 0)) {
        std::string what = e.label + ": first byte " + ms(e.first_byte_s) +
                           ", whole " + ms(e.total_s);
        if (!e.responded && e.first_byte_s == 0) {
            bad.add(e.label + ": no response (" + e.error + ")");
        } else if (e.first_byte_s > s.first_byte_limit_s) {
            bad.add(what + " (DSS waits " + ms(s.first_byte_limit_s) +
                    " for the first byte)");
        } else if (e.total_s > s.total_limit_s) {
            bad.add(what + " (DSS waits " + ms(s.total_limit_s) +
                    " for the whole bill)");
        } else {
            good.add(what);
        }
    }
    if (!bad.items.empty()) {
        return fail("a response was slower than DSS waits", bad.join());
    }
    if (good.items.empty()) {
        return skip("nothing was sent");
    }
    return pass("every response started within 5 s and ended within 60 s",
                good.join());
}

Outcome judge_accept(const Evidence &ev, const Settings &) {
    Outcome a = against_plain(ev, 1, 1, "", same_answer);
    if (a.verdict == Verdict::fail) {
        a.reason = "without an Accept header: " + a.reason;
        return a;
    }
    Outcome b = against_plain(ev, 2, 1, "", same_answer);
    if (b.verdict == Verdict::fail) {
        b.reason = "with Accept: text/html: " + b.reason;
        return b;
    }
    a.reason = "the Accept header does not change the answer";
    return a;
}

Outcome judge_same_bytes(const Evidence &ev, const Settings &) {
    if (std::none_of(probe(ev, 0).begin(), probe(ev, 0).end(), is_200)) {
        return skip("no bill was answered 200 (see D3 download-status)");
    }
    return against_plain(ev, 1, 1, "a second fetch gives the same bytes",
                         same_answer);
}

Outcome judge_parallel(const Evidence &ev, const Settings &) {
    const auto &plain = probe(ev, 0);
    if (std::none_of(plain.begin(), plain.end(), is_200)) {
        return skip("no bill was answered 200 (see D3 download-status)");
    }
    std::size_t per = plain.empty() ? 1 : probe(ev, 1).size() / plain.size();
    Outcome o = against_plain(ev, 1, per ? per : 1, "", same_answer);
    if (o.verdict == Verdict::pass) {
        o.reason = std::to_string(per) +
                   " simultaneous downloads of each bill gave the same bytes";
    } else if (o.verdict == Verdict::fail) {
        o.reason = "under " + std::to_string(per) +
                   " simultaneous downloads: " + o.reason;
    }
    return o;
}

Outcome judge_head(const Evidence &ev, const Settings &) {
    return against_plain(
        ev, 1, 1, "HEAD answers like GET",
        [](const Exchange &get, const Exchange &h) -> std::string {
            unsigned long long n = 0;
            if (!h.responded || h.status != get.status) {
                return "HEAD: " + status_of(h) + ", GET: " + status_of(get);
            }
            if (get.status == 200) {
                if (!parse_content_length(h, &n)) {
                    return "HEAD has no valid Content-Length";
                }
                if (n != get.body.size()) {
                    return "HEAD says Content-Length: " + std::to_string(n) +
                           ", GET sent " + describe_size(get.body.size());
                }
            }
            return "";
        });
}

Outcome judge_range(const Evidence &ev, const Settings &) {
    Outcome o = against_plain(
        ev, 1, 1, "Range is ignored: 200 with the complete bill",
        [](const Exchange &plain, const Exchange &e) -> std::string {
            if (e.responded && e.status == 206) {
                return "206 Partial Content (" + describe_size(e.body.size()) +
                       ")";
            }
            return same_answer(plain, e);
        });
    if (o.verdict == Verdict::fail) {
        o.reason = "a Range request was not answered with the complete bill: " +
                   o.reason;
    }
    return o;
}

Outcome judge_conditional(const Evidence &ev, const Settings &) {
    const char *names[] = {"If-None-Match", "If-Modified-Since"};
    Outcome o;
    for (std::size_t i = 1; i <= 2; i++) {
        o = against_plain(
            ev, i, 1,
            "conditional headers are ignored: 200 with the complete bill",
            [](const Exchange &plain, const Exchange &e) -> std::string {
                if (e.responded && e.status == 304) {
                    return "304 Not Modified";
                }
                return same_answer(plain, e);
            });
        if (o.verdict == Verdict::fail) {
            o.reason = std::string("with ") + names[i - 1] + ": " + o.reason;
            return o;
        }
    }
    return o;
}

// ---- not found --------------------------------------------------------------

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

// ---- connections ------------------------------------------------------------

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

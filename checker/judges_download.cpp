// The download's verdicts (D1, D3, D4, D7 head, D8, D9, T4, T5 parallel):
// plain functions of the exchanges, unit-tested with made-up ones.

#include <algorithm>
#include <string>

#include "check.h"
#include "judging.h"

namespace dss_check {

using namespace judging;

// ---- download --------------------------------------------------------------
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

} // namespace dss_check

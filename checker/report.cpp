// dss-bill-check's output: report lines, counts, the watch log and JSON.

#include "report.h"

#include <cstdio>

namespace dss_check {

Summary summarize(const std::vector<Result> &results) {
    Summary s;
    for (const auto &r : results) {
        switch (r.outcome.verdict) {
        case Verdict::warn:
            s.warned++;
            s.passed++; // a warning is not a failure
            break;
        case Verdict::pass:
            s.passed++;
            break;
        case Verdict::fail:
            s.failed++;
            break;
        case Verdict::skip:
            s.skipped++;
            break;
        }
    }
    return s;
}

std::string report_line(const Result &r) {
    std::string line = std::string(verdict_word(r.outcome.verdict)) + " " +
                       r.check->rule + " " + r.check->name + ": " +
                       r.outcome.reason;
    if (!r.outcome.observed.empty()) {
        line += " (observed " + r.outcome.observed + ")";
    }
    return line;
}

std::string summary_line(const Summary &s) {
    std::string line = std::to_string(s.passed) + " passed, " +
                       std::to_string(s.failed) + " failed, " +
                       std::to_string(s.skipped) + " skipped";
    if (s.warned) {
        line += " (" + std::to_string(s.warned) +
                (s.warned == 1 ? " warning)" : " warnings)");
    }
    return line;
}

int exit_status(const Summary &s) {
    return s.failed ? 1 : 0;
}

bool record_poll(WatchLog &log, const Poll &p) {
    log.polls++;
    (p.healthy ? log.healthy : log.failed)++;
    if (!log.changes.empty() && log.changes.back().healthy == p.healthy) {
        return false;
    }
    log.changes.push_back(p);
    return true;
}

static std::string iso_time(std::time_t t) {
    char buf[32];
    struct tm tm;
    gmtime_r(&t, &tm);
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string poll_line(const Poll &p) {
    return iso_time(p.at) + (p.healthy ? " healthy: " : " UNHEALTHY: ") +
           p.detail;
}

std::string watch_summary(const WatchLog &log) {
    long changes =
        log.changes.empty() ? 0 : static_cast<long>(log.changes.size()) - 1;
    return "watch: " + std::to_string(log.polls) +
           (log.polls == 1 ? " poll, " : " polls, ") +
           std::to_string(log.healthy) + " healthy, " +
           std::to_string(log.failed) + " failed, " + std::to_string(changes) +
           (changes == 1 ? " change of state" : " changes of state");
}

std::string json_string(const std::string &s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (c < 0x20 || c >= 0x7f) {
                // bytes beyond ASCII (a server's header) are not
                // necessarily UTF-8: escape them one by one
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    return out + "\"";
}

std::string json_report(const std::string &base_url, const std::string &prefix,
                        const std::vector<Result> &results,
                        const WatchLog *watch, int exit_code) {
    Summary s = summarize(results);
    std::string j = "{\n  \"base_url\": " + json_string(base_url) +
                    ",\n  \"prefix\": " + json_string(prefix) +
                    ",\n  \"checks\": [";
    for (std::size_t i = 0; i < results.size(); i++) {
        const Result &r = results[i];
        j += std::string(i ? ",\n" : "\n") +
             "    {\"rule\": " + json_string(r.check->rule) +
             ", \"name\": " + json_string(r.check->name) +
             ", \"verdict\": " + json_string(verdict_word(r.outcome.verdict)) +
             ", \"reason\": " + json_string(r.outcome.reason) +
             ", \"observed\": " + json_string(r.outcome.observed) + "}";
    }
    j += results.empty() ? "],\n" : "\n  ],\n";
    j += "  \"passed\": " + std::to_string(s.passed) +
         ", \"failed\": " + std::to_string(s.failed) +
         ", \"skipped\": " + std::to_string(s.skipped) +
         ", \"warnings\": " + std::to_string(s.warned) + ",\n";
    if (watch) {
        j += "  \"watch\": {\"polls\": " + std::to_string(watch->polls) +
             ", \"healthy\": " + std::to_string(watch->healthy) +
             ", \"failed\": " + std::to_string(watch->failed) +
             ", \"changes\": [";
        for (std::size_t i = 0; i < watch->changes.size(); i++) {
            const Poll &p = watch->changes[i];
            j += std::string(i ? ", " : "") +
                 "{\"time\": " + json_string(iso_time(p.at)) +
                 ", \"healthy\": " + (p.healthy ? "true" : "false") +
                 ", \"detail\": " + json_string(p.detail) + "}";
        }
        j += "]},\n";
    }
    j += "  \"exit_status\": " + std::to_string(exit_code) + "\n}\n";
    return j;
}

} // namespace dss_check

// dss-bill-check's output: report lines, the closing count, JSON, and the
// watch log. Pure functions of the results (no I/O).

#ifndef DSS_CHECK_REPORT_H
#define DSS_CHECK_REPORT_H

#include <ctime>
#include <string>
#include <vector>

#include "check.h"

namespace dss_check {

struct Result {
    const Check *check;
    Outcome outcome;
};

struct Summary {
    int passed = 0, failed = 0, skipped = 0, warned = 0;
};

Summary summarize(const std::vector<Result> &results);

// "FAIL D3 range-ignored: <reason> (observed <observed>)"
std::string report_line(const Result &r);

// "21 passed, 2 failed, 1 skipped" (", 1 warning" when there are any;
// a warning counts as passed)
std::string summary_line(const Summary &s);

// 0 when nothing failed, else 1.
int exit_status(const Summary &s);

// ---- --watch ---------------------------------------------------------------

struct Poll {
    std::time_t at = 0;
    bool healthy = false;
    std::string detail; // "200, Content-Length: 0 (3 ms)" or the problem
};

struct WatchLog {
    long polls = 0, healthy = 0, failed = 0;
    std::vector<Poll> changes; // the first poll, then every change of state
};

// Records a poll; true when it changes the state (the first poll does).
bool record_poll(WatchLog &log, const Poll &p);

// "2026-12-01T17:00:00Z healthy: 200 ..." / "... UNHEALTHY: status 503"
std::string poll_line(const Poll &p);

// "watch: 6 polls, 3 healthy, 3 failed, 2 changes of state"
std::string watch_summary(const WatchLog &log);

// ---- JSON
// --------------------------------------------------------------------

std::string json_string(const std::string &s); // quoted and escaped

// One document: the target, every check's result, the counts, the exit
// status; with watch non-null, the watch log too.
std::string json_report(const std::string &base_url, const std::string &prefix,
                        const std::vector<Result> &results,
                        const WatchLog *watch, int exit_code);

} // namespace dss_check

#endif

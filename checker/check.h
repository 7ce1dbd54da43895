// dss-bill-check's core: the checks as data (rule id, what is sent, what is
// expected) and the verdicts as plain functions of what came back. No
// libcurl, no I/O: the runner (runner.cpp) sends the probes and hands the
// exchanges to the judges; the unit tests hand them made-up exchanges.
// The contract (docs/contract.md) is the source of truth: rule ids are its.

#ifndef DSS_CHECK_CHECK_H
#define DSS_CHECK_CHECK_H

#include <cstddef>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

namespace dss_check {

enum class Verdict { pass, warn, fail, skip };

const char *verdict_word(Verdict v); // "PASS", "WARN", "FAIL", "SKIP"

// One request and what came back of it.
struct Exchange {
    std::string label;  // what was asked, for reasons: "bill 1234", "health"
    std::string method; // GET or HEAD

    // transport: false when no complete HTTP response came back
    bool responded = false;
    bool connected = false;  // a TCP connection was made (or reused)
    bool tls_failed = false; // the failure was the TLS handshake/verification
    std::string error;       // libcurl's message when !responded or short
    bool short_body = false; // fewer bytes than Content-Length arrived
    bool over_cap = false;   // the body exceeded what the client keeps

    long status = 0;
    std::vector<std::pair<std::string, std::string>>
        headers; // lower-case names
    std::string body;
    double first_byte_s = 0;  // start of the request -> first response byte
    double total_s = 0;       // connection start -> last byte
    long new_connections = 0; // connections opened for this exchange

    std::string tls_version;        // "TLSv1.3", empty on plain HTTP
    std::time_t cert_not_after = 0; // leaf certificate expiry, 0 unknown

    // the value of the first header of that (lower-case) name, or nullptr
    const std::string *header(const std::string &name) const;
    // how many headers of that name came
    std::size_t header_count(const std::string &name) const;
};

// What a verdict says: a one-line reason and the observed value(s).
struct Outcome {
    Verdict verdict = Verdict::skip;
    std::string reason;
    std::string observed;
};

// The limits DSS applies (contract D4, T4, H4, T1) and the run's facts.
struct Settings {
    std::size_t max_size = 5u * 1024u * 1024u; // D4: 5 MB, DSS's largest
    double first_byte_limit_s = 5;             // T4
    double total_limit_s = 60;                 // T4
    double health_limit_s = 1;                 // H4: well within 10 s polls
    int cert_warn_days = 30;                   // T1
    bool https = true;                         // BASE_URL's scheme
    bool bills = false;                        // --bill given
    bool credentials = false;                  // --user given
    bool missing = false;                      // --missing given
    std::time_t now = 0;                       // for certificate expiry
};

// ---- what is sent ---------------------------------------------------------

enum class Target {
    bill,    // <prefix>/download/<id>, once per --bill
    missing, // <prefix>/download/<--missing id>
    hostile, // <prefix>/download/<each of hostile_ids()>
    health,  // <prefix>/healthcheck
};

enum class Auth { given, none, wrong };

// One request pattern. Identical probes (same fields) are sent once per run
// and their exchanges shared by every check that names them.
struct Probe {
    Target target = Target::bill;
    const char *method = "GET";
    std::vector<std::string> headers; // "{etag}", "{last-modified}": from
                                      // the plain download's answer
    Auth auth = Auth::given;
    int parallel = 1;     // copies sent at once, each on its own connection
    int sequence = 1;     // copies sent one after the other on one handle
    const char *tag = ""; // distinguishes a deliberate second fetch

    std::string key() const;
};

// What a check needs from the command line to mean anything.
enum Needs : unsigned {
    needs_nothing = 0,
    needs_bills = 1,
    needs_missing = 2,
    needs_credentials = 4,
    needs_https = 8,
};

// The probes' exchanges, in the order of the check's probes.
using Evidence = std::vector<std::vector<Exchange>>;
using Judge = Outcome (*)(const Evidence &, const Settings &);

struct Check {
    const char *rule;  // contract rule id: D3, H2, T1, ...
    const char *name;  // short, stable: download-status, health, ...
    const char *title; // what it expects, in the contract's words
    unsigned needs;
    bool transport; // judged even when no TLS connection could be made
    std::vector<Probe> probes;
    Judge judge;
};

// Every check, in the order they are reported.
const std::vector<Check> &checks();

// The hostile bill ids (already URL-encoded path segments), built around a
// real bill id so that a server resolving the trick would find a bill.
std::vector<std::string> hostile_ids(const std::string &bill);

// The headers every download probe sends (DSS's Accept, and an
// Accept-Encoding that must not make the answer compressed: D1, D3).
std::vector<std::string> download_headers();

// ---- verdicts ---------------------------------------------------------------

// Why a check is skipped before anything is sent, or "" if it can run.
std::string skip_reason(const Check &c, const Settings &s);

// The checks' judges, exposed for the unit tests.
Outcome judge_https(const Evidence &, const Settings &);
Outcome judge_tls_version(const Evidence &, const Settings &);
Outcome judge_certificate(const Evidence &, const Settings &);
Outcome judge_basic_auth(const Evidence &, const Settings &);
Outcome judge_health(const Evidence &, const Settings &);
Outcome judge_health_open(const Evidence &, const Settings &);
Outcome judge_health_fast(const Evidence &, const Settings &);
Outcome judge_download_status(const Evidence &, const Settings &);
Outcome judge_content_type(const Evidence &, const Settings &);
Outcome judge_content_length(const Evidence &, const Settings &);
Outcome judge_framing(const Evidence &, const Settings &);
Outcome judge_pdf(const Evidence &, const Settings &);
Outcome judge_max_size(const Evidence &, const Settings &);
Outcome judge_timing(const Evidence &, const Settings &);
Outcome judge_accept(const Evidence &, const Settings &);
Outcome judge_same_bytes(const Evidence &, const Settings &);
Outcome judge_parallel(const Evidence &, const Settings &);
Outcome judge_head(const Evidence &, const Settings &);
Outcome judge_range(const Evidence &, const Settings &);
Outcome judge_conditional(const Evidence &, const Settings &);
Outcome judge_missing(const Evidence &, const Settings &);
Outcome judge_hostile(const Evidence &, const Settings &);
Outcome judge_statuses(const Evidence &, const Settings &);
Outcome judge_keepalive(const Evidence &, const Settings &);

// ---- helpers shared with the report and the tests ---------------------------

// "application/pdf; charset=x" -> "application/pdf" (lower case, trimmed)
std::string media_type(const std::string &content_type);

// A Content-Length value as a number; false when absent, not a plain
// decimal number, or several different values.
bool parse_content_length(const Exchange &e, unsigned long long *out);

// "1.2 MB", "123 bytes"
std::string describe_size(unsigned long long bytes);

} // namespace dss_check

#endif

// The table of checks: for each, the contract rule it proves, what is sent
// and which judge decides. Reading this file top to bottom is reading what
// dss-bill-check does.

#include "check.h"

namespace dss_check {

const char *verdict_word(Verdict v) {
    switch (v) {
    case Verdict::pass:
        return "PASS";
    case Verdict::warn:
        return "WARN";
    case Verdict::fail:
        return "FAIL";
    case Verdict::skip:
        break;
    }
    return "SKIP";
}

std::string Probe::key() const {
    std::string k = std::to_string(static_cast<int>(target)) + ' ' + method;
    for (const auto &h : headers) {
        k += '\n' + h;
    }
    k += "\nauth=" + std::to_string(static_cast<int>(auth)) +
         " parallel=" + std::to_string(parallel) +
         " sequence=" + std::to_string(sequence) + " tag=" + tag;
    return k;
}

std::vector<std::string> download_headers() {
    // D1: what DSS sends. Accept-Encoding: an intermediary or the client
    // may offer compression; the bill must still come as it is (D3).
    return {"Accept: application/pdf", "Accept-Encoding: gzip, deflate"};
}

std::vector<std::string> hostile_ids(const std::string &bill) {
    // D5: ids that cannot be valid. Each is one path segment as sent
    // (the client sends it as is: no normalisation of dot segments).
    return {
        "..%2F..%2F..%2F..%2Fetc%2Fpasswd", // encoded traversal
        "..%5C..%5C..%5Cetc%5Cpasswd",      // backslashes
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",   // encoded dots and slashes
        "%252E%252E%252Fetc%252Fpasswd",    // double encoding
        bill + "%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "..", // dot segments, literal
        ".",
        bill + "/../../../../etc/passwd",
        bill + "%00", // NUL
        bill + "%00.pdf",
        bill + "%0D%0AX-Injected:%20yes", // CR LF
        std::string(300, '9'),            // overlong
    };
}

namespace {

Probe download(Auth auth = Auth::given) {
    Probe p;
    p.headers = download_headers();
    p.auth = auth;
    return p;
}

Probe download_with(const std::string &header) {
    Probe p = download();
    p.headers.push_back(header);
    return p;
}

Probe download_again() {
    Probe p = download();
    p.tag = "again";
    return p;
}

Probe download_accept(const char *accept) {
    Probe p;
    p.headers = {accept}; // "Accept:" alone: no Accept header at all
    return p;
}

Probe head() {
    Probe p = download();
    p.method = "HEAD";
    return p;
}

Probe burst() {
    Probe p = download();
    p.parallel = 16;
    return p;
}

Probe of(Target t, Auth auth = Auth::given) {
    Probe p = t == Target::health ? Probe{} : download();
    p.target = t;
    p.auth = auth;
    return p;
}

Probe health_series() {
    Probe p = of(Target::health);
    p.sequence = 5;
    return p;
}

std::vector<Check> make_checks() {
    const unsigned bills = needs_bills;
    return {
        // ---- transport (T1, T2) -------------------------------------------
        {"T1",
         "https",
         "DSS calls the service over HTTPS only",
         needs_nothing,
         true,
         {},
         judge_https},
        {"T1",
         "tls-version",
         "the TLS connection is TLS 1.2 or newer",
         needs_https,
         true,
         {of(Target::health)},
         judge_tls_version},
        {"T1",
         "certificate",
         "the server certificate is valid (self-signed is accepted): a "
         "warning when it expires within 30 days, a failure once expired",
         needs_https,
         true,
         {of(Target::health)},
         judge_certificate},
        {"T2",
         "basic-auth",
         "with credentials given, Basic authentication is enforced: a "
         "download without credentials or with a wrong password is 401, "
         "never a bill",
         bills | needs_credentials,
         false,
         {download(Auth::none), download(Auth::wrong)},
         judge_basic_auth},

        // ---- health check (H1, H2, H4) --------------------------------------
        {"H2",
         "health",
         "GET healthcheck is 200 OK with Content-Length: 0 and no body",
         needs_nothing,
         false,
         {of(Target::health)},
         judge_health},
        {"H1",
         "health-without-credentials",
         "the health check answers without credentials (DSS nodes and load "
         "balancers may probe without them), or what it requires is reported",
         needs_nothing,
         false,
         {of(Target::health, Auth::none)},
         judge_health_open},
        {"H4",
         "health-fast",
         "the health check costs next to nothing: each of 5 polls answers "
         "within 1 s, well within DSS's 10 s poll interval",
         needs_nothing,
         false,
         {health_series()},
         judge_health_fast},

        // ---- download (D1, D3, D4, D7, D8, D9, T4, T5) ----------------------
        {"D3",
         "download-status",
         "GET download/{bill_id} of each --bill is 200 OK",
         bills,
         false,
         {download()},
         judge_download_status},
        {"D3",
         "content-type",
         "the bill comes with Content-Type: application/pdf",
         bills,
         false,
         {download()},
         judge_content_type},
        {"D3",
         "content-length",
         "Content-Length is the exact size in bytes: equal to the bytes "
         "received",
         bills,
         false,
         {download()},
         judge_content_length},
        {"D3",
         "not-chunked",
         "the bill is never chunked and never compressed (even when the "
         "request offers Accept-Encoding: gzip)",
         bills,
         false,
         {download()},
         judge_framing},
        {"D8",
         "pdf",
         "a 200 is a complete PDF: it starts with %PDF- (a warning when "
         "%%EOF is not within its last 1,024 bytes)",
         bills,
         false,
         {download()},
         judge_pdf},
        {"D4",
         "max-size",
         "the bill is at most 5 MB (5 x 1024 x 1024 bytes), the largest "
         "content-length DSS accepts",
         bills,
         false,
         {download()},
         judge_max_size},
        {"T4",
         "timing",
         "the response starts within 5 s and the whole bill arrives within 60 "
         "s",
         bills,
         false,
         {download()},
         judge_timing},
        {"D1",
         "accept-ignored",
         "a missing or different Accept header is not an error: the same "
         "status and the same bytes",
         bills,
         false,
         {download(), download_accept("Accept:"),
          download_accept("Accept: text/html")},
         judge_accept},
        {"D9",
         "same-bytes",
         "the same bill fetched twice is byte-for-byte identical",
         bills,
         false,
         {download(), download_again()},
         judge_same_bytes},
        {"T5",
         "parallel",
         "16 simultaneous downloads of the same bill are all 200 with "
         "identical bytes",
         bills,
         false,
         {download(), burst()},
         judge_parallel},
        {"D7",
         "head",
         "HEAD answers like GET (status, Content-Length) without a body",
         bills,
         false,
         {download(), head()},
         judge_head},
        {"D3",
         "range-ignored",
         "a Range header is ignored: 200 with the complete bill, never 206",
         bills,
         false,
         {download(), download_with("Range: bytes=0-99")},
         judge_range},
        {"D3",
         "conditional-ignored",
         "If-None-Match and If-Modified-Since are ignored: 200 with the "
         "complete bill, never 304",
         bills,
         false,
         {download(), download_with("If-None-Match: {etag}"),
          download_with("If-Modified-Since: {last-modified}")},
         judge_conditional},

        // ---- not found (D5, D7) ---------------------------------------------
        {"D5",
         "missing",
         "GET download/{--missing id} is 404 Not Found",
         needs_missing,
         false,
         {of(Target::missing)},
         judge_missing},
        {"D5",
         "hostile-ids",
         "ids that cannot be valid (traversal, encoded slashes, dot "
         "segments, NUL, CR LF, overlong) are never answered 200",
         bills,
         false,
         {of(Target::hostile)},
         judge_hostile},
        {"D7",
         "statuses",
         "well-formed download requests are answered only 200, 404 or 500 "
         "(DSS treats every other status as a 500)",
         bills,
         false,
         {download(), download_again(), download_accept("Accept:"),
          download_accept("Accept: text/html"), head(),
          download_with("Range: bytes=0-99"),
          download_with("If-None-Match: {etag}"),
          download_with("If-Modified-Since: {last-modified}"),
          of(Target::missing)},
         judge_statuses},

        // ---- connections (T5) -----------------------------------------------
        {"T5",
         "keep-alive",
         "connections are kept alive and reused across requests",
         needs_nothing,
         false,
         {health_series()},
         judge_keepalive},
    };
}

} // namespace

const std::vector<Check> &checks() {
    static const std::vector<Check> table = make_checks();
    return table;
}

std::string skip_reason(const Check &c, const Settings &s) {
    if ((c.needs & needs_https) && !s.https) {
        return "BASE_URL is not https";
    }
    if ((c.needs & needs_bills) && !s.bills) {
        return "no --bill given";
    }
    if ((c.needs & needs_missing) && !s.missing) {
        return "no --missing given";
    }
    if ((c.needs & needs_credentials) && !s.credentials) {
        return "no --user given (T2 also allows no authentication)";
    }
    return "";
}

} // namespace dss_check

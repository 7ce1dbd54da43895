// One archive fetch around a libcurl easy handle, and the per-worker pool
// that recycles them. The nginx glue drives the transfer through its multi
// handle; everything about one transfer (options, body, verdict) is here.

#include "ascii.hpp"
#include "body_sink.hpp"
#include "dss_bill.h"
#include "error_text.hpp"
#include "s3_sign.hpp"

#include <curl/curl.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct EasyDeleter {
    void operator()(CURL *easy) const { curl_easy_cleanup(easy); }
};
using EasyHandle = std::unique_ptr<CURL, EasyDeleter>;

struct SlistDeleter {
    void operator()(curl_slist *list) const { curl_slist_free_all(list); }
};
using HeaderList = std::unique_ptr<curl_slist, SlistDeleter>;

} // namespace

namespace dss_bill {

// How the archive framed its answer's body (D8): anything ambiguous is
// refused, since the two readings would give two different bills.
struct Framing {
    int content_lengths = 0;
    bool length_not_a_number = false; // "10, 20", "+10", "": read as what?
    bool chunked = false;

    bool ambiguous() const {
        return content_lengths > 1 || length_not_a_number ||
               (chunked && content_lengths > 0);
    }
};

// A Content-Length line's value is one decimal number, nothing else (RFC
// 9110, 8.6): a list, even of equal values, or a sign, is refused rather
// than read one way here and another way elsewhere.
bool length_is_one_number(std::string_view line) {
    std::string_view value = trim_blanks(line.substr(line.find(':') + 1));
    if (value.empty() || value.size() > 18) {
        return false;
    }
    for (char c : value) {
        if (c < '0' || c > '9') {
            return false;
        }
    }
    return true;
}

} // namespace dss_bill

struct dss_bill_fetch_s {
    dss_bill_fetch_pool *pool = nullptr;
    EasyHandle easy;
    HeaderList headers;
    dss_bill::BodySink sink;
    const dss_bill_upstream_options *options = nullptr;
    const char *url = nullptr; // as configured: its origin gets the headers
    long redirects = 0;
    bool probe = false;
    bool stopped_on_status = false;
    bool failed = false;       // a callback failed (out of memory)
    dss_bill::Framing framing;
    size_t discarded = 0;
    long status = 0;
    std::string s3_url;          // the URL with its path encoded for SigV4
    std::string s3_headers;      // its signed header lines, '\0'-separated
    char s3_error[1024] = {};    // the start of an S3 error body
    size_t s3_error_len = 0;
    char curl_error[CURL_ERROR_SIZE] = {};
    char detail[CURL_ERROR_SIZE + 96] = {};
};

struct dss_bill_fetch_pool_s {
    size_t max_idle = 0;
    dss_bill::MemoryBudget budget;
    dss_bill::SigningKeys s3_keys; // derived once a day per location
    std::vector<std::unique_ptr<dss_bill_fetch>> idle;
};

namespace {

// An error page larger than this is not worth a connection's reuse.
constexpr size_t kMaxDiscard = 64 * 1024;

// "YYYYMMDDTHHMMSSZ", the time SigV4 signs
bool amz_now(char (&out)[17]) {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    return gmtime_r(&now, &tm) != nullptr &&
           std::strftime(out, sizeof(out), "%Y%m%dT%H%M%SZ", &tm) == 16;
}

// libcurl calls these from C: nothing may throw out of them.
size_t write_body(dss_bill_fetch *fetch, char *data, size_t n) {
    // D6: a body that is not a 200's is never a bill. A small one is read
    // and dropped so the connection can be reused; a large one is cut off.
    long status = 0;
    curl_easy_getinfo(fetch->easy.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 || fetch->probe) {
        if (fetch->options->s3 && status != 200) {
            // what S3 says went wrong, for the log (a bounded prefix)
            size_t room = sizeof(fetch->s3_error) - fetch->s3_error_len;
            size_t keep = n < room ? n : room;
            std::memcpy(fetch->s3_error + fetch->s3_error_len, data, keep);
            fetch->s3_error_len += keep;
        }
        fetch->discarded += n;
        if (fetch->discarded > kMaxDiscard) {
            fetch->stopped_on_status = true;
            return 0;
        }
        return n;
    }
    return fetch->sink.write(data, n) ? n : 0;
}

size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) noexcept {
    auto *fetch = static_cast<dss_bill_fetch *>(userdata);
    try {
        return write_body(fetch, data, size * nmemb);
    } catch (...) {
        fetch->failed = true;
        return 0;
    }
}

// "Name:" at the start of a header line, in any case.
bool header_is(std::string_view line, std::string_view name) {
    return line.size() > name.size() && line[name.size()] == ':' &&
           dss_bill::starts_with_nocase(line, name);
}

// Counts the framing headers of each response (a new status line, after a
// 1xx or a redirect, starts afresh) and stops a transfer whose framing is
// ambiguous: its connection cannot be trusted with the next request either.
size_t on_header(char *data, size_t size, size_t nmemb,
                 void *userdata) noexcept {
    auto *fetch = static_cast<dss_bill_fetch *>(userdata);
    size_t n = size * nmemb;
    std::string_view line(data, n);

    if (line.substr(0, 5) == "HTTP/") {
        fetch->framing = dss_bill::Framing{};
    } else if (header_is(line, "content-length")) {
        fetch->framing.content_lengths++;
        if (!dss_bill::length_is_one_number(line)) {
            fetch->framing.length_not_a_number = true;
        }
    } else if (header_is(line, "transfer-encoding")) {
        fetch->framing.chunked = true;
    }
    return fetch->framing.ambiguous() ? 0 : n;
}

bool set_options(dss_bill_fetch *fetch,
                 const dss_bill_upstream_options &options, const char *url,
                 dss_bill::ErrorText &error) {
    CURL *easy = fetch->easy.get();
    CURLcode rc = CURLE_OK;
    auto set = [&rc](CURLcode result) {
        if (rc == CURLE_OK) {
            rc = result;
        }
    };

    const dss_bill_s3_options *s3 = options.s3;
    if (s3) {
        // the path as SigV4 canonicalises it, so that what is sent is what
        // is signed (the string keeps its capacity in the pool, so this
        // allocates only while the pool warms up)
        size_t len = std::strlen(url);
        fetch->s3_url.resize(3 * len + 1);
        fetch->s3_url.resize(dss_bill_s3_encode_url(
            url, len, fetch->s3_url.data(), fetch->s3_url.size()));
        url = fetch->s3_url.c_str();
    }
    set(curl_easy_setopt(easy, CURLOPT_URL, url));
    // only the web: no file://, ldap:// or the like, whatever a variable
    // in the URL or a redirect turns out to be
    set(curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https"));
    // redirects are followed here, not by libcurl, which would send the
    // archive's headers to any host (D9): dss_bill_fetch_redirected()
    set(curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L));
    // T5: a transfer removed while its name lookup runs lets the resolver
    // thread go instead of joining it (which blocks the worker)
    set(curl_easy_setopt(easy, CURLOPT_QUICK_EXIT, 1L));
    // D9: an HTTP/1.1 answer that arrives late, after the next request went
    // out on the same connection, cannot be told from that request's own:
    // only dss_bill_upstream_keepalive on reuses connections (without it, a
    // fetch neither takes a kept connection nor leaves its own)
    const long own_connection = options.keepalive ? 0L : 1L;
    set(curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, own_connection));
    set(curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, own_connection));
    set(curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                         options.connect_timeout_ms));
    set(curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, options.timeout_ms));
    // refuse early what the archive announces as too large
    set(curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
                         static_cast<curl_off_t>(options.max_size)));
    set(curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L));
    set(curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, nullptr));
    set(curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, fetch->curl_error));
    set(curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body));
    set(curl_easy_setopt(easy, CURLOPT_WRITEDATA, fetch));
    set(curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header));
    set(curl_easy_setopt(easy, CURLOPT_HEADERDATA, fetch));
    set(curl_easy_setopt(easy, CURLOPT_USERAGENT, "ngx_http_dss_bill_module"));

    set(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER,
                         options.ssl_verify ? 1L : 0L));
    set(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST,
                         options.ssl_verify ? 2L : 0L));
    // PEM text read at configuration time (the workers may not be allowed
    // to read the files); libcurl keeps a pointer, no copy
    auto set_pem = [&set, easy](CURLoption option, const dss_bill_pem &pem) {
        if (pem.data == nullptr) {
            return;
        }
        curl_blob blob{const_cast<unsigned char *>(pem.data), pem.len,
                       CURL_BLOB_NOCOPY};
        set(curl_easy_setopt(easy, option, &blob));
    };
    set_pem(CURLOPT_CAINFO_BLOB, options.ssl_trusted_certificate);
    set_pem(CURLOPT_SSLCERT_BLOB, options.ssl_certificate);
    set_pem(CURLOPT_SSLKEY_BLOB, options.ssl_certificate_key);
    if (options.ssl_certificate.data) {
        set(curl_easy_setopt(easy, CURLOPT_SSLCERTTYPE, "PEM"));
        set(curl_easy_setopt(easy, CURLOPT_SSLKEYTYPE, "PEM"));
    }
    if (options.basic_auth) {
        set(curl_easy_setopt(easy, CURLOPT_HTTPAUTH, CURLAUTH_BASIC));
        set(curl_easy_setopt(easy, CURLOPT_USERPWD, options.basic_auth));
    }

    HeaderList headers;
    auto add_header = [&headers](const char *line) {
        curl_slist *next = curl_slist_append(headers.get(), line);
        if (next == nullptr) {
            return false;
        }
        headers.release();
        headers.reset(next);
        return true;
    };
    for (const char *const *h = options.headers; h && *h; ++h) {
        if (!add_header(*h)) {
            error.set("out of memory for request headers");
            return false;
        }
    }
    // SigV4: Host, x-amz-content-sha256, x-amz-date, the session token and
    // Authorization, signing the configured headers too (s3_sign.cpp)
    if (s3) {
        char amz_date[17];
        fetch->s3_headers.clear();
        if (!amz_now(amz_date) ||
            !dss_bill::s3_sign(*s3, &fetch->pool->s3_keys, url, amz_date,
                               options.headers, fetch->s3_headers)) {
            error.set("cannot sign the request (SigV4)");
            return false;
        }
        for (size_t at = 0; at < fetch->s3_headers.size();) {
            const char *line = fetch->s3_headers.c_str() + at;
            if (!add_header(line)) {
                error.set("out of memory for request headers");
                return false;
            }
            at += std::strlen(line) + 1;
        }
    }
    if (headers) {
        set(curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers.get()));
    }
    fetch->headers = std::move(headers);

    if (rc != CURLE_OK) {
        error.set("libcurl refused an option: ", curl_easy_strerror(rc));
        return false;
    }
    return true;
}

dss_bill_outcome outcome_of_curl(CURLcode result) {
    switch (result) {
    case CURLE_OPERATION_TIMEDOUT:
        return DSS_BILL_UPSTREAM_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
        return DSS_BILL_UPSTREAM_CONNECT;
    case CURLE_COULDNT_RESOLVE_HOST:
        return DSS_BILL_UPSTREAM_RESOLVE;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        return DSS_BILL_UPSTREAM_TLS;
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return DSS_BILL_UPSTREAM_TRUNCATED;
    case CURLE_FILESIZE_EXCEEDED:
        return DSS_BILL_TOO_LARGE; // D4, announced in advance
    case CURLE_TOO_MANY_REDIRECTS:
        return DSS_BILL_UPSTREAM_REDIRECT;
    default:
        return DSS_BILL_UPSTREAM_ERROR;
    }
}

// What a complete HTTP answer means for the bill (D5, D6, D8).
dss_bill_outcome outcome_of_status(long status) {
    if (status == 404 || status == 410) {
        return DSS_BILL_UPSTREAM_NOT_FOUND;
    }
    // a redirect points elsewhere; 300, 304 (never asked for: no
    // conditional request is sent) and 305 do not: unexpected statuses
    if (status == 301 || status == 302 || status == 303 || status == 307 ||
        status == 308) {
        return DSS_BILL_UPSTREAM_REDIRECT;
    }
    return DSS_BILL_UPSTREAM_STATUS;
}

// An object store's answer other than 200: its error code and message go
// into the log (never a credential: S3 does not echo the secret).
dss_bill_outcome s3_outcome(dss_bill_fetch *fetch, long status) {
    char code[64];
    char message[160];
    bool parsed = dss_bill_s3_error_parse(fetch->s3_error, fetch->s3_error_len,
                                          code, sizeof(code), message,
                                          sizeof(message)) != 0;
    std::string_view c(code);
    dss_bill_outcome outcome = outcome_of_status(status);
    const char *note = "";

    if (status == 404 && c == "NoSuchBucket") {
        outcome = DSS_BILL_UPSTREAM_STATUS; // D6: the store is misconfigured
    } else if (status == 403 && c == "AccessDenied" &&
               fetch->options->s3->access_denied_is_missing) {
        // D5: without s3:ListBucket, S3 cannot say 404 for a missing key
        outcome = DSS_BILL_UPSTREAM_NOT_FOUND;
        note = " (taken as missing: dss_bill_upstream_s3_access_denied)";
    }
    if (parsed) {
        std::snprintf(fetch->detail, sizeof(fetch->detail),
                      "object store answered %ld %s: %s%s", status, code,
                      message, note);
    } else {
        std::snprintf(fetch->detail, sizeof(fetch->detail),
                      "object store answered %ld", status);
    }
    return outcome;
}

} // namespace

extern "C" {

dss_bill_fetch_pool *dss_bill_fetch_pool_create(size_t max_idle,
                                                size_t memory_budget) {
    auto *pool = new (std::nothrow) dss_bill_fetch_pool;
    if (pool != nullptr) {
        pool->max_idle = max_idle;
        pool->budget.limit = memory_budget;
    }
    return pool;
}

void dss_bill_fetch_pool_destroy(dss_bill_fetch_pool *pool) {
    delete pool;
}

dss_bill_fetch *dss_bill_fetch_start(dss_bill_fetch_pool *pool,
                                     const dss_bill_upstream_options *options,
                                     const char *url, int probe, char *err,
                                     size_t err_size) {
    dss_bill::ErrorText error(err, err_size);
    try {
        std::unique_ptr<dss_bill_fetch> fetch;
        if (!pool->idle.empty()) {
            fetch = std::move(pool->idle.back());
            pool->idle.pop_back();
            curl_easy_reset(fetch->easy.get());
        } else {
            fetch = std::make_unique<dss_bill_fetch>();
            fetch->easy.reset(curl_easy_init());
            if (!fetch->easy) {
                error.set("curl_easy_init() failed");
                return nullptr;
            }
        }
        fetch->pool = pool;
        fetch->options = options;
        fetch->url = url;
        fetch->redirects = 0;
        fetch->probe = probe != 0;
        fetch->failed = false;
        fetch->stopped_on_status = false;
        fetch->framing = dss_bill::Framing{};
        fetch->discarded = 0;
        fetch->status = 0;
        fetch->s3_error_len = 0;
        fetch->curl_error[0] = '\0';
        fetch->detail[0] = '\0';
        fetch->sink.reset(options->buffer_size, options->max_size,
                          options->temp_dir, &pool->budget);

        if (!set_options(fetch.get(), *options, url, error)) {
            return nullptr;
        }
        return fetch.release();
    } catch (...) { // nothing crosses into C (std::bad_alloc in practice)
        error.set("out of memory");
        return nullptr;
    }
}

void *dss_bill_fetch_easy(dss_bill_fetch *fetch) {
    return fetch->easy.get();
}

int dss_bill_fetch_redirected(dss_bill_fetch *fetch, int result) {
    CURL *easy = fetch->easy.get();
    long status = 0;
    char *target = nullptr;

    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (result != CURLE_OK || fetch->probe || fetch->failed ||
        fetch->stopped_on_status || status < 300 || status >= 400 ||
        fetch->redirects >= fetch->options->max_redirects ||
        curl_easy_getinfo(easy, CURLINFO_REDIRECT_URL, &target) != CURLE_OK ||
        target == nullptr) {
        return 0;
    }

    // D9: the archive's headers and credentials stay with its origin; once
    // a redirect has left it, they stay dropped for the rest of the chain
    bool same_origin = dss_bill_same_origin(fetch->url, target) != 0;

    // libcurl copies the URL before it frees the string target points into
    if (curl_easy_setopt(easy, CURLOPT_URL, target) != CURLE_OK) {
        return 0;
    }
    if (!same_origin) {
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, nullptr);
        curl_easy_setopt(easy, CURLOPT_USERPWD, nullptr);
        curl_easy_setopt(easy, CURLOPT_HTTPAUTH, CURLAUTH_NONE);
        fetch->headers.reset();
    }
    fetch->redirects++;
    fetch->discarded = 0;
    fetch->s3_error_len = 0;
    fetch->framing = dss_bill::Framing{};
    return 1;
}

dss_bill_outcome dss_bill_fetch_finish(dss_bill_fetch *fetch, int result) {
    auto code = static_cast<CURLcode>(result);
    curl_easy_getinfo(fetch->easy.get(), CURLINFO_RESPONSE_CODE,
                      &fetch->status);
    const long status = fetch->status;

    if (fetch->failed) {
        std::snprintf(fetch->detail, sizeof(fetch->detail),
                      "out of memory while receiving");
        return DSS_BILL_INTERNAL_ERROR;
    }
    // D5: an answer other than 200 is decided by its status, whatever its
    // body did (a 404 page larger than dss_bill_max_size, announced or not,
    // is still the archive saying "not found")
    if (status != 0 && status != 200 && !fetch->framing.ambiguous()) {
        if (fetch->options->s3) {
            return s3_outcome(fetch, status);
        }
        std::snprintf(fetch->detail, sizeof(fetch->detail),
                      "archive answered %ld", status);
        return outcome_of_status(status);
    }
    if (fetch->sink.state() == dss_bill::BodySink::State::TooLarge) {
        std::snprintf(fetch->detail, sizeof(fetch->detail),
                      "more than %lld bytes", fetch->sink.size());
        return DSS_BILL_TOO_LARGE; // D4, found while the body arrived
    }
    if (fetch->sink.state() == dss_bill::BodySink::State::FileError) {
        std::snprintf(fetch->detail, sizeof(fetch->detail),
                      "temporary file: %s", fetch->sink.file_error());
        return DSS_BILL_TEMP_FILE_ERROR;
    }
    if (fetch->framing.ambiguous()) {
        std::snprintf(fetch->detail, sizeof(fetch->detail),
                      "%d Content-Length headers%s%s",
                      fetch->framing.content_lengths,
                      fetch->framing.length_not_a_number ? ", not one number"
                                                         : "",
                      fetch->framing.chunked ? " and chunked" : "");
        return DSS_BILL_UPSTREAM_FRAMING; // D8
    }
    if (fetch->stopped_on_status ||
        (code == CURLE_OK && (status != 200 || fetch->probe))) {
        if (fetch->options->s3 && status != 200) {
            return s3_outcome(fetch, status);
        }
        std::snprintf(fetch->detail, sizeof(fetch->detail),
                      "archive answered %ld", status);
        return status == 200 ? DSS_BILL_OK : outcome_of_status(status);
    }
    if (code != CURLE_OK) {
        std::snprintf(fetch->detail, sizeof(fetch->detail), "%s (curl %d)",
                      fetch->curl_error[0] ? fetch->curl_error
                                           : curl_easy_strerror(code),
                      static_cast<int>(code));
        return outcome_of_curl(code);
    }

    // a complete 200: the body must be a (complete) PDF (D8)
    dss_bill_outcome outcome = fetch->sink.verdict(fetch->options->pdf_check);
    if (outcome == DSS_BILL_TEMP_FILE_ERROR) {
        std::snprintf(fetch->detail, sizeof(fetch->detail),
                      "temporary file: %s", fetch->sink.file_error());
    } else {
        std::snprintf(fetch->detail, sizeof(fetch->detail),
                      "archive answered 200 with %lld bytes",
                      fetch->sink.size());
    }
    return outcome;
}

long dss_bill_fetch_status(const dss_bill_fetch *fetch) {
    return fetch->status;
}

const char *dss_bill_fetch_detail(const dss_bill_fetch *fetch) {
    return fetch->detail;
}

dss_bill_body dss_bill_fetch_body(const dss_bill_fetch *fetch) {
    dss_bill_body body;
    body.data = fetch->sink.in_file() ? nullptr : fetch->sink.memory();
    body.fd = fetch->sink.in_file() ? fetch->sink.fd() : -1;
    body.size = fetch->sink.size();
    return body;
}

void dss_bill_fetch_release(dss_bill_fetch *fetch) {
    std::unique_ptr<dss_bill_fetch> owned(fetch);
    owned->sink.clear();
    owned->headers.reset();
    dss_bill_fetch_pool *pool = owned->pool;
    if (pool == nullptr || pool->idle.size() >= pool->max_idle) {
        return; // destroyed here
    }
    try {
        pool->idle.push_back(std::move(owned));
    } catch (...) {
        // the fetch is destroyed instead of pooled
    }
}

} // extern "C"

// dss-bill-check's runner: turns probes into libcurl requests (HTTP/1.1 and
// TLS 1.2 or newer, as DSS), collects what came back into Exchanges, shares
// identical probes between checks, and hands the exchanges to the judges.

#include "runner.h"

#include <curl/curl.h>
#include <algorithm>
#include <map>
#include <stdexcept>
#include <openssl/ssl.h>

namespace dss_check {

namespace {

constexpr std::size_t body_cap = 64u * 1024u * 1024u; // what a client keeps
constexpr long connect_timeout_s = 10;
constexpr long transfer_timeout_s = 65; // beyond DSS's 60 s: T4 judges

struct Transfer {
    CURL *h = nullptr;
    curl_slist *headers = nullptr;
    Exchange ex;
    bool tls_seen = false;
    char error[CURL_ERROR_SIZE] = "";

    Transfer() : h(curl_easy_init()) {}
    ~Transfer() {
        curl_slist_free_all(headers);
        if (h) {
            curl_easy_cleanup(h);
        }
    }
    Transfer(const Transfer &) = delete;
    Transfer &operator=(const Transfer &) = delete;
};

size_t on_body(char *data, size_t size, size_t n, void *userdata) {
    auto *t = static_cast<Transfer *>(userdata);
    size_t len = size * n;
    if (t->ex.body.size() + len > body_cap) {
        t->ex.over_cap = true;
        return 0; // ends the transfer: nothing DSS would accept
    }
    try {
        t->ex.body.append(data, len);
    } catch (...) {
        return 0;
    }
    return len;
}

void note_tls(Transfer *t) {
    if (t->tls_seen) {
        return;
    }
    t->tls_seen = true;
    // the negotiated version, from the live connection (OpenSSL backend)
    curl_tlssessioninfo *info = nullptr;
    if (curl_easy_getinfo(t->h, CURLINFO_TLS_SSL_PTR, &info) == CURLE_OK &&
        info && info->backend == CURLSSLBACKEND_OPENSSL && info->internals) {
        t->ex.tls_version =
            SSL_get_version(static_cast<SSL *>(info->internals));
    }
}

size_t on_header(char *data, size_t size, size_t n, void *userdata) {
    auto *t = static_cast<Transfer *>(userdata);
    size_t len = size * n;
    try {
        note_tls(t);
        std::string line(data, len);
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
            line.pop_back();
        }
        if (line.compare(0, 5, "HTTP/") == 0) {
            t->ex.headers.clear(); // a new response (after a 1xx)
            return len;
        }
        std::size_t colon = line.find(':');
        if (colon == std::string::npos || colon == 0) {
            return len;
        }
        std::string name = line.substr(0, colon);
        for (char &c : name) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        std::size_t v = line.find_first_not_of(" \t", colon + 1);
        std::string value = v == std::string::npos ? "" : line.substr(v);
        while (!value.empty() &&
               (value.back() == ' ' || value.back() == '\t')) {
            value.pop_back();
        }
        t->ex.headers.emplace_back(std::move(name), std::move(value));
    } catch (...) {
        return 0;
    }
    return len;
}

bool tls_error(CURLcode rc) {
    switch (rc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return true;
    default:
        return false;
    }
}

// Sets a transfer up for one request; the request headers' list is kept
// in the transfer (libcurl keeps pointing at it).
void prepare(Transfer &t, const Endpoint &ep, const std::string &path,
             const char *method, const std::vector<std::string> &headers,
             Auth auth) {
    CURL *h = t.h;
    t.ex.method = method;
    t.error[0] = '\0';
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t.error);
    std::string url = ep.base_url + path;
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); // send hostile ids as they are
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, transfer_timeout_s);
    curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "dss-bill-check");
    if (!ep.cacert.empty()) {
        curl_easy_setopt(h, CURLOPT_CAINFO, ep.cacert.c_str());
    }
    if (ep.insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curl_easy_setopt(h, CURLOPT_NOBODY,
                     std::string(method) == "HEAD" ? 1L : 0L);
    if (std::string(method) == "GET") {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    curl_slist_free_all(t.headers);
    t.headers = nullptr;
    for (const auto &hd : headers) {
        t.headers = curl_slist_append(t.headers, hd.c_str());
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, t.headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    if (auth != Auth::none && !ep.user.empty()) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, ep.user.c_str());
        static const std::string wrong = "dss-bill-check-wrong-password";
        const std::string &pw =
            auth == Auth::wrong ? (ep.password == wrong ? wrong + "-2" : wrong)
                                : ep.password;
        curl_easy_setopt(h, CURLOPT_PASSWORD, pw.c_str()); // copied by libcurl
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_NONE);
        curl_easy_setopt(h, CURLOPT_USERNAME, nullptr);
        curl_easy_setopt(h, CURLOPT_PASSWORD, nullptr);
    }
}

// Fills the exchange from a finished transfer.
void finish(Transfer &t, CURLcode rc, CURLcode *code) {
    Exchange &e = t.ex;
    CURL *h = t.h;
    long status = 0, connects = 0;
    curl_off_t start = 0, total = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(h, CURLINFO_STARTTRANSFER_TIME_T, &start);
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &total);
    curl_off_t connect = 0;
    curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect);
    e.status = status;
    e.responded = status > 0;
    e.new_connections = connects;
    e.connected = connect > 0 || e.responded;
    // as DSS sees it: from the start (name lookup, connection, TLS) to
    // the first byte of the answer
    e.first_byte_s = static_cast<double>(start) / 1e6;
    e.total_s = static_cast<double>(total) / 1e6;
    if (rc != CURLE_OK) {
        e.error = t.error[0] ? t.error : curl_easy_strerror(rc);
        e.tls_failed = tls_error(rc);
        e.short_body = e.responded && !e.over_cap;
        if (rc == CURLE_OPERATION_TIMEDOUT && e.responded) {
            e.total_s =
                std::max(e.total_s, static_cast<double>(transfer_timeout_s));
        }
    }
    curl_certinfo *ci = nullptr;
    if (curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci &&
        ci->num_of_certs > 0) {
        for (curl_slist *s = ci->certinfo[0]; s; s = s->next) {
            std::string field = s->data;
            if (field.compare(0, 12, "Expire date:") == 0) {
                time_t t_exp = curl_getdate(field.substr(12).c_str(), nullptr);
                e.cert_not_after = t_exp > 0 ? t_exp : 0;
            }
        }
    }
    if (code) {
        *code = rc;
    }
}

std::string truncate_label(const std::string &s) {
    return s.size() > 48 ? s.substr(0, 45) + "..." : s;
}

// One probe's targets: (path, label) pairs.
std::vector<std::pair<std::string, std::string>>
targets_of(const Probe &p, const Endpoint &ep) {
    std::vector<std::pair<std::string, std::string>> out;
    std::string dl = ep.prefix + "/download/";
    switch (p.target) {
    case Target::bill:
        for (const auto &b : ep.bills) {
            out.emplace_back(dl + b, "bill " + b);
        }
        break;
    case Target::missing:
        if (!ep.missing.empty()) {
            out.emplace_back(dl + ep.missing, "missing bill " + ep.missing);
        }
        break;
    case Target::hostile:
        if (!ep.bills.empty()) {
            for (const auto &id : hostile_ids(ep.bills[0])) {
                out.emplace_back(dl + id, "id " + truncate_label(id));
            }
        }
        break;
    case Target::health:
        out.emplace_back(ep.prefix + "/healthcheck", "health");
        break;
    }
    return out;
}

std::string http_date(std::time_t t) {
    char buf[64];
    struct tm tm;
    gmtime_r(&t, &tm);
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return buf;
}

class Runner {
  public:
    Runner(const Endpoint &ep, const Settings &s) : ep_(ep), s_(s) {}

    Exchange one(const std::string &path, const std::string &label,
                 const Probe &p, const std::vector<std::string> &headers,
                 CURLcode *code = nullptr) {
        Transfer t;
        if (!t.h) {
            throw std::runtime_error("curl_easy_init failed");
        }
        t.ex.label = label;
        prepare(t, ep_, path, p.method, headers, p.auth);
        finish(t, curl_easy_perform(t.h), code);
        return std::move(t.ex);
    }

    // The exchanges of a probe, sent once per run.
    const std::vector<Exchange> &exchanges(const Probe &p) {
        auto it = cache_.find(p.key());
        if (it != cache_.end()) {
            return it->second;
        }
        std::vector<Exchange> out;
        auto targets = targets_of(p, ep_);
        for (std::size_t i = 0; i < targets.size(); i++) {
            const auto &[path, label] = targets[i];
            std::vector<std::string> headers = with_values(p.headers, i);
            if (p.parallel > 1) {
                auto burst = parallel(path, label, p, headers);
                out.insert(out.end(), burst.begin(), burst.end());
            } else {
                Transfer t; // one handle: a sequence shares its connection
                for (int k = 0; k < p.sequence; k++) {
                    t.ex = Exchange{};
                    t.ex.label = label;
                    t.tls_seen = false;
                    prepare(t, ep_, path, p.method, headers, p.auth);
                    finish(t, curl_easy_perform(t.h), nullptr);
                    out.push_back(std::move(t.ex));
                }
            }
        }
        return cache_.emplace(p.key(), std::move(out)).first->second;
    }

  private:
    // {etag} and {last-modified}: from the plain download of the same bill.
    std::vector<std::string>
    with_values(const std::vector<std::string> &headers, std::size_t bill) {
        std::vector<std::string> out;
        for (std::string h : headers) {
            for (const char *name : {"etag", "last-modified"}) {
                std::string mark = std::string("{") + name + "}";
                std::size_t at = h.find(mark);
                if (at == std::string::npos) {
                    continue;
                }
                Probe plain;
                plain.headers = download_headers();
                const auto &ex = exchanges(plain);
                const std::string *v =
                    bill < ex.size() ? ex[bill].header(name) : nullptr;
                std::string value =
                    v ? *v : (name[0] == 'e' ? "*" : http_date(s_.now));
                h.replace(at, mark.size(), value);
            }
            out.push_back(h);
        }
        return out;
    }

    std::vector<Exchange> parallel(const std::string &path,
                                   const std::string &label, const Probe &p,
                                   const std::vector<std::string> &headers) {
        std::vector<std::unique_ptr<Transfer>> ts;
        CURLM *m = curl_multi_init();
        if (!m) {
            throw std::runtime_error("curl_multi_init failed");
        }
        for (int k = 0; k < p.parallel; k++) {
            ts.push_back(std::make_unique<Transfer>());
            ts.back()->ex.label = label;
            prepare(*ts.back(), ep_, path, p.method, headers, p.auth);
            curl_multi_add_handle(m, ts.back()->h);
        }
        int running = 1;
        while (running) {
            if (curl_multi_perform(m, &running) != CURLM_OK) {
                break;
            }
            if (running) {
                curl_multi_poll(m, nullptr, 0, 1000, nullptr);
            }
        }
        int left = 0;
        std::map<CURL *, CURLcode> done;
        while (CURLMsg *msg = curl_multi_info_read(m, &left)) {
            if (msg->msg == CURLMSG_DONE) {
                done[msg->easy_handle] = msg->data.result;
            }
        }
        std::vector<Exchange> out;
        for (auto &t : ts) {
            curl_multi_remove_handle(m, t->h);
            auto d = done.find(t->h);
            finish(*t, d == done.end() ? CURLE_RECV_ERROR : d->second, nullptr);
            out.push_back(std::move(t->ex));
        }
        curl_multi_cleanup(m);
        return out;
    }

    const Endpoint &ep_;
    const Settings &s_;
    std::map<std::string, std::vector<Exchange>> cache_;
};

// No connection could be made at all (a timeout after connecting is a
// finding about the endpoint, judged by the checks).
bool unreachable_error(CURLcode rc, const Exchange &e) {
    return rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_CONNECT ||
           rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT ||
           (rc == CURLE_OPERATION_TIMEDOUT && !e.connected);
}

} // namespace

std::vector<Result>
run_checks(const Endpoint &ep, const Settings &settings,
           const std::function<void(const Result &)> &on_result,
           std::string *unreachable) {
    Runner runner(ep, settings);
    std::vector<Result> results;

    // First contact: can anything be reached at all?
    Probe first;
    first.target = Target::health;
    CURLcode rc = CURLE_OK;
    Exchange e =
        runner.one(ep.prefix + "/healthcheck", "health", first, {}, &rc);
    if (!e.responded && unreachable_error(rc, e)) {
        *unreachable = std::string("cannot reach ") + ep.base_url + ": " +
                       curl_easy_strerror(rc);
        return results;
    }
    bool tls_down = e.tls_failed;

    for (const Check &c : checks()) {
        Result r{&c, {}};
        std::string why = skip_reason(c, settings);
        if (!why.empty()) {
            r.outcome = {Verdict::skip, why, ""};
        } else if (tls_down && !c.transport) {
            r.outcome = {Verdict::skip,
                         "no TLS connection could be made (see T1)", ""};
        } else {
            Evidence ev;
            for (const Probe &p : c.probes) {
                ev.push_back(runner.exchanges(p));
            }
            r.outcome = c.judge(ev, settings);
        }
        results.push_back(r);
        on_result(results.back());
    }
    return results;
}

struct HealthPoller::Impl {
    Endpoint ep;
    Transfer t;
};

HealthPoller::HealthPoller(const Endpoint &ep) : impl_(new Impl{ep, {}}) {}

HealthPoller::~HealthPoller() = default;

Exchange HealthPoller::poll() {
    Transfer &t = impl_->t;
    t.ex = Exchange{};
    t.ex.label = "health";
    t.tls_seen = false;
    prepare(t, impl_->ep, impl_->ep.prefix + "/healthcheck", "GET", {},
            Auth::given);
    finish(t, curl_easy_perform(t.h), nullptr);
    return t.ex;
}

} // namespace dss_check

// Observability in the core: the outcome labels, the counters' layout and
// the Prometheus text exposition (format 0.0.4) rendered from a plain
// snapshot of the counters. The glue keeps the counters in shared memory
// and hands a copy here; nothing in this file knows about nginx.

#include "dss_bill.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <iterator>

namespace {

// Every result's label, side by side with the outcome it names (the
// outcome table in outcome.cpp gives status and reason). A value missing
// here has the label "" and fails the unit test that walks every value.
struct ResultName {
    int result;
    const char *name;
};

// clang-format off
constexpr ResultName kResultNames[] = {
    {DSS_BILL_OK,                 "ok"},
    {DSS_BILL_INVALID_ID,         "invalid_id"},
    {DSS_BILL_ABSENT,             "not_found"},
    {DSS_BILL_NOT_REGULAR_FILE,   "not_regular_file"},
    {DSS_BILL_SYMLINK_REFUSED,    "symlink_refused"},
    {DSS_BILL_UNSAFE_PATH,        "unsafe_path"},
    {DSS_BILL_UNREADABLE,         "unreadable"},
    {DSS_BILL_STORAGE_ERROR,      "storage_error"},
    {DSS_BILL_EMPTY,              "empty"},
    {DSS_BILL_TOO_LARGE,          "too_large"},
    {DSS_BILL_NOT_PDF,            "not_pdf"},
    {DSS_BILL_INTERNAL_ERROR,     "internal_error"},
    {DSS_BILL_UPSTREAM_NOT_FOUND, "archive_not_found"},
    {DSS_BILL_UPSTREAM_STATUS,    "archive_status"},
    {DSS_BILL_UPSTREAM_REDIRECT,  "archive_redirect"},
    {DSS_BILL_UPSTREAM_TIMEOUT,   "archive_timeout"},
    {DSS_BILL_UPSTREAM_CONNECT,   "archive_connect"},
    {DSS_BILL_UPSTREAM_RESOLVE,   "archive_resolve"},
    {DSS_BILL_UPSTREAM_TLS,       "archive_tls"},
    {DSS_BILL_UPSTREAM_TRUNCATED, "archive_truncated"},
    {DSS_BILL_UPSTREAM_ERROR,     "archive_error"},
    {DSS_BILL_TEMP_FILE_ERROR,    "temp_file_error"},
    {DSS_BILL_INCOMPLETE_PDF,     "incomplete_pdf"},
    {DSS_BILL_UPSTREAM_FRAMING,   "archive_framing"},
    {DSS_BILL_RESULT_HEALTHY,            "healthy"},
    {DSS_BILL_RESULT_UNHEALTHY,          "unhealthy"},
    {DSS_BILL_RESULT_METHOD_NOT_ALLOWED, "method_not_allowed"},
    {DSS_BILL_RESULT_NO_ROUTE,           "no_route"},
    {DSS_BILL_RESULT_CLIENT_GONE,        "client_gone"},
    {DSS_BILL_RESULT_OTHER,              "other"},
};
// clang-format on

constexpr const char *kSourceNames[] = {"", "root", "archive", "cache"};
static_assert(std::size(kSourceNames) == DSS_BILL_SOURCE_COUNT,
              "a name for every source");

// The sources whose bytes are exposed even while zero (a source with bytes
// is always exposed). The cache adds DSS_BILL_SOURCE_CACHE here.
constexpr dss_bill_source kExposedSources[] = {
    DSS_BILL_SOURCE_ROOT, DSS_BILL_SOURCE_ARCHIVE, DSS_BILL_SOURCE_CACHE};

// The length of the valid UTF-8 sequence at s (1 for ASCII), or 0 when
// the byte there does not start one (overlong forms and surrogates count
// as invalid).
size_t utf8_sequence(const char *s, size_t n) {
    const auto *u = reinterpret_cast<const unsigned char *>(s);
    if (u[0] < 0x80) {
        return 1;
    }
    size_t len = (u[0] >= 0xC2 && u[0] <= 0xDF)   ? 2
                 : (u[0] >= 0xE0 && u[0] <= 0xEF) ? 3
                 : (u[0] >= 0xF0 && u[0] <= 0xF4) ? 4
                                                  : 0;
    if (len == 0 || len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    if ((u[0] == 0xE0 && u[1] < 0xA0) || (u[0] == 0xED && u[1] > 0x9F) ||
        (u[0] == 0xF0 && u[1] < 0x90) || (u[0] == 0xF4 && u[1] > 0x8F)) {
        return 0;
    }
    return len;
}

constexpr const char *kRouteNames[] = {"download", "health", "other"};
static_assert(std::size(kRouteNames) == DSS_BILL_METRIC_ROUTE_COUNT,
              "a name for every route");

constexpr int kStatuses[] = {200, 400, 404, 405, 413, 499, 500, 503};
static_assert(std::size(kStatuses) + 1 == DSS_BILL_METRIC_STATUS_COUNT,
              "the listed statuses and \"other\"");

struct Bucket {
    long long ms; // upper bound, inclusive
    const char *le;
};
constexpr Bucket kBuckets[] = {{50, "0.05"},  {100, "0.1"},  {250, "0.25"},
                               {500, "0.5"},  {1000, "1"},   {2000, "2"},
                               {3000, "3"},   {4000, "4"},   {5000, "5"}};
static_assert(std::size(kBuckets) + 1 == DSS_BILL_FETCH_BUCKET_COUNT,
              "the bounds and +Inf");

// Appends to a bounded buffer, counting what it would need in full.
class Writer {
  public:
    Writer(char *out, size_t size) : out_(out), size_(size) {}

    void put(const char *s, size_t n) {
        if (len_ < size_) {
            size_t room = size_ - len_;
            std::memcpy(out_ + len_, s, n < room ? n : room);
        }
        len_ += n;
    }
    void put(const char *s) { put(s, std::strlen(s)); }
    void u64(uint64_t v) {
        char buf[24];
        int n = std::snprintf(buf, sizeof(buf), "%" PRIu64, v);
        put(buf, static_cast<size_t>(n));
    }
    void i64(int64_t v) {
        char buf[24];
        int n = std::snprintf(buf, sizeof(buf), "%" PRId64, v);
        put(buf, static_cast<size_t>(n));
    }
    // milliseconds as seconds with three decimals
    void seconds(uint64_t ms) {
        char buf[32];
        int n = std::snprintf(buf, sizeof(buf), "%" PRIu64 ".%03u", ms / 1000,
                              static_cast<unsigned>(ms % 1000));
        put(buf, static_cast<size_t>(n));
    }
    // a label value: backslash, double quote and line feed escaped; a
    // byte that is not part of valid UTF-8 (a location named in Latin-1)
    // is written as the text \xNN, since one invalid label value makes
    // Prometheus refuse the whole scrape
    void label(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
            size_t seq = utf8_sequence(s + i, n - i);
            if (seq > 1) {
                put(&s[i], seq);
                i += seq - 1;
                continue;
            }
            if (seq == 0) {
                char hex[8];
                int len = std::snprintf(hex, sizeof(hex), "\\\\x%02X",
                                        static_cast<unsigned char>(s[i]));
                put(hex, static_cast<size_t>(len));
                continue;
            }
            switch (s[i]) {
            case '\\':
                put("\\\\", 2);
                break;
            case '"':
                put("\\\"", 2);
                break;
            case '\n':
                put("\\n", 2);
                break;
            default:
                put(&s[i], 1);
            }
        }
    }
    void family(const char *name, const char *type, const char *help) {
        put("# HELP ");
        put(name);
        put(" ");
        put(help);
        put("\n# TYPE ");
        put(name);
        put(" ");
        put(type);
        put("\n");
    }
    size_t length() const { return len_; }

  private:
    char *out_;
    size_t size_;
    size_t len_ = 0;
};

// The (route, status) a result is exposed under even while zero, so that
// rate() and ratios see the series from the first scrape.
bool natural(int route, int result, int status_index) {
    int status;
    int want_route = DSS_BILL_METRIC_ROUTE_DOWNLOAD;
    if (result <= DSS_BILL_OUTCOME_LAST) {
        status = dss_bill_outcome_status(static_cast<dss_bill_outcome>(result));
    } else {
        switch (result) {
        case DSS_BILL_RESULT_HEALTHY:
            want_route = DSS_BILL_METRIC_ROUTE_HEALTH;
            status = 200;
            break;
        case DSS_BILL_RESULT_UNHEALTHY:
            want_route = DSS_BILL_METRIC_ROUTE_HEALTH;
            status = 503;
            break;
        case DSS_BILL_RESULT_METHOD_NOT_ALLOWED:
            want_route = route == DSS_BILL_METRIC_ROUTE_HEALTH
                             ? DSS_BILL_METRIC_ROUTE_HEALTH
                             : DSS_BILL_METRIC_ROUTE_DOWNLOAD;
            status = 405;
            break;
        case DSS_BILL_RESULT_NO_ROUTE:
            want_route = DSS_BILL_METRIC_ROUTE_OTHER;
            status = 404;
            break;
        case DSS_BILL_RESULT_CLIENT_GONE:
            status = 499;
            break;
        default:
            return false;
        }
    }
    return route == want_route
           && status_index == dss_bill_metric_status_index(status);
}

void render_requests(Writer &w, const uint64_t *values) {
    w.family("dss_bill_requests_total", "counter",
             "Requests that dss_bill locations answered, by route, status "
             "and outcome.");
    for (int route = 0; route < DSS_BILL_METRIC_ROUTE_COUNT; route++) {
        for (int result = 0; result < DSS_BILL_RESULT_COUNT; result++) {
            for (int s = 0; s < DSS_BILL_METRIC_STATUS_COUNT; s++) {
                uint64_t v = values[DSS_BILL_M_REQUEST(route, result, s)];
                if (v == 0 && !natural(route, result, s)) {
                    continue;
                }
                w.put("dss_bill_requests_total{route=\"");
                w.put(kRouteNames[route]);
                w.put("\",status=\"");
                if (s < static_cast<int>(std::size(kStatuses))) {
                    char buf[8];
                    int n = std::snprintf(buf, sizeof(buf), "%d", kStatuses[s]);
                    w.put(buf, static_cast<size_t>(n));
                } else {
                    w.put("other");
                }
                w.put("\",outcome=\"");
                w.put(dss_bill_result_name(result));
                w.put("\"} ");
                w.u64(v);
                w.put("\n");
            }
        }
    }
}

void render_bytes(Writer &w, const uint64_t *values) {
    w.family("dss_bill_response_bytes_total", "counter",
             "Bill bytes sent to clients, by the source of the bill.");
    for (int source = 1; source < DSS_BILL_SOURCE_COUNT; source++) {
        uint64_t v = values[DSS_BILL_M_BYTES + source];
        bool exposed = false;
        for (auto s : kExposedSources) {
            exposed = exposed || s == source;
        }
        if (v == 0 && !exposed) {
            continue;
        }
        w.put("dss_bill_response_bytes_total{source=\"");
        w.put(kSourceNames[source]);
        w.put("\"} ");
        w.u64(v);
        w.put("\n");
    }
}

void render_fetches(Writer &w, const uint64_t *values) {
    const char *name = "dss_bill_archive_fetch_duration_seconds";
    w.family(name, "histogram",
             "Time from the start of an archive fetch to its verdict.");
    uint64_t cumulative = 0;
    for (int b = 0; b < DSS_BILL_FETCH_BUCKET_COUNT; b++) {
        cumulative += values[DSS_BILL_M_FETCH_BUCKETS + b];
        w.put(name);
        w.put("_bucket{le=\"");
        w.put(b < static_cast<int>(std::size(kBuckets)) ? kBuckets[b].le
                                                         : "+Inf");
        w.put("\"} ");
        w.u64(cumulative);
        w.put("\n");
    }
    w.put(name);
    w.put("_sum ");
    w.seconds(values[DSS_BILL_M_FETCH_SUM_MS]);
    w.put("\n");
    w.put(name);
    w.put("_count ");
    w.u64(cumulative); // the same as +Inf, whatever raced the copy
    w.put("\n");

    w.family("dss_bill_archive_fetches_in_flight", "gauge",
             "Archive fetches started and not yet ended.");
    w.put("dss_bill_archive_fetches_in_flight ");
    w.i64(static_cast<int64_t>(values[DSS_BILL_M_FETCHES_IN_FLIGHT]));
    w.put("\n");
}

void render_sources(Writer &w, const dss_bill_metrics_snapshot *s) {
    w.family("dss_bill_source_up", "gauge",
             "1 when the health probes find the bill source serving, else "
             "0 (what the health route answers from).");
    // one series per location name and source: the same name in two
    // server blocks is one series, up only while every one of them is
    auto same_name = [](const dss_bill_source_state &a,
                        const dss_bill_source_state &b) {
        return a.location_len == b.location_len &&
               std::memcmp(a.location, b.location, a.location_len) == 0;
    };
    for (size_t i = 0; i < s->source_count; i++) {
        const dss_bill_source_state &src = s->sources[i];
        for (int archive = 0; archive < 2; archive++) {
            auto has = [archive](const dss_bill_source_state &x) {
                return archive ? x.has_archive : x.has_root;
            };
            auto up = [archive](const dss_bill_source_state &x) {
                return archive ? x.archive_up : x.root_up;
            };
            if (!has(src)) {
                continue;
            }
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++) {
                seen = has(s->sources[j]) && same_name(s->sources[j], src);
            }
            if (seen) {
                continue;
            }
            bool all_up = true;
            for (size_t j = i; j < s->source_count; j++) {
                if (has(s->sources[j]) && same_name(s->sources[j], src)) {
                    all_up = all_up && up(s->sources[j]);
                }
            }
            w.put("dss_bill_source_up{location=\"");
            w.label(src.location, src.location_len);
            w.put("\",source=\"");
            w.put(archive ? "archive" : "root");
            w.put("\"} ");
            w.put(all_up ? "1" : "0");
            w.put("\n");
        }
    }
}

void render_cache_zone_gauge(Writer &w, const dss_bill_metrics_snapshot *s,
                             const char *name, const char *help,
                             unsigned long long dss_bill_cache_state::*field) {
    w.family(name, "gauge", help);
    for (size_t i = 0; i < s->cache_count; i++) {
        const dss_bill_cache_state &zone = s->caches[i];
        w.put(name);
        w.put("{zone=\"");
        w.label(zone.zone, zone.zone_len);
        w.put("\"} ");
        w.u64(zone.*field);
        w.put("\n");
    }
}

// The archive cache's events (all zones together), and each zone's size.
void render_cache(Writer &w, const dss_bill_metrics_snapshot *s) {
    static constexpr struct {
        dss_bill_cache_event event;
        const char *name;
        const char *help;
    } kEvents[] = {
        {DSS_BILL_CACHE_HIT, "dss_bill_cache_hits_total",
         "Downloads served from the archive cache."},
        {DSS_BILL_CACHE_MISS, "dss_bill_cache_misses_total",
         "Downloads of bills not in the archive cache."},
        {DSS_BILL_CACHE_STORED, "dss_bill_cache_stores_total",
         "Fetched bills written into the archive cache."},
        {DSS_BILL_CACHE_STORE_FAILED, "dss_bill_cache_store_errors_total",
         "Fetched bills that could not be written (full disk, I/O error)."},
        {DSS_BILL_CACHE_UNUSABLE, "dss_bill_cache_unusable_total",
         "Cache files that failed the checks on a hit and were removed."},
    };
    static_assert(std::size(kEvents) == DSS_BILL_CACHE_EVENT_COUNT,
                  "a series for every cache event");
    for (const auto &e : kEvents) {
        w.family(e.name, "counter", e.help);
        w.put(e.name);
        w.put(" ");
        w.u64(s->values[DSS_BILL_M_CACHE + e.event]);
        w.put("\n");
    }
    if (s->cache_count == 0) {
        return;
    }
    render_cache_zone_gauge(w, s, "dss_bill_cache_size_bytes",
                            "Size of the cache files on disk, as the cache "
                            "manager counts it.",
                            &dss_bill_cache_state::size_bytes);
    render_cache_zone_gauge(w, s, "dss_bill_cache_max_size_bytes",
                            "The zone's max_size (0: none).",
                            &dss_bill_cache_state::max_size_bytes);
    render_cache_zone_gauge(w, s, "dss_bill_cache_entries",
                            "Bills the keys zone knows.",
                            &dss_bill_cache_state::entries);
}

size_t render(const dss_bill_metrics_snapshot *s, char *out, size_t size) {
    Writer w(out, size);
    render_requests(w, s->values);
    render_bytes(w, s->values);
    render_fetches(w, s->values);
    render_cache(w, s);
    render_sources(w, s);
    w.family("dss_bill_build_info", "gauge",
             "Always 1: the module's version and the nginx it runs in.");
    w.put("dss_bill_build_info{version=\"");
    w.put(DSS_BILL_VERSION);
    w.put("\",nginx=\"");
    const char *nginx = s->server_version ? s->server_version : "";
    w.label(nginx, std::strlen(nginx));
    w.put("\"} 1\n");
    return w.length();
}

} // namespace

extern "C" {

const char *dss_bill_source_name(dss_bill_source source) {
    if (static_cast<int>(source) < 0 || source >= DSS_BILL_SOURCE_COUNT) {
        return "";
    }
    return kSourceNames[source];
}

const char *dss_bill_result_name(int result) {
    for (const auto &entry : kResultNames) {
        if (entry.result == result) {
            return entry.name;
        }
    }
    return "";
}

int dss_bill_metric_status_index(int status) {
    for (size_t i = 0; i < std::size(kStatuses); i++) {
        if (kStatuses[i] == status) {
            return static_cast<int>(i);
        }
    }
    return DSS_BILL_METRIC_STATUS_COUNT - 1;
}

int dss_bill_fetch_bucket(long long ms) {
    for (size_t i = 0; i < std::size(kBuckets); i++) {
        if (ms <= kBuckets[i].ms) {
            return static_cast<int>(i);
        }
    }
    return DSS_BILL_FETCH_BUCKET_COUNT - 1;
}

size_t dss_bill_metrics_render(const dss_bill_metrics_snapshot *snapshot,
                               char *out, size_t out_size) {
    try {
        return render(snapshot, out, out_size);
    } catch (...) {
        return 0; // nothing here throws; the boundary stays closed anyway
    }
}

} // extern "C"

// Routing below a dss_bill location: the two DSS routes and nothing else.

#include "dss_bill.h"

#include <string_view>

namespace {

constexpr std::string_view kHealth = "healthcheck";
constexpr std::string_view kDownload = "download/";

bool ends_with(std::string_view s, std::string_view tail) {
    return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

} // namespace

extern "C" {

size_t dss_bill_route_base_len(const char *location, size_t location_len) {
    std::string_view name(location, location_len);

    for (std::string_view route :
         {kHealth, kDownload, std::string_view("download")}) {
        if (ends_with(name, route) && name.size() > route.size() &&
            name[name.size() - route.size() - 1] == '/') {
            return name.size() - route.size();
        }
    }
    return name.size();
}

dss_bill_route dss_bill_route_parse(const char *uri, size_t uri_len,
                                    size_t base_len) {
    dss_bill_route route{DSS_BILL_ROUTE_NONE, nullptr, 0};

    if (base_len > uri_len) {
        return route;
    }

    std::string_view rest(uri + base_len, uri_len - base_len);

    // The base may be "/dss/bill" or "/dss/bill/".
    if (!rest.empty() && rest.front() == '/') {
        rest.remove_prefix(1);
    } else if (base_len > 0 && uri[base_len - 1] != '/') {
        return route; // "/dss/billing" is not below "/dss/bill"
    }

    if (rest == kHealth) {
        route.kind = DSS_BILL_ROUTE_HEALTH;
    } else if (rest.substr(0, kDownload.size()) == kDownload) {
        rest.remove_prefix(kDownload.size());
        route.kind = DSS_BILL_ROUTE_DOWNLOAD;
        route.id = rest.data();
        route.id_len = rest.size();
    }
    return route;
}

} // extern "C"

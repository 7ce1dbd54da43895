// dss-bill-check's runner: sends the checks' probes with libcurl (HTTP/1.1,
// as DSS), shares identical probes between checks, and judges.

#ifndef DSS_CHECK_RUNNER_H
#define DSS_CHECK_RUNNER_H

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "check.h"
#include "report.h"

namespace dss_check {

struct Endpoint {
    std::string base_url, prefix;
    std::vector<std::string> bills;
    std::string missing;
    std::string user, password; // empty user: no credentials
    std::string cacert;
    bool insecure = false;
};

// Runs every check, calling on_result as each is judged. Returns the
// results, or sets *unreachable (exit status 2) when BASE_URL cannot be
// reached at all (name, connection refused, connection timeout).
std::vector<Result>
run_checks(const Endpoint &ep, const Settings &settings,
           const std::function<void(const Result &)> &on_result,
           std::string *unreachable);

// One health request for --watch, on a connection kept between polls.
class HealthPoller {
  public:
    explicit HealthPoller(const Endpoint &ep);
    ~HealthPoller();
    HealthPoller(const HealthPoller &) = delete;
    HealthPoller &operator=(const HealthPoller &) = delete;
    Exchange poll();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace dss_check

#endif

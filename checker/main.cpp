// dss-bill-check: plays Oracle DSS against a Bill Provisioning endpoint and
// reports each contract rule it can see from outside. See --help and
// dss-bill-check(1).

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <curl/curl.h>
#include <exception>
#include <iostream>

#include "options.h"
#include "report.h"
#include "runner.h"

#ifndef DSS_CHECK_VERSION
#define DSS_CHECK_VERSION "0.1.0"
#endif

namespace {

volatile std::sig_atomic_t interrupted = 0;

extern "C" void on_signal(int) {
    interrupted = 1;
}

void catch_interrupts() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: a sleep ends at once
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

// Sleeps up to seconds, returning early when interrupted.
void pause_for(double seconds) {
    struct timespec left;
    left.tv_sec = static_cast<time_t>(seconds);
    left.tv_nsec =
        static_cast<long>((seconds - static_cast<double>(left.tv_sec)) * 1e9);
    while (!interrupted && nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
}

// Polls the health check like DSS; prints each change of state.
dss_check::WatchLog watch(const dss_check::Options &o,
                          const dss_check::Endpoint &ep) {
    using namespace dss_check;
    WatchLog log;
    HealthPoller poller(ep);
    // a change line goes to stdout, or to stderr when stdout is JSON
    std::ostream &lines = o.json ? std::cerr : std::cout;
    while (!interrupted) {
        Exchange e = poller.poll();
        Evidence ev{{e}};
        Outcome out = judge_health(ev, Settings{});
        Poll p;
        p.at = std::time(nullptr);
        p.healthy = out.verdict == Verdict::pass;
        char took[32];
        std::snprintf(took, sizeof took, " (%.1f ms)", e.first_byte_s * 1000);
        p.detail = p.healthy ? "200, Content-Length: 0" + std::string(took)
                             : out.reason;
        if (record_poll(log, p)) {
            lines << poll_line(p) << std::endl;
        }
        if (o.count && log.polls >= o.count) {
            break;
        }
        pause_for(o.interval_s);
    }
    return log;
}

int run(int argc, char **argv) {
    using namespace dss_check;
    Options o;
    std::string err = parse_options(argc, argv, o);
    if (!err.empty()) {
        std::cerr << "dss-bill-check: " << err
                  << "\n(dss-bill-check --help for usage)\n";
        return 2;
    }
    if (o.help) {
        std::cout << help_text();
        return 0;
    }
    if (o.version) {
        std::cout << "dss-bill-check " DSS_CHECK_VERSION "\n";
        return 0;
    }
    Endpoint ep;
    ep.base_url = o.base_url;
    ep.prefix = o.prefix;
    ep.bills = o.bills;
    ep.missing = o.missing;
    ep.user = o.user;
    ep.cacert = o.cacert;
    ep.insecure = o.insecure;
    err = read_password(o, &ep.password);
    if (!err.empty()) {
        std::cerr << "dss-bill-check: " << err << "\n";
        return 2;
    }

    Settings s;
    s.https = o.base_url.compare(0, 8, "https://") == 0;
    s.bills = !o.bills.empty();
    s.credentials = !o.user.empty();
    s.missing = !o.missing.empty();
    s.now = std::time(nullptr);

    std::vector<Result> results;
    if (!o.bills.empty()) {
        std::string unreachable;
        results = run_checks(
            ep, s,
            [&](const Result &r) {
                if (!o.json) {
                    std::cout << report_line(r) << std::endl;
                }
            },
            &unreachable);
        if (!unreachable.empty()) {
            std::cerr << "dss-bill-check: " << unreachable << "\n";
            return 2;
        }
    }
    int status = exit_status(summarize(results));
    if (!o.json && !results.empty()) {
        std::cout << summary_line(summarize(results)) << std::endl;
    }
    WatchLog log;
    if (o.watch) {
        catch_interrupts(); // Ctrl-C ends the watch with its summary
        log = watch(o, ep);
        if (log.failed) {
            status = 1;
        }
        if (!o.json) {
            std::cout << watch_summary(log) << std::endl;
        }
    }
    if (o.json) {
        std::cout << json_report(o.base_url, o.prefix, results,
                                 o.watch ? &log : nullptr, status);
    }
    return status;
}

} // namespace

int main(int argc, char **argv) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        std::cerr << "dss-bill-check: libcurl failed to start\n";
        return 2;
    }
    int status = 2;
    try {
        status = run(argc, argv);
    } catch (const std::exception &e) {
        std::cerr << "dss-bill-check: " << e.what() << "\n";
    }
    curl_global_cleanup();
    return status;
}

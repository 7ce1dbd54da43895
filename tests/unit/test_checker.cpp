// Unit tests of dss-bill-check's core: the verdict of every check on
// made-up exchanges (what a good endpoint and what each broken one answers),
// the command line, the report and JSON. No network.

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <unistd.h>

#include "check.h"
#include "options.h"
#include "report.h"

// cmocka last: it defines a fail() macro that C++ headers would trip over
#include <csetjmp>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
extern "C" {
#include <cmocka.h>
}

using namespace dss_check;

namespace {

std::string pdf(std::size_t size, char fill = 'x') {
    std::string b = "%PDF-1.4\n";
    b += std::string(size - b.size() - 6, fill);
    return b + "%%EOF\n";
}

Exchange answer(long status, const std::string &body,
                std::vector<std::pair<std::string, std::string>> headers = {}) {
    Exchange e;
    e.label = "bill 1";
    e.method = "GET";
    e.responded = true;
    e.status = status;
    e.body = body;
    e.headers = std::move(headers);
    e.first_byte_s = 0.002;
    e.total_s = 0.003;
    e.new_connections = 1;
    return e;
}

// What a correct endpoint answers for a bill.
Exchange good_bill(const std::string &body = pdf(2000)) {
    return answer(200, body,
                  {{"content-type", "application/pdf"},
                   {"content-length", std::to_string(body.size())}});
}

Exchange good_health() {
    return answer(200, "", {{"content-length", "0"}});
}

Settings settings() {
    Settings s;
    s.bills = s.credentials = s.missing = true;
    s.now = 1800000000;
    return s;
}

#define assert_verdict(expected, judge, ...)                                   \
    do {                                                                       \
        Outcome o_ = judge(Evidence{__VA_ARGS__}, settings());                 \
        if (o_.verdict != (expected)) {                                        \
            fail_msg("%s: %s, expected %s (%s; observed %s)", #judge,          \
                     verdict_word(o_.verdict), verdict_word(expected),         \
                     o_.reason.c_str(), o_.observed.c_str());                  \
        }                                                                      \
    } while (0)

} // namespace

// ---- the table
// ---------------------------------------------------------------

static void test_checks_name_contract_rules(void **) {
    static const std::set<std::string> rules = {
        "D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8", "D9", "H1",
        "H2", "H3", "H4", "T1", "T2", "T3", "T4", "T5", "T6"};
    std::set<std::string> names;
    std::string help = help_text();
    for (const Check &c : checks()) {
        if (!rules.count(c.rule)) {
            fail_msg("check %s names no contract rule: %s", c.name, c.rule);
        }
        assert_true(names.insert(c.name).second); // names are unique
        assert_non_null(c.judge);
        // --help explains every check in its words
        assert_non_null(
            strstr(help.c_str(), (std::string(c.rule) + " " + c.name).c_str()));
        std::string first_words = std::string(c.title).substr(0, 20);
        assert_non_null(strstr(help.c_str(), first_words.c_str()));
    }
    assert_true(checks().size() >= 20);
}

static void test_probes_are_shared_by_key(void **) {
    Probe a, b;
    a.headers = b.headers = download_headers();
    assert_true(a.key() == b.key());
    b.tag = "again";
    assert_false(a.key() == b.key()); // a deliberate second fetch
    b = a;
    b.auth = Auth::none;
    assert_false(a.key() == b.key());
}

static void test_D5_hostile_ids_cover_the_tricks(void **) {
    auto ids = hostile_ids("123456789012");
    bool traversal = false, nul = false, overlong = false, dots = false,
         encoded_slash = false;
    for (const auto &id : ids) {
        traversal |= id.find("..%2F") != std::string::npos;
        encoded_slash |= id.find("123456789012%2F") != std::string::npos;
        nul |= id.find("%00") != std::string::npos;
        overlong |= id.size() >= 300;
        dots |= id == "..";
    }
    assert_true(traversal && nul && overlong && dots && encoded_slash);
}

static void test_skip_reasons(void **) {
    Settings s;
    s.https = false;
    const Check *auth = nullptr, *cert = nullptr, *missing = nullptr,
                *health = nullptr;
    for (const Check &c : checks()) {
        std::string n = c.name;
        auth = n == "basic-auth" ? &c : auth;
        cert = n == "certificate" ? &c : cert;
        missing = n == "missing" ? &c : missing;
        health = n == "health" ? &c : health;
    }
    assert_false(skip_reason(*auth, s).empty());
    assert_false(skip_reason(*cert, s).empty());
    assert_false(skip_reason(*missing, s).empty());
    assert_true(skip_reason(*health, s).empty());
    s = settings();
    assert_true(skip_reason(*auth, s).empty());
    assert_true(skip_reason(*cert, s).empty());
    assert_true(skip_reason(*missing, s).empty());
}

// ---- transport
// ---------------------------------------------------------------

static void test_T1_https_and_tls_version(void **) {
    Settings s = settings();
    assert_int_equal(static_cast<int>(judge_https({}, s).verdict),
                     static_cast<int>(Verdict::pass));
    s.https = false;
    assert_int_equal(static_cast<int>(judge_https({}, s).verdict),
                     static_cast<int>(Verdict::fail));

    Exchange e = good_health();
    e.tls_version = "TLSv1.3";
    assert_verdict(Verdict::pass, judge_tls_version, {e});
    e.tls_version = "TLSv1.1";
    assert_verdict(Verdict::fail, judge_tls_version, {e});
    Exchange refused;
    refused.tls_failed = true;
    refused.error = "wrong version number";
    assert_verdict(Verdict::fail, judge_tls_version, {refused});
}

static void test_T1_certificate_expiry(void **) {
    Exchange e = good_health();
    e.cert_not_after = settings().now + 400 * 86400;
    assert_verdict(Verdict::pass, judge_certificate, {e});
    e.cert_not_after = settings().now + 29 * 86400;
    assert_verdict(Verdict::warn, judge_certificate, {e});
    e.cert_not_after = settings().now + 3600;
    assert_verdict(Verdict::warn, judge_certificate, {e});
    e.cert_not_after = settings().now - 1;
    assert_verdict(Verdict::fail, judge_certificate, {e});
    Outcome o = judge_certificate(Evidence{{e}}, settings());
    assert_non_null(strstr(o.reason.c_str(), "expired"));
    e.cert_not_after = 0;
    assert_verdict(Verdict::skip, judge_certificate, {e});
    Exchange refused;
    refused.tls_failed = true;
    assert_verdict(Verdict::fail, judge_certificate, {refused});
}

static void test_T2_basic_auth(void **) {
    Exchange denied =
        answer(401, "<html>401</html>", {{"www-authenticate", "Basic"}});
    assert_verdict(Verdict::pass, judge_basic_auth, {denied}, {denied});
    assert_verdict(Verdict::fail, judge_basic_auth, {good_bill()}, {denied});
    assert_verdict(Verdict::fail, judge_basic_auth, {denied}, {good_bill()});
    assert_verdict(Verdict::fail, judge_basic_auth, {answer(403, "")},
                   {denied});
}

// ---- health
// --------------------------------------------------------------------

static void test_H2_health(void **) {
    assert_verdict(Verdict::pass, judge_health, {good_health()});
    assert_verdict(Verdict::fail, judge_health,
                   {answer(503, "", {{"content-length", "0"}})});
    assert_verdict(Verdict::fail, judge_health,
                   {answer(200, "OK", {{"content-length", "2"}})});
    assert_verdict(Verdict::fail, judge_health,
                   {answer(200, "", {{"transfer-encoding", "chunked"}})});
    assert_verdict(Verdict::fail, judge_health,
                   {answer(200, "")}); // no Content-Length
    Exchange none;
    none.error = "Connection reset by peer";
    assert_verdict(Verdict::fail, judge_health, {none});
}

static void test_H1_health_without_credentials(void **) {
    assert_verdict(Verdict::pass, judge_health_open, {good_health()});
    Outcome o = judge_health_open(
        Evidence{
            {answer(401, "", {{"www-authenticate", "Basic realm=\"DSS\""}})}},
        settings());
    assert_int_equal(static_cast<int>(o.verdict),
                     static_cast<int>(Verdict::warn));
    assert_non_null(
        strstr(o.observed.c_str(), "Basic realm")); // what it requires
}

static void test_H4_health_fast(void **) {
    std::vector<Exchange> series(5, good_health());
    assert_verdict(Verdict::pass, judge_health_fast, series);
    series[3].first_byte_s = 1.5;
    assert_verdict(Verdict::fail, judge_health_fast, series);
}

// ---- download
// ------------------------------------------------------------------

static void test_D3_status_type_length_framing(void **) {
    assert_verdict(Verdict::pass, judge_download_status, {good_bill()});
    assert_verdict(Verdict::fail, judge_download_status,
                   {good_bill(), answer(500, "")});

    assert_verdict(Verdict::pass, judge_content_type, {good_bill()});
    Exchange e = good_bill();
    e.headers[0].second = "Application/PDF; charset=binary";
    assert_verdict(Verdict::pass, judge_content_type, {e});
    e.headers[0].second = "text/html";
    assert_verdict(Verdict::fail, judge_content_type, {e});
    // nothing to look at without a 200: skipped, not failed twice
    assert_verdict(Verdict::skip, judge_content_type, {answer(404, "")});

    assert_verdict(Verdict::pass, judge_content_length, {good_bill()});
    e = good_bill();
    e.headers.pop_back();
    assert_verdict(Verdict::fail, judge_content_length, {e}); // none
    e.headers.emplace_back("content-length", "1999");
    assert_verdict(Verdict::fail, judge_content_length, {e}); // wrong
    e = good_bill();
    e.headers.emplace_back("content-length", "10");
    assert_verdict(Verdict::fail, judge_content_length, {e}); // two
    e = good_bill();
    e.short_body = true;
    assert_verdict(Verdict::fail, judge_download_status, {e}); // cut short

    assert_verdict(Verdict::pass, judge_framing, {good_bill()});
    e = good_bill();
    e.headers.emplace_back("transfer-encoding", "chunked");
    assert_verdict(Verdict::fail, judge_framing, {e});
    e = good_bill();
    e.headers.emplace_back("content-encoding", "gzip");
    assert_verdict(Verdict::fail, judge_framing, {e});
}

static void test_D8_pdf_and_D4_size(void **) {
    assert_verdict(Verdict::pass, judge_pdf, {good_bill()});
    assert_verdict(Verdict::fail, judge_pdf, {good_bill("<html>error</html>")});
    std::string no_eof = "%PDF-1.4\n" + std::string(3000, 'x');
    assert_verdict(Verdict::warn, judge_pdf, {good_bill(no_eof)});

    assert_verdict(Verdict::pass, judge_max_size,
                   {good_bill(pdf(5 * 1024 * 1024))});
    assert_verdict(Verdict::fail, judge_max_size,
                   {good_bill(pdf(5 * 1024 * 1024 + 1))});
}

static void test_T4_timing(void **) {
    assert_verdict(Verdict::pass, judge_timing, {good_bill()});
    Exchange e = good_bill();
    e.first_byte_s = 5.2;
    assert_verdict(Verdict::fail, judge_timing, {e});
    e = good_bill();
    e.total_s = 61;
    assert_verdict(Verdict::fail, judge_timing, {e});
}

static void test_D1_D9_T5_same_answers(void **) {
    Exchange a = good_bill(pdf(2000, 'a'));
    Exchange b = good_bill(pdf(2000, 'b'));
    assert_verdict(Verdict::pass, judge_accept, {a}, {a}, {a});
    assert_verdict(Verdict::fail, judge_accept, {a}, {answer(406, "")}, {a});
    assert_verdict(Verdict::fail, judge_accept, {a}, {a}, {b});

    assert_verdict(Verdict::pass, judge_same_bytes, {a}, {a});
    assert_verdict(Verdict::fail, judge_same_bytes, {a}, {b});

    std::vector<Exchange> burst(16, a);
    assert_verdict(Verdict::pass, judge_parallel, {a}, burst);
    burst[9] = b;
    assert_verdict(Verdict::fail, judge_parallel, {a}, burst);
    burst[9] = answer(503, "");
    assert_verdict(Verdict::fail, judge_parallel, {a}, burst);
}

static void test_D7_head(void **) {
    Exchange h = answer(200, "", {{"content-length", "2000"}});
    h.method = "HEAD";
    assert_verdict(Verdict::pass, judge_head, {good_bill()}, {h});
    h.headers[0].second = "10";
    assert_verdict(Verdict::fail, judge_head, {good_bill()}, {h});
    assert_verdict(Verdict::fail, judge_head, {good_bill()}, {answer(405, "")});
}

static void test_D3_range_and_conditional_ignored(void **) {
    Exchange bill = good_bill();
    assert_verdict(Verdict::pass, judge_range, {bill}, {bill});
    Exchange partial = answer(206, bill.body.substr(0, 100),
                              {{"content-range", "bytes 0-99/2000"}});
    assert_verdict(Verdict::fail, judge_range, {bill}, {partial});

    assert_verdict(Verdict::pass, judge_conditional, {bill}, {bill}, {bill});
    assert_verdict(Verdict::fail, judge_conditional, {bill}, {answer(304, "")},
                   {bill});
    assert_verdict(Verdict::fail, judge_conditional, {bill}, {bill},
                   {answer(304, "")});
}

static void test_D5_missing_and_hostile(void **) {
    assert_verdict(Verdict::pass, judge_missing, {answer(404, "")});
    assert_verdict(Verdict::fail, judge_missing, {good_bill()});
    assert_verdict(Verdict::fail, judge_missing, {answer(403, "")});

    std::vector<Exchange> hostile = {answer(404, ""), answer(400, ""),
                                     answer(404, "")};
    assert_verdict(Verdict::pass, judge_hostile, hostile);
    hostile[1] = good_bill();
    assert_verdict(Verdict::fail, judge_hostile, hostile);
}

static void test_D7_statuses(void **) {
    assert_verdict(Verdict::pass, judge_statuses, {good_bill()},
                   {answer(404, "")}, {answer(500, "")});
    assert_verdict(Verdict::fail, judge_statuses, {good_bill()},
                   {answer(302, "")});
    assert_verdict(Verdict::fail, judge_statuses, {answer(206, "")});
}

static void test_T5_keepalive(void **) {
    std::vector<Exchange> series(5, good_health());
    for (std::size_t i = 1; i < series.size(); i++) {
        series[i].new_connections = 0;
    }
    assert_verdict(Verdict::pass, judge_keepalive, series);
    for (auto &e : series) {
        e.new_connections = 1;
    }
    assert_verdict(Verdict::fail, judge_keepalive, series);
}

// ---- command line
// --------------------------------------------------------------

static std::string parse(std::vector<const char *> args,
                         Options *out = nullptr) {
    args.insert(args.begin(), "dss-bill-check");
    Options o;
    std::string err =
        parse_options(static_cast<int>(args.size()), args.data(), o);
    if (out) {
        *out = o;
    }
    return err;
}

static void test_options(void **) {
    Options o;
    assert_string_equal(
        parse({"https://h:8443/", "--bill", "123", "--prefix", "/x/y/"}, &o)
            .c_str(),
        "");
    assert_string_equal(o.base_url.c_str(), "https://h:8443");
    assert_string_equal(o.prefix.c_str(), "/x/y");
    assert_false(parse({"https://h"}).empty());           // no --bill
    assert_true(parse({"https://h", "--watch"}).empty()); // watch alone
    assert_false(parse({"ftp://h", "--bill", "1"}).empty());
    assert_false(parse({"https://h/dss", "--bill", "1"}).empty()); // a path
    assert_false(parse({"https://h", "--bill", "../x"}).empty());  // D2
    assert_false(parse({"https://h", "--bill", "1", "--user", "u"})
                     .empty()); // no password
    assert_false(parse({"https://h", "--bill", "1", "--user", "u",
                        "--password-env", "A", "--password-file", "f"})
                     .empty());
    assert_false(
        parse({"https://h", "--bill", "1", "--password-env", "A"}).empty());
    assert_false(
        parse({"https://h", "--bill", "1", "--insecure", "--cacert", "c"})
            .empty());
    assert_false(parse({"https://h", "--bill", "1", "--count", "3"})
                     .empty()); // needs --watch
    assert_false(parse({"https://h", "--watch", "--count", "0"}).empty());
    assert_true(
        parse({"https://h", "--watch", "--count", "3", "--interval", "200ms"},
              &o)
            .empty());
    assert_int_equal(o.count, 3);
    assert_true(o.interval_s > 0.19 && o.interval_s < 0.21);
}

static void test_passwords_never_on_the_command_line(void **) {
    std::string err =
        parse({"https://h", "--bill", "1", "--password", "hunter2"});
    assert_false(err.empty());
    assert_null(strstr(err.c_str(), "hunter2"));
    err = parse({"https://dss:hunter2@h", "--bill", "1"});
    assert_false(err.empty());
    assert_null(strstr(err.c_str(), "hunter2")); // the URL is not quoted back
}

static void test_read_password(void **) {
    Options o;
    std::string pw;
    setenv("DSS_CHECK_TEST_PW", "s3cret", 1);
    o.password_env = "DSS_CHECK_TEST_PW";
    assert_string_equal(read_password(o, &pw).c_str(), "");
    assert_string_equal(pw.c_str(), "s3cret");
    o.password_env = "DSS_CHECK_TEST_UNSET";
    unsetenv("DSS_CHECK_TEST_UNSET");
    assert_false(read_password(o, &pw).empty());

    char path[] = "/tmp/dss-check-pw.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "file-pw\r\nsecond line\n", 21), 21);
    close(fd);
    o = Options{};
    o.password_file = path;
    assert_string_equal(read_password(o, &pw).c_str(), "");
    assert_string_equal(pw.c_str(), "file-pw");
    unlink(path);
    assert_false(read_password(o, &pw).empty()); // gone
}

static void test_intervals(void **) {
    double s = 0;
    assert_true(parse_interval("10s", &s) && s == 10);
    assert_true(parse_interval("10", &s) && s == 10);
    assert_true(parse_interval("500ms", &s) && s == 0.5);
    assert_true(parse_interval("2m", &s) && s == 120);
    assert_true(parse_interval("1.5s", &s) && s == 1.5);
    for (const char *bad : {"", "s", "10x", "-1", ".5", "0", "1.2.3", "1e3"}) {
        if (parse_interval(bad, &s)) {
            fail_msg("interval \"%s\" was accepted", bad);
        }
    }
}

// ---- output
// ------------------------------------------------------------------

static void test_report_and_exit_status(void **) {
    const Check *c = &checks()[0];
    Result pass{c, {Verdict::pass, "fine", "x"}};
    Result failed{c, {Verdict::fail, "broken", "y"}};
    Result skipped{c, {Verdict::skip, "no --bill given", ""}};
    Result warned{c, {Verdict::warn, "soon", "z"}};
    assert_string_equal(report_line(failed).c_str(),
                        (std::string("FAIL ") + c->rule + " " + c->name +
                         ": broken (observed y)")
                            .c_str());
    assert_string_equal(
        report_line(skipped).c_str(),
        (std::string("SKIP ") + c->rule + " " + c->name + ": no --bill given")
            .c_str());
    Summary s = summarize({pass, failed, skipped, warned});
    assert_string_equal(summary_line(s).c_str(),
                        "2 passed, 1 failed, 1 skipped (1 warning)");
    assert_int_equal(exit_status(s), 1);
    assert_int_equal(exit_status(summarize({pass, skipped, warned})), 0);
}

static void test_json(void **) {
    assert_string_equal(json_string("a\"b\\c\n\x01\xc3").c_str(),
                        "\"a\\\"b\\\\c\\n\\u0001\\u00c3\"");
    const Check *c = &checks()[0];
    WatchLog log;
    Poll p;
    p.at = 0;
    p.healthy = true;
    assert_true(record_poll(log, p));
    assert_false(record_poll(log, p));
    p.healthy = false;
    assert_true(record_poll(log, p));
    assert_int_equal(log.failed, 1);
    std::string j = json_report("https://h", "/dss/bill",
                                {{c, {Verdict::fail, "r\"", "o"}}}, &log, 1);
    assert_non_null(strstr(j.c_str(), "\"verdict\": \"FAIL\""));
    assert_non_null(strstr(j.c_str(), "\"reason\": \"r\\\"\""));
    assert_non_null(strstr(j.c_str(), "\"polls\": 3"));
    assert_non_null(strstr(j.c_str(), "\"exit_status\": 1"));
    assert_string_equal(
        watch_summary(log).c_str(),
        "watch: 3 polls, 2 healthy, 1 failed, 1 change of state");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks_name_contract_rules),
        cmocka_unit_test(test_probes_are_shared_by_key),
        cmocka_unit_test(test_D5_hostile_ids_cover_the_tricks),
        cmocka_unit_test(test_skip_reasons),
        cmocka_unit_test(test_T1_https_and_tls_version),
        cmocka_unit_test(test_T1_certificate_expiry),
        cmocka_unit_test(test_T2_basic_auth),
        cmocka_unit_test(test_H2_health),
        cmocka_unit_test(test_H1_health_without_credentials),
        cmocka_unit_test(test_H4_health_fast),
        cmocka_unit_test(test_D3_status_type_length_framing),
        cmocka_unit_test(test_D8_pdf_and_D4_size),
        cmocka_unit_test(test_T4_timing),
        cmocka_unit_test(test_D1_D9_T5_same_answers),
        cmocka_unit_test(test_D7_head),
        cmocka_unit_test(test_D3_range_and_conditional_ignored),
        cmocka_unit_test(test_D5_missing_and_hostile),
        cmocka_unit_test(test_D7_statuses),
        cmocka_unit_test(test_T5_keepalive),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_passwords_never_on_the_command_line),
        cmocka_unit_test(test_read_password),
        cmocka_unit_test(test_intervals),
        cmocka_unit_test(test_report_and_exit_status),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}

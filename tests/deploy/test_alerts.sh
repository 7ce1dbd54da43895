#!/usr/bin/env bash
# conf/dss-bill-alerts.yml: Prometheus' promtool accepts the rule file and
# its unit tests (dss-bill-alerts.test.yml: each rule fires on synthetic
# series where it must, and stays quiet where it must not) pass.
#
#   test_alerts.sh
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"

command -v promtool >/dev/null ||
    fail "no promtool: scripts/bootstrap installs Debian's prometheus package"

promtool check rules "$REPO/conf/dss-bill-alerts.yml" ||
    fail "promtool check rules"
ok "promtool check rules conf/dss-bill-alerts.yml"
# promtool resolves rule_files against the test file's folder
promtool test rules "$REPO/tests/deploy/dss-bill-alerts.test.yml" ||
    fail "promtool test rules"
ok "promtool test rules: every alert rule's unit tests pass"
echo "passed"

#!/usr/bin/env bash
# dss-bill-check's man page explains every check that --help lists, with the
# same words (the check table's titles), and renders without warnings.
#   test_checker_manpage.sh DSS_BILL_CHECK MAN_PAGE
set -euo pipefail
bin=$1
page=$2

help=$("$bin" --help)
# the man page's text, one line, whitespace collapsed
text=$(tr -s ' \n' '  ' <"$page")
checks=0
current=""
title=""
check_one() {
    [ -n "$current" ] || return 0
    checks=$((checks + 1))
    grep -qxF ".B $current" "$page" || {
        echo "FAIL: the man page has no entry \".B $current\"" >&2
        exit 1
    }
    [[ "$text" == *"$title"* ]] || {
        echo "FAIL: the man page does not explain $current in --help's words: \"$title\"" >&2
        exit 1
    }
}
in_checks=0
while IFS= read -r line; do
    if [ "$line" = "Checks (rule ids of the DSS bill contract):" ]; then
        in_checks=1
    elif [ "$in_checks" -eq 1 ] && [ -z "$line" ]; then
        break
    elif [ "$in_checks" -eq 1 ] && [[ "$line" == "      "* ]]; then
        title="${title:+$title }${line#      }"
    elif [ "$in_checks" -eq 1 ]; then
        check_one
        current=${line#  }
        title=""
    fi
done <<<"$help"
check_one
[ "$checks" -ge 20 ] || {
    echo "FAIL: only $checks checks found in --help" >&2
    exit 1
}
if command -v groff >/dev/null; then
    warnings=$(groff -man -ww -z "$page" 2>&1)
    [ -z "$warnings" ] || {
        echo "FAIL: groff warns: $warnings" >&2
        exit 1
    }
fi
echo "ok: the man page explains all $checks checks"

#!/usr/bin/env bash
# scripts/make-cert and scripts/add-user on their own: options, the files
# they write and their modes, refusals. That nginx accepts what they write
# is proven by the conf/ tests, which use them.
#
#   test_scripts.sh
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"

make_cert=$REPO/scripts/make-cert
add_user=$REPO/scripts/add-user
dir=$(new_dir)

for script in "$make_cert" "$add_user" "$REPO/scripts/package"; do
    help=$("$script" --help) || fail "$script --help failed"
    grep -q '^usage: ' <<<"$help" || fail "$script --help shows no usage"
    if "$script" --bogus >/dev/null 2>&1; then
        fail "$script accepts an unknown option"
    fi
done
ok "--help and unknown options"

# ---- make-cert -------------------------------------------------------------------
"$make_cert" --bits 2048 "$dir/c1" >/dev/null
text=$(openssl x509 -in "$dir/c1/cert.pem" -noout -text)
san=$(grep -A1 'Subject Alternative Name' <<<"$text" | tail -n1)
for want in "DNS:$(hostname)" "IP Address:127.0.0.1"; do
    [[ "$san" == *"$want"* ]] || fail "no $want in the default names: $san"
done
for ip in $(hostname -I 2>/dev/null); do
    [[ "$ip" == *:* ]] && continue # v6 is printed expanded
    [[ "$san" == *"IP Address:$ip"* ]] || fail "no IP $ip in the default names: $san"
done
grep -q 'TLS Web Server Authentication' <<<"$text" || fail "no serverAuth usage"
openssl x509 -in "$dir/c1/cert.pem" -noout -checkend $((800 * 86400)) >/dev/null ||
    fail "default validity shorter than 800 days"
[ "$(stat -c %a "$dir/c1/key.pem")" = 600 ] || fail "key.pem is not mode 600"
[ "$(stat -c %a "$dir/c1/cert.pem")" = 644 ] || fail "cert.pem is not mode 644"
# The key belongs to the certificate; the certificate is self-signed.
[ "$(openssl x509 -in "$dir/c1/cert.pem" -noout -pubkey)" = \
    "$(openssl pkey -in "$dir/c1/key.pem" -pubout)" ] || fail "key and certificate differ"
openssl verify -CAfile "$dir/c1/cert.pem" "$dir/c1/cert.pem" >/dev/null ||
    fail "the certificate does not verify against itself"
ok "make-cert: host name and addresses as alternative names, key 600, self-signed (T1)"

if "$make_cert" --bits 2048 "$dir/c1" >/dev/null 2>&1; then
    fail "make-cert replaced an existing certificate without --force"
fi
before=$(cat "$dir/c1/cert.pem")
"$make_cert" --bits 2048 --force --only --dns dss-bill-instance --ip 192.0.2.10 \
    --days 30 "$dir/c1" >/dev/null
[ "$(cat "$dir/c1/cert.pem")" != "$before" ] || fail "--force did not replace it"
san=$(openssl x509 -in "$dir/c1/cert.pem" -noout -ext subjectAltName | tail -n1)
[ "$(tr -d ' ' <<<"$san")" = "DNS:dss-bill-instance,IPAddress:192.0.2.10" ] ||
    fail "--only --dns --ip gave: $san"
subject=$(openssl x509 -in "$dir/c1/cert.pem" -noout -subject)
grep -q 'CN *= *dss-bill-instance' <<<"$subject" ||
    fail "the first DNS name is not the common name"
for bad in "--dns bad/name" "--ip 1.2.3.4;rm" "--bits 1024" "--days 0"; do
    # shellcheck disable=SC2086
    if "$make_cert" $bad "$dir/c2" >/dev/null 2>&1; then
        fail "make-cert accepted $bad"
    fi
done
[ ! -e "$dir/c2/key.pem" ] || fail "a refused make-cert left a key behind"
ok "make-cert: no overwrite without --force; --only/--dns/--ip/--days; bad input refused"

# ---- add-user --------------------------------------------------------------------
pw=$dir/htpasswd
# check USER PASSWORD: the stored hash is SHA-512 crypt of PASSWORD.
check() {
    local line hash salt
    line=$(grep "^$1:" "$pw") || fail "no $1 in $pw"
    hash=${line#*:}
    [[ "$hash" == "\$6\$"* ]] || fail "$1: not a SHA-512 crypt hash: $hash"
    salt=$(cut -d'$' -f3 <<<"$hash")
    [ "${#salt}" -ge 16 ] || fail "$1: salt shorter than 16 characters"
    [ "$(printf '%s\n' "$2" | openssl passwd -6 -salt "$salt" -stdin)" = "$hash" ] ||
        fail "$1: the hash does not match the password"
}

printf 'first secret\n' | "$add_user" "$pw" dss 2>/dev/null
check dss 'first secret'
[ "$(stat -c %a "$pw")" = 600 ] || fail "a new htpasswd is not mode 600"
random=$("$add_user" --random "$pw" ops 2>/dev/null)
[[ "$random" =~ ^[A-Za-z0-9_-]{24}$ ]] || fail "--random printed \"$random\""
check ops "$random"
printf 'second secret\n' | "$add_user" "$pw" dss 2>/dev/null
check dss 'second secret'
check ops "$random"
[ "$(grep -c '^dss:' "$pw")" = 1 ] || fail "dss is in the file twice"
ok "add-user: SHA-512 crypt with a 16-character salt, new file 600, add, --random, change"

chmod 640 "$pw"
"$add_user" --delete "$pw" ops 2>/dev/null
! grep -q '^ops:' "$pw" || fail "--delete left ops"
check dss 'second secret'
[ "$(stat -c %a "$pw")" = 640 ] || fail "an existing file lost its mode"
if [ "$(id -u)" -eq 0 ]; then
    printf 'x\n' | "$add_user" --group nogroup "$pw" grp 2>/dev/null
    [ "$(stat -c '%a %G' "$pw")" = "640 nogroup" ] || fail "--group: $(stat -c '%a %G' "$pw")"
fi
for bad in "a:b" "has space" ""; do
    if printf 'x\n' | "$add_user" "$pw" "$bad" >/dev/null 2>&1; then
        fail "add-user accepted the user name \"$bad\""
    fi
done
if printf '\n' | "$add_user" "$pw" empty >/dev/null 2>&1; then
    fail "add-user accepted an empty password"
fi
if "$add_user" --delete "$pw" nobody-here >/dev/null 2>&1; then
    fail "--delete of a missing user succeeded"
fi
[ -z "$(find "$dir" -name '.htpasswd.*')" ] || fail "add-user left temporary files"
ok "add-user: --delete, modes kept, --group, bad names and empty passwords refused"
echo "passed"

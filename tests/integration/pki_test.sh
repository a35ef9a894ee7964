#!/usr/bin/env bash
# scripts/pki as an operator uses it: a CA with a revocation list, gateway certificates whose CN is
# the id, ids that are not topic-safe refused, a revoked certificate failing verification against
# the list while the others pass, and no private key on the terminal.
# Usage: pki_test.sh <repository root>
set -uo pipefail
pki=$1/scripts/pki
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failures=0
check() {  # check <description> <command...>
    if "${@:2}"; then echo "ok: $1"; else echo "FAILED: $1"; failures=$((failures + 1)); fi
}
verify() { openssl verify -crl_check -CRLfile "$dir/p/crl.pem" -CAfile "$dir/p/ca.crt" "$dir/p/clients/$1.crt" >/dev/null 2>&1; }

out=$("$pki" init "$dir/p" 2>&1 && "$pki" client "$dir/p" gw-a 2>&1 && "$pki" client "$dir/p" gw-b 2>&1)
check "init and client succeed" test $? -eq 0
check "a revocation list from the start" test -s "$dir/p/crl.pem"
check "the CN is the gateway id" \
    bash -c "openssl x509 -in '$dir/p/clients/gw-a.crt' -noout -subject | grep -q 'CN *= *gw-a$'"
check "keys are 0600" test "$(stat -c %a "$dir/p/clients/gw-a.key")" = 600
check "both verify before revocation" bash -c "$(declare -f verify); dir='$dir'; verify gw-a && verify gw-b"
for bad in "gw/x" "gw+x" "gw#x" "gw x" ""; do
    check "id '$bad' is refused" bash -c "! '$pki' client '$dir/p' '$bad' 2>/dev/null"
done

out+=$("$pki" revoke "$dir/p" gw-b 2>&1)
check "revoke succeeds" test $? -eq 0
check "the revoked certificate fails against the list" bash -c "$(declare -f verify); dir='$dir'; ! verify gw-b"
check "the other still verifies" bash -c "$(declare -f verify); dir='$dir'; verify gw-a"
out+=$("$pki" revoke "$dir/p" gw-b 2>&1)
check "revoking twice is harmless" test $? -eq 0
check "revoking an unknown id fails" bash -c "! '$pki' revoke '$dir/p' gw-nobody 2>/dev/null"
out+=$("$pki" crl "$dir/p" 2>&1)
check "crl rewrites the list and keeps the revocation" bash -c "$(declare -f verify); dir='$dir'; ! verify gw-b && verify gw-a"
check "no private key was printed" bash -c "! grep -q 'PRIVATE KEY' <<<'$out'"

[[ $failures -eq 0 ]]

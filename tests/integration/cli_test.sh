#!/usr/bin/env bash
# A program's command line as a user meets it: --version names the version and the wire schema,
# --help lists the options, an unknown option is a usage error.
set -euo pipefail
binary=$1 name=$2
# What a minimal valid config needs besides [log] (tern-edge: its gateway id).
required_toml=${3:-}
fail() { echo "FAIL: $*" >&2; exit 1; }

version=$("$binary" --version)
[[ $version =~ ^$name\ [0-9]+\.[0-9]+\.[0-9]+\ \(wire\ schema\ [0-9]+\)$ ]] || fail "--version printed '$version'"

help=$("$binary" --help)
for option in --help --version --config --check-config; do
    grep -q -- "$option" <<<"$help" || fail "--help does not list $option"
done

if "$binary" --no-such-option >/dev/null 2>&1; then fail "an unknown option was accepted"; fi
echo "ok: $version"

# Configuration: every error at once with file, line and key, exit status 2; a valid file passes.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/bad.toml" <<'TOML'
[log]
level = "loud"
colour = true

[nonsense]
TOML
set +e
errors=$("$binary" --config "$work/bad.toml" --check-config 2>&1)
status=$?
set -e
[[ $status -eq 2 ]] || fail "a bad config exited $status, not 2"
grep -q "bad.toml:2:.*log.level" <<<"$errors" || fail "no error for log.level at line 2: $errors"
grep -q "bad.toml:3:.*log.colour" <<<"$errors" || fail "no error for the unknown key log.colour: $errors"
grep -q "bad.toml:5:.*nonsense" <<<"$errors" || fail "no error for the unknown table: $errors"

printf '[log]\nlevel = "debug"\nformat = "json"\n%b' "$required_toml" >"$work/good.toml"
# Output is captured before grep reads it: grep -q stops at its first match, and a writer still
# writing would die of SIGPIPE under pipefail.
checked=$("$binary" --config "$work/good.toml" --check-config) || fail "a valid config was refused"
grep -q "is valid" <<<"$checked" || fail "--check-config did not say the config is valid: $checked"
if "$binary" --config "$work/missing.toml" --check-config 2>/dev/null; then fail "a missing --config file was accepted"; fi
reference=$("$binary" --print-config-reference) || fail "--print-config-reference failed"
grep -q '`level`' <<<"$reference" || fail "--print-config-reference does not list log.level"
echo "ok: configuration errors reported with file, line and key"

#!/usr/bin/env bash
# A program's command line as a user meets it: --version names the version and the wire schema,
# --help lists the options, an unknown option is a usage error.
set -euo pipefail
binary=$1 name=$2
fail() { echo "FAIL: $*" >&2; exit 1; }

version=$("$binary" --version)
[[ $version =~ ^$name\ [0-9]+\.[0-9]+\.[0-9]+\ \(wire\ schema\ [0-9]+\)$ ]] || fail "--version printed '$version'"

help=$("$binary" --help)
for option in --help --version --config --check-config; do
    grep -q -- "$option" <<<"$help" || fail "--help does not list $option"
done

if "$binary" --no-such-option >/dev/null 2>&1; then fail "an unknown option was accepted"; fi
echo "ok: $version"

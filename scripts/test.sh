#!/usr/bin/env bash
# Runs every test of cmk: installs what is needed, builds and installs the
# extension, then runs, as the postgres user (initdb refuses root):
#   1. the C++ core's unit tests (GoogleTest),
#   2. the Key Vault provider's tests against the local emulator and the
#      emulator's own self-tests,
#   3. the PostgreSQL TAP tests (PostgreSQL::Test::Cluster via PGXS, prove),
#      which include pg_regress of the SQL API.
# Usage (as root, on Debian 12): bash scripts/test.sh [test/t/NNN_name.pl ...]
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)

bash scripts/install_deps.sh
make -j"$(nproc)"
make install >/dev/null
make -j"$(nproc)" build/unit_tests

# A copy the postgres user owns: TAP tests write tmp_check/ beside them.
work=$(mktemp -d /tmp/cmk-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a "$src/." "$work/"
chown -R postgres: "$work"
as_postgres() { runuser -u postgres -- env -C "$work" PATH="/usr/lib/postgresql/15/bin:$PATH" "$@"; }

echo "=== unit tests of the core ==="
as_postgres build/unit_tests --gtest_brief=1

if [ -f test/provider/run.sh ]; then
  echo "=== Key Vault provider tests against the emulator ==="
  as_postgres bash test/provider/run.sh
fi
if [ -f test/kv_emulator/test_emulator.py ]; then
  echo "=== Key Vault emulator self-tests ==="
  as_postgres python3 -m unittest discover -s test/kv_emulator
fi

echo "=== PostgreSQL TAP tests ==="
if [ $# -gt 0 ]; then
  as_postgres make installcheck PROVE_TESTS="$*"
else
  as_postgres make installcheck
fi

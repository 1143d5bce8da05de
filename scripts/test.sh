#!/usr/bin/env bash
# Runs every test of cmk: installs what is needed, builds and installs the
# extension, then runs, as the postgres user (initdb refuses root):
#   1. the C++ core's unit tests (GoogleTest),
#   2. the Key Vault provider's tests against the local emulator, the
#      emulator's own self-tests, and Microsoft's Azure SDK for JavaScript
#      against the emulator (test/sdk, packages from the npm registry),
#   3. the PostgreSQL TAP tests (PostgreSQL::Test::Cluster via PGXS, prove),
#      which include pg_regress of the SQL API.
# Usage (as root, on Debian 12): bash scripts/test.sh [test/t/NNN_name.pl ...]
# CMK_PG_ROOT=DIR builds, installs and tests against a private copy of the
# server made by scripts/dev_pg_root.sh instead of the system's.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
# initdb refuses a locale the machine lacks (ssh forwards the client's LANG
# and LC_*): the servers run in C.UTF-8, which Debian always has.
unset LANGUAGE LC_ALL $(compgen -e | grep '^LC_' || true)
export LANG=C.UTF-8

bash scripts/install_deps.sh
pgbin=/usr/lib/postgresql/15/bin
if [ -n "${CMK_PG_ROOT:-}" ]; then
  pgbin=$CMK_PG_ROOT/usr/lib/postgresql/15/bin
  [ -x "$pgbin/pg_config" ] || bash scripts/dev_pg_root.sh "$CMK_PG_ROOT" >/dev/null
fi
export PG_CONFIG=$pgbin/pg_config
# PGXS skips TAP tests (and succeeds) when the server was configured without
# them: that must be a failure here, not a silent pass.
if ! grep -Eq '^enable_tap_tests[[:space:]]*=[[:space:]]*yes' "$(dirname "$("$PG_CONFIG" --pgxs)")/../Makefile.global"; then
  echo "scripts/test.sh: $("$PG_CONFIG" --pgxs) has TAP tests disabled (is the PostgreSQL install damaged? dpkg --verify postgresql-client-15)" >&2
  exit 1
fi
echo "building cmk (a few minutes on 2 cores the first time)..."
make -j"$(nproc)"
# The glue's layers call one way (DESIGN.md "Layers"): includes and symbols.
bash scripts/check_layers.sh
make install >/dev/null
make -j"$(nproc)" build/unit_tests
# Free ports are reserved in one directory for every concurrent test run.
export PG_TEST_PORT_DIR=/tmp/cmk-test-portlock
mkdir -p "$PG_TEST_PORT_DIR" && chmod 1777 "$PG_TEST_PORT_DIR"

# A copy the postgres user owns: TAP tests write tmp_check/ beside them.
work=$(mktemp -d /tmp/cmk-test.XXXXXX)
# CMK_KEEP_TMP=1 keeps it (logs of the servers and tests in tmp_check/log).
if [ -n "${CMK_KEEP_TMP:-}" ]; then trap 'echo "test work directory kept: $work"' EXIT; else trap 'rm -rf "$work"' EXIT; fi
cp -a "$src/." "$work/"
chown -R postgres: "$work"
as_postgres() { runuser -u postgres -- env -C "$work" PATH="$pgbin:$PATH" PG_CONFIG="$PG_CONFIG" PG_TEST_PORT_DIR="$PG_TEST_PORT_DIR" "$@"; }

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
if [ -f test/sdk/run.sh ]; then
  echo "=== Microsoft's Azure SDK for JavaScript against the emulator ==="
  as_postgres bash test/sdk/run.sh
fi

echo "=== PostgreSQL TAP tests ==="
if [ $# -gt 0 ]; then
  as_postgres make installcheck PROVE_TESTS="$*"
else
  as_postgres make installcheck
fi

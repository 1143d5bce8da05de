#!/usr/bin/env bash
# The crash-point suite (test/t/114_crash_points.pl) with many crashes: kill
# -9 of the postmaster and every child at random moments under pgbench and
# an acknowledged-commit writer, with KEK and DEK rotations, the sweep and
# retirements in between; every acknowledged row is checked after every
# restart, amcheck and pg_cmk verify at the end. Not run by CI (scripts/test.sh
# runs the same test with 50 crashes).
#   bash scripts/crash_soak.sh [CRASHES] [SEED]     (as root; default 500)
# CMK_PG_ROOT as for scripts/test.sh. The figures are in the last lines of
# the output (and in the test's log under tmp_check).
set -euo pipefail
cd "$(dirname "$0")/.."
export CMK_CRASHES=${1:-500}
[ -n "${2:-}" ] && export CMK_CRASH_SEED=$2
exec bash scripts/test.sh test/t/114_crash_points.pl

#!/usr/bin/env bash
# Builds the fuzz targets of fuzz/targets with clang's libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer (the core compiled the
# same way), and runs each for a set time or number of executions:
#   bash fuzz/run.sh [SECONDS]            each target SECONDS (default 60)
#   FUZZ_RUNS=1000000 bash fuzz/run.sh    each target that many executions
#   FUZZ_TARGETS="keyring verify" ...     only those
#   bash fuzz/run.sh --seeds              rewrite fuzz/corpus from make_seeds.cpp
# New interesting inputs go to build/fuzz/corpus/<target> (seeded from
# fuzz/corpus/<target>, which is not modified); a crash or sanitizer report
# leaves its input in build/fuzz/artifacts/<target>/. Copy an input worth
# keeping (a fixed finding: its regression seed) into fuzz/corpus/<target>/,
# which the unit tests replay. Not run by CI. Needs fuzz/install_deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang++ >/dev/null || { echo "fuzz/run.sh: clang++ missing; run fuzz/install_deps.sh as root" >&2; exit 1; }

CXX=clang++
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
FLAGS="-std=c++17 -O1 -g -fno-omit-frame-pointer -Isrc/core"
LIBS="-lcurl -lgcrypt -lgpg-error -lssl -lcrypto -lpthread"
out=build/fuzz
mkdir -p "$out/obj"

# The core, instrumented (coverage for libFuzzer, sanitizers).
objs=()
for src in $(find src/core -name '*.cpp' | sort); do
  obj="$out/obj/$(echo "${src#src/core/}" | tr / _).o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find src/core -name '*.h' -newer "$obj" | head -1)" ]; then
    $CXX $FLAGS $SAN -fsanitize=fuzzer-no-link -c -o "$obj" "$src"
  fi
  objs+=("$obj")
done

if [ "${1:-}" = "--seeds" ]; then
  $CXX $FLAGS -Ifuzz -o "$out/make_seeds" fuzz/make_seeds.cpp $(find src/core -name '*.cpp' | sort) $LIBS
  "$out/make_seeds" fuzz/corpus
  echo "seeds written to fuzz/corpus"
  exit 0
fi

seconds=${1:-60}
targets=${FUZZ_TARGETS:-$(ls fuzz/targets/*.cpp | xargs -n1 basename | sed 's/\.cpp$//' | sort)}
summary=()
status=0
for t in $targets; do
  $CXX $FLAGS $SAN -fsanitize=fuzzer -DCMK_FUZZ_LIBFUZZER -Ifuzz/targets -o "$out/fuzz_$t" "fuzz/targets/$t.cpp" "${objs[@]}" $LIBS
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  if [ -n "${FUZZ_RUNS:-}" ]; then limit=(-runs="$FUZZ_RUNS"); else limit=(-max_total_time="$seconds"); fi
  log="$out/fuzz_$t.log"
  set +e
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$out/fuzz_$t" "${limit[@]}" -max_len=40000 -print_final_stats=1 -artifact_prefix="$out/artifacts/$t/" \
    "$out/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo '?')
  found=$(ls "$out/artifacts/$t" | wc -l)
  line="$t: $runs executions in ${secs}s, corpus $(ls "$out/corpus/$t" | wc -l) inputs, exit $rc, findings $found"
  echo "$line"
  summary+=("$line")
  [ "$rc" = 0 ] && [ "$found" = 0 ] || status=1
done
printf '%s\n' "${summary[@]}" > "$out/summary.txt"
exit $status

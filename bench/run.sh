#!/usr/bin/env bash
# The side-by-side benchmark suite: plain PostgreSQL 15, the same server with
# cmk, and the same plain server with its data directory inside a gocryptfs
# mount, each with data checksums on and off (an instance per system and
# setting: plain.on, cmk.on, gocryptfs.on, plain.off, ...), measured in
# alternating rounds (only the instance under test runs), then in a paired
# phase (all up, short runs alternating A B C ... / ... C B A), on one machine
# in one run. Reports medians and ratios to plain (same checksum setting) in
# bench/results/latest.md (+ latest.csv, samples.csv, ratios.png), together
# with bench/cipher.sh's page-cipher numbers.
#
# cmk is built in the tree (or a git archive of HEAD) and copied into the
# bench directory, found there through dynamic_library_path: nothing is
# installed into the system's $libdir, where others' servers may load it.
#
# Usage, as root on Debian 12, from anywhere:
#   bash bench/run.sh                 # full suite (bench/README.md: duration)
#   BENCH_QUICK=1 bash bench/run.sh   # short settings, to check it works;
#                                     # writes bench/results/quick/ instead
#
# Settings (environment; defaults in brackets, quick mode's after the slash):
#   BENCH_ROUNDS         rounds of each instance (0: none)         [2 / 1]
#   BENCH_PAIRS          paired phase: runs of each instance, all
#                        servers up, alternating A B C C B A ...    [5 / 2]
#   BENCH_CASES          cases of a round, in order
#                        [select_only select_hot tpcb insert64 scan scan_par ctas
#                         vacuum_full create_index sort hash_join copy wal_write]
#   BENCH_PAIR_CASES     cases of the paired phase  [the same but copy and wal_write]
#   BENCH_CHECKSUMS      data checksum settings, an instance each   [on off]
#   BENCH_SYSTEMS        systems, in round order  [plain cmk gocryptfs];
#                        also cmk_nocipher (cmk with its AES calls replaced
#                        by a copy) and cmk_timed (each AES call timed),
#                        built by bench/variant.py, to split cmk's cost
#   BENCH_T              seconds of a pgbench case in a round      [15 / 3]
#   BENCH_PAIR_T         seconds of a pgbench case in a pair        [5 / 3]
#   BENCH_GOCRYPTFS_PAIRS  gocryptfs takes part in the first this many
#                        pairs only (its rewrites take 5-10 times
#                        plain's time; its ratios need no 2% precision)  [3 / 1]
#   BENCH_WARMUP         seconds of untimed pgbench -S first        [5 / 2]
#   BENCH_CLIENTS        pgbench clients of -S and tpcb-like (-c)   [2]
#   BENCH_INSERT_CLIENTS clients of the small-INSERT WAL load       [64 / 16]
#   BENCH_JOBS           pgbench threads (-j)                       [2]
#   BENCH_SCALE          pgbench scale (30 = 3M accounts, 450 MB)   [30 / 5]
#   BENCH_SHARED_BUFFERS shared_buffers                             [64MB / 16MB]
#   BENCH_SCAN_ROWS      rows of big (4M = 550 MB): the cold scans,
#                        CREATE TABLE AS, VACUUM FULL, CREATE INDEX [4000000 / 300000]
#   BENCH_SORT_ROWS      rows sorted with a small work_mem          [2000000 / 300000]
#   BENCH_JOIN_ROWS      rows of each side of the hash join         [1000000 / 200000]
#   BENCH_WORK_MEM       work_mem of the sort and the hash join     [4MB / 1MB]
#   BENCH_COPY_ROWS      rows in the COPY file (3M = 0.3 GB CSV)    [3000000 / 300000]
#   BENCH_WAL_MB         MB of WAL written by the WAL benchmark     [256 / 64]
#   BENCH_STARTS         timed starts of each kind per round (0: none) [3 / 1]
#   BENCH_CIPHER_ROUNDS, BENCH_CIPHER_SECS  bench/cipher.sh args    [3 3 / 1 1]
#   BENCH_KV             1: also time start-up with the KEK in the Key Vault
#                        emulator (test/kv_emulator), 0: skip       [1]
#   BENCH_KEK_BITS       RSA size of the KEKs (file and emulator)   [3072]
#   BENCH_QUIET_BUSY, BENCH_QUIET_WAIT  before each instance's round (and the
#                        cipher benchmark) wait while more than this fraction
#                        of the CPUs is busy with other work, at most this
#                        many seconds (bench/quiet.sh)              [0.2 120 / 0.2 5]
#   BENCH_FOREIGN_MAX    medians leave out a measurement during which other
#                        processes took more than this share of all CPU time,
#                        if at least 2 measurements remain           [0.1]
#   BENCH_RETRIES        a measurement (not a start-up) that other processes
#                        disturbed that much runs again after a quiet gate,
#                        at most this many times                     [1 / 0]
#   BENCH_DIR            where clusters live (on disk)              [/var/tmp/cmk-bench]
#   BENCH_CSV_DIR        where the COPY file is written (tmpfs)     [/dev/shm/cmk-bench]
#   BENCH_OUT            report directory  [bench/results, quick: bench/results/quick]
#   BENCH_KEEP           1: leave the clusters in BENCH_DIR (stopped, unmounted)
#   BENCH_DAMON          pause: turn the kernel's DAMON proactive reclaim
#                        (kdamonds whose state is on) off for the run and
#                        back on at its end; keep: leave it    [pause]
#   BENCH_BUILD          what is built: tree (the working tree, `make -s`),
#                        head (the last commit, from `git archive HEAD`, when
#                        others are editing src/), none (the cmk.so already
#                        in the system's $libdir)                     [tree]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

if [ "$(id -u)" != 0 ]; then
  echo "bench/run.sh: run as root (it installs packages, builds cmk, mounts gocryptfs; servers run as postgres)" >&2
  exit 1
fi

quick=${BENCH_QUICK:-0}
q() { if [ "$quick" = 1 ]; then echo "$2"; else echo "$1"; fi; }
: "${BENCH_ROUNDS:=$(q 2 1)}"
: "${BENCH_PAIRS:=$(q 5 2)}"
pair_cases="select_only select_hot tpcb insert64 scan scan_par ctas vacuum_full create_index sort hash_join"
: "${BENCH_CASES:=$pair_cases copy wal_write}"
: "${BENCH_PAIR_CASES:=$pair_cases}"
: "${BENCH_CHECKSUMS:=on off}"
: "${BENCH_SYSTEMS:=plain cmk gocryptfs}"
: "${BENCH_T:=$(q 15 3)}"
: "${BENCH_PAIR_T:=$(q 5 3)}"
: "${BENCH_GOCRYPTFS_PAIRS:=$(q 3 1)}"
: "${BENCH_WARMUP:=$(q 5 2)}"
: "${BENCH_CLIENTS:=2}"
: "${BENCH_INSERT_CLIENTS:=$(q 64 16)}"
: "${BENCH_JOBS:=2}"
: "${BENCH_SCALE:=$(q 30 5)}"
: "${BENCH_SHARED_BUFFERS:=$(q 64MB 16MB)}"
: "${BENCH_SCAN_ROWS:=$(q 4000000 300000)}"
: "${BENCH_SORT_ROWS:=$(q 2000000 300000)}"
: "${BENCH_JOIN_ROWS:=$(q 1000000 200000)}"
: "${BENCH_WORK_MEM:=$(q 4MB 1MB)}"
: "${BENCH_COPY_ROWS:=$(q 3000000 300000)}"
: "${BENCH_WAL_MB:=$(q 256 64)}"
: "${BENCH_STARTS:=$(q 3 1)}"
: "${BENCH_CIPHER_ROUNDS:=$(q 3 1)}"
: "${BENCH_CIPHER_SECS:=$(q 3 1)}"
: "${BENCH_KV:=1}"
: "${BENCH_KEK_BITS:=3072}"
: "${BENCH_QUIET_BUSY:=0.2}"
: "${BENCH_QUIET_WAIT:=$(q 120 5)}"
: "${BENCH_FOREIGN_MAX:=0.1}"
: "${BENCH_RETRIES:=$(q 1 0)}"
: "${BENCH_DIR:=/var/tmp/cmk-bench}"
: "${BENCH_CSV_DIR:=/dev/shm/cmk-bench}"
: "${BENCH_OUT:=$(q "$repo/bench/results" "$repo/bench/results/quick")}"
: "${BENCH_KEEP:=0}"
: "${BENCH_BUILD:=tree}"
: "${BENCH_DAMON:=pause}"
settings=(BENCH_QUICK BENCH_ROUNDS BENCH_PAIRS BENCH_CASES BENCH_PAIR_CASES BENCH_CHECKSUMS BENCH_SYSTEMS
          BENCH_T BENCH_PAIR_T BENCH_GOCRYPTFS_PAIRS BENCH_WARMUP BENCH_CLIENTS BENCH_INSERT_CLIENTS BENCH_JOBS BENCH_SCALE
          BENCH_SHARED_BUFFERS BENCH_SCAN_ROWS BENCH_SORT_ROWS BENCH_JOIN_ROWS BENCH_WORK_MEM BENCH_COPY_ROWS
          BENCH_WAL_MB BENCH_STARTS BENCH_CIPHER_ROUNDS BENCH_CIPHER_SECS BENCH_KV BENCH_KEK_BITS
          BENCH_QUIET_BUSY BENCH_QUIET_WAIT BENCH_FOREIGN_MAX BENCH_RETRIES BENCH_BUILD BENCH_DAMON BENCH_DIR BENCH_CSV_DIR)
BENCH_QUICK=$quick

case "$BENCH_DIR" in /*) ;; *) echo "BENCH_DIR must be absolute" >&2; exit 1 ;; esac
case "$BENCH_CSV_DIR" in /*) ;; *) echo "BENCH_CSV_DIR must be absolute" >&2; exit 1 ;; esac

say() { printf '\n\033[1m== %s\033[0m  (%s)\n' "$*" "$(date +%T)"; }
started=$(date +%s)

pgbin=/usr/lib/postgresql/15/bin
SRC_EXPORT=/var/tmp/cmk-bench-src

# ---- leftovers of an interrupted run ------------------------------------------
# /proc/mounts, not mountpoint(1): a gocryptfs left by a killed run is a dead
# FUSE mount that stat (and so mountpoint) cannot see.
is_mounted() { grep -qs " $1 fuse" /proc/mounts; }
stop_everything() {
  set +e
  for d in "$BENCH_DIR"/*/data "$BENCH_DIR"/gocryptfs/mnt/data-*; do
    if [ -f "$d/postmaster.pid" ]; then
      runuser -u postgres -- "$pgbin/pg_ctl" -D "$d" -m fast -w -t 120 stop >/dev/null 2>&1 ||
        runuser -u postgres -- "$pgbin/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
    fi
  done
  if [ -f "$BENCH_DIR/kv/pid" ]; then
    kill "$(cat "$BENCH_DIR/kv/pid")" 2>/dev/null
    for _ in $(seq 50); do [ -f "$BENCH_DIR/kv/pid" ] || break; sleep 0.1; done
  fi
  if is_mounted "$BENCH_DIR/gocryptfs/mnt" 2>/dev/null; then
    for _ in 1 2 3 4 5; do
      fusermount -u "$BENCH_DIR/gocryptfs/mnt" 2>/dev/null && break
      sleep 1
    done
    is_mounted "$BENCH_DIR/gocryptfs/mnt" && umount -l "$BENCH_DIR/gocryptfs/mnt"
  fi
  set -e
}
cleanup() {
  rc=$?
  stop_everything
  damon_resume
  if [ -n "${BENCH_CGROUP:-}" ]; then
    echo $$ > /sys/fs/cgroup/cpuacct/cgroup.procs 2>/dev/null
    for _ in 1 2 3 4 5; do rmdir "$BENCH_CGROUP" 2>/dev/null && break; sleep 1; done
  fi
  rm -rf "$BENCH_CSV_DIR" "$SRC_EXPORT"
  if [ "$BENCH_KEEP" != 1 ] && ! is_mounted "$BENCH_DIR/gocryptfs/mnt" 2>/dev/null; then
    rm -rf "$BENCH_DIR"
  fi
  [ $rc = 0 ] || echo "bench/run.sh: failed (exit $rc); servers stopped, gocryptfs unmounted" >&2
}
# ---- the kernel's proactive reclaim ------------------------------------------
# A kernel running DAMON with a pageout scheme (this VM's: pages not touched
# for 60 s, up to 128 MB/s) evicts the page cache of the instances that are
# not being measured, so that a "cold" case reads from the OS cache in one
# run and from disk in the next (spreads of hundreds of percent, plain's as
# much as cmk's). Paused for the run and turned back on at its end, whatever
# the exit.
damon_paused=()
damon_pause() {
  local k
  [ "$BENCH_DAMON" = pause ] || return 0
  for k in /sys/kernel/mm/damon/admin/kdamonds/*/state; do
    [ -f "$k" ] && [ "$(cat "$k")" = on ] || continue
    if echo off > "$k" 2>/dev/null; then damon_paused+=("$k"); else echo "could not pause DAMON ($k)" >&2; fi
  done
}
damon_resume() {
  local k
  for k in "${damon_paused[@]}"; do echo on > "$k" 2>/dev/null || echo "could not turn DAMON back on ($k)" >&2; done
  damon_paused=()
}
damon_state() {
  local k out=""
  for k in /sys/kernel/mm/damon/admin/kdamonds/*/state; do
    [ -f "$k" ] || continue
    out+="${k#/sys/kernel/mm/damon/admin/kdamonds/} $(cat "$k")"
    [[ " ${damon_paused[*]} " == *" $k "* ]] && out+=" (paused by this run; on before)"
    out+="; "
  done
  echo "${out:-no DAMON kdamond}"
}

stop_everything
if is_mounted "$BENCH_DIR/gocryptfs/mnt" 2>/dev/null; then
  echo "could not unmount $BENCH_DIR/gocryptfs/mnt" >&2; exit 1
fi
rm -rf "$BENCH_DIR" "$BENCH_CSV_DIR" "$SRC_EXPORT"
trap cleanup EXIT
trap 'exit 130' INT TERM
damon_pause

# A cpuacct cgroup holding this run (servers, clients, gocryptfs, emulator),
# so that each measurement can tell how much CPU other people's work took
# meanwhile on a shared machine (bench/suite.sh: "foreign").
BENCH_CGROUP=""
cg=/sys/fs/cgroup/cpuacct/cmk-bench-$$
if [ -d /sys/fs/cgroup/cpuacct ] && mkdir "$cg" 2>/dev/null; then
  if echo $$ > "$cg/cgroup.procs" 2>/dev/null; then BENCH_CGROUP=$cg; else rmdir "$cg"; fi
fi

# ---- the source that is built -------------------------------------------------
# tree: the working tree as it is (make -s && make -s install in the repo);
# head: the last commit, exported with `git archive` (others may be editing
#       src/ in the working tree; the report names exactly what ran);
# none: the cmk already installed.
case "$BENCH_BUILD" in
  tree|none) src=$repo ;;
  head)
    mkdir -p "$SRC_EXPORT"
    git -C "$repo" archive HEAD | tar -x -C "$SRC_EXPORT"
    src=$SRC_EXPORT ;;
  *) echo "BENCH_BUILD must be tree, head or none" >&2; exit 1 ;;
esac
if [ "$BENCH_BUILD" = tree ]; then
  cmk_commit="$(git -C "$repo" log -1 --format='%h %s' | cut -c1-90)"
  cmk_dirty=$(git -C "$repo" status --porcelain -- src Makefile cmk--0.1.sql cmk.control | wc -l)
  [ "$cmk_dirty" = 0 ] || cmk_commit+=" + uncommitted changes of the working tree"
elif [ "$BENCH_BUILD" = head ]; then
  cmk_commit="$(git -C "$repo" log -1 --format='%h %s' | cut -c1-90) (built from a git archive of HEAD)"
else
  cmk_commit="the cmk.so installed before the run (not built; the repository is at $(git -C "$repo" log -1 --format=%h))"
fi

# ---- packages -------------------------------------------------------------
say "Packages"
if [ -f "$src/scripts/install_deps.sh" ]; then
  bash "$src/scripts/install_deps.sh"
fi
extra=(postgresql-15 postgresql-contrib postgresql-server-dev-15 build-essential openssl python3
       gocryptfs fuse3 gnuplot-nox linux-perf procps)
missing=()
for p in "${extra[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  # Debian's postgresql package would create and start a cluster: not wanted.
  mkdir -p /etc/postgresql-common/createcluster.d
  [ -f /etc/postgresql-common/createcluster.d/cmk-no-main-cluster.conf ] ||
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/cmk-bench-no-main-cluster.conf
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "all present"

# ---- build cmk (never installed into the system's $libdir) -------------------
if [ "$BENCH_BUILD" != none ]; then
  say "Build cmk ($cmk_commit)"
  if ! (cd "$src" && make -s -j"$(nproc)" >/dev/null); then
    [ "$BENCH_BUILD" = tree ] && echo "the working tree does not build (someone editing src/?); BENCH_BUILD=head builds the last commit instead" >&2
    exit 1
  fi
  cmk_so=$src/cmk.so
else
  cmk_so=$("$pgbin/pg_config" --pkglibdir)/cmk.so
fi
[ -f "$cmk_so" ] || { echo "no $cmk_so" >&2; exit 1; }
echo "cmk under test: $cmk_so"

# ---- a fresh bench directory -----------------------------------------------
say "Bench directory $BENCH_DIR"
install -d -o postgres -g postgres -m 700 "$BENCH_DIR" "$BENCH_DIR/out" "$BENCH_DIR/lib"
install -d -o postgres -g postgres -m 700 "$BENCH_CSV_DIR"
# The cmk under test is a copy of what was just built, so that another build
# during the run cannot change it between rounds.
install -o postgres -g postgres -m 755 "$cmk_so" "$BENCH_DIR/lib/cmk.so"
# Measuring variants of the same source (bench/variant.py): a copy of the
# source (and its objects, so only the cipher recompiles), edited and built
# in the bench directory, loaded only by their own instances.
for k in $BENCH_SYSTEMS; do
  case "$k" in cmk_nocipher|cmk_timed) ;; *) continue ;; esac
  [ "$BENCH_BUILD" != none ] || { echo "$k is built from the source: not with BENCH_BUILD=none" >&2; exit 1; }
  vsrc=$BENCH_DIR/src-$k
  mkdir -p "$vsrc"
  tar -C "$src" --exclude=./.git --exclude=./bench/results -c . | tar -x -C "$vsrc"
  python3 "$here/variant.py" "${k#cmk_}" "$vsrc"
  (cd "$vsrc" && make -s -j"$(nproc)" >/dev/null) || { echo "the $k variant does not build" >&2; exit 1; }
  install -d -o postgres -g postgres -m 700 "$BENCH_DIR/lib-$k"
  install -o postgres -g postgres -m 755 "$vsrc/cmk.so" "$BENCH_DIR/lib-$k/cmk.so"
  rm -rf "$vsrc"
  echo "$k (bench/variant.py ${k#cmk_}): $BENCH_DIR/lib-$k/cmk.so"
done
echo "cluster files on $(df --output=source,fstype "$BENCH_DIR" | tail -1 | tr -s ' '), COPY file on $(df --output=source,fstype "$BENCH_CSV_DIR" | tail -1 | tr -s ' ')"

# ---- gocryptfs ------------------------------------------------------------
gocryptfs_ok=0
gocryptfs_why=""
if [[ " $BENCH_SYSTEMS " == *" gocryptfs "* ]]; then
  say "gocryptfs"
  g="$BENCH_DIR/gocryptfs"
  # Mounted by root with -allow_other (a setuid fusermount3 may not work in
  # containers); the ciphertext directory belongs to postgres, so the mount's
  # root does, and gocryptfs creates files as the user who asks.
  install -d -m 711 "$g"
  install -d -m 755 "$g/mnt"
  install -d -o postgres -g postgres -m 700 "$g/cipher"
  head -c 32 /dev/urandom | base64 > "$g/password"
  chmod 600 "$g/password"
  if [ ! -c /dev/fuse ]; then
    gocryptfs_why="/dev/fuse does not exist here"
  elif ! command -v fusermount3 >/dev/null && ! command -v fusermount >/dev/null; then
    gocryptfs_why="no fusermount (package fuse3)"
  elif ! gocryptfs -init -q -passfile "$g/password" "$g/cipher" >"$g/init.log" 2>&1; then
    gocryptfs_why="gocryptfs -init failed: $(tail -1 "$g/init.log")"
  elif ! gocryptfs -q -nosyslog -allow_other -passfile "$g/password" "$g/cipher" "$g/mnt" >"$g/mount.log" 2>&1; then
    gocryptfs_why="gocryptfs mount failed (FUSE unusable here?): $(tail -1 "$g/mount.log")"
  elif ! runuser -u postgres -- sh -c "echo ok > '$g/mnt/probe' && rm '$g/mnt/probe'"; then
    gocryptfs_why="the postgres user cannot write into the gocryptfs mount"
  else
    gocryptfs_ok=1
    echo "mounted $g/cipher on $g/mnt (by root, -allow_other; $(gocryptfs -version | head -1 | cut -d';' -f1), default options: AES-256-GCM, 4 KiB blocks)"
  fi
  if [ $gocryptfs_ok = 0 ]; then
    echo "SKIPPING gocryptfs: $gocryptfs_why" >&2
    BENCH_SYSTEMS=$(echo " $BENCH_SYSTEMS " | sed 's/ gocryptfs / /' | xargs)
  fi
fi

# ---- machine description ---------------------------------------------------
say "Machine"
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "nproc=$(nproc)"
  echo "cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "cpu_flags_aes=$(grep -m1 -o -w aes /proc/cpuinfo || echo no) $(grep -m1 -o -w vaes /proc/cpuinfo || true) $(grep -m1 -o -w avx512f /proc/cpuinfo || true)"
  echo "memory=$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "swap=$(awk '/^SwapTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel=$(uname -srm)"
  echo "os=$(. /etc/os-release && echo "$PRETTY_NAME") ($(cat /etc/debian_version 2>/dev/null))"
  echo "postgres=$("$pgbin/postgres" --version) (Debian package $(dpkg-query -W -f='${Version}' postgresql-15))"
  echo "cmk_commit=$cmk_commit"
  echo "cmk_src_commit=$(git -C "$repo" log -1 --format='%h %s' HEAD -- src Makefile | cut -c1-100)"
  echo "openssl=$(openssl version)"
  echo "gocryptfs=$(gocryptfs -version 2>/dev/null | head -1 | cut -d';' -f1)"
  echo "gocryptfs_skipped=$gocryptfs_why"
  echo "damon=$(damon_state)"
  echo "disk=$(df --output=source,fstype "$BENCH_DIR" | tail -1 | tr -s ' ')"
  echo "csv_fs=$(df --output=source,fstype "$BENCH_CSV_DIR" | tail -1 | tr -s ' ')"
  echo "settings=$(for v in "${settings[@]}"; do printf '%s=%q ' "$v" "${!v}"; done)"
} > "$BENCH_DIR/out/machine.txt"
# The command to reproduce: only what differs from the defaults of this mode.
user_set=""
for v in "${settings[@]}"; do
  [ "$v" = BENCH_QUICK ] && continue
  if printenv "$v" >/dev/null 2>&1; then user_set+="$v=$(printf '%q' "$(printenv "$v")") "; fi
done
echo "command=sudo ${user_set}$([ "$quick" = 1 ] && echo 'BENCH_QUICK=1 ')bash bench/run.sh" >> "$BENCH_DIR/out/machine.txt"
cat "$BENCH_DIR/out/machine.txt"

# ---- page cipher microbenchmark ---------------------------------------------
say "Page cipher (bench/cipher.sh $BENCH_CIPHER_ROUNDS $BENCH_CIPHER_SECS)"
echo "cipher_gate=$(bash "$here/quiet.sh" "$BENCH_QUIET_BUSY" "$BENCH_QUIET_WAIT")" | tee -a "$BENCH_DIR/out/machine.txt"
bash "$src/bench/cipher.sh" "$BENCH_CIPHER_ROUNDS" "$BENCH_CIPHER_SECS" | tee "$BENCH_DIR/out/cipher.txt"

# ---- the suite, as postgres ---------------------------------------------------
cfg="$BENCH_DIR/config.sh"
{
  for v in "${settings[@]}"; do printf 'export %s=%q\n' "$v" "${!v}"; done
  printf 'export BENCH_REPO=%q\n' "$repo"
  printf 'export BENCH_CGROUP=%q\n' "$BENCH_CGROUP"
  printf 'export BENCH_CMK_SO=%q\n' "$BENCH_DIR/lib/cmk.so"
  printf 'export BENCH_GOCRYPTFS_MNT=%q\n' "$BENCH_DIR/gocryptfs/mnt"
} > "$cfg"
chown postgres:postgres "$cfg"
say "Suite (as postgres): systems $BENCH_SYSTEMS, checksums $BENCH_CHECKSUMS, $BENCH_ROUNDS rounds, $BENCH_PAIRS pairs"
(cd "$BENCH_DIR" && runuser -u postgres -- bash "$here/suite.sh" "$cfg")

# ---- report ---------------------------------------------------------------------
say "Report"
stop_everything
mkdir -p "$BENCH_OUT"
echo "elapsed_s=$(( $(date +%s) - started ))" >> "$BENCH_DIR/out/machine.txt"
# The inputs of the report too, so that it can be made again:
#   python3 bench/report.py bench/results/raw bench/results
mkdir -p "$BENCH_OUT/raw"
cp "$BENCH_DIR"/out/*.txt "$BENCH_DIR"/out/*.csv "$BENCH_OUT/raw/"
python3 "$here/report.py" "$BENCH_DIR/out" "$BENCH_OUT"
echo
cat "$BENCH_OUT/latest.md"
echo
echo "wrote $BENCH_OUT/latest.md, latest.csv, samples.csv, ratios.png in $(( ($(date +%s) - started) / 60 )) min"

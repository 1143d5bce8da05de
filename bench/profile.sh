#!/usr/bin/env bash
# Where cmk's time goes: runs workloads of the suite on a plain and on a cmk
# cluster (same binaries, same settings as bench/run.sh) under
# `perf record -g`, and writes, for the server's processes only, the shared
# objects, the top symbols (self), the call chains into them, and the CPU by
# process role. Nothing in src/ changes; the report is for people.
#
# perf follows the server's own process tree: the server is started by the
# command perf runs, with events disabled (-D -1) until the workload starts
# and after it ends (--control fifo), so neither set-up nor other people's
# processes on a shared machine are in the profile.
#
# Usage, as root (after bench/run.sh has installed the packages):
#   bash bench/profile.sh [workload...]    # default: copy copy wal_write sort select_only connect startup
# workloads: select_only tpcb connect (pgbench -S -C: a new connection per
# transaction) wal_write copy sort startup (20 starts and stops), scan (5
# cold sequential scans of a frozen table several times shared_buffers: every
# page from the OS page cache; also writes <scan>.<system>.per_page.txt, the
# CPU time per scanned page by shared object); a workload named twice runs
# twice (files <workload>-2.*)
# Settings: PROFILE_SECONDS (pgbench -T, 20), PROFILE_SCALE (50),
#   PROFILE_COPY_ROWS (10000000), PROFILE_WAL_MB (1024), PROFILE_SORT_ROWS
#   (3000000), PROFILE_SCAN_ROWS (4000000), PROFILE_CHECKSUMS (on: initdb
#   --data-checksums; off), PROFILE_FREQ (perf -F, 999), PROFILE_CALLGRAPH (perf
#   --call-graph: fp or dwarf[,size]; default dwarf,8192, because Debian's
#   postgres and libcrypto have no frame pointers), PROFILE_DIR
#   (/var/tmp/cmk-profile), PROFILE_OUT (bench/results/profile), PROFILE_BUILD
#   (tree: make in the repository, head: the same from `git archive HEAD`,
#   none: the cmk.so in the system's $libdir). The cmk.so built is copied
#   into PROFILE_DIR and found through dynamic_library_path: nothing is
#   installed into the system's $libdir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

: "${PROFILE_SECONDS:=20}"
: "${PROFILE_SCALE:=50}"
: "${PROFILE_COPY_ROWS:=10000000}"
: "${PROFILE_WAL_MB:=1024}"
: "${PROFILE_SORT_ROWS:=3000000}"
: "${PROFILE_SCAN_ROWS:=4000000}"
: "${PROFILE_CHECKSUMS:=on}"
: "${PROFILE_FREQ:=999}"
: "${PROFILE_CALLGRAPH:=dwarf,8192}"
: "${PROFILE_DIR:=/var/tmp/cmk-profile}"
: "${PROFILE_OUT:=$repo/bench/results/profile}"
: "${PROFILE_BUILD:=tree}"
export PROFILE_SECONDS PROFILE_SCALE PROFILE_COPY_ROWS PROFILE_WAL_MB PROFILE_SORT_ROWS PROFILE_SCAN_ROWS PROFILE_DIR
pgbin=/usr/lib/postgresql/15/bin
D=$PROFILE_DIR
SOCK=$D/sock
CSV=/dev/shm/cmk-profile/copy.csv

as_pg() { runuser -u postgres -- env PATH="$pgbin:$PATH" PGOPTIONS='-c client_min_messages=warning' "$@"; }
port() { [ "$1" = plain ] && echo 5481 || echo 5482; }
sql() { local s=$1; shift; as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$(port "$s")" -d bench "$@"; }
start() { as_pg pg_ctl -D "$D/$1/data" -l "$D/$1.log" -w start >/dev/null; }
stop() { as_pg pg_ctl -D "$D/$1/data" -m fast -w stop >/dev/null; }

# What must run (untimed) before the workload.
prepare() {
  local s=$1 w=$2
  case "$w" in
    select_only) as_pg pgbench -n -S -c 4 -j 2 -T 5 -h "$SOCK" -p "$(port "$s")" bench >/dev/null 2>&1 ;;
    scan) sql "$s" -c "SET max_parallel_workers_per_gather = 0" -c "SELECT count(*), max(s) FROM big" >/dev/null ;;
    copy) sql "$s" -c "DROP TABLE IF EXISTS copy_t" -c "CREATE TABLE copy_t (id bigint, k int, t text, ts timestamptz)" ;;
  esac
  sql "$s" -c CHECKPOINT
}
workload() {
  local s=$1 w=$2 p
  p=$(port "$s")
  case "$w" in
    select_only) as_pg pgbench -n -S -c 4 -j 2 -T "$PROFILE_SECONDS" -h "$SOCK" -p "$p" bench 2>&1 | grep '^tps' ;;
    tpcb) as_pg pgbench -n -c 4 -j 2 -T "$PROFILE_SECONDS" -h "$SOCK" -p "$p" bench 2>&1 | grep '^tps' ;;
    connect) as_pg pgbench -n -S -C -c 2 -j 2 -T "$PROFILE_SECONDS" -h "$SOCK" -p "$p" bench 2>&1 | grep '^tps' ;;
    wal_write) sql "$s" -c "SELECT count(pg_logical_emit_message(true, 'cmk-bench', repeat('x', 65536))) FROM generate_series(1, $((PROFILE_WAL_MB * 16)))" >/dev/null ;;
    copy) sql "$s" -c "COPY copy_t FROM '$CSV' WITH (FORMAT csv)" ;;
    sort) sql "$s" -c "SET work_mem = '4MB'" -c "SET max_parallel_workers_per_gather = 0" -c "SELECT count(*) FROM (SELECT k FROM sort_src ORDER BY k) s" >/dev/null ;;
    scan) for _ in 1 2 3 4 5; do sql "$s" -c "SET max_parallel_workers_per_gather = 0" -c "SELECT count(*), max(s) FROM big" >/dev/null; done ;;
    startup) for _ in $(seq 20); do start "$s"; stop "$s"; done ;;
    *) echo "unknown workload $w" >&2; exit 1 ;;
  esac
}

# The command perf runs: start, prepare, enable events, workload, disable, stop.
if [ "${1:-}" = --inner ]; then
  s=$2 w=$3 ctl=$4 ack=$5 roles=$6
  perf_ctl() { echo "$1" > "$ctl"; read -r _ < "$ack"; }
  if [ "$w" != startup ]; then
    start "$s"
    prepare "$s" "$w"
    pm=$(head -1 "$D/$s/data/postmaster.pid")
    # Which server process is which (perf sees each as "postgres").
    (while [ -f "$D/$s/data/postmaster.pid" ]; do
       ps -o pid=,args= -p "$pm"; ps -o pid=,args= --ppid "$pm"; sleep 0.5
     done | sort -u > "$roles") &
  fi
  perf_ctl enable
  t0=$(date +%s%N)
  workload "$s" "$w" | sed 's/^/   /'
  echo "   $(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN {printf "%.2f", (b - a) / 1e9}') s measured"
  perf_ctl disable
  [ "$w" = startup ] || stop "$s"
  wait
  exit 0
fi

[ "$(id -u)" = 0 ] || { echo "bench/profile.sh: run as root" >&2; exit 1; }
command -v perf >/dev/null || { echo "perf missing: apt-get install linux-perf" >&2; exit 1; }
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(copy copy wal_write sort select_only connect startup)

case "$PROFILE_BUILD" in
  tree) (cd "$repo" && make -s -j"$(nproc)" >/dev/null); cmk_so=$repo/cmk.so ;;
  head) rm -rf /var/tmp/cmk-profile-src && mkdir -p /var/tmp/cmk-profile-src &&
        git -C "$repo" archive HEAD | tar -x -C /var/tmp/cmk-profile-src &&
        (cd /var/tmp/cmk-profile-src && make -s -j"$(nproc)" >/dev/null)
        cp /var/tmp/cmk-profile-src/cmk.so /var/tmp/cmk-profile.so
        rm -rf /var/tmp/cmk-profile-src
        cmk_so=/var/tmp/cmk-profile.so ;;
  none) cmk_so=$($pgbin/pg_config --pkglibdir)/cmk.so ;;
  *) echo "PROFILE_BUILD: tree, head or none" >&2; exit 1 ;;
esac

stop_all() {
  set +e
  for s in plain cmk; do
    [ -f "$D/$s/data/postmaster.pid" ] && as_pg pg_ctl -D "$D/$s/data" -m fast -w stop >/dev/null 2>&1
  done
  set -e
}
cleanup() { stop_all; rm -rf "$D" /dev/shm/cmk-profile; }
stop_all
rm -rf "$D" /dev/shm/cmk-profile
trap cleanup EXIT
trap 'exit 130' INT TERM
install -d -o postgres -g postgres -m 700 "$D" "$SOCK" "$D/lib" /dev/shm/cmk-profile
install -o postgres -g postgres -m 755 "$cmk_so" "$D/lib/cmk.so"
[ "$PROFILE_BUILD" = head ] && rm -f "$cmk_so"
mkdir -p "$PROFILE_OUT"

as_pg openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$D/kek.pem"
for s in plain cmk; do
  echo "== $s: cluster, pgbench -i -s $PROFILE_SCALE, sort table"
  ck=(); [ "$PROFILE_CHECKSUMS" = on ] && ck=(--data-checksums)
  as_pg initdb -D "$D/$s/data" "${ck[@]}" -A trust -U postgres --locale=C --encoding=UTF8 >/dev/null
  cat >> "$D/$s/data/postgresql.conf" <<EOC
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = $(port "$s")
shared_buffers = 128MB
max_wal_size = 8GB
checkpoint_timeout = 30min
dynamic_library_path = '$D/lib:\$libdir'
EOC
  [ "$s" = cmk ] && printf "shared_preload_libraries = 'cmk'\ncmk.key_url = 'file:%s'\n" "$D/kek.pem" >> "$D/$s/data/postgresql.conf"
  start "$s"
  as_pg createdb -h "$SOCK" -p "$(port "$s")" bench
  as_pg pgbench -i -q -s "$PROFILE_SCALE" -h "$SOCK" -p "$(port "$s")" bench >/dev/null 2>&1
  sql "$s" -c "CREATE TABLE sort_src AS SELECT g AS id, md5(g::text) AS k FROM generate_series(1, $PROFILE_SORT_ROWS) g" -c "VACUUM ANALYZE sort_src"
  # The scan's table: frozen and checkpointed, so a scan writes nothing.
  sql "$s" -c "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS s, repeat(md5(g::text), 2) AS pad FROM generate_series(1, $PROFILE_SCAN_ROWS) g" \
    -c "VACUUM (FREEZE, ANALYZE) big" -c CHECKPOINT
  sql "$s" -At -c "SELECT pg_relation_size('big') / 8192" > "$D/$s.big_pages"
  if [ "$s" = plain ]; then
    sql plain -c "COPY (SELECT g, g % 1000, md5(g::text) || md5((g + 1)::text), timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, $PROFILE_COPY_ROWS) g) TO '$CSV' WITH (FORMAT csv)"
  fi
  sleep 10   # let cmk's first-start sweep finish
  stop "$s"
done

declare -A seen=()
for w in "${workloads[@]}"; do
  # A workload named twice is profiled twice (plain, cmk, plain, cmk): the
  # second set of files is <workload>-2.*.
  seen[$w]=$(( ${seen[$w]:-0} + 1 ))
  tag=$w
  [ "${seen[$w]}" = 1 ] || tag="$w-${seen[$w]}"
  for s in plain cmk; do
    echo "== $tag on $s"
    data="$D/perf.$w.$s.data"
    f="$PROFILE_OUT/$tag.$s"
    rm -f "$D/ctl" "$D/ack"
    mkfifo "$D/ctl" "$D/ack"
    perf record -q -D -1 --control "fifo:$D/ctl,$D/ack" --call-graph "$PROFILE_CALLGRAPH" -F "$PROFILE_FREQ" \
      -o "$data" -- bash "$here/profile.sh" --inner "$s" "$w" "$D/ctl" "$D/ack" "$f.ps" 2> >(grep -v -E '^Events (enabled|disabled)' >&2)
    report() { perf report -i "$data" --stdio --percentage relative --comm postgres "$@" 2>/dev/null | grep -v -E '^$|^# ?$|Tip:|please use --header'; }
    # Per shared object, summed from every symbol (perf's own --sort dso
    # leaves the kernel's samples out here).
    report --no-children --sort dso,sym -g none |
      awk '/^ +[0-9.]+%/ {sub(/%/, "", $1); sum[$2] += $1} END {for (d in sum) if (sum[d] >= 0.3) printf "%6.2f%%  %s\n", sum[d], d}' |
      sort -rn > "$f.dso.txt"
    report --no-children --sort dso,sym -g none --percent-limit 0.3 > "$f.symbols.txt"
    report --no-children --sort dso,sym -g caller,0.5,callee,function,percent --percent-limit 1.5 > "$f.chains.txt"
    report --children --sort dso,sym -g none --percent-limit 2 > "$f.children.txt"
    if [ -f "$f.ps" ]; then
      report --no-children --sort pid -g none |
        awk -v map="$f.ps" 'BEGIN {while ((getline l < map) > 0) {split(l, a, " "); p = a[1]; sub(/^ *[0-9]+ /, "", l); role[p] = l}}
             /^ +[0-9.]+%/ {split($2, b, ":"); r = role[b[1]]; if (r == "") r = "(gone before ps saw it: the backend of a short session, or a worker)";
                            sub(/^postgres: /, "", r); sub(/ \[local\].*/, "", r); sub(/^\/usr\/lib\/postgresql\/15\/bin\/postgres .*/, "postmaster", r);
                            sub(/ [0-9\/]+$/, "", r); sum[r] += $1}
             END {for (r in sum) printf "%6.2f%%  %s\n", sum[r], r}' | sort -rn > "$f.roles.txt"
      rm -f "$f.ps"
      echo "   server CPU by process: $(head -4 "$f.roles.txt" | tr -s ' ' | paste -sd ';')"
    fi
    echo "   samples (at -F $PROFILE_FREQ per CPU; all server processes): $(perf report -i "$data" --stdio -n --no-children --comm postgres -g none --sort comm 2>/dev/null | awk '/^ +[0-9.]+%/ {print $2}' | tee "$f.samples.txt")"
    if [ "$w" = scan ]; then
      # CPU time per scanned page by shared object: samples / frequency / pages
      # (cpu-clock samples count only while a process runs, so other people's
      # work on a shared machine does not enter, bar cache effects).
      pages=$(( $(cat "$D/$s.big_pages") * 5 ))
      # (summed from --sort dso,sym, as above: --sort dso alone drops the kernel)
      report -n --no-children --sort dso,sym -g none |
        awk -v f="$PROFILE_FREQ" -v p="$pages" '/^ +[0-9.]+%/ {n[$3] += $2; t += $2}
             END {for (d in n) printf "%8.0f ns/page  %s\n", n[d] / f / p * 1e9, d; printf "%8.0f ns/page  total (%d pages)\n", t / f / p * 1e9, p}' |
        sort -rn > "$f.per_page.txt"
      echo "   CPU per scanned page: $(tr -s ' ' < "$f.per_page.txt" | paste -sd ';')"
    fi
    echo "   shared objects: $(head -6 "$f.dso.txt" | tr -s ' ' | paste -sd ';')"
    echo "   cmk's functions, with what they call: $(grep -E 'cmk\.so' "$f.children.txt" | head -4 | awk '{print $1, $NF}' | paste -sd ';')"
    rm -f "$data" "$data.old"
  done
done
echo "reports in $PROFILE_OUT"

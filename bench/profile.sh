#!/usr/bin/env bash
# Where cmk's time goes: runs one workload of the suite on a plain and on a
# cmk cluster (same binaries, same settings as bench/run.sh) under
# `perf record -a -g`, and prints, for the server processes (comm postgres),
# the top symbols (self), the shared objects, and the call chains into the
# top symbols. Nothing in src/ changes; the report is for people.
#
# Usage, as root (after bench/run.sh has installed the packages):
#   bash bench/profile.sh [workload...]     # default: wal_write copy select_only
# workloads: select_only tpcb wal_write copy sort
# Settings: PROFILE_SECONDS (pgbench -T, 20), PROFILE_SCALE (50),
#   PROFILE_COPY_ROWS (10000000), PROFILE_WAL_MB (1024), PROFILE_SORT_ROWS
#   (3000000), PROFILE_FREQ (perf -F, 499), PROFILE_CALLGRAPH (perf
#   --call-graph: fp or dwarf[,size]; default dwarf,8192, because Debian's postgres and
#   libcrypto have no frame pointers), PROFILE_DIR (/var/tmp/cmk-profile),
#   PROFILE_OUT (bench/results/profile), PROFILE_BUILD (tree: make && make
#   install in the repository, head: the same from `git archive HEAD`, none).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench/profile.sh: run as root (perf -a)" >&2; exit 1; }
command -v perf >/dev/null || { echo "perf missing: apt-get install linux-perf" >&2; exit 1; }

workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(wal_write copy select_only)
: "${PROFILE_SECONDS:=20}"
: "${PROFILE_SCALE:=50}"
: "${PROFILE_COPY_ROWS:=10000000}"
: "${PROFILE_WAL_MB:=1024}"
: "${PROFILE_SORT_ROWS:=3000000}"
: "${PROFILE_FREQ:=499}"
: "${PROFILE_CALLGRAPH:=dwarf,8192}"
: "${PROFILE_DIR:=/var/tmp/cmk-profile}"
: "${PROFILE_OUT:=$repo/bench/results/profile}"
: "${PROFILE_BUILD:=tree}"
pgbin=/usr/lib/postgresql/15/bin
D=$PROFILE_DIR
SOCK=$D/sock
CSV=/dev/shm/cmk-profile/copy.csv

case "$PROFILE_BUILD" in
  tree) (cd "$repo" && make -s -j"$(nproc)" >/dev/null && make -s install >/dev/null) ;;
  head) rm -rf /var/tmp/cmk-profile-src && mkdir -p /var/tmp/cmk-profile-src &&
        git -C "$repo" archive HEAD | tar -x -C /var/tmp/cmk-profile-src &&
        (cd /var/tmp/cmk-profile-src && make -s -j"$(nproc)" >/dev/null && make -s install >/dev/null)
        rm -rf /var/tmp/cmk-profile-src ;;
  none) ;;
  *) echo "PROFILE_BUILD: tree, head or none" >&2; exit 1 ;;
esac

stop_all() {
  set +e
  for s in plain cmk; do
    [ -f "$D/$s/data/postmaster.pid" ] && runuser -u postgres -- "$pgbin/pg_ctl" -D "$D/$s/data" -m fast -w stop >/dev/null 2>&1
  done
  set -e
}
cleanup() { stop_all; rm -rf "$D" /dev/shm/cmk-profile; }
stop_all
rm -rf "$D" /dev/shm/cmk-profile
trap cleanup EXIT
trap 'exit 130' INT TERM
install -d -o postgres -g postgres -m 700 "$D" "$SOCK" "$D/lib" /dev/shm/cmk-profile
install -o postgres -g postgres -m 755 "$($pgbin/pg_config --pkglibdir)/cmk.so" "$D/lib/cmk.so"
mkdir -p "$PROFILE_OUT"

as_pg() { runuser -u postgres -- env PATH="$pgbin:$PATH" PGOPTIONS='-c client_min_messages=warning' "$@"; }
port() { [ "$1" = plain ] && echo 5481 || echo 5482; }
sql() { local s=$1; shift; as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$(port "$s")" -d bench "$@"; }
start() { as_pg pg_ctl -D "$D/$1/data" -l "$D/$1.log" -w start >/dev/null; }
stop() { as_pg pg_ctl -D "$D/$1/data" -m fast -w stop >/dev/null; }

as_pg openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$D/kek.pem"
for s in plain cmk; do
  echo "== $s: cluster, pgbench -i -s $PROFILE_SCALE, sort table"
  as_pg initdb -D "$D/$s/data" --data-checksums -A trust -U postgres --locale=C --encoding=UTF8 >/dev/null
  cat >> "$D/$s/data/postgresql.conf" <<EOC
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = $(port "$s")
shared_buffers = 128MB
max_wal_size = 8GB
checkpoint_timeout = 30min
EOC
  printf "dynamic_library_path = '%s:\$libdir'\n" "$D/lib" >> "$D/$s/data/postgresql.conf"
  [ "$s" = cmk ] && printf "shared_preload_libraries = 'cmk'\ncmk.key_url = 'file:%s'\n" "$D/kek.pem" >> "$D/$s/data/postgresql.conf"
  start "$s"
  as_pg createdb -h "$SOCK" -p "$(port "$s")" bench
  as_pg pgbench -i -q -s "$PROFILE_SCALE" -h "$SOCK" -p "$(port "$s")" bench >/dev/null 2>&1
  sql "$s" -c "CREATE TABLE sort_src AS SELECT g AS id, md5(g::text) AS k FROM generate_series(1, $PROFILE_SORT_ROWS) g" -c "VACUUM ANALYZE sort_src"
  if [ "$s" = plain ]; then
    sql plain -c "COPY (SELECT g, g % 1000, md5(g::text) || md5((g + 1)::text), timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, $PROFILE_COPY_ROWS) g) TO '$CSV' WITH (FORMAT csv)"
  fi
  stop "$s"
done

# The workload's command, and what must run (untimed) before it.
prepare() {
  local s=$1 w=$2
  case "$w" in
    select_only) as_pg pgbench -n -S -c 4 -j 2 -T 5 -h "$SOCK" -p "$(port "$s")" bench >/dev/null 2>&1 ;;
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
    wal_write) sql "$s" -c "SELECT count(pg_logical_emit_message(true, 'cmk-bench', repeat('x', 65536))) FROM generate_series(1, $((PROFILE_WAL_MB * 16)))" >/dev/null ;;
    copy) sql "$s" -c "COPY copy_t FROM '$CSV' WITH (FORMAT csv)" ;;
    sort) sql "$s" -c "SET work_mem = '4MB'" -c "SET max_parallel_workers_per_gather = 0" -c "SELECT count(*) FROM (SELECT k FROM sort_src ORDER BY k) s" >/dev/null ;;
    *) echo "unknown workload $w" >&2; exit 1 ;;
  esac
}

for w in "${workloads[@]}"; do
  for s in plain cmk; do
    echo "== $w on $s"
    start "$s"
    prepare "$s" "$w"
    data="$D/perf.$w.$s.data"
    # System-wide while the workload runs (backends are forked during it).
    perf record -q -a --call-graph "$PROFILE_CALLGRAPH" -F "$PROFILE_FREQ" -o "$data" 2>"$data.err" &
    perf_pid=$!
    # Which server process is which (perf sees every one as "postgres").
    (while kill -0 "$perf_pid" 2>/dev/null; do ps -u postgres -o pid=,args= ; sleep 0.5; done | sort -u > "$data.ps") &
    ps_pid=$!
    sleep 1
    t0=$(date +%s%N)
    workload "$s" "$w" | sed 's/^/   /'
    echo "   $(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN {printf "%.2f", (b - a) / 1e9}') s under perf"
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    wait "$ps_pid" || true
    stop "$s"
    f="$PROFILE_OUT/$w.$s"
    perf report -i "$data" --stdio --comm postgres --no-children --sort dso --percent-limit 0.5 2>/dev/null \
      | grep -v '^$' > "$f.dso.txt"
    perf report -i "$data" --stdio --comm postgres --no-children --sort dso,sym -g none --percent-limit 0.3 2>/dev/null \
      | grep -v '^$' > "$f.symbols.txt"
    perf report -i "$data" --stdio --comm postgres --no-children --sort sym -g caller,0.5,callee,function,percent \
      --percent-limit 2 2>/dev/null | grep -v '^$' > "$f.chains.txt"
    perf report -i "$data" --stdio --comm postgres --children --sort sym -g none --percent-limit 1 2>/dev/null \
      | grep -v '^$' > "$f.children.txt"
    # Share of the samples per server process role.
    perf report -i "$data" --stdio --comm postgres --no-children --sort pid -g none 2>/dev/null |
      awk -v map="$data.ps" 'BEGIN {while ((getline l < map) > 0) {split(l, a, " "); p = a[1]; sub(/^ *[0-9]+ /, "", l); role[p] = l}}
           /^ +[0-9.]+%/ {split($2, b, ":"); r = role[b[1]]; if (r == "") r = "(ended before sampled)"; sub(/^postgres: /, "", r); sub(/ \[local\].*/, "", r); sub(/^\/usr\/lib\/postgresql\/15\/bin\/postgres -D .*/, "postmaster", r); sub(/[0-9]+(\.[0-9]+)?$/, "", r); sum[r] += $1}
           END {for (r in sum) printf "%6.2f%%  %s\n", sum[r], r}' | sort -rn > "$f.roles.txt"
    echo "   server CPU by process role ($f.roles.txt):"
    head -6 "$f.roles.txt" | sed 's/^/     /'
    echo "   top symbols of the server processes ($f.symbols.txt):"
    grep -E '^ +[0-9]' "$f.symbols.txt" | head -12 | sed 's/^/     /'
    rm -f "$data" "$data.err" "$data.ps"
  done
done
echo "reports in $PROFILE_OUT"

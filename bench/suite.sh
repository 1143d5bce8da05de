#!/usr/bin/env bash
# The benchmark rounds, run by bench/run.sh as the postgres user:
#   bash bench/suite.sh CONFIG    (CONFIG: the settings file run.sh writes)
# Creates one fresh cluster per system and data-checksum setting once (same
# binaries, same settings otherwise; an instance is named <system>.<on|off>,
# e.g. cmk.off), then runs the rounds alternating the instances (only the
# instance under test runs), then the paired phase (all up, short runs
# alternating A B C ... / ... C B A). Appends every measurement to
# $BENCH_DIR/out/samples.csv and notes to $BENCH_DIR/out/info.txt;
# bench/report.py turns them into the report.
set -euo pipefail
. "$1"
export PATH=/usr/lib/postgresql/15/bin:$PATH
unset PGDATA PGHOST PGPORT PGDATABASE PGUSER
export PGOPTIONS='-c client_min_messages=warning'
cd "$BENCH_DIR"

SOCK="$BENCH_DIR/sock"
OUT="$BENCH_DIR/out"
LOGS="$BENCH_DIR/logs"
CSV="$BENCH_CSV_DIR/copy.csv"
CSV_BIG="$BENCH_CSV_DIR/big.csv"
mkdir -p "$SOCK" "$LOGS"
SAMPLES="$OUT/samples.csv"
INFO="$OUT/info.txt"
echo "round,system,benchmark,unit,value,foreign" > "$SAMPLES"
GATE="$OUT/gate.csv"
echo "round,system,busy,waited" > "$GATE"
: > "$INFO"

KV_TENANT=72f988bf-86f1-41af-91ab-2d7cd011db47
KV_CLIENT=cmk-bench
KV_SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')

log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }
die() { printf '[%s] ERROR: %s\n' "$(date +%T)" "$*" >&2; exit 1; }
now_ns() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.4f", (b - a) / 1e9}'; }
# Other people's work during a measurement: the share of all CPU time
# (/proc/stat, steal included) that the run's own processes (the cgroup
# run.sh made, BENCH_CGROUP) did not use, from mark to record. Empty when
# there is no such cgroup.
NCPU=$(nproc)
HZ_NS=$(( 1000000000 / $(getconf CLK_TCK) ))
busy_ns() { local u n s i w q sq st; read -r _ u n s i w q sq st _ < /proc/stat; echo $(( (u + n + s + q + sq + st) * HZ_NS )); }
mine_ns() { cat "$BENCH_CGROUP/cpuacct.usage"; }
mark() { if [ -n "$BENCH_CGROUP" ]; then F_T0=$(busy_ns); F_M0=$(mine_ns); F_W0=$(now_ns); fi; }
foreign() {
  [ -n "$BENCH_CGROUP" ] || return 0
  local t m w
  t=$(busy_ns); m=$(mine_ns); w=$(now_ns)
  awk -v dt=$((t - F_T0)) -v dm=$((m - F_M0)) -v dw=$((w - F_W0)) -v n="$NCPU" \
    'BEGIN {f = (dw > 0) ? (dt - dm) / (dw * n) : 0; if (f < 0) f = 0; if (f > 1) f = 1; printf "%.3f", f}'
}
record() { echo "$1,$2,$3,$4,$5,$(foreign)" >> "$SAMPLES"; }   # round system benchmark unit value
note() { echo "$1=$2" >> "$INFO"; }

# The statements of the scan, sort and hash-join cases (the report shows them).
SCAN_Q="SELECT count(*), max(s) FROM big"
SCAN_SET="SET max_parallel_workers_per_gather = 0"
SCAN_PAR_SET="SET max_parallel_workers_per_gather = 2"
SORT_Q="SELECT count(*) FROM (SELECT k FROM sort_src ORDER BY k) s"
HJ_SET="SET work_mem = '$BENCH_WORK_MEM'; SET max_parallel_workers_per_gather = 0; SET enable_mergejoin = off; SET enable_nestloop = off"
HJ_Q="SELECT count(*), max(a || b) FROM hj_a JOIN hj_b USING (id)"

kind_of() { echo "${1%%.*}"; }            # cmk.off -> cmk
checksums_of() { [ "$1" = cmk-kv ] && echo on || echo "${1##*.}"; }   # cmk.off -> off
datadir() {
  case "$1" in
    gocryptfs.*) echo "$BENCH_GOCRYPTFS_MNT/data-$(checksums_of "$1")" ;;
    *) echo "$BENCH_DIR/$1/data" ;;
  esac
}
# Instances, in round order: every system with checksums on, then off.
INSTANCES=()
for ck in $BENCH_CHECKSUMS; do
  for k in $BENCH_SYSTEMS; do INSTANCES+=("$k.$ck"); done
done
port() {
  local i
  [ "$1" = cmk-kv ] && { echo 5490; return; }
  for i in "${!INSTANCES[@]}"; do [ "${INSTANCES[$i]}" = "$1" ] && { echo $((5491 + i)); return; }; done
  die "no port for $1"
}
# The server's environment: the Key Vault credentials for cmk-kv; for
# cmk_timed, the file its processes add their AES calls and cycles to.
srv_env() {
  case "$1" in
    cmk-kv) echo "AZURE_CLIENT_ID=$KV_CLIENT AZURE_TENANT_ID=$KV_TENANT AZURE_CLIENT_SECRET=$KV_SECRET AZURE_AUTHORITY_HOST=https://login.cmk-emulator.test:$KV_PORT" ;;
    cmk_timed.*) echo "CMK_BENCH_TIMED_FILE=$(timed_file "$1")" ;;
  esac
}
# cmk_timed's running totals (bench/variant.py): decrypt calls, decrypt
# cycles, encrypt calls, encrypt cycles; a measurement records the difference.
timed_file() { echo "$BENCH_DIR/$1/timed.bin"; }
timed_read() { [[ $1 == cmk_timed.* ]] && od -An -tu8 -w32 -v "$(timed_file "$1")" | xargs; true; }
timed_record() {   # round system benchmark totals-before
  local a b
  [ -n "$4" ] || return 0
  read -r -a a <<< "$4"
  read -r -a b <<< "$(timed_read "$2")"
  echo "$1,$2,$3,$((b[0] - a[0])),$((b[1] - a[1])),$((b[2] - a[2])),$((b[3] - a[3]))" >> "$OUT/timed.csv"
}
# The directory of the cmk.so an instance loads: a measuring variant's own
# build (bench/variant.py, built by run.sh) or cmk's.
cmk_libdir() {
  case "$1" in
    cmk_nocipher.*|cmk_timed.*) echo "$BENCH_DIR/lib-$(kind_of "$1")" ;;
    *) dirname "$BENCH_CMK_SO" ;;
  esac
}
pgctl() { local s=$1; shift; env $(srv_env "$s") pg_ctl -D "$(datadir "$s")" -l "$LOGS/$s.log" "$@"; }
start() { pgctl "$1" -w -t 600 start >/dev/null || { tail -20 "$LOGS/$1.log" >&2; die "$1 did not start"; }; }
stop() { pgctl "$1" -m fast -w -t 600 stop >/dev/null; }
sql() { local s=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$(port "$s")" -d bench "$@"; }
sqlv() { local s=$1; shift; psql -X -A -t -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$(port "$s")" -d bench "$@"; }

# ---- clusters -----------------------------------------------------------------
make_cluster() {
  local s=$1 d ck=()
  d=$(datadir "$s")
  mkdir -p "$d"
  chmod 700 "$d"
  [ "$(checksums_of "$s")" = on ] && ck=(--data-checksums)
  [[ $s == cmk_timed.* ]] && head -c 32 /dev/zero > "$(timed_file "$s")"
  initdb -D "$d" "${ck[@]}" -A trust -U postgres --locale=C --encoding=UTF8 >"$LOGS/$s.initdb.log" 2>&1 ||
    { tail "$LOGS/$s.initdb.log" >&2; die "initdb $s"; }
  cat >> "$d/postgresql.conf" <<EOC

# ---- cmk bench: the same for every system ----
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = $(port "$s")
shared_buffers = $BENCH_SHARED_BUFFERS
max_wal_size = 8GB
checkpoint_timeout = 30min
log_checkpoints = on
log_line_prefix = '%m [%p] '
# cmk is the copy in \$BENCH_DIR/lib (its background workers load "cmk" too)
dynamic_library_path = '$(cmk_libdir "$s"):\$libdir'
EOC
  case "$s" in
    cmk.*|cmk_nocipher.*|cmk_timed.*) cat >> "$d/postgresql.conf" <<EOC
shared_preload_libraries = 'cmk'
cmk.key_url = 'file:$BENCH_DIR/kek.pem'
EOC
    ;;
    cmk-kv) cat >> "$d/postgresql.conf" <<EOC
shared_preload_libraries = 'cmk'
cmk.key_url = 'https://cmk-emulator.vault.azure.net:$KV_PORT/keys/cmk-bench'
cmk.ca_file = '$BENCH_DIR/kv/ca.pem'
EOC
    ;;
  esac
}

log "KEK: RSA $BENCH_KEK_BITS in $BENCH_DIR/kek.pem"
openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:"$BENCH_KEK_BITS" -out "$BENCH_DIR/kek.pem"
chmod 600 "$BENCH_DIR/kek.pem"

# What every cluster holds (the same data for every instance):
#   pgbench tables, scale BENCH_SCALE (select-only, tpcb-like);
#   big: BENCH_SCAN_ROWS rows of (id, md5 text, 64-char pad), frozen (COPY
#        FREEZE) and checkpointed, so a scan only reads (no hint bits to set, nothing to
#        write back): the cold sequential scan, CREATE TABLE AS, VACUUM FULL
#        and CREATE INDEX work on it;
#   sort_src: BENCH_SORT_ROWS rows of md5 text (the spilling sort);
#   hj_a, hj_b: BENCH_JOIN_ROWS rows each (the spilling hash join);
#   ins_t: the target of the 64-client INSERT load.
cat > "$BENCH_DIR/insert.sql" <<'EOS'
INSERT INTO ins_t (k, t) VALUES (:client_id, 'a small row of about sixty bytes, one per transaction');
EOS
# pgbench -S over the first tenth of the accounts: a hot set that fits in
# shared_buffers (what an operator gets by sizing shared_buffers to the
# working set): after the warm-up no read misses, so cmk decrypts nothing.
cat > "$BENCH_DIR/select_hot.sql" <<'EOS'
\set aid random(1, 10000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
EOS
# cmk's first start sweeps the catalogs initdb wrote (pg_cmk/sweep says
# "done <generation>" when it has finished): wait for it, so that no
# measurement runs beside it.
wait_sweep() {
  local d i
  d=$(datadir "$1")
  for i in $(seq 600); do
    grep -qs '^done' "$d/pg_cmk/sweep" && return 0
    sleep 1
  done
  die "the sweep of $1 did not finish in 600 s"
}
for s in "${INSTANCES[@]}"; do
  t0=$(now_ns)
  log "$s: initdb (checksums $(checksums_of "$s")), pgbench -i -s $BENCH_SCALE, big ($BENCH_SCAN_ROWS rows), sort_src, hj_a/hj_b"
  make_cluster "$s"
  start "$s"
  createdb -h "$SOCK" -p "$(port "$s")" bench
  # Server-side generation (G): no COPY stream through the client.
  pgbench -i -I dtGvp -q -s "$BENCH_SCALE" -h "$SOCK" -p "$(port "$s")" bench >"$LOGS/$s.pgbench-init.log" 2>&1 ||
    { tail "$LOGS/$s.pgbench-init.log" >&2; die "pgbench -i on $s"; }
  # big is loaded with COPY FREEZE (its rows frozen and hinted as they are
  # written), so neither a VACUUM nor the first scan writes it again.
  [ -f "$CSV_BIG" ] || sql "$s" -c "COPY (SELECT g, md5(g::text), repeat(md5(g::text), 2) FROM generate_series(1, $BENCH_SCAN_ROWS) g) TO '$CSV_BIG' WITH (FORMAT csv)"
  sql "$s" <<EOQ
BEGIN;
CREATE TABLE big (id int, s text, pad text);
COPY big FROM '$CSV_BIG' WITH (FORMAT csv, FREEZE);
COMMIT;
CREATE TABLE sort_src AS SELECT g AS id, md5(g::text) AS k FROM generate_series(1, $BENCH_SORT_ROWS) g;
CREATE TABLE hj_a AS SELECT g AS id, md5(g::text) AS a FROM generate_series(1, $BENCH_JOIN_ROWS) g;
CREATE TABLE hj_b AS SELECT g AS id, md5((-g)::text) AS b FROM generate_series(1, $BENCH_JOIN_ROWS) g;
CREATE TABLE ins_t (id bigserial PRIMARY KEY, k int, t text);
VACUUM ANALYZE;
CHECKPOINT;
EOQ
  case "$s" in cmk.*|cmk_nocipher.*|cmk_timed.*) wait_sweep "$s" ;; esac
  case "$s" in cmk.*) note "cmk_keyring" "$(grep -m1 -E 'cmk: .*keyring' "$LOGS/$s.log" | sed 's/.*LOG: *//')." ;; esac
  if [ "$s" = "${INSTANCES[0]}" ]; then
    note scan_q "$SCAN_Q"
    note db_size "$(sqlv "$s" -c "SELECT pg_size_pretty(pg_database_size('bench'))")"
    note accounts_size "$(sqlv "$s" -c "SELECT pg_size_pretty(pg_total_relation_size('pgbench_accounts'))")"
    note big_size "$(sqlv "$s" -c "SELECT pg_size_pretty(pg_relation_size('big'))")"
    note big_pages "$(sqlv "$s" -c "SELECT pg_relation_size('big') / current_setting('block_size')::int")"
    note sort_src_size "$(sqlv "$s" -c "SELECT pg_size_pretty(pg_total_relation_size('sort_src'))")"
    note hj_size "$(sqlv "$s" -c "SELECT pg_size_pretty(pg_total_relation_size('hj_a') + pg_total_relation_size('hj_b'))")"
    note sort_plan "$(sqlv "$s" -c "SET work_mem = '$BENCH_WORK_MEM'; SET max_parallel_workers_per_gather = 0;" \
        -c "EXPLAIN (ANALYZE, COSTS off, TIMING off) $SORT_Q" | grep -E 'Sort Method' | sed 's/^ *//')"
    note hj_plan "$(sqlv "$s" -c "$HJ_SET" -c "EXPLAIN (ANALYZE, COSTS off, TIMING off) $HJ_Q" |
        grep -E 'Hash Join|Buckets' | sed 's/^ *//' | paste -sd ';' | sed 's/;/; /g')"
    note scan_par_plan "$(sqlv "$s" -c "$SCAN_PAR_SET" -c "EXPLAIN (ANALYZE, COSTS off, TIMING off) $SCAN_Q" |
        grep -E 'Workers (Planned|Launched)' | sed 's/^ *//' | paste -sd ';' | sed 's/;/; /g')"
    log "COPY file: $BENCH_COPY_ROWS rows into $CSV"
    sql "$s" -c "COPY (SELECT g, g % 1000, md5(g::text) || md5((g + 1)::text),
                              timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
                       FROM generate_series(1, $BENCH_COPY_ROWS) g) TO '$CSV' WITH (FORMAT csv)"
    note copy_csv_bytes "$(stat -c %s "$CSV")"
  fi
  stop "$s"
  log "$s ready in $(secs "$t0" "$(now_ns)") s"
done

# ---- Key Vault emulator (start-up only) ----------------------------------------
KV_PORT=""
kv_ok=0
kv_py="$BENCH_REPO/test/kv_emulator/kv_emulator.py"
if [ "$BENCH_KV" != 1 ]; then
  note kv_skipped "BENCH_KV=$BENCH_KV"
elif [ ! -f "$kv_py" ]; then
  note kv_skipped "test/kv_emulator/kv_emulator.py does not exist"
else
  log "Key Vault emulator: start, identity, key (RSA $BENCH_KEK_BITS), a cmk cluster whose KEK is in it"
  mkdir -p "$BENCH_DIR/kv"
  setsid python3 "$kv_py" serve --state-dir "$BENCH_DIR/kv" --tenant "$KV_TENANT" \
    --host cmk-emulator.vault.azure.net --host login.cmk-emulator.test >"$LOGS/kv.log" 2>&1 < /dev/null &
  for _ in $(seq 300); do [ -f "$BENCH_DIR/kv/ready" ] && break; sleep 0.1; done
  E=(python3 "$kv_py" admin --state-dir "$BENCH_DIR/kv")
  if [ ! -f "$BENCH_DIR/kv/ready" ]; then
    note kv_skipped "the emulator did not start: $(tail -1 "$LOGS/kv.log")"
  elif ! { KV_PORT=$(cat "$BENCH_DIR/kv/port") &&
           "${E[@]}" add-identity --tenant "$KV_TENANT" --client-id "$KV_CLIENT" --secret "$KV_SECRET" &&
           "${E[@]}" grant --client-id "$KV_CLIENT" --permissions get,wrapKey,unwrapKey &&
           "${E[@]}" create-key --name cmk-bench --size "$BENCH_KEK_BITS"; } >"$LOGS/kv-admin.log" 2>&1; then
    note kv_skipped "the emulator refused the set-up: $(tail -1 "$LOGS/kv-admin.log")"
  else
    make_cluster cmk-kv
    if pgctl cmk-kv -w -t 120 start >/dev/null 2>&1; then
      stop cmk-kv
      kv_ok=1
      note kv_key "https://cmk-emulator.vault.azure.net:$KV_PORT/keys/cmk-bench (client secret credential, emulator at 127.0.0.1:$KV_PORT)"
      log "cmk-kv started and stopped once (keyring created)"
    else
      note kv_skipped "a cmk cluster with cmk.key_url at the emulator did not start (Key Vault provider not working yet?): $(grep -E 'FATAL|ERROR' "$LOGS/cmk-kv.log" | tail -1 | cut -c1-300)"
    fi
  fi
  if [ $kv_ok = 0 ]; then
    log "SKIPPING start-up against the Key Vault emulator: $(grep '^kv_skipped=' "$INFO" | cut -d= -f2-)"
    [ -f "$BENCH_DIR/kv/pid" ] && kill "$(cat "$BENCH_DIR/kv/pid")" 2>/dev/null || true
  fi
fi

# ---- the benchmarks -------------------------------------------------------------
# Start-up: the server is stopped (clean shutdown) when this runs.
#  startup_pgctl: `pg_ctl start -w` as users run it (pg_ctl polls every 100 ms);
#  startup_ready: `pg_ctl start -W` (no wait), then postmaster.pid polled every
#                 5 ms until the postmaster reports "ready".
time_starts() {
  local s=$1 r=$2 d t0 t1 i st
  d=$(datadir "$s")
  for i in $(seq "$BENCH_STARTS"); do
    mark; t0=$(now_ns); pgctl "$s" -w -t 600 start >/dev/null || { tail "$LOGS/$s.log" >&2; die "start $s"; }; t1=$(now_ns)
    record "$r" "$s" startup_pgctl s "$(secs "$t0" "$t1")"
    stop "$s"
    mark; t0=$(now_ns)
    pgctl "$s" -W start >/dev/null
    while :; do
      st=""
      if [ -f "$d/postmaster.pid" ]; then mapfile -t pidlines < "$d/postmaster.pid" 2>/dev/null || true; st=${pidlines[7]:-}; fi
      [[ $st == ready* ]] && break
      (( $(now_ns) - t0 > 600000000000 )) && die "$s not ready after 600 s"
      sleep 0.005
    done
    t1=$(now_ns)
    record "$r" "$s" startup_ready s "$(secs "$t0" "$t1")"
    stop "$s"
  done
}

run_pgbench() {   # system round benchmark [pgbench args]
  local s=$1 r=$2 b=$3 out tps c0
  shift 3
  c0=$(timed_read "$s")
  mark
  out=$(pgbench -n -j "$BENCH_JOBS" -T "$PGBENCH_T" -h "$SOCK" -p "$(port "$s")" "$@" bench 2>&1) ||
    { echo "$out" >&2; die "pgbench $b on $s"; }
  echo "$out" > "$LOGS/$s.r$r.$b.log"
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p')
  [ -n "$tps" ] || { echo "$out" >&2; die "no tps from pgbench $b on $s"; }
  record "$r" "$s" "$b" tps "$tps"
  timed_record "$r" "$s" "$b" "$c0"
  echo "$tps"
}

# Times one SQL script (psql -c arguments), records seconds.
run_timed() {   # system round benchmark psql-args...
  local s=$1 r=$2 b=$3 t0 t1 c0
  shift 3
  c0=$(timed_read "$s")
  mark; t0=$(now_ns)
  sql "$s" "$@" >/dev/null
  t1=$(now_ns)
  record "$r" "$s" "$b" s "$(secs "$t0" "$t1")"
  timed_record "$r" "$s" "$b" "$c0"
  secs "$t0" "$t1"
}

# Waits for the machine to be quiet (other people's work) and notes it.
gate() {   # round system
  local g
  g=$(bash "$BENCH_REPO/bench/quiet.sh" "$BENCH_QUIET_BUSY" "$BENCH_QUIET_WAIT")
  echo "$1,$2,$(echo "$g" | sed 's/busy=\([0-9.]*\) waited=\([0-9]*\)/\1,\2/')" >> "$GATE"
  echo "$g"
}

wal_msgs=$(( BENCH_WAL_MB * 16 ))   # 64 kB each

# One function per benchmark: b_<case> INSTANCE ROUND NAME prepares
# (untimed), measures (mark ... record under NAME: <case>, or
# <case>_paired in the paired phase), cleans up (untimed) and prints the
# value. PGBENCH_T is the length of a pgbench run.
# Also notes, once per instance, the pages read from outside shared_buffers
# per transaction (pg_stat_database): what cmk decrypts per transaction.
b_select_only() {
  local q="SELECT blks_read || ' ' || xact_commit FROM pg_stat_database WHERE datname = 'bench'"
  local a
  grep -qs "^reads_per_xact_$1=" "$INFO" && { run_pgbench "$1" "$2" "$3" -c "$BENCH_CLIENTS" -S; return; }
  a=$(sqlv "$1" -c "$q")
  run_pgbench "$1" "$2" "$3" -c "$BENCH_CLIENTS" -S
  note "reads_per_xact_$1" "$(echo "$a $(sqlv "$1" -c "$q")" | awk '{printf "%.2f", ($3 - $1) / ($4 - $2)}')"
}
b_tpcb() { sql "$1" -c CHECKPOINT; run_pgbench "$1" "$2" "$3" -c "$BENCH_CLIENTS"; }
b_select_hot() {
  pgbench -n -c "$BENCH_CLIENTS" -j "$BENCH_JOBS" -T "$BENCH_WARMUP" -f "$BENCH_DIR/select_hot.sql" -h "$SOCK" -p "$(port "$1")" bench >/dev/null 2>&1
  run_pgbench "$1" "$2" "$3" -c "$BENCH_CLIENTS" -f "$BENCH_DIR/select_hot.sql"
}
# Many clients, each committing one small INSERT per transaction: WAL
# flushes (group commit) dominate; cmk encrypts every WAL page written.
b_insert64() {
  sql "$1" -c "TRUNCATE ins_t" -c CHECKPOINT
  run_pgbench "$1" "$2" "$3" -c "$BENCH_INSERT_CLIENTS" -f "$BENCH_DIR/insert.sql"
}
# Cold sequential scan: big is several times shared_buffers, so the scan
# reads it through a 256 kB ring: every page comes from the OS page cache
# and, with cmk, is decrypted. Without and with 2 parallel workers.
b_scan() { run_timed "$1" "$2" "$3" -c "$SCAN_SET" -c "$SCAN_Q"; }
b_scan_par() { run_timed "$1" "$2" "$3" -c "$SCAN_PAR_SET" -c "$SCAN_Q"; }
# Rewrites: each reads big and writes a relation (pages and WAL, both
# encrypted by cmk); the result is dropped and checkpointed untimed.
b_ctas() {
  local v
  v=$(run_timed "$1" "$2" "$3" -c "CREATE TABLE ctas_t AS SELECT * FROM big")
  sql "$1" -c "DROP TABLE ctas_t" -c CHECKPOINT
  echo "$v"
}
b_vacuum_full() {
  local v
  sql "$1" -c CHECKPOINT
  v=$(run_timed "$1" "$2" "$3" -c "VACUUM FULL big")
  sql "$1" -c CHECKPOINT
  echo "$v"
}
# The index build sorts 4M md5 strings with the default
# maintenance_work_mem (64 MB): it spills to temporary files too.
b_create_index() {
  local v
  sql "$1" -c CHECKPOINT
  v=$(run_timed "$1" "$2" "$3" -c "CREATE INDEX big_s ON big (s)")
  sql "$1" -c "DROP INDEX big_s" -c CHECKPOINT
  echo "$v"
}
# Sort and hash join spilling to temporary files (encrypted by cmk).
b_sort() { run_timed "$1" "$2" "$3" -c "SET work_mem = '$BENCH_WORK_MEM'" -c "SET max_parallel_workers_per_gather = 0" -c "$SORT_Q"; }
b_hash_join() { run_timed "$1" "$2" "$3" -c "$HJ_SET" -c "$HJ_Q"; }

# WAL: one backend writes BENCH_WAL_MB of 64 kB logical messages in one
# transaction; its commit flushes them all.
b_wal_write() {
  local s=$1 r=$2 v lsn0
  sql "$s" -c CHECKPOINT
  lsn0=$(sqlv "$s" -c "SELECT pg_current_wal_lsn()")
  v=$(run_timed "$s" "$r" "$3" -c "SELECT count(pg_logical_emit_message(true, 'cmk-bench', repeat('x', 65536))) FROM generate_series(1, $wal_msgs)")
  [ "$r" = 1 ] && [ "$3" = wal_write ] && note "wal_write_mb_$s" "$(sqlv "$s" -c "SELECT round((pg_current_wal_lsn() - '$lsn0'::pg_lsn) / 1048576.0)")"
  echo "$v"
}

# COPY of the CSV into a fresh table (WAL-logged: wal_level = replica).
b_copy() {
  local s=$1 r=$2 v lsn0
  sql "$s" -c "DROP TABLE IF EXISTS copy_t" -c "CREATE TABLE copy_t (id bigint, k int, t text, ts timestamptz)" -c CHECKPOINT
  lsn0=$(sqlv "$s" -c "SELECT pg_current_wal_lsn()")
  v=$(run_timed "$s" "$r" "$3" -c "COPY copy_t FROM '$CSV' WITH (FORMAT csv)")
  if [ "$r" = 1 ] && [ "$3" = copy ]; then
    note "copy_wal_mb_$s" "$(sqlv "$s" -c "SELECT round((pg_current_wal_lsn() - '$lsn0'::pg_lsn) / 1048576.0)")"
    note "copy_table_size_$s" "$(sqlv "$s" -c "SELECT pg_size_pretty(pg_total_relation_size('copy_t'))")"
  fi
  sql "$s" -c "DROP TABLE copy_t" -c CHECKPOINT
  echo "$v"
}

# The relations a case reads, read into the OS page cache (through the
# instance's data directory: for gocryptfs, through its mount) right before
# the case, untimed: a "cold" case means not in shared_buffers but in the
# OS cache, for every instance alike, whatever evicted it while the others
# ran (bench/run.sh: BENCH_DAMON).
case_rels() {
  case "$1" in
    select_only|tpcb) echo "pgbench_accounts pgbench_accounts_pkey" ;;
    scan|scan_par|ctas|vacuum_full|create_index) echo big ;;
    sort) echo sort_src ;;
    hash_join) echo "hj_a hj_b" ;;
  esac
}
cache_rels() {   # instance case
  local s=$1 rels d p
  rels=$(case_rels "$2")
  [ -n "$rels" ] || return 0
  d=$(datadir "$s")
  for p in $(sqlv "$s" -c "SELECT pg_relation_filepath(r) FROM unnest(string_to_array('$rels', ' ')) r"); do
    cat "$d/$p" "$d/$p".[0-9]* >/dev/null 2>&1 || true
  done
}

# Runs a benchmark; when other processes took more than BENCH_FOREIGN_MAX of
# the CPU during it, waits for a quiet machine and runs it again, at most
# BENCH_RETRIES times (every run is a sample; the report prefers clean ones).
measure() {   # system round case [name]
  local s=$1 r=$2 b=$3 name=${4:-$3} try=0 v f
  while :; do
    cache_rels "$s" "$b"
    v=$("b_$b" "$s" "$r" "$name")
    f=$(tail -1 "$SAMPLES" | cut -d, -f6)
    if [ -z "$f" ] || awk -v f="$f" -v m="$BENCH_FOREIGN_MAX" 'BEGIN {exit !(f <= m)}' || [ "$try" -ge "$BENCH_RETRIES" ]; then
      break
    fi
    try=$((try + 1))
    log "  $b on $s: other processes took $f of the CPU time; again after a quiet gate ($(gate "$r" "$s"))" >&2
  done
  echo "$v"
}

warm() { pgbench -n -S -c "$BENCH_CLIENTS" -j "$BENCH_JOBS" -T "$BENCH_WARMUP" -h "$SOCK" -p "$(port "$1")" bench >/dev/null 2>&1; }

round_of() {   # instance round
  local s=$1 r=$2 rs c line=""
  rs=$(now_ns)
  [ "$BENCH_STARTS" -gt 0 ] && time_starts "$s" "$r"
  start "$s"
  warm "$s"
  for c in $BENCH_CASES; do
    line+=" $c $(PGBENCH_T=$BENCH_T measure "$s" "$r" "$c")"
  done
  stop "$s"
  log "round $r $s:$line ($(secs "$rs" "$(now_ns)") s)"
}

if [ "$BENCH_ROUNDS" -gt 0 ]; then
  for r in $(seq "$BENCH_ROUNDS"); do
    for s in "${INSTANCES[@]}"; do
      log "round $r $s: quiet gate: $(gate "$r" "$s")"
      round_of "$s" "$r"
    done
    if [ $kv_ok = 1 ] && [ "$BENCH_STARTS" -gt 0 ]; then
      log "round $r cmk-kv: quiet gate: $(gate "$r" cmk-kv)"
      time_starts cmk-kv "$r"
      log "round $r cmk-kv: $BENCH_STARTS + $BENCH_STARTS starts"
    fi
  done
fi

# Paired phase. On this shared VM throughput drifts by tens of percent over
# minutes (see the spreads of the rounds), more than what is measured. So
# every instance's server runs at once (only one is measured at a time) and,
# case by case, short runs alternate A B C ..., then ... C B A in the next
# pair: neighbouring runs see the same machine, and the report takes, per
# instance, the median of its ratios to plain's run (same checksum setting)
# in the same pair.
if [ "$BENCH_PAIRS" -gt 0 ]; then
  log "paired phase: quiet gate: $(gate pairs all)"
  # cmk_timed's processes log their AES timings at exit: this phase's only.
  declare -A log_from=()
  for s in "${INSTANCES[@]}"; do log_from[$s]=$(( $(wc -l < "$LOGS/$s.log") + 1 )); start "$s"; warm "$s"; done
  for p in $(seq "$BENCH_PAIRS"); do
    in_pair=()
    for s in "${INSTANCES[@]}"; do
      [[ $s == gocryptfs.* ]] && (( p > BENCH_GOCRYPTFS_PAIRS )) && continue
      in_pair+=("$s")
    done
    order=("${in_pair[@]}")
    (( p % 2 == 0 )) && order=($(printf '%s\n' "${in_pair[@]}" | tac))
    for c in $BENCH_PAIR_CASES; do
      line=""
      for s in "${order[@]}"; do
        line+=" $s $(PGBENCH_T=$BENCH_PAIR_T measure "$s" "$p" "$c" "${c}_paired")"
      done
      log "pair $p $c:$line"
    done
  done
  for s in "${INSTANCES[@]}"; do stop "$s"; done
  # "decrypt calls, ns per call, encrypt calls, ns per call, ns per TSC
  # cycle" over every process of the phase; cycles to ns at the TSC rate the
  # processes measured.
  for s in "${INSTANCES[@]}"; do
    [[ $s == cmk_timed.* ]] || continue
    note "timed_$s" "$(tail -n +"${log_from[$s]}" "$LOGS/$s.log" | grep -o 'cmk bench timed: .*' |
      awk '{dn += $7; dc += $9; en += $12; ec += $14; t += $17; ns += $19}
           END {r = (t > 0 ? ns / t : 0); printf "%d %.0f %d %.0f %.6f", dn, (dn ? dc * r / dn : 0), en, (en ? ec * r / en : 0), r}')"
  done
fi

# Make sure cmk really encrypted what it wrote in this run: the md5 text of
# sort_src's first row must be in plain's data files and not in cmk's, and a
# WAL message written last (so no recycled segment has overwritten it) must be
# in plain's WAL and not in cmk's.
found() { grep -rlqa "$1" "$2" 2>/dev/null && echo found || echo absent; }
wal_canary="cmk-bench-wal-canary-$$"
m=$(printf 1 | md5sum | cut -c1-32)
checks_p=()
checks_w=()
for ck in $BENCH_CHECKSUMS; do
  [[ " ${INSTANCES[*]} " == *" cmk.$ck "* ]] || continue
  for s in "plain.$ck" "cmk.$ck" "cmk_nocipher.$ck" "cmk_timed.$ck"; do
    [[ " ${INSTANCES[*]} " == *" $s "* ]] || continue
    start "$s"
    sql "$s" -c "SELECT pg_logical_emit_message(true, '$wal_canary', 'flushed at commit')" >/dev/null
    stop "$s"
    checks_p+=("$s $(found "$m" "$(datadir "$s")/base")")
    checks_w+=("$s $(found "$wal_canary" "$(datadir "$s")/pg_wal")")
  done
  # Distinct messages with counts; a background worker ended by a fast
  # shutdown logs a FATAL by design and is left out.
  note "cmk_log_errors_$ck" "$(grep -E 'ERROR|FATAL|PANIC' "$LOGS/cmk.$ck.log" | grep -v 'due to administrator command' |
    sed -E 's/^[0-9-]+ [0-9:.]+ [A-Z]+ \[[0-9]+\] //' | cut -c1-160 | sort | uniq -c | sort -rn | head -5 |
    sed -E 's/^ *([0-9]+) (.*)$/\1 × `\2`/' | paste -sd ';' | sed 's/;/; /g')"
done
if [ ${#checks_p[@]} -gt 0 ]; then
  note check_pages "sort_src's '$m' in base/: $(IFS=,; echo "${checks_p[*]}" | sed 's/,/, /g')"
  note check_wal "'$wal_canary' in pg_wal/: $(IFS=,; echo "${checks_w[*]}" | sed 's/,/, /g')"
fi
[ $kv_ok = 1 ] && [ -f "$BENCH_DIR/kv/pid" ] && kill "$(cat "$BENCH_DIR/kv/pid")" 2>/dev/null || true
log "suite done"

#!/usr/bin/env bash
# Proves that one cmk build runs on other PostgreSQL 15 minor releases and
# refuses a server it cannot bind (DESIGN.md "Binding by contents").
#
#   1. Builds PostgreSQL 15 from Debian's source package (apt-get source
#      postgresql-15, the installed version) with the next minor version
#      number and other optimisation flags (-O3 instead of Debian's -O2,
#      Debian's hardening and fortify flags kept, as Debian's own builds keep
#      them) into a private prefix, and a second server from the same tree
#      whose smgr.c table holds a function of its own instead of mdread (a
#      patched server that cmk cannot recognise).
#   2. Builds cmk once against the installed headers and installs that same
#      cmk.so into a private copy of the installed server and into the
#      rebuilt prefix (the script checks the bytes are identical).
#   3. A cluster written under the installed server (with cmk, file KEK)
#      reads back under the rebuilt one, which writes more, which reads back
#      under the installed one; no file holds the canaries.
#   4. The patched server refuses to start with cmk (FATAL naming the
#      storage manager), leaves no process and no changed file, and starts
#      without cmk (the binary itself is sound).
#
# Slow (the build takes 15-30 minutes on 2 cores); not part of CI:
#   nice bash scripts/minor_version_check.sh
# Run as root on Debian 12. CMK_MINOR_WORK (default /var/tmp/cmk-minor)
# keeps the source and the builds, so a second run only repeats the tests.
# Build parallelism: CMK_MINOR_JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
[ "$(id -u)" = 0 ] || { echo "minor_version_check.sh: run as root" >&2; exit 1; }
unset LANGUAGE LC_ALL $(compgen -e | grep '^LC_' || true)
export LANG=C.UTF-8

work=${CMK_MINOR_WORK:-/var/tmp/cmk-minor}
jobs=${CMK_MINOR_JOBS:-2}
mkdir -p "$work"
log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }

bash scripts/install_deps.sh >/dev/null
sysbin=/usr/lib/postgresql/15/bin
installed_version=$(dpkg-query -W -f='${Version}' postgresql-15)
installed_minor=$("$sysbin/postgres" -V | sed -E 's/.* 15\.([0-9]+).*/\1/')
rebuilt_minor=$((installed_minor + 1))

pre_verify=$(dpkg --verify postgresql-15 postgresql-client-15 postgresql-server-dev-15 2>&1)
[ -z "$pre_verify" ] || { echo "dpkg --verify of the installed server reports changes before this script ran:"; echo "$pre_verify"; exit 1; }

# --- 1. the source package and the two rebuilt servers --------------------
if [ ! -s "$work/rebuilt_minor" ] || [ ! -x "$work/pg-15.$(cat "$work/rebuilt_minor")-unmatched/bin/postgres" ]; then
  # deb-src lines beside the machine's deb lines, same mirrors.
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      sed -n '/^Types:/,$p' "$f" | sed 's/^Types: deb$/Types: deb-src/' > "/etc/apt/sources.list.d/cmk-src-$(basename "$f")"
    done
    [ -f /etc/apt/sources.list ] && sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > /etc/apt/sources.list.d/cmk-src.list
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
    dpkg-dev zlib1g-dev libssl-dev pkg-config >/dev/null
  cd "$work"
  if [ ! -d "$work/source" ]; then
    # The installed release's source if the mirror has it, else the newest
    # other 15.x source it has (a real other minor release).
    versions=$(apt-cache showsrc postgresql-15 | sed -n 's/^Version: //p' | sort -rV)
    get=$installed_version
    echo "$versions" | grep -qxF "$installed_version" || get=$(echo "$versions" | head -1)
    rm -rf "$work/get" && mkdir "$work/get" && cd "$work/get" && chown _apt: . 2>/dev/null || true
    # Debian's patches are not applied: they hardcode the installation
    # directories to the system's (/usr/lib/postgresql/15/...), so an
    # install of the rebuilt server would overwrite the installed one.
    log "apt-get source --download-only postgresql-15=$get"
    if ! apt-get source -q --download-only "postgresql-15=$get" >/dev/null 2>"$work/get.err"; then
      cat "$work/get.err"
      get=$(echo "$versions" | grep -vxF "$get" | head -1)
      log "not to be had; apt-get source --download-only postgresql-15=$get"
      apt-get source -q --download-only "postgresql-15=$get" >/dev/null
    fi
    dpkg-source -x --skip-patches "$(ls postgresql-15_*.dsc | head -1)" "$work/source" >/dev/null
    # The deb-src lines this script added go again (every apt-get update
    # would fetch the source indexes otherwise).
    rm -f /etc/apt/sources.list.d/cmk-src-*.sources /etc/apt/sources.list.d/cmk-src.list
    cd "$work"
  fi
  cd "$work/source"
  source_minor=$(sed -n -E "s/^PACKAGE_VERSION='15\.([0-9]+)'/\1/p" configure)
  # A minor version number other than the installed one: the source's own
  # if it is another release, else the next one, everywhere configure
  # derives it from (PG_VERSION, PG_VERSION_NUM, PG_VERSION_STR).
  if [ "$source_minor" = "$installed_minor" ]; then
    sed -i -E "s/\b15\.$installed_minor\b/15.$rebuilt_minor/g" configure
  else
    rebuilt_minor=$source_minor
  fi
  grep -q "PACKAGE_VERSION='15.$rebuilt_minor'" configure
  rebuilt="$work/pg-15.$rebuilt_minor"
  unmatched="$work/pg-15.$rebuilt_minor-unmatched"
  echo "$rebuilt_minor" > "$work/rebuilt_minor"
  # Debian's flags with -O3 for -O2: hardening (PIE, full RELRO, BIND_NOW)
  # and _FORTIFY_SOURCE as every Debian build has them.
  export DEB_BUILD_MAINT_OPTIONS=hardening=+all
  cflags=$(dpkg-buildflags --get CFLAGS | sed 's/-O2/-O3/')
  cppflags=$(dpkg-buildflags --get CPPFLAGS)
  ldflags=$(dpkg-buildflags --get LDFLAGS)
  log "configure 15.$rebuilt_minor with CFLAGS=$cflags"
  mkdir -p build && cd build
  [ -f config.status ] || ../configure -q --prefix="$rebuilt" --without-icu --without-readline \
    --with-openssl --with-system-tzdata=/usr/share/zoneinfo \
    CFLAGS="$cflags" CPPFLAGS="$cppflags" LDFLAGS="$ldflags" >/dev/null
  log "make -j$jobs (long)"
  make -s -j"$jobs" >/dev/null 2>"$work/build.err" || { tail -30 "$work/build.err"; exit 1; }
  # Installed into a staging directory first: nothing may land outside the
  # private prefix.
  rm -rf "$work/stage"
  make -s install DESTDIR="$work/stage" >/dev/null
  outside=$(cd "$work/stage" && find . ! -type d | grep -v "^\.$rebuilt/" || true)
  [ -z "$outside" ] || { echo "FAIL: the rebuilt server would install outside $rebuilt:"; echo "$outside" | head; exit 1; }
  mkdir -p "$(dirname "$rebuilt")" && rm -rf "$rebuilt" && cp -a "$work/stage$rebuilt" "$rebuilt"
  # The unmatched server: smgr.c's table holds a function of its own where
  # mdread was (as a server patched with its own storage layer would).
  cp -a "$rebuilt" "$unmatched"
  smgr=../src/backend/storage/smgr/smgr.c
  cp "$smgr" "$work/smgr.c.orig"
  perl -0pi -e 's/(static const f_smgr smgrsw\[\])/static void\nmdread_patched(SMgrRelation reln, ForkNumber forknum, BlockNumber blocknum, char *buffer)\n{\n\tmdread(reln, forknum, blocknum, buffer);\n}\n\n$1/; s/\.smgr_read = mdread,/.smgr_read = mdread_patched,/' "$smgr"
  grep -q 'smgr_read = mdread_patched' "$smgr"
  log "relink postgres with the patched smgr.c"
  make -s -j"$jobs" -C src/backend >/dev/null 2>>"$work/build.err"
  install -m 755 src/backend/postgres "$unmatched/bin/postgres"
  cp "$work/smgr.c.orig" "$smgr"
  make -s -j"$jobs" -C src/backend >/dev/null 2>>"$work/build.err"
  cd "$src"
fi
rebuilt_minor=$(cat "$work/rebuilt_minor")
rebuilt="$work/pg-15.$rebuilt_minor"
unmatched="$work/pg-15.$rebuilt_minor-unmatched"
log "rebuilt server: $("$rebuilt/bin/postgres" -V); unmatched: $("$unmatched/bin/postgres" -V)"
log "installed server: $("$sysbin/postgres" -V)"

# --- 2. cmk, built once against the installed headers ---------------------
installed="$work/installed"      # a private copy of the installed server
rm -rf "$installed" "$work/cmk-src"
bash scripts/dev_pg_root.sh "$installed" >/dev/null
inst_bin="$installed/usr/lib/postgresql/15/bin"
mkdir -p "$work/cmk-src"
git ls-files -z -c -o --exclude-standard | xargs -0 cp --parents -t "$work/cmk-src"
log "building cmk once, against $("$inst_bin/pg_config" --includedir-server)"
make -s -C "$work/cmk-src" PG_CONFIG="$inst_bin/pg_config" -j"$jobs" >/dev/null 2>"$work/cmk-build.err" || { tail -20 "$work/cmk-build.err"; exit 1; }
make -s -C "$work/cmk-src" PG_CONFIG="$inst_bin/pg_config" install >/dev/null
so="$work/cmk-src/cmk.so"
for prefix in "$rebuilt" "$unmatched"; do
  case "$("$prefix/bin/pg_config" --pkglibdir) $("$prefix/bin/pg_config" --sharedir)" in
    "$prefix"/*" $prefix"/*) ;;
    *) echo "FAIL: $prefix's directories are not under it"; exit 1 ;;
  esac
  install -m 755 "$so" "$("$prefix/bin/pg_config" --pkglibdir)/cmk.so"
  install -m 644 "$work/cmk-src/cmk.control" "$work/cmk-src/cmk--0.1.sql" "$("$prefix/bin/pg_config" --sharedir)/extension/"
done
sums=$(sha256sum "$so" "$("$inst_bin/pg_config" --pkglibdir)/cmk.so" "$("$rebuilt/bin/pg_config" --pkglibdir)/cmk.so" | awk '{print $1}' | sort -u | wc -l)
[ "$sums" = 1 ] || { echo "FAIL: the installed cmk.so files differ"; exit 1; }
log "one cmk.so (sha256 $(sha256sum "$so" | cut -c1-16)...) in both servers' \$libdir"

# --- 3. data written under one reads back under the other -----------------
fail=0
check() { if [ "$2" = "$3" ]; then log "ok: $1 ($2)"; else log "FAIL: $1: got '$2', expected '$3'"; fail=1; fi; }
run() { runuser -u postgres -- "$@"; }
t="$work/test"
rm -rf "$t" && mkdir -p "$t/sock" && chown -R postgres: "$t"
port=$((20000 + RANDOM % 20000))
run openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$t/kek.pem"
chmod 600 "$t/kek.pem"
run "$inst_bin/initdb" -D "$t/data" --data-checksums -A trust -U postgres >/dev/null
printf "%s\n" "shared_preload_libraries = 'cmk'" "cmk.key_url = 'file:$t/kek.pem'" "port = $port" \
  "listen_addresses = ''" "unix_socket_directories = '$t/sock'" >> "$t/data/postgresql.conf"
canary=cmkMINORcanary
sql() { run "$inst_bin/psql" -X -At -h "$t/sock" -p "$port" -U postgres -d postgres -c "$1"; }
start() { run "$1/pg_ctl" -D "$t/data" -l "$t/$2.log" -w -t 60 start >/dev/null; }
stop() { run "$1/pg_ctl" -D "$t/data" -w -m fast stop >/dev/null; }
digest="SELECT count(*) || ' ' || md5(string_agg(v, ',' ORDER BY id)) FROM t"

start "$inst_bin" installed-1
sql "CREATE EXTENSION cmk; CREATE TABLE t (id int PRIMARY KEY, v text)" >/dev/null
sql "INSERT INTO t SELECT g, '${canary}_installed_' || g FROM generate_series(1, 20000) g" >/dev/null
sql "CHECKPOINT" >/dev/null
first=$(sql "$digest")
log "written under: $(sql 'SELECT version()')"
stop "$inst_bin"

start "$rebuilt/bin" rebuilt
check "the rebuilt server runs with cmk" "$(sql 'SHOW server_version')" "15.$rebuilt_minor"
check "cmk is active on it" "$(sql 'SELECT state FROM cmk_status')" "active"
check "rows written under the installed server read back under 15.$rebuilt_minor" "$(sql "$digest")" "$first"
sql "INSERT INTO t SELECT g, '${canary}_rebuilt_' || g FROM generate_series(20001, 40000) g" >/dev/null
sql "CHECKPOINT" >/dev/null
second=$(sql "$digest")
log "written under: $(sql 'SELECT version()')"
stop "$rebuilt/bin"
grep -h "cmk:" "$t/rebuilt.log" | sed 's/^/    rebuilt server log: /' | head -5

start "$inst_bin" installed-2
check "rows written under 15.$rebuilt_minor read back under the installed server" "$(sql "$digest")" "$second"
check "table t has no plaintext page on disk" "$(sql "CHECKPOINT; SELECT sum(plaintext_pages) FROM cmk_relation_pages('t')" 2>&1 | tail -1)" "0"
stop "$inst_bin"
check "files of the cluster holding the canary" "$(grep -rl "$canary" "$t/data" | wc -l)" "0"

# --- 4. a server whose table cannot be matched is refused -----------------
fingerprint() { (cd "$t/data" && find . -type f ! -name 'postmaster.*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }
before=$(fingerprint)
if start "$unmatched/bin" unmatched 2>/dev/null; then
  log "FAIL: the server with a patched smgr.c table started with cmk"; fail=1; stop "$unmatched/bin"
else
  log "ok: the server with a patched smgr.c table refused to start with cmk:"
  grep -E "FATAL|DETAIL|HINT" "$t/unmatched.log" | sed 's/^/    /'
fi
check "its log names the storage manager" "$(grep -c "cmk: cannot bind to this server's storage manager" "$t/unmatched.log")" "1"
check "pg_ctl status: no server left (exit 3)" "$(run "$unmatched/bin/pg_ctl" -D "$t/data" status >/dev/null 2>&1; echo $?)" "3"
check "data directory fingerprint unchanged" "$(fingerprint)" "$before"
run "$unmatched/bin/initdb" -D "$t/plain" -A trust -U postgres >/dev/null
run "$unmatched/bin/pg_ctl" -D "$t/plain" -l "$t/plain.log" -w -o "-p $port -c listen_addresses='' -c unix_socket_directories='$t/sock'" start >/dev/null
check "control: the same binary runs without cmk" "$(sql 'SELECT 1')" "1"
run "$unmatched/bin/pg_ctl" -D "$t/plain" -w -m fast stop >/dev/null

# The installed server's packages are untouched.
verify=$(dpkg --verify postgresql-15 postgresql-client-15 postgresql-server-dev-15 2>&1)
check "dpkg --verify of the installed server's packages reports nothing" "$verify" ""

if [ $fail = 0 ]; then log "PASS"; else log "FAILED"; fi
exit $fail

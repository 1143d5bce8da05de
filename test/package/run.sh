#!/usr/bin/env bash
# The Debian package, tested as a DBA uses it (README "Install", "From the Debian package"):
#   1. dpkg-buildpackage -us -uc from a clean copy of the checkout's
#      committed tree; lintian must report no error;
#   2. apt-get install of the .deb;
#   3. a cluster made with Debian's own tools: pg_createcluster, cmk's
#      settings in conf.d/, the AZURE_* variables in the cluster's
#      `environment` file (mode 0600), the Key Vault emulator as the vault;
#      pg_ctlcluster start;
#   4. the canary check (no file of the cluster holds what was written),
#      cmk_status, and the package's cmk_pg_basebackup and
#      cmk_pg_verifybackup on that cluster;
#   5. the cluster is dropped and the package purged, so the system's
#      $libdir is left as the package found it (without cmk).
# Run as root on Debian 12: bash test/package/run.sh   (CI runs it last, after
# the TAP tests, which install cmk with make install).
set -uo pipefail
cd "$(dirname "$0")/../.."
src=$(pwd)
[ "$(id -u)" = 0 ] || { echo "test/package/run.sh: run as root" >&2; exit 1; }
unset LANGUAGE LC_ALL $(compgen -e | grep '^LC_' || true)
export LANG=C.UTF-8
bash scripts/install_deps.sh >/dev/null

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; }
check() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: got '$2', expected '$3'"; fi; }
step() { printf '[%s] %s\n' "$(date +%T)" "$*"; }

work=$(mktemp -d /tmp/cmk-package.XXXXXX)
cluster=cmkpkg$$
kv="$work/kv"
cleanup() {
  pg_ctlcluster 15 "$cluster" stop -m immediate >/dev/null 2>&1
  pg_dropcluster 15 "$cluster" >/dev/null 2>&1
  [ -f "$kv/pid" ] && kill "$(cat "$kv/pid")" 2>/dev/null
  if dpkg-query -W -f='${Status}' postgresql-15-cmk 2>/dev/null | grep -q installed; then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -q postgresql-15-cmk >/dev/null 2>&1
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- 1. build -------------------------------------------------------------
step "dpkg-buildpackage -us -uc (a few minutes on 2 cores)"
ver=$(dpkg-parsechangelog -l debian/changelog -S Version)
mkdir -p "$work/build/cmk-$ver"
git ls-files -z | xargs -0 cp --parents -t "$work/build/cmk-$ver"
if (cd "$work/build/cmk-$ver" && dpkg-buildpackage -us -uc -j"$(nproc)" >"$work/build.log" 2>&1); then
  ok "dpkg-buildpackage -us -uc builds from a clean tree"
else
  not_ok "dpkg-buildpackage failed"; tail -30 "$work/build.log"
  echo "$passed passed, $((failed)) failed"; exit 1
fi
deb=$(ls "$work"/build/postgresql-15-cmk_*_amd64.deb)
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/lib/postgresql/15/lib/cmk.so ./usr/lib/postgresql/15/lib/cmk_frontend.so \
  ./usr/share/postgresql/15/extension/cmk.control ./usr/share/postgresql/15/extension/cmk--0.1.sql \
  ./usr/lib/postgresql/15/bin/pg_cmk ./usr/lib/postgresql/15/bin/cmk_pg_basebackup \
  ./usr/lib/postgresql/15/bin/cmk_pg_rewind ./usr/share/doc/postgresql-15-cmk/README.md.gz; do
  echo "$contents" | grep -qxF "$f" && ok "the package holds ${f#.}" || not_ok "the package lacks ${f#.}"
done
lintian --tag-display-limit 0 "$work"/build/cmk_*.changes >"$work/lintian.txt" 2>&1
sed 's/^/    lintian: /' "$work/lintian.txt"
check "lintian reports no error" "$(grep -c '^E:' "$work/lintian.txt")" "0"

# --- 2. install -----------------------------------------------------------
step "apt-get install $deb"
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "$deb" >"$work/install.log" 2>&1 \
  && ok "the package installs" || { not_ok "the package does not install"; tail "$work/install.log"; }

# --- 3. a cluster with Debian's tools, Key Vault (emulator) as the vault ---
mkdir -p "$kv" && chown postgres: "$work" "$kv"
tenant=11111111-2222-3333-4444-555555555555
# Addressed as a real vault is (test/kv_emulator/hosts.sh names them 127.0.0.1).
vault_host=cmk-emulator.vault.azure.net login_host=login.cmk-emulator.test
export no_proxy="${no_proxy:+$no_proxy,}$vault_host,$login_host"
runuser -u postgres -- python3 "$src/test/kv_emulator/kv_emulator.py" serve --state-dir "$kv" --port 0 \
  --tenant "$tenant" --host "$vault_host" --host "$login_host" >"$work/kv.log" 2>&1 &
for _ in $(seq 300); do [ -f "$kv/ready" ] && break; sleep 0.1; done
kvport=$(cat "$kv/port")
E() { runuser -u postgres -- python3 "$src/test/kv_emulator/kv_emulator.py" admin --state-dir "$kv" "$@"; }
E add-identity --tenant "$tenant" --client-id pg-server --secret "pkg-$$-secret" >/dev/null
E grant --client-id pg-server --permissions get,wrapKey,unwrapKey >/dev/null
kid=$(E create-key --name kek --size 3072 | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"]["kid"])')
install -m 0644 "$kv/ca.pem" "$work/kv-ca.pem"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
step "pg_createcluster 15 $cluster -p $port"
pg_createcluster 15 "$cluster" -p "$port" -- --data-checksums >/dev/null
etc=/etc/postgresql/15/$cluster
cat > "$etc/conf.d/cmk.conf" <<EOF
shared_preload_libraries = 'cmk'
cmk.key_url = '$kid'
cmk.auth = 'client-secret'
cmk.ca_file = '$work/kv-ca.pem'
listen_addresses = ''
EOF
cat > "$etc/environment" <<EOF
AZURE_AUTHORITY_HOST = 'https://$login_host:$kvport'
AZURE_TENANT_ID = '$tenant'
AZURE_CLIENT_ID = 'pg-server'
AZURE_CLIENT_SECRET = 'pkg-$$-secret'
EOF
chown postgres: "$etc/environment" && chmod 0600 "$etc/environment"
if pg_ctlcluster 15 "$cluster" start; then ok "pg_ctlcluster starts the cluster with cmk"; else
  not_ok "pg_ctlcluster start"; tail -20 "/var/log/postgresql/postgresql-15-$cluster.log"; fi
sql() { runuser -u postgres -- psql -X -At -p "$port" -d postgres -c "$1"; }
canary=cmkPACKAGEcanary$$
sql "CREATE EXTENSION cmk; CREATE TABLE secrets (id int, v text)" >/dev/null
sql "INSERT INTO secrets SELECT g, '$canary' || g FROM generate_series(1, 5000) g" >/dev/null
check "cmk_status: Key Vault, active" "$(sql "SELECT provider || ' ' || state FROM cmk_status")" "azure-key-vault active"
check "the rows read back" "$(sql "SELECT count(*) FROM secrets WHERE v LIKE '$canary%'")" "5000"

# --- 4. canary check, and the package's front-end tools -------------------
data=$(sql "SHOW data_directory")
sql "CHECKPOINT" >/dev/null
backup="$work/backup"
# The tools reach the vault as pg_cmk does: the AZURE_* variables of their
# own environment (here the server's), CMK_CA_FILE for the emulator's CA.
tool_env=(env CMK_CA_FILE="$work/kv-ca.pem" AZURE_AUTHORITY_HOST="https://$login_host:$kvport"
  AZURE_TENANT_ID="$tenant" AZURE_CLIENT_ID=pg-server AZURE_CLIENT_SECRET="pkg-$$-secret")
runuser -u postgres -- "${tool_env[@]}" /usr/lib/postgresql/15/bin/cmk_pg_basebackup -p "$port" -D "$backup" -X stream -c fast \
  && ok "cmk_pg_basebackup -X stream from the package" || not_ok "cmk_pg_basebackup"
runuser -u postgres -- "${tool_env[@]}" /usr/lib/postgresql/15/bin/cmk_pg_verifybackup -q "$backup" \
  && ok "cmk_pg_verifybackup verifies it, WAL included" || not_ok "cmk_pg_verifybackup"
pg_ctlcluster 15 "$cluster" stop
check "files of the cluster holding the canary (data and WAL)" "$(grep -rl "$canary" "$data" | wc -l)" "0"
check "files of the backup holding the canary" "$([ -d "$backup/pg_wal" ] && grep -rl "$canary" "$backup" | wc -l)" "0"

step "purge"
cleanup
trap - EXIT
check "the package is purged" "$(dpkg-query -W -f='${Status}' postgresql-15-cmk 2>/dev/null | grep -c ' installed')" "0"
echo "package: $passed passed, $failed failed"
[ "$failed" = 0 ]

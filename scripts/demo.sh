#!/usr/bin/env bash
# The cmk demo: installs what is needed, builds and installs cmk, then, as
# the postgres user:
#  1. starts the local Azure Key Vault emulator (test/kv_emulator), creates
#     an RSA key and an application identity allowed to wrap and unwrap;
#  2. starts an encrypted cluster whose KEK is that key, stores a secret,
#     and shows that grep finds it in a plain cluster's files but not in the
#     encrypted cluster's, then cmk_status and the vault's audit log of the
#     unwrap;
#  3. rotates the key in the vault and points the server at the new version;
#  4. revokes the server's permission: the server becomes inaccessible;
#     grants it back: the server comes back by itself, every row intact.
# Leaves nothing running. Usage (as root, on Debian 12): bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# initdb refuses a locale the machine lacks (ssh forwards the client's LANG
# and LC_*): the servers run in C.UTF-8, which Debian always has.
unset LANGUAGE LC_ALL $(compgen -e | grep '^LC_' || true)
export LANG=C.UTF-8

bash scripts/install_deps.sh
echo "building and installing cmk (about 3 minutes on 2 cores the first time)..."
if ! build_log=$( (make -s -j"$(nproc)" && make -s install) 2>&1); then
  printf '%s\n' "$build_log" | tail -40 >&2
  echo "demo: the build failed" >&2
  exit 1
fi

demo=$(mktemp -d /tmp/cmk-demo.XXXXXX)
cp -r test/kv_emulator "$demo/kv_emulator"
chown -R postgres: "$demo"
cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    echo "demo: failed (exit $rc); the last lines of each log:" >&2
    for f in "$demo"/kv.log "$demo"/encrypted.log "$demo"/plain.log; do
      [ -f "$f" ] && { echo "--- $(basename "$f")" >&2; tail -n 15 "$f" >&2; }
    done
  fi
  for d in "$demo/encrypted" "$demo/plain"; do
    [ -f "$d/postmaster.pid" ] && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$d" -m fast stop >/dev/null 2>&1 || true
  done
  [ -f "$demo/kv/pid" ] && kill "$(cat "$demo/kv/pid")" 2>/dev/null || true
  sleep 0.5
  rm -rf "$demo"
}
trap cleanup EXIT

[ -t 1 ] && tty=1 || tty=0
runuser -u postgres -- env DEMO="$demo" TTY="$tty" PATH="/usr/lib/postgresql/15/bin:$PATH" bash -eEuo pipefail <<'EOS'
cd "$DEMO"
# Bold headings only on a terminal.
if [ "$TTY" = 1 ]; then say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }; else say() { printf '\n== %s\n' "$*"; }; fi
trap 'echo "demo: step failed at line $LINENO: $BASH_COMMAND" >&2' ERR
# The emulator's admin command; its answer (or error) is shown if it fails.
kv() {
  local out
  if ! out=$(python3 "$DEMO/kv_emulator/kv_emulator.py" admin --state-dir "$DEMO/kv" "$@" 2>&1); then
    printf 'emulator admin %s failed:\n%s\n' "$*" "$out" >&2
    return 1
  fi
  printf '%s\n' "$out"
}
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }
secret='the-launch-code-is-0451'
tenant=72f988bf-0000-4000-8000-00000000cafe
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

say "1. A local Azure Key Vault (the emulator) with an RSA key and the server's identity"
# Addressed as a real vault is (test/kv_emulator/hosts.sh names these 127.0.0.1).
python3 "$DEMO/kv_emulator/kv_emulator.py" serve --state-dir "$DEMO/kv" --port "$port" --tenant "$tenant" \
  --host cmk-emulator.vault.azure.net --host login.cmk-emulator.test >"$DEMO/kv.log" 2>&1 &
for i in $(seq 300); do [ -f "$DEMO/kv/ready" ] && break; sleep 0.1; done
[ -f "$DEMO/kv/ready" ] || { echo "the Key Vault emulator did not start" >&2; exit 1; }
vault="https://cmk-emulator.vault.azure.net:$port"
authority="https://login.cmk-emulator.test:$port"
kv add-identity --tenant "$tenant" --client-id pg-server --secret 'demo-only-secret' >/dev/null
kv grant --client-id pg-server --permissions get,wrapKey,unwrapKey >/dev/null
kid=$(kv create-key --name cmk-kek --size 3072 | field 'd["key"]["kid"]')
echo "key: $kid"
echo "the server's identity: pg-server, with get, wrapKey, unwrapKey (secret in its environment, not in postgresql.conf)"
export AZURE_AUTHORITY_HOST="$authority" AZURE_TENANT_ID="$tenant" AZURE_CLIENT_ID=pg-server AZURE_CLIENT_SECRET=demo-only-secret

for kind in encrypted plain; do
  initdb -D "$kind" --data-checksums -A trust >/dev/null
  cat >> "$kind/postgresql.conf" <<EOC
listen_addresses = ''
unix_socket_directories = '$DEMO'
port = $([ "$kind" = encrypted ] && echo 5433 || echo 5434)
EOC
done
cat >> encrypted/postgresql.conf <<EOC
shared_preload_libraries = 'cmk'
cmk.key_url = '$vault/keys/cmk-kek'
cmk.auth = 'client-secret'
cmk.ca_file = '$DEMO/kv/ca.pem'
cmk.key_check_interval = '2s'
EOC

say "2. Start the encrypted cluster; postgresql.conf has"
tail -5 encrypted/postgresql.conf
pg_ctl -D encrypted -l encrypted.log -w start >/dev/null
pg_ctl -D plain -l plain.log -w start >/dev/null
grep -o 'cmk: keyring_created.*' encrypted.log

for port_ in 5433 5434; do
  psql -X -q -h "$DEMO" -p $port_ -d postgres <<EOQ
CREATE TABLE accounts (id int PRIMARY KEY, owner text, note text);
INSERT INTO accounts SELECT g, 'owner ' || g, '$secret' FROM generate_series(1, 10000) g;
CHECKPOINT;
EOQ
done
psql -X -q -h "$DEMO" -p 5433 -d postgres -c 'CREATE EXTENSION cmk'
P="psql -X -h $DEMO -p 5433 -d postgres"

say "cmk_status"
$P -c 'SELECT provider, kek, key_generation, state, last_check_result FROM cmk_status'
say "The rows read back as usual; pages on disk are encrypted"
$P -c "SELECT count(*), min(note) FROM accounts" -c "SELECT * FROM cmk_relation_pages('accounts')"
say "grep the raw files (data and WAL) for '$secret'"
printf 'plain cluster:     %s files contain it\n' "$(grep -rl "$secret" plain/base plain/global plain/pg_wal | wc -l)"
printf 'encrypted cluster: %s files contain it\n' "$( (grep -rl "$secret" encrypted/base encrypted/global encrypted/pg_wal || true) | wc -l)"
if grep -rlq "$secret" encrypted/base encrypted/global encrypted/pg_wal; then echo "FAIL: plaintext found"; exit 1; fi
say "The vault's audit log: what the server's identity did with the key"
kv audit --caller pg-server | python3 -c 'import json,sys
for e in json.load(sys.stdin): print(e["time"], e["operation"], e.get("version") or "", e["result"])' | tail -6

say "3. Rotate: a new key version in the vault, then point the server at it"
v2=$(kv rotate-key --name cmk-kek | field 'd["key"]["kid"].rsplit("/",1)[1]')
$P -c "SELECT cmk_rotate_key('$vault/keys/cmk-kek/$v2')"
$P -c 'SELECT kek_version, key_generation FROM cmk_status'
grep key_url encrypted/postgresql.auto.conf

say "4. Revoke the server's unwrapKey permission in the vault"
kv revoke --client-id pg-server --permissions unwrapKey >/dev/null
sleep 4
$P -c 'SELECT 1' 2>&1 | sed 's/^/    /' || true
say "Grant it back: the server becomes accessible again by itself"
kv grant --client-id pg-server --permissions get,wrapKey,unwrapKey >/dev/null
for i in $(seq 30); do $P -At -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.5; done
$P -c "SELECT count(*) AS rows_intact FROM accounts" -c "SELECT event, outcome FROM cmk_events ORDER BY event_time"

pg_ctl -D encrypted -m fast stop >/dev/null
say "Offline: the keyring holds only wrapped keys; checksums verify on ciphertext"
pg_cmk keyring -D encrypted
pg_checksums --check -D encrypted | tail -2
pg_ctl -D plain -m fast stop >/dev/null
EOS
echo
echo "demo finished"

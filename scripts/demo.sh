#!/usr/bin/env bash
# The cmk demo: installs what is needed, builds and installs cmk, then, as
# the postgres user, creates an encrypted cluster with a local KEK, stores a
# secret, shows that the raw files do not contain it (and that a plain
# cluster's files do), and shows cmk_status. Leaves nothing running.
# Usage (as root, on Debian 12): bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_deps.sh
make -s -j"$(nproc)" >/dev/null
make -s install >/dev/null

demo=$(mktemp -d /tmp/cmk-demo.XXXXXX)
chown postgres: "$demo"
cleanup() {
  for d in "$demo/encrypted" "$demo/plain"; do
    [ -f "$d/postmaster.pid" ] && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$d" -m fast stop >/dev/null 2>&1 || true
  done
  rm -rf "$demo"
}
trap cleanup EXIT

runuser -u postgres -- env DEMO="$demo" PATH="/usr/lib/postgresql/15/bin:$PATH" bash -euo pipefail <<'EOS'
cd "$DEMO"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
secret='the-launch-code-is-0451'

say "A key encryption key (KEK): a local RSA key, standing in for Azure Key Vault"
openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out kek.pem
chmod 600 kek.pem
ls -l kek.pem

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
cmk.key_url = 'file:$DEMO/kek.pem'
EOC

say "Start the encrypted cluster: postgresql.conf has"
tail -2 encrypted/postgresql.conf
pg_ctl -D encrypted -l encrypted.log -w start >/dev/null
pg_ctl -D plain -l plain.log -w start >/dev/null
grep 'cmk:' encrypted.log

for port in 5433 5434; do
  psql -X -q -h "$DEMO" -p $port -d postgres <<EOQ
CREATE TABLE accounts (id int PRIMARY KEY, owner text, note text);
INSERT INTO accounts SELECT g, 'owner ' || g, '$secret' FROM generate_series(1, 10000) g;
CHECKPOINT;
EOQ
done
psql -X -q -h "$DEMO" -p 5433 -d postgres -c 'CREATE EXTENSION cmk'

say "cmk_status on the encrypted cluster"
psql -X -h "$DEMO" -p 5433 -d postgres -c 'SELECT provider, kek, key_generation, wrap_algorithm, state FROM cmk_status'

say "The rows read back as usual"
psql -X -h "$DEMO" -p 5433 -d postgres -c "SELECT count(*), min(note) FROM accounts"

say "Pages of the table as stored on disk"
psql -X -h "$DEMO" -p 5433 -d postgres -c "SELECT * FROM cmk_relation_pages('accounts')"

say "grep the raw data files for '$secret'"
printf 'plain cluster:     %s files contain it\n' "$(grep -rl "$secret" plain/base plain/global | wc -l)"
printf 'encrypted cluster: %s files contain it\n' "$(grep -rl "$secret" encrypted/base encrypted/global | wc -l || true)"
if grep -rlq "$secret" encrypted/base encrypted/global; then echo "FAIL: plaintext found"; exit 1; fi

say "The keyring holds only the wrapped DEK"
ls -l encrypted/pg_cmk/
pg_ctl -D encrypted -m fast stop >/dev/null
pg_checksums --check -D encrypted | tail -2
pg_ctl -D plain -m fast stop >/dev/null
EOS
echo
echo "demo finished"

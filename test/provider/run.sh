#!/usr/bin/env bash
# Runs the Azure Key Vault provider's tests (build/provider_tests, GoogleTest)
# against the local Key Vault / Entra ID emulator (test/kv_emulator, see its
# CONTRACT.md), addressed as a real vault: https://cmk-emulator.vault.azure.net:PORT
# (test/kv_emulator/hosts.sh names it 127.0.0.1). Starts the emulator on a
# free loopback port with a fresh state directory, registers the identities, permissions and keys the tests expect
# with its admin CLI, runs the tests with the emulator's address, CA and state
# directory in CMK_KV_* variables, and stops the emulator on exit.
#
# Usage: bash test/provider/run.sh [gtest arguments, e.g. --gtest_filter=SignIn.*]
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
emulator="$root/test/kv_emulator/kv_emulator.py"
bin="$root/build/provider_tests"

# Build (or bring up to date) the test program; a no-op under `make provider-check`.
make -s build/provider_tests >/dev/null

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cmk-provider.XXXXXX")
state="$tmp/emulator"
emu_pid=""
cleanup() {
  local rc=$?
  if [ -n "$emu_pid" ] && kill -0 "$emu_pid" 2>/dev/null; then
    kill -TERM "$emu_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$emu_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$emu_pid" 2>/dev/null || true
    wait "$emu_pid" 2>/dev/null || true
  fi
  if [ $rc -ne 0 ] && [ -f "$tmp/emulator.log" ]; then
    echo "--- emulator log (last 40 lines) ---" >&2
    tail -n 40 "$tmp/emulator.log" >&2 || true
  fi
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

vault_host=cmk-emulator.vault.azure.net
bash test/kv_emulator/hosts.sh --check || {
  echo "$vault_host does not resolve to 127.0.0.1: run \`bash test/kv_emulator/hosts.sh\` as root (scripts/install_deps.sh does)" >&2
  exit 1
}
python3 "$emulator" serve --state-dir "$state" --port 0 --tenant tenant-a --host "$vault_host" >"$tmp/emulator.log" 2>&1 &
emu_pid=$!
for _ in $(seq 1 300); do
  [ -f "$state/ready" ] && break
  if ! kill -0 "$emu_pid" 2>/dev/null; then echo "the emulator exited before it was ready" >&2; exit 1; fi
  sleep 0.1
done
[ -f "$state/ready" ] || { echo "the emulator did not become ready within 30 s" >&2; exit 1; }
port=$(cat "$state/port")

admin() { python3 "$emulator" admin --state-dir "$state" "$@"; }
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# A client secret that the tests look for in every message and log line.
secret="cmk-test-secret-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"

# A client certificate (PEM: certificate + key), and the same key encrypted.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=cmk provider test client" \
  -keyout "$tmp/client-key.pem" -out "$tmp/client-cert.pem" 2>/dev/null
cat "$tmp/client-cert.pem" "$tmp/client-key.pem" >"$tmp/client.pem"
cert_password="cmk-pem-password-$$"
openssl pkcs8 -topk8 -v2 aes-256-cbc -passout "pass:$cert_password" -in "$tmp/client-key.pem" -out "$tmp/client-key-enc.pem"
cat "$tmp/client-cert.pem" "$tmp/client-key-enc.pem" >"$tmp/client-enc.pem"

# Identities: applications of tenant-a (the vault's tenant) and of tenant-b,
# managed identities (mi-system is the first, hence the system-assigned one),
# and a workload identity federated with the emulator's own issuer.
admin add-identity --tenant tenant-a --client-id app-secret --secret "$secret" >/dev/null
admin add-identity --tenant tenant-a --client-id app-cert --cert-pem "$tmp/client.pem" >/dev/null
admin add-identity --tenant tenant-a --client-id mi-system --managed >/dev/null
admin add-identity --tenant tenant-a --client-id mi-user --managed >/dev/null
admin add-identity --tenant tenant-a --client-id app-wif --federated-subject system:serviceaccount:postgres:cmk >/dev/null
admin add-identity --tenant tenant-b --client-id app-b --secret "$secret" >/dev/null
admin add-identity --tenant tenant-b --client-id mi-b --managed >/dev/null
for c in app-secret app-cert mi-system mi-user app-wif app-b mi-b; do
  admin grant --client-id "$c" --permissions get,wrapKey,unwrapKey --access-policy >/dev/null
done
admin create-key --name kek --size 2048 >/dev/null
admin create-key --name kek-hsm --kty RSA-HSM --size 3072 >/dev/null

admin mint-federated-token --client-id app-wif --subject system:serviceaccount:postgres:cmk \
  | json_field token >"$tmp/federated-token"
admin mint-federated-token --client-id app-wif --subject system:serviceaccount:other:intruder \
  | json_field token >"$tmp/federated-token-other"
identity_header=$(admin identity-header | json_field header)

export CMK_KV_PORT="$port"
export CMK_KV_URL="https://$vault_host:$port"
export CMK_KV_CA="$state/ca.pem"
export CMK_KV_STATE="$state"
export CMK_KV_SECRET="$secret"
export CMK_KV_CLIENT_CERT="$tmp/client.pem"
export CMK_KV_CLIENT_CERT_ENC="$tmp/client-enc.pem"
export CMK_KV_CLIENT_CERT_PASSWORD="$cert_password"
export CMK_KV_FEDERATED_TOKEN_FILE="$tmp/federated-token"
export CMK_KV_FEDERATED_TOKEN_FILE_OTHER="$tmp/federated-token-other"
export CMK_KV_IDENTITY_HEADER="$identity_header"

"$bin" "$@"

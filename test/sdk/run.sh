#!/usr/bin/env bash
# Runs Microsoft's Azure SDK for JavaScript (@azure/keyvault-keys and
# @azure/identity, versions pinned in package-lock.json, installed here from
# the npm registry when missing) against the local Key Vault / Entra ID
# emulator with DEFAULT client options: the vault is
# https://cmk-emulator.vault.azure.net, sign-in goes to the SDK's default
# authority https://login.microsoftonline.com, both on port 443.
#
# Those real names must reach the emulator without touching the machine:
# MSAL signs in (and runs instance discovery) at login.microsoftonline.com:443
# whatever authority it is given, and no test may point that name at 127.0.0.1
# for the whole machine. So the test runs in a private network + mount
# namespace (unshare; as a non-root user inside a user namespace): its own
# loopback, where the emulator may listen on 443, and its own /etc/hosts,
# bind-mounted over the machine's only inside the namespace, naming the
# emulator for those hosts. Nothing outside the namespace changes, and nothing
# inside it can reach any other host. See test/kv_emulator/README.md.
#
# Usage: bash test/sdk/run.sh   (as any user; CI runs it as postgres)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
emulator="$here/../kv_emulator/kv_emulator.py"
vault_host=cmk-emulator.vault.azure.net
login_host=login.microsoftonline.com        # the SDK's default authority
other_login=login.cmk-emulator.test         # an authority MSAL does not know
tenant=72f988bf-0000-4000-8000-000000005d4b
client_id=sdk-app

inside() {
  local tmp=$1
  ip link set lo up
  mount --bind "$tmp/hosts" /etc/hosts
  unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY \
    AZURE_AUTHORITY_HOST AZURE_TENANT_ID AZURE_CLIENT_ID AZURE_CLIENT_SECRET
  python3 "$emulator" serve --state-dir "$tmp/kv" --port 443 --tenant "$tenant" \
    --host "$vault_host" --host "$login_host" --host "$other_login" >"$tmp/emulator.log" 2>&1 &
  emu_pid=$!
  trap 'kill -TERM $emu_pid 2>/dev/null; wait $emu_pid 2>/dev/null || true' EXIT
  for _ in $(seq 300); do
    [ -f "$tmp/kv/ready" ] && break
    kill -0 $emu_pid 2>/dev/null || { cat "$tmp/emulator.log" >&2; echo "the emulator exited" >&2; return 1; }
    sleep 0.1
  done
  [ -f "$tmp/kv/ready" ] || { echo "the emulator did not become ready" >&2; return 1; }
  admin() { python3 "$emulator" admin --state-dir "$tmp/kv" "$@" >/dev/null; }
  local secret
  secret="sdk-secret-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  admin add-identity --tenant "$tenant" --client-id "$client_id" --secret "$secret"
  admin grant --client-id "$client_id" --permissions get,list,create,update,rotate,wrapKey,unwrapKey
  local rc=0
  (cd "$here" && NODE_EXTRA_CA_CERTS="$tmp/kv/ca.pem" CMK_SDK_VAULT_URL="https://$vault_host" \
    CMK_SDK_TENANT="$tenant" CMK_SDK_CLIENT_ID="$client_id" CMK_SDK_SECRET="$secret" \
    CMK_SDK_OTHER_AUTHORITY="https://$other_login" node sdk_test.mjs) || rc=$?
  # What the emulator saw: sign-ins at the default authority, and MSAL's
  # instance discovery for the authority it does not know.
  python3 "$emulator" admin --state-dir "$tmp/kv" audit >"$tmp/audit.json"
  python3 - "$tmp/audit.json" "$client_id" "$other_login" <<'EOF' || rc=1
import json, sys
audit, client, other = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
signins = [e for e in audit if e["operation"] == "Authentication" and e["caller"] == client]
ok = [e for e in signins if e["result"] == "Success"]
bad = [e for e in signins if e["result"] == "AADSTS7000215"]
disc = [e for e in audit if e["operation"] == "Discovery" and e["result"] == "Success"
        and e.get("detail", "").startswith("instance https://%s/" % other)]
unwraps = [e for e in audit if e["operation"] == "KeyUnwrap" and e["caller"] == client]
checks = [("the SDK signed in with the secret", len(ok) >= 1),
          ("the wrong secret was refused by the token endpoint", len(bad) >= 1),
          ("MSAL asked instance discovery about %s" % other, len(disc) >= 1),
          ("unwraps reached the vault", len(unwraps) >= 4)]
for what, good in checks:
    print("%s - emulator audit: %s" % ("ok" if good else "not ok", what))
sys.exit(0 if all(g for _, g in checks) else 1)
EOF
  if [ $rc -ne 0 ]; then echo "--- emulator log (last 30 lines) ---" >&2; tail -n 30 "$tmp/emulator.log" >&2; fi
  return $rc
}

if [ "${1:-}" = --inside ]; then
  inside "$2"
  exit
fi

for tool in node npm unshare ip python3; do
  command -v "$tool" >/dev/null || { echo "sdk test: $tool is missing (scripts/install_deps.sh installs it)" >&2; exit 1; }
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { echo "sdk test: Node.js 20 or later is needed (found $(node --version))" >&2; exit 1; }

# The pinned packages, installed once per package-lock.json.
stamp="$here/node_modules/.cmk-lock.sha256"
want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "sdk test: installing the pinned npm packages"
  (cd "$here" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
fi
echo "sdk test: @azure/keyvault-keys $(node -p 'require(process.argv[1]).version' "$here/node_modules/@azure/keyvault-keys/package.json")," \
  "@azure/identity $(node -p 'require(process.argv[1]).version' "$here/node_modules/@azure/identity/package.json")," \
  "@azure/msal-node $(node -p 'require(process.argv[1]).version' "$here/node_modules/@azure/msal-node/package.json")," \
  "Node.js $(node --version)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cmk-sdk.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
{ cat /etc/hosts; echo "127.0.0.1 $vault_host $login_host $other_login"; } >"$tmp/hosts"
if [ "$(id -u)" = 0 ]; then
  ns=(unshare --net --mount)
else
  ns=(unshare --user --map-root-user --net --mount)
  "${ns[@]}" true 2>/dev/null || {
    echo "sdk test: cannot make a private user + network namespace (unshare): unprivileged user" \
      "namespaces are off here (sysctl kernel.unprivileged_userns_clone=1), or run the test as root" >&2
    exit 1
  }
fi
"${ns[@]}" bash "$0" --inside "$tmp"

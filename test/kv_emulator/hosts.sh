#!/usr/bin/env bash
# Names the local Key Vault emulator in /etc/hosts, so that cmk's tests and
# demo address it as a real vault is addressed:
#   cmk-emulator.vault.azure.net, cmk-emulator-2.vault.azure.net (a second
#   vault), cmk-emulator.managedhsm.azure.net    -> 127.0.0.1
#   login.cmk-emulator.test (the sign-in host)   -> 127.0.0.1
# Vault names must lie under vault.azure.net: cmk, like the Azure SDKs, only
# sends a token to a vault inside the domain its challenge names. These are
# exact names (no wildcard), chosen not to be anyone's vault; the sign-in host
# is under the reserved .test domain (RFC 6761). login.microsoftonline.com is
# never named here: the SDK test, which needs it, gets it in a private
# namespace (test/sdk/run.sh).
#
# Usage (root; idempotent): bash test/kv_emulator/hosts.sh [--check|--remove]
#   --check   exit 0 if every name resolves to 127.0.0.1, else 1 (any user)
#   --remove  take the line out again
set -euo pipefail
names=(cmk-emulator.vault.azure.net cmk-emulator-2.vault.azure.net cmk-emulator.managedhsm.azure.net
  login.cmk-emulator.test)
marker="# cmk: local Key Vault emulator (test/kv_emulator/hosts.sh)"
line="127.0.0.1 ${names[*]} $marker"
hosts=${CMK_HOSTS_FILE:-/etc/hosts}

resolves() {
  local n
  for n in "${names[@]}"; do
    [ "$(getent ahostsv4 "$n" 2>/dev/null | awk 'NR == 1 { print $1 }')" = 127.0.0.1 ] || return 1
  done
}

case "${1:-}" in
  --check)
    resolves
    exit
    ;;
  --remove)
    grep -qF "$marker" "$hosts" || exit 0
    rest=$(grep -vF "$marker" "$hosts")
    printf '%s\n' "$rest" >"$hosts"     # in place: /etc/hosts may be a bind mount
    exit 0
    ;;
  "") ;;
  *)
    echo "usage: $0 [--check|--remove]" >&2
    exit 2
    ;;
esac

if grep -qxF "$line" "$hosts"; then
  exit 0
fi
if [ ! -w "$hosts" ]; then
  echo "hosts.sh: cannot write $hosts: run as root (scripts/install_deps.sh does)" >&2
  exit 1
fi
if grep -qF "$marker" "$hosts"; then        # an older list of names: replace it
  rest=$(grep -vF "$marker" "$hosts")
  printf '%s\n%s\n' "$rest" "$line" >"$hosts"
else
  printf '%s\n' "$line" >>"$hosts"
fi
resolves || { echo "hosts.sh: the names do not resolve to 127.0.0.1 after editing $hosts (nsswitch.conf?)" >&2; exit 1; }

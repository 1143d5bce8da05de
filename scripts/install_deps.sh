#!/usr/bin/env bash
# Installs what cmk needs to build, test and demo on Debian 12, idempotently.
# Run as root. Debian's postgresql package would create and start a default
# cluster; we tell it not to (tests and the demo make their own).
set -euo pipefail

packages=(
  build-essential pkg-config git ca-certificates openssl procps
  postgresql-15 postgresql-server-dev-15 postgresql-client-15
  libssl-dev libgcrypt20-dev libkrb5-dev libcurl4-openssl-dev nlohmann-json3-dev libgtest-dev
  libipc-run-perl python3 python3-cryptography iproute2 gdb
  pgbackrest
  debhelper devscripts lintian fakeroot postgresql-server-dev-all
  patroni etcd-server python3-psycopg2 python3-etcd
)
# debhelper .. postgresql-server-dev-all: the Debian package and its test
# (test/package/run.sh); patroni .. python3-etcd: the HA test (140).
# Packages only the benchmarks need (gocryptfs, gnuplot, perf) are installed
# by bench/run.sh itself.

if [ "$(id -u)" != 0 ]; then
  echo "install_deps.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/cmk-no-main-cluster.conf
  export DEBIAN_FRONTEND=noninteractive
  # Wait for a dpkg/apt lock held by another apt (unattended-upgrades at boot)
  # instead of failing.
  lock_wait=(-o DPkg::Lock::Timeout=600)
  echo "installing: ${missing[*]}"
  apt-get "${lock_wait[@]}" update -q
  apt-get "${lock_wait[@]}" install -y -q --no-install-recommends "${missing[@]}"
fi

# The Key Vault emulator's names (cmk-emulator.vault.azure.net, ...) -> 127.0.0.1.
bash "$(dirname "$0")/../test/kv_emulator/hosts.sh"

# The Azure SDK test (test/sdk/run.sh) needs Node.js 20 and npm; the machine
# has them. Where it has none, Debian's are installed (older than 20: the test
# then says so).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -q
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends nodejs npm
fi

# The server binaries are in /usr/lib/postgresql/15/bin; initdb refuses root,
# so tests and the demo run servers as the postgres user the package creates.
id postgres >/dev/null

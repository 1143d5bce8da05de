#!/usr/bin/env bash
# What fuzz/run.sh needs besides cmk's own build dependencies: Debian's clang
# with libFuzzer and the sanitizer runtimes. Only the fuzzing script uses
# it (the unit tests replay the corpora with the normal compiler).
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "fuzz/install_deps.sh: run as root" >&2; exit 1; }
bash "$(dirname "$0")/../scripts/install_deps.sh"
packages=(clang libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -q
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
fi

#!/usr/bin/env bash
# Page cipher against this machine's limit: cmk's per-page AES-256-XTS
# (bench/page_cipher_bench) beside `openssl speed -evp aes-256-xts` at 8 KiB,
# alternating, several rounds; prints medians and the ratio, then the medians
# of the whole per-page paths (checksums, data page read and write, WAL page)
# and their ratios to openssl speed.
# Usage: bash bench/cipher.sh [rounds] [seconds per measurement]
#        bash bench/cipher.sh --survey [rounds] [seconds]   (as root: every
#          AES-256-XTS Debian 12 ships side by side, bench/xts_survey.cpp;
#          installs nettle-dev, libcrypto++-dev, libbotan-2-dev)
# Times are of the benchmark thread's CPU time, pinned to one CPU with
# taskset when it is there.
set -euo pipefail
cd "$(dirname "$0")/.."
pin=(); command -v taskset >/dev/null && pin=(taskset -c "$(( $(nproc) - 1 ))")
if [ "${1:-}" = --survey ]; then
  shift
  missing=()
  for p in nettle-dev libcrypto++-dev libbotan-2-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  make -s build/xts_survey >/dev/null
  exec "${pin[@]}" build/xts_survey "${1:-5}" "${2:-0.5}"
fi
rounds=${1:-3}
secs=${2:-3}
make -s build/page_cipher_bench >/dev/null

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
enc=(); dec=(); ossl=()
outs=$(mktemp); trap 'rm -f "$outs"' EXIT
for r in $(seq "$rounds"); do
  out=$("${pin[@]}" build/page_cipher_bench "$secs")
  echo "$out" >> "$outs"
  enc+=("$(echo "$out" | awk '/^cmk page encrypt/ {print $4}')")
  dec+=("$(echo "$out" | awk '/^cmk page decrypt/ {print $4}')")
  # openssl speed prints kB/s (1000 bytes) per block size: "aes-256-xts ... 8192 bytes" column.
  o=$(openssl speed -evp aes-256-xts -bytes 8192 -seconds "$secs" 2>/dev/null | awk '/^AES-256-XTS|^aes-256-xts/ {v=$NF} END {sub(/k$/,"",v); print v/1000}')
  ossl+=("$o")
  echo "round $r: cmk encrypt ${enc[-1]} MB/s, decrypt ${dec[-1]} MB/s, openssl ${o} MB/s"
done
echo "cmk's XTS: $(grep -m1 '^XTS by ' "$outs" | cut -c8-)"
me=$(printf '%s\n' "${enc[@]}" | median)
md=$(printf '%s\n' "${dec[@]}" | median)
mo=$(printf '%s\n' "${ossl[@]}" | median)
echo "median: cmk encrypt $me MB/s ($(awk -v a="$me" 'BEGIN{printf "%.0f", 8192e3/a}') ns/page), decrypt $md MB/s, openssl speed $mo MB/s"
awk -v e="$me" -v d="$md" -v o="$mo" 'BEGIN {printf "ratio to openssl speed: encrypt %.3f, decrypt %.3f\n", e/o, d/o}'
echo "per-page paths (medians; ratio to openssl speed's $mo MB/s):"
grep -E '^[A-Za-z].* MB/s, +[0-9]+ ns/page$' "$outs" | grep -v '^cmk page' | sed -E 's/ +([0-9]+) MB\/s, +([0-9]+) ns\/page$/|\1/' |
  awk -F'|' '{v[$1]=v[$1] " " $2; if (!($1 in seen)) {seen[$1]=1; order[++n]=$1}}
    END {for (i=1; i<=n; i++) print order[i] "|" v[order[i]]}' |
  while IFS='|' read -r label values; do
    m=$(printf '%s\n' $values | median)
    awk -v l="$label" -v m="$m" -v o="$mo" 'BEGIN {r = (l ~ /^checksum/) ? "" : sprintf("%.2fx", m/o); printf "  %-28s %6.0f MB/s  %5.0f ns/page  %s\n", l, m, 8192e3/m, r}'
  done
# The cold-scan read path: what decryption adds to a page copied from memory.
cold=$(grep '^cold read:' "$outs" | sed -E 's/.*copy only ([0-9]+).* in place ([0-9-]+) ns, via a scratch page ([0-9-]+) ns/\1 \2 \3/')
if [ -n "$cold" ]; then
  echo "cold read path (median of $(echo "$cold" | wc -l)): copy from memory $(echo "$cold" | awk '{print $1}' | median) ns/page;" \
       "decrypt in place adds $(echo "$cold" | awk '{print $2}' | median) ns, via a scratch page $(echo "$cold" | awk '{print $3}' | median) ns"
fi

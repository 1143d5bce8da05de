#!/usr/bin/env bash
# Page cipher against this machine's limit: cmk's per-page AES-256-XTS
# (bench/page_cipher_bench) beside `openssl speed -evp aes-256-xts` at 8 KiB,
# alternating, several rounds; prints medians and the ratio, then the medians
# of the whole per-page paths (checksums, data page read and write, WAL page)
# and their ratios to openssl speed.
# Usage: bash bench/cipher.sh [rounds] [seconds per measurement]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-3}
make -s build/page_cipher_bench >/dev/null

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
enc=(); dec=(); ossl=()
outs=$(mktemp); trap 'rm -f "$outs"' EXIT
for r in $(seq "$rounds"); do
  out=$(build/page_cipher_bench "$secs")
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


#!/usr/bin/env bash
# Page cipher against this machine's limit: cmk's per-page AES-256-XTS
# (bench/page_cipher_bench) beside `openssl speed -evp aes-256-xts` at 8 KiB,
# alternating, several rounds; prints medians and the ratio.
# Usage: bash bench/cipher.sh [rounds] [seconds per measurement]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-3}
make -s build/page_cipher_bench >/dev/null

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
enc=(); dec=(); ossl=()
for r in $(seq "$rounds"); do
  out=$(build/page_cipher_bench "$secs")
  enc+=("$(echo "$out" | awk '/encrypt/ {print $4}')")
  dec+=("$(echo "$out" | awk '/decrypt/ {print $4}')")
  # openssl speed prints kB/s (1000 bytes) per block size: "aes-256-xts ... 8192 bytes" column.
  o=$(openssl speed -evp aes-256-xts -bytes 8192 -seconds "$secs" 2>/dev/null | awk '/^AES-256-XTS|^aes-256-xts/ {v=$NF} END {sub(/k$/,"",v); print v/1000}')
  ossl+=("$o")
  echo "round $r: cmk encrypt ${enc[-1]} MB/s, decrypt ${dec[-1]} MB/s, openssl ${o} MB/s"
done
me=$(printf '%s\n' "${enc[@]}" | median)
md=$(printf '%s\n' "${dec[@]}" | median)
mo=$(printf '%s\n' "${ossl[@]}" | median)
echo "median: cmk encrypt $me MB/s ($(awk -v a="$me" 'BEGIN{printf "%.0f", 8192e3/a}') ns/page), decrypt $md MB/s, openssl speed $mo MB/s"
awk -v e="$me" -v d="$md" -v o="$mo" 'BEGIN {printf "ratio to openssl speed: encrypt %.3f, decrypt %.3f\n", e/o, d/o}'

#!/usr/bin/env bash
# Waits until the machine is quiet before a measurement: samples /proc/stat
# over 1 s and waits while more than MAX_BUSY of all CPU time is busy (other
# people's builds and tests on a shared machine), for at most MAX_WAIT s.
# Prints "busy=<fraction when it returned> waited=<s>"; never fails.
# Usage: bash bench/quiet.sh [MAX_BUSY=0.2] [MAX_WAIT=300]
max_busy=${1:-0.2}
max_wait=${2:-300}
sample() {
  local a b
  read -r _ u1 n1 s1 i1 w1 q1 sq1 st1 _ < /proc/stat
  sleep 1
  read -r _ u2 n2 s2 i2 w2 q2 sq2 st2 _ < /proc/stat
  a=$(( (u2 + n2 + s2 + q2 + sq2 + st2) - (u1 + n1 + s1 + q1 + sq1 + st1) ))
  b=$(( a + (i2 + w2) - (i1 + w1) ))
  awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'
}
start=$(date +%s)
while :; do
  busy=$(sample)
  waited=$(( $(date +%s) - start - 1 ))
  if awk -v x="$busy" -v m="$max_busy" 'BEGIN {exit !(x <= m)}' || [ "$waited" -ge "$max_wait" ]; then
    echo "busy=$busy waited=$waited"
    exit 0
  fi
  sleep 4
done

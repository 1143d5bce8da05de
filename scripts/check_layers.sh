#!/usr/bin/env bash
# Checks that the PostgreSQL glue (src/pg) calls one way (DESIGN.md "Layers"):
# each folder of src/pg is a layer, and a layer may include the headers of,
# and call, only itself and the layers below it. src/pg/cmk.c (the start-up
# sequence) is the top and may use every layer.
#   1. #include "pg/<layer>/..." lines of src/pg/<layer>/*.[ch] (no build needed);
#   2. calls and data references: the undefined symbols of a layer's objects
#      (nm) must not be defined by the objects of a higher layer (needs the
#      objects: run after `make`; skipped with a note when none are built);
#   3. no cycle of calls between any two objects, within a layer too.
# Exits 1, naming each offending file and symbol, when a layer reaches up.
# Usage: bash scripts/check_layers.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Lowest first.
LAYERS=(common bind keys cipher sweep sql)

rank_of() {
  local i
  for i in "${!LAYERS[@]}"; do
    [ "${LAYERS[$i]}" = "$1" ] && { echo "$i"; return; }
  done
  echo ""
}

fail=0
for dir in src/pg/*/; do
  layer=$(basename "$dir")
  if [ -z "$(rank_of "$layer")" ]; then
    echo "check_layers: src/pg/$layer/ is not a layer of DESIGN.md \"Layers\" (add it to LAYERS here and there)" >&2
    fail=1
  fi
done
for f in src/pg/*.h; do
  [ -e "$f" ] || continue
  echo "check_layers: $f: headers live in their layer's folder (one header per layer)" >&2
  fail=1
done

# 1. Includes.
for layer in "${LAYERS[@]}"; do
  r=$(rank_of "$layer")
  for f in src/pg/"$layer"/*.[ch]; do
    [ -e "$f" ] || continue
    while IFS=: read -r line target; do
      other=${target%%/*}
      o=$(rank_of "$other")
      if [ -z "$o" ]; then
        echo "check_layers: $f:$line includes \"pg/$target\", which is in no layer" >&2
        fail=1
      elif [ "$o" -gt "$r" ]; then
        echo "check_layers: $f:$line includes \"pg/$target\": $layer must not use $other (a higher layer)" >&2
        fail=1
      fi
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"pg/' "$f" | sed -E 's/^([0-9]+):.*"pg\/([^"]*)".*/\1:\2/')
  done
done

# 2. Symbols: who defines what, then who needs it.
objs=$(ls src/pg/*/*.o 2>/dev/null || true)
if [ -z "$objs" ]; then
  echo "check_layers: no objects under src/pg (run make first): calls not checked"
else
  defs=$(mktemp); trap 'rm -f "$defs"' EXIT
  for layer in "${LAYERS[@]}"; do
    for o in src/pg/"$layer"/*.o; do
      [ -e "$o" ] || continue
      nm --defined-only -g "$o" | awk -v l="$layer" -v o="$o" 'NF >= 3 {print $3, l, o}'
    done
  done > "$defs"
  for layer in "${LAYERS[@]}"; do
    r=$(rank_of "$layer")
    for o in src/pg/"$layer"/*.o; do
      [ -e "$o" ] || continue
      while read -r sym; do
        while read -r _ other where; do
          [ -n "$other" ] || continue
          if [ "$(rank_of "$other")" -gt "$r" ]; then
            echo "check_layers: $o uses $sym, defined in $where: $layer must not call $other (a higher layer)" >&2
            fail=1
          fi
        done < <(awk -v s="$sym" '$1 == s' "$defs")
      done < <(nm -u "$o" | awk '{print $2}')
    done
  done

  # 3. Cycles between objects: the edges "needs a symbol that one defines".
  edges=$(for o in $objs; do
    nm -u "$o" | awk '{print $2}' | while read -r sym; do
      awk -v s="$sym" -v o="$o" '$1 == s && $3 != o {print o, $3}' "$defs"
    done
  done | sort -u)
  cycle=$(echo "$edges" | python3 -c '
import sys, collections
g = collections.defaultdict(set)
for line in sys.stdin:
    if line.strip():
        a, b = line.split()
        g[a].add(b)
state, path = {}, []
def visit(v):
    state[v] = 1
    path.append(v)
    for w in sorted(g[v]):
        if state.get(w) == 1:
            return path[path.index(w):] + [w]
        if w not in state:
            found = visit(w)
            if found:
                return found
    state[v] = 2
    path.pop()
    return None
for v in sorted(g):
    if v not in state:
        found = visit(v)
        if found:
            print(" -> ".join(found))
            break
')
  if [ -n "$cycle" ]; then
    echo "check_layers: a cycle of calls between objects: $cycle" >&2
    fail=1
  fi
fi

if [ "$fail" -ne 0 ]; then
  echo "check_layers: FAILED: src/pg must call downwards only (${LAYERS[*]}, then cmk.c)" >&2
  exit 1
fi
echo "check_layers: ok (${LAYERS[*]}, then cmk.c; includes and calls one way, no cycle between objects)"

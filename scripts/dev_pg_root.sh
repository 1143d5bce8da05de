#!/usr/bin/env bash
# Makes a private, relocated copy of the installed PostgreSQL 15 (server,
# extension directories, PGXS and its TAP modules) under ROOT, so that
# several checkouts can build, install and test cmk at the same time without
# overwriting each other's cmk.so in the system's $libdir. PostgreSQL finds
# its lib and share directories relative to its binaries, so the copy is a
# complete server. Use it with scripts/test.sh:
#   bash scripts/dev_pg_root.sh /opt/pg-mine
#   CMK_PG_ROOT=/opt/pg-mine bash scripts/test.sh [test/t/NNN_name.pl ...]
# For development only; CI and the README's commands use the system install.
set -euo pipefail
root=${1:?usage: dev_pg_root.sh ROOT}
[ "$(id -u)" = 0 ] || { echo "dev_pg_root.sh: run as root" >&2; exit 1; }
[ -x /usr/lib/postgresql/15/bin/pg_config ] || bash "$(dirname "$0")/install_deps.sh"
if [ ! -x "$root/usr/lib/postgresql/15/bin/pg_config" ]; then
  mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql" "$root/usr/include"
  cp -a /usr/lib/postgresql/15 "$root/usr/lib/postgresql/"
  cp -a /usr/share/postgresql/15 "$root/usr/share/postgresql/"
  ln -sfn /usr/include/postgresql "$root/usr/include/postgresql"
fi
"$root/usr/lib/postgresql/15/bin/pg_config" --pkglibdir

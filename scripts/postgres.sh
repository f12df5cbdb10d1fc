#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the study-storage tests (Debian's postgresql 15).
#
#   url="$(scripts/postgres.sh start)"   # -> postgresql://postgres@127.0.0.1:PORT/tabtune
#   scripts/postgres.sh stop "$url"      # stops it and deletes its folder
#
# `start` creates a cluster in $TABTUNE_PG_ROOT (default /tmp/tabtune-pg) as pg-PORT on a
# free port, listening on 127.0.0.1 only, trust authentication, a database `tabtune`, and prints
# its URL on stdout (logs on stderr). initdb refuses to run as root, so as root the cluster belongs
# to the `postgres` user (runuser). Needs /usr/lib/postgresql/15/bin (apt-get install postgresql).
set -euo pipefail
cmd="${1:?usage: scripts/postgres.sh start | stop URL}"
bin="${TABTUNE_PG_BIN:-/usr/lib/postgresql/15/bin}"
# Not under $HOME: as root, the `postgres` user that owns the cluster cannot enter /root.
root="${TABTUNE_PG_ROOT:-${TMPDIR:-/tmp}/tabtune-pg}"

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
start)
  if [ ! -x "$bin/initdb" ]; then
    echo "postgres.sh: $bin/initdb not found; install PostgreSQL 15 (apt-get install postgresql) or set TABTUNE_PG_BIN" >&2
    exit 1
  fi
  mkdir -p "$root"
  # A free port: bind to port 0 and read what the kernel chose.
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  dir="$root/pg-$port"
  rm -rf "$dir"
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$root" "$dir"
  fi
  as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    echo "postgres.sh: initdb failed (log above)" >&2
    exit 1
  }
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >&2 || {
    cat "$dir/server.log" >&2
    echo "postgres.sh: the server did not start (log above)" >&2
    exit 1
  }
  as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres tabtune >&2
  echo "postgres.sh: PostgreSQL running in $dir" >&2
  echo "postgresql://postgres@127.0.0.1:$port/tabtune"
  ;;
stop)
  url="${2:?usage: scripts/postgres.sh stop URL}"
  port="${url##*:}"
  port="${port%%/*}"
  dir="$root/pg-$port"
  if [ -d "$dir/data" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >&2 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: scripts/postgres.sh start | stop URL" >&2
  exit 2
  ;;
esac

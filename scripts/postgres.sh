#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the study-storage tests (Debian's or Ubuntu's postgresql).
#
#   url="$(scripts/postgres.sh start)"   # -> postgresql://postgres@127.0.0.1:PORT/tabtune
#   scripts/postgres.sh stop "$url"      # stops it and deletes its folder
#
# `start` creates a cluster in $TABTUNE_PG_ROOT (default /tmp/tabtune-pg-USER) as pg-PORT on a
# free port, listening on 127.0.0.1 only, trust authentication, a database `tabtune`, and prints
# its URL on stdout (logs on stderr). initdb refuses to run as root, so as root the cluster belongs
# to the `postgres` user (runuser); as a normal user (GitHub's runners) it belongs to that user.
# The server binaries are $TABTUNE_PG_BIN, or else those of the newest major version under
# /usr/lib/postgresql (Debian 12 ships 15, Ubuntu 24.04 16); with none there, `start` installs
# the `postgresql` package (scripts/apt-install.sh: as root or through passwordless sudo).
set -euo pipefail
cmd="${1:?usage: scripts/postgres.sh start | stop URL}"
here="$(cd "$(dirname "$0")" && pwd)"
# Not under $HOME: as root, the `postgres` user that owns the cluster cannot enter /root. One
# folder per user: root's belongs to `postgres`, where another user could not create clusters.
root="${TABTUNE_PG_ROOT:-${TMPDIR:-/tmp}/tabtune-pg-$(id -un)}"

# The bin folder of the newest installed major version (empty when there is none).
newest_bin() {
  local initdb newest=""
  # Numeric order of the major version (a glob sorts 9.6 after 16).
  for initdb in /usr/lib/postgresql/*/bin/initdb; do
    [ -x "$initdb" ] || continue
    if [ -z "$newest" ] || [ "$(printf '%s\n' "$newest" "$initdb" | sort -V | tail -n 1)" = "$initdb" ]; then
      newest="$initdb"
    fi
  done
  if [ -n "$newest" ]; then
    dirname "$newest"
  fi
}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
start)
  if [ -n "${TABTUNE_PG_BIN:-}" ]; then
    bin="$TABTUNE_PG_BIN"
    if [ ! -x "$bin/initdb" ]; then
      echo "postgres.sh: TABTUNE_PG_BIN=$bin has no initdb; point it at PostgreSQL's bin folder or unset it" >&2
      exit 1
    fi
  else
    bin="$(newest_bin)"
    if [ -z "$bin" ]; then
      echo "postgres.sh: no PostgreSQL under /usr/lib/postgresql; installing the postgresql package" >&2
      "$here/apt-install.sh" postgresql
      bin="$(newest_bin)"
      if [ -z "$bin" ]; then
        echo "postgres.sh: the postgresql package is installed but /usr/lib/postgresql/*/bin/initdb is not there; set TABTUNE_PG_BIN" >&2
        exit 1
      fi
    fi
  fi
  echo "postgres.sh: using $bin ($("$bin/postgres" --version))" >&2
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
  # `stop` uses the same binaries, whatever TABTUNE_PG_BIN says by then.
  echo "$bin" >"$dir/bin"
  echo "postgres.sh: PostgreSQL running in $dir" >&2
  echo "postgresql://postgres@127.0.0.1:$port/tabtune"
  ;;
stop)
  url="${2:?usage: scripts/postgres.sh stop URL}"
  port="${url##*:}"
  port="${port%%/*}"
  dir="$root/pg-$port"
  if [ -d "$dir/data" ]; then
    bin="$(cat "$dir/bin" 2>/dev/null || true)"
    bin="${bin:-${TABTUNE_PG_BIN:-$(newest_bin)}}"
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >&2 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: scripts/postgres.sh start | stop URL" >&2
  exit 2
  ;;
esac

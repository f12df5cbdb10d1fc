#!/usr/bin/env bash
# Creates (or reuses) the Python virtual environment NAME for interop tests and benchmarks and
# prints its python's path on stdout. Packages come pinned from scripts/requirements-NAME.txt; the
# venv lives in $TABTUNE_VENV_ROOT (default $HOME/.cache/tabtune) as venv-NAME and is rebuilt
# whenever the requirements file changes (a stamp holds its sha256). Safe to run concurrently: a
# lock file serialises the installs of one venv. When `python3 -m venv` fails because Debian's or
# Ubuntu's python3-venv is missing, it installs that (scripts/apt-install.sh: root or sudo).
#
#   scripts/py-env.sh interop      # -> /root/.cache/tabtune/venv-interop/bin/python
set -euo pipefail
name="${1:?usage: scripts/py-env.sh NAME (reads scripts/requirements-NAME.txt)}"
here="$(cd "$(dirname "$0")" && pwd)"
req="$here/requirements-$name.txt"
if [ ! -f "$req" ]; then
  echo "py-env: $req does not exist" >&2
  exit 2
fi
root="${TABTUNE_VENV_ROOT:-$HOME/.cache/tabtune}"
venv="$root/venv-$name"
mkdir -p "$root"
want="$(sha256sum "$req" | cut -d' ' -f1)"
exec 9>"$root/venv-$name.lock"
flock 9
if [ ! -f "$venv/.tabtune-stamp" ] || [ "$(cat "$venv/.tabtune-stamp")" != "$want" ]; then
  echo "py-env: installing $req into $venv" >&2
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>"$venv.err"; then
    # Debian and Ubuntu ship venv's pip bootstrap in a separate package.
    echo "py-env: python3 -m venv failed ($(tail -n 1 "$venv.err")); installing python3-venv" >&2
    rm -rf "$venv"
    "$here/apt-install.sh" python3-venv
    python3 -m venv "$venv"
  fi
  rm -f "$venv.err"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  echo "$want" >"$venv/.tabtune-stamp"
fi
echo "$venv/bin/python"

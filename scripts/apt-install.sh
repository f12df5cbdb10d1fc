#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages among PACKAGE... that are not installed yet, as root or,
# for a normal user, through passwordless sudo (GitHub's hosted runners). With nothing missing it
# needs neither. Without root or passwordless sudo it fails and names the packages to install.
# apt's output goes to stderr, so callers can keep stdout for their own results.
#
#   scripts/apt-install.sh mesa-vulkan-drivers libvulkan1
set -euo pipefail
if [ "$#" -eq 0 ]; then
  echo "usage: scripts/apt-install.sh PACKAGE..." >&2
  exit 2
fi

missing=()
for package in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "apt-install: already installed: $*" >&2
  exit 0
fi

# As root, apt-get runs directly; otherwise through `sudo -n` (never a password prompt).
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "apt-install: ${missing[*]} must be installed, which needs root: run this as root, give" \
    "$(id -un) passwordless sudo, or run \`apt-get install ${missing[*]}\` as root yourself" >&2
  exit 1
fi

echo "apt-install: installing ${missing[*]}${as_root[*]:+ (through ${as_root[*]})}" >&2
"${as_root[@]}" apt-get update -qq >&2
# sudo resets the environment: DEBIAN_FRONTEND goes through `env`.
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2

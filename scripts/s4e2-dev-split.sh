#!/usr/bin/env bash
# Makes the project's development copy of the datasets (what ../shared/data holds on the
# development machines and what the tests expect) from the files `tabtune data fetch` downloads:
#
#   scripts/s4e2-dev-split.sh FETCHED_DIR OUT_DIR
#
# FETCHED_DIR holds the fetched obesity_uci.csv, s4e2_test.csv and s4e2_train.csv (the
# competition's full 20758-row train.csv). OUT_DIR gets the first two unchanged and, as
# s4e2_train.csv, the stratified 80% development split: train.csv without the 4151 rows whose ids
# are in scripts/s4e2-holdout-ids.txt, lines and their order unchanged. Every file's sha256 is
# checked (data/README.md lists them); a mismatch writes nothing and fails.
set -euo pipefail
usage="usage: scripts/s4e2-dev-split.sh FETCHED_DIR OUT_DIR"
from="${1:?$usage}"
out="${2:?$usage}"
here="$(cd "$(dirname "$0")" && pwd)"
held="$here/s4e2-holdout-ids.txt"

# sha256 of the fetched files (configs/obesity.toml's [[data.sources]]) and of the outputs.
uci_sha=2060394fe563eefcdd81545c42435d399cd4fcfc6f12b75579db562adbefadcb
test_sha=662c27acc06073c2240b91940b72d48cb3c1ebd4ff89fb22b354e46f8363cbb3
full_train_sha=fec835cc642ffbc3274a026abfe465d0aaceedfe2f7b35d987029f676d7dae6d
dev_train_sha=704c00cc4557418a8d13b868c7128ad0b316d5e0e7a2b643518ef7c001a82f88

check_sha() {
  local file="$1" want="$2" got
  if [ ! -f "$file" ]; then
    echo "s4e2-dev-split: $file is missing (run \`tabtune --data-dir $from data fetch\` first)" >&2
    return 1
  fi
  got="$(sha256sum "$file" | cut -d' ' -f1)"
  if [ "$got" != "$want" ]; then
    echo "s4e2-dev-split: $file has sha256 $got, expected $want" >&2
    return 1
  fi
}

check_sha "$from/obesity_uci.csv" "$uci_sha"
check_sha "$from/s4e2_test.csv" "$test_sha"
check_sha "$from/s4e2_train.csv" "$full_train_sha"

mkdir -p "$out"
tmp="$(mktemp "$out/.s4e2_train.csv.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
# The header, then every row whose id (the first field) is not held back.
awk -F, 'NR == FNR { if ($0 !~ /^#/ && $0 != "") held[$1]; next }
  FNR == 1 || !($1 in held)' "$held" "$from/s4e2_train.csv" >"$tmp"
if ! check_sha "$tmp" "$dev_train_sha"; then
  echo "s4e2-dev-split: the development split does not have the expected sha256; nothing was written" >&2
  exit 1
fi
cp "$from/obesity_uci.csv" "$from/s4e2_test.csv" "$out/"
mv "$tmp" "$out/s4e2_train.csv"
chmod 644 "$out/s4e2_train.csv"
echo "s4e2-dev-split: $out holds obesity_uci.csv, s4e2_test.csv and the development s4e2_train.csv (sha256 checked)" >&2

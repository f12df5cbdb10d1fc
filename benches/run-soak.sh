#!/usr/bin/env bash
# Serving soak (benches/README.md, "Serving soak"): the server under ~1,000 req/s of mixed valid
# and invalid bodies for 2 minutes plus 200 slow (slowloris) connections, with the server's
# resident memory sampled every 5 s. Server and load generator are the release build of
# crates/tabtune-infer/examples/soak.rs (its docs list the request mix); the server runs with the
# default limits (ServeOptions::default(): the README's server limits table), 2 runtime threads.
# Before the soak the client sends 100 amplification bodies (1 MB, 340,000 empty records) back to
# back, so the memory series shows what they cost.
# Usage: benches/run-soak.sh   (TABTUNE_DATA_DIR defaults to ../shared/data;
# SOAK_SECONDS (120), SOAK_RATE (1000), SOAK_SLOW (200), SOAK_CONNECTIONS (64) change the load;
# SOAK_ARGS=--valid-only makes every request valid, for comparison; SOAK_PIN=1 pins the server to
# CPU 0 and the load generator to CPU 1 (taskset), so the client's bursts do not preempt the
# server: the nearest this 2-vCPU machine gets to a load generator on another machine, with the
# server on one vCPU instead of two).
# Results: $CARGO_TARGET_DIR/bench-results/soak/{summary.json,load.json,rss.csv,server.log}.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${TABTUNE_DATA_DIR:-../shared/data}"
target="${CARGO_TARGET_DIR:-target}"
seconds="${SOAK_SECONDS:-120}"
rate="${SOAK_RATE:-1000}"
slow="${SOAK_SLOW:-200}"
connections="${SOAK_CONNECTIONS:-64}"
out="$target/bench-results/soak"
mkdir -p "$out"
work="$(mktemp -d)"
server_pid=""
sampler_pid=""
cleanup() {
  [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# 512 connections (the server's default cap) + the client's own sockets.
ulimit -n 4096

echo "== building the soak example (release)" >&2
cargo build --release -q -p tabtune-infer --example soak
soak="$(cd "$target/release/examples" && pwd)/soak"

echo "== fitting the bundle (leaf-wise GBDT, 200 rounds) on s4e2_train.csv" >&2
"$soak" bundle --train "$data/s4e2_train.csv" --config configs/obesity.toml --out "$work/bundle"

echo "== serving" >&2
server_cpus=()
client_cpus=()
if [ "${SOAK_PIN:-0}" = 1 ]; then
  server_cpus=(taskset -c 0)
  client_cpus=(taskset -c 1)
fi
"${server_cpus[@]}" "$soak" serve --model "$work/bundle" --threads 2 2>"$out/server.log" &
server_pid=$!
url=""
for _ in $(seq 1 100); do
  url="$(grep -o 'http://[0-9.:]*' "$out/server.log" | head -1 || true)"
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "run-soak: the server did not start" >&2; cat "$out/server.log" >&2; exit 1; }
addr="${url#http://}"

# Resident memory every 5 s: seconds since start, VmRSS and VmHWM (peak) in kB.
echo "t_s,rss_kb,hwm_kb" >"$out/rss.csv"
(
  t=0
  while kill -0 "$server_pid" 2>/dev/null; do
    rss="$(awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status")"
    hwm="$(awk '/^VmHWM/ {print $2}' "/proc/$server_pid/status")"
    echo "$t,$rss,$hwm" >>"$out/rss.csv"
    sleep 5
    t=$((t + 5))
  done
) &
sampler_pid=$!

echo "== load: $rate req/s for $seconds s over $connections connections, $slow slow connections" >&2
load_avg_before="$(cut -d' ' -f1 /proc/loadavg)"
"${client_cpus[@]}" "$soak" load --addr "$addr" --rows "$data/s4e2_test.csv" --rate "$rate" --seconds "$seconds" \
  --connections "$connections" --slow "$slow" --burst-amplification 100 ${SOAK_ARGS:-} >"$out/load.json"
load_avg_after="$(cut -d' ' -f1 /proc/loadavg)"
sleep 6
kill "$sampler_pid" 2>/dev/null || true

python3 - "$out" "$load_avg_before" "$load_avg_after" <<'PY'
import csv, json, sys
out, before, after = sys.argv[1], sys.argv[2], sys.argv[3]
load = json.load(open(f"{out}/load.json"))
rss = [(int(r["t_s"]), int(r["rss_kb"]), int(r["hwm_kb"])) for r in csv.DictReader(open(f"{out}/rss.csv"))]
summary = {
    "load": load,
    "rss_mb": [{"t_s": t, "rss": round(r / 1024, 1), "peak": round(h / 1024, 1)} for t, r, h in rss],
    "rss_mb_first_last_max": [round(rss[0][1] / 1024, 1), round(rss[-1][1] / 1024, 1), round(max(r for _, r, _ in rss) / 1024, 1)],
    "peak_mb": round(rss[-1][2] / 1024, 1),
    "load_average_before_after": [before, after],
    "pinned": __import__("os").environ.get("SOAK_PIN", "0") == "1",
}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
lat = load["valid_latency_ms"]
print(f"valid requests: {load['valid_200']} answered 200, p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, max {lat['max']:.1f} ms")
print(f"rate achieved {load['rate_achieved']:.0f} req/s, transport errors {load['transport_errors']}")
print(f"slow connections: {load['slow_connections']}")
print(f"RSS first/last/max MB: {summary['rss_mb_first_last_max']}, peak {summary['peak_mb']} MB")
PY

#!/usr/bin/env bash
# Figures for BENCHMARKS.md: starts a single-machine cluster (release build,
# its own data dir, free ports), then measures
#   - `wasmesos submit hello.wasm --wait` as a user runs it (process start
#     included), N times in a row;
#   - `wasmesos bench`: submit → output/end latency through the API, and
#     1,000 queued hello jobs on the one local agent.
# Prints figures; asserts nothing. Usage: scripts/bench.sh [CLI_RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}

./scripts/setup.sh
cargo build --release -p wasmesos >&2
bin=$PWD/target/release/wasmesos
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

"$bin" up --listen 127.0.0.1:0 --agent-listen 127.0.0.1:0 --resources cpus:2,mem:4GiB,disk:1GiB \
  --data-dir "$work/data" --addr-file "$work/addr" -q >"$work/up.out" 2>"$work/up.err" &
for _ in $(seq 200); do [ -s "$work/addr" ] && break; sleep 0.05; done
export WASMESOS_MASTER="http://$(cat "$work/addr")"
until "$bin" agents 2>/dev/null | grep -q ACTIVE; do sleep 0.05; done
hello="$work/data/examples/hello.wasm"

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(hostname) nproc=$(nproc) kernel=$(uname -r)"
echo "# fsync: $(dd if=/dev/zero of="$work/fsync" bs=4k count=200 oflag=dsync 2>&1 | tail -1)"

"$bin" submit "$hello" --wait -- warmup >/dev/null
times=()
for _ in $(seq "$runs"); do
  t0=$(date +%s%N)
  "$bin" submit "$hello" --wait -- a b >/dev/null
  t1=$(date +%s%N)
  times+=($(( (t1 - t0) / 1000 )))
done
printf '%s\n' "${times[@]}" | sort -n | awk -v n="$runs" '
  { v[NR] = $1 }
  END { printf "bench=cli-submit-wait runs=%d p50_ms=%.2f p99_ms=%.2f\n", n, v[int((n-1)*0.5)+1]/1000, v[int((n-1)*0.99)+1]/1000 }'

"$bin" bench --latency 200 --jobs 1000
"$bin" bench --latency 0 --jobs 1000 --cpus 0.01 --mem 16MiB

#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/, over the wasmesos-fuzzing crate) with
# libFuzzer for a while each, on the stable toolchain (no sanitizer: Rust's
# own checks and the targets' oracles find the bugs).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     # default: 300, module request
#
# New inputs go to fuzz/corpus/TARGET (not committed); crashes to
# fuzz/artifacts/TARGET. Keep an input that found a bug, after fixing it,
# in fuzzing/corpus/TARGET/ so the test suite replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(module request)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo run -q -p wasmesos-fuzzing --example write-seeds -- fuzz/corpus
cd fuzz
cargo fuzz build --sanitizer none -O
for t in "${targets[@]}"; do
  echo "== $t: ${seconds}s"
  # -max_len: module seeds are small; a large input only slows the search.
  cargo fuzz run --sanitizer none -O "$t" "corpus/$t" "../fuzzing/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=6144 -max_len=65536 \
    -print_final_stats=1
done

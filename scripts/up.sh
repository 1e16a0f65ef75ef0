#!/usr/bin/env bash
# The README's first command: build everything (host binaries and the Wasm
# guests), start a single-machine cluster in the foreground, run the bundled
# hello task, print its output and what to try next, and serve until Ctrl-C.
# Extra arguments go to `wasmesos up` (e.g. --listen 127.0.0.1:6050).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
echo "building wasmesos (the first build compiles wasmtime: several minutes)…"
cargo build --release -p wasmesos
exec ./target/release/wasmesos up --demo "$@"

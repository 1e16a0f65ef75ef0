#!/usr/bin/env bash
# Installs what building wasmesos needs beyond the Rust toolchain itself:
# the wasm targets the guests (examples/, sdk/) are built for. Idempotent.
set -euo pipefail

if ! command -v rustup >/dev/null 2>&1; then
  echo "setup: rustup is required (https://rustup.rs)" >&2
  exit 1
fi
installed=$(rustup target list --installed)
missing=()
for t in wasm32-wasip1 wasm32-wasip2; do
  grep -qx "$t" <<<"$installed" || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: rustup target add ${missing[*]}"
  rustup target add "${missing[@]}"
fi

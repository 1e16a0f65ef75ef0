#!/usr/bin/env bash
# The README's second command: the whole test suite, from a clean checkout.
# Host crates, the guest SDK and examples (their logic, natively; the Python
# example's too), and the whole-system tests that start real master and
# agent processes.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

step() { printf '\n== %s\n' "$*"; }

step "Python scheduler example: component (componentize-py), for the system tests"
./scripts/build-python.sh

step "format"
cargo fmt --all -- --check
cargo fmt --manifest-path examples/Cargo.toml --all -- --check

step "host workspace: unit and system tests (guests are built once, by wasmesos-builtin)"
cargo test --workspace --no-fail-fast

step "guest SDK and examples: their logic, tested on the host"
cargo test --manifest-path sdk/Cargo.toml --target-dir target/guests-host
cargo test --manifest-path examples/Cargo.toml --workspace --target-dir target/guests-host
./scripts/build-python.sh --test

step "lints (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

echo
echo "all tests passed"

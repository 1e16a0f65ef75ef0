#!/usr/bin/env bash
# Installs what building wasmesos needs beyond the Rust toolchain itself:
# the wasm targets the guests (examples/, sdk/) are built for, and
# componentize-py for the Python example. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

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

# componentize-py, for the Python scheduler example (scripts/build-python.sh),
# in a virtual environment of its own under target/.
COMPONENTIZE_PY_VERSION=0.25.1
pyenv=target/pyenv
if [ "$("$pyenv/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
  if ! command -v python3 >/dev/null 2>&1; then
    echo "setup: python3 (with venv and pip) is required for componentize-py" >&2
    exit 1
  fi
  echo "setup: installing componentize-py $COMPONENTIZE_PY_VERSION into $pyenv"
  [ -x "$pyenv/bin/pip" ] || python3 -m venv "$pyenv"
  "$pyenv/bin/pip" install --quiet --disable-pip-version-check \
    "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

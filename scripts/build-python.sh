#!/usr/bin/env bash
# Builds the Python scheduler example (examples/python) into a component of
# the wasmesos:scheduler world with componentize-py:
#   target/guests/python-scheduler.wasm
# Incremental and quiet: does nothing when the output is newer than the
# example's sources, wit/ and componentize-py itself. Needs ./scripts/setup.sh
# (which installs componentize-py into target/pyenv).
#
# --test: also run the example's unit tests natively (CPython, against the
# generated bindings in target/python-bindings and an in-memory state).
set -euo pipefail
cd "$(dirname "$0")/.."

tool=target/pyenv/bin/componentize-py
out=target/guests/python-scheduler.wasm
bindings=target/python-bindings

if [ ! -x "$tool" ]; then
  echo "build-python: $tool is missing: run ./scripts/setup.sh" >&2
  exit 1
fi

# True when $1 is missing or older than any of the inputs that follow it
# (Python and WIT files, and componentize-py itself); tests are no input.
stale() {
  local target=$1
  shift
  [ ! -e "$target" ] || [ -n "$(find "$@" "$tool" -newer "$target" -not -path '*/tests/*' \
    \( -name '*.py' -o -name '*.wit' -o -name componentize-py \) -print -quit)" ]
}

if stale "$out" examples/python wit; then
  mkdir -p "$(dirname "$out")"
  echo "build-python: componentize-py → $out"
  started=$(date +%s%N)
  # Build aside and rename, so that an interrupted build never looks up to
  # date.
  "$tool" -q -d wit -w scheduler componentize -p examples/python app -o "$out.tmp"
  mv "$out.tmp" "$out"
  ms=$((($(date +%s%N) - started) / 1000000))
  echo "build-python: $(stat -c %s "$out") bytes in $((ms / 1000)).$((ms % 1000 / 100)) s"
fi

if [ "${1:-}" = "--test" ]; then
  if stale "$bindings/wit_world" wit; then
    rm -rf "$bindings"
    "$tool" -q -d wit -w scheduler bindings "$bindings"
  fi
  PYTHONPATH="$bindings:examples/python" PYTHONDONTWRITEBYTECODE=1 \
    target/pyenv/bin/python -m unittest discover -s examples/python/tests
fi

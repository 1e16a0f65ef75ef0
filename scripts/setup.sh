#!/usr/bin/env bash
# Installs what building wasmesos needs beyond the Rust toolchain itself:
# the wasm targets the guests (examples/, sdk/) are built for,
# componentize-py for the Python example, protoc, etcd and Chromium (for
# the browser test). Idempotent.
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

# Debian packages: etcd (Debian's etcd-server), for the high-availability
# store backend and its tests, which start their own member on loopback; and
# protoc, which the etcd client's build script needs.
packages=()
command -v etcd >/dev/null 2>&1 || packages+=(etcd-server)
command -v protoc >/dev/null 2>&1 || packages+=(protobuf-compiler)
# Headless Chromium and its WebDriver, for the web UI's browser test
# (tests/system/ui.rs).
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || packages+=(chromium-driver)
# The TLS system test makes its certificates with openssl and calls the
# API with curl.
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
command -v curl >/dev/null 2>&1 || packages+=(curl)
if [ ${#packages[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: missing ${packages[*]} and there is no apt-get: install etcd 3.4+, protoc, chromium, chromedriver, openssl and curl yourself" >&2
    exit 1
  fi
  sudo_=""
  [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  echo "setup: apt-get install ${packages[*]}"
  $sudo_ apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${packages[@]}" >/dev/null
  # The package may start a system member on 2379; the tests use their own.
  if command -v systemctl >/dev/null 2>&1; then
    $sudo_ systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
fi

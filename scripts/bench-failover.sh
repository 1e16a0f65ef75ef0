#!/usr/bin/env bash
# Figures for BENCHMARKS.md: failover on etcd. Starts an etcd member, two
# masters sharing it (--leader-ttl TTL) and one agent, submits a task, then
# kill -9s the leader and measures, ROUNDS times (the killed master comes
# back as the standby each round):
#   - kill → the standby answers as leader (`wasmesos status`);
#   - kill → the agent is registered with it again;
#   - kill → a submitted task has run to its end through the new leader.
# Prints figures; asserts nothing. Usage: scripts/bench-failover.sh [TTL] [ROUNDS]
# (WASMESOS_BIN=path skips the release build and uses that binary.)
set -euo pipefail
cd "$(dirname "$0")/.."
ttl=${1:-3s}
rounds=${2:-5}

./scripts/setup.sh
if [ -z "${WASMESOS_BIN:-}" ]; then
  cargo build --release -p wasmesos >&2
fi
bin=${WASMESOS_BIN:-$PWD/target/release/wasmesos}
work=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cport=$(free_port); pport=$(free_port); p1=$(free_port); p2=$(free_port)
etcd --name b --data-dir "$work/etcd" \
  --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
  --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
  --initial-cluster "b=http://127.0.0.1:$pport" >"$work/etcd.log" 2>&1 &
until curl -fs "http://127.0.0.1:$cport/health" >/dev/null 2>&1; do sleep 0.1; done

# Both masters keep the same admin and agent tokens valid (the first to
# lead generates them); the CLI and the agent use them.
export WASMESOS_ADMIN_TOKEN_FILE="$work/admin.token" WASMESOS_AGENT_TOKEN_FILE="$work/agent.token"
export WASMESOS_TOKEN_FILE="$WASMESOS_ADMIN_TOKEN_FILE" WASMESOS_CONFIG="$work/config.toml"
start_master() { # name port
  "$bin" master --store "etcd://127.0.0.1:$cport" --listen "127.0.0.1:$2" --data-dir "$work/$1" \
    --leader-ttl "$ttl" >>"$work/$1.log" 2>&1 &
  echo $! >"$work/$1.pid"
}
start_master m1 "$p1"
until [ -s "$WASMESOS_AGENT_TOKEN_FILE" ]; do sleep 0.1; done
start_master m2 "$p2"
export WASMESOS_MASTER="http://127.0.0.1:$p1,http://127.0.0.1:$p2"
"$bin" agent --master "$WASMESOS_MASTER" --listen 127.0.0.1:0 --resources cpus:2,mem:2GiB,disk:1GiB \
  --work-dir "$work/agent" --token-file "$WASMESOS_AGENT_TOKEN_FILE" >"$work/agent.log" 2>&1 &
until "$bin" agents 2>/dev/null | grep -q ACTIVE; do sleep 0.1; done
hello="$work/hello.wasm"
cp target/guests/wasm32-wasip1/release/hello.wasm "$hello"
"$bin" submit "$hello" --wait >/dev/null

now() { date +%s.%N; }
ms() { python3 -c "print(round(($2 - $1) * 1000))"; }
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) host=$(hostname) nproc=$(nproc) leader_ttl=$ttl"
for round in $(seq "$rounds"); do
  leader=$("$bin" status | awk '/^master/ {print $2}')
  port=${leader##*:}
  name=m1; [ "$port" = "$p2" ] && name=m2
  kill -9 "$(cat "$work/$name.pid")"; wait "$(cat "$work/$name.pid")" 2>/dev/null || true
  t0=$(now)
  until "$bin" status 2>/dev/null | grep -q "^master .*127.0.0.1:$( [ $name = m1 ] && echo "$p2" || echo "$p1")"; do sleep 0.02; done
  t1=$(now)
  until "$bin" agents 2>/dev/null | grep -q ACTIVE; do sleep 0.02; done
  t2=$(now)
  "$bin" submit "$hello" --wait >/dev/null
  t3=$(now)
  echo "bench=failover round=$round leader_answers_ms=$(ms "$t0" "$t1") agent_back_ms=$(ms "$t0" "$t2") task_done_ms=$(ms "$t0" "$t3")"
  start_master "$name" "$port"
  sleep 1
done

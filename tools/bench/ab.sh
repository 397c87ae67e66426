#!/usr/bin/env bash
# A/B of two rmq-fast builds under the same load, alternating, on this machine.
#
# Usage: tools/bench/ab.sh OLD_DIR NEW_DIR [ROUNDS] [FLUSH] -- rmq-fast-bench produce args...
#   OLD_DIR/NEW_DIR hold an `rmq-fast` binary each (e.g. a worktree's target/release).
#   Each round restarts a fresh name server + broker (store in a temp dir) per build, warms
#   up 2 s, then runs `rmq-fast-bench produce ARGS --duration 6` and prints msg/s, p50/p99
#   and the broker's CPU per message (utime+stime from /proc). Builds alternate so drift on a
#   shared machine hits both; compare within one invocation only.
# Env: BENCH (rmq-fast-bench binary), BASE_PORT (name server port, default 19976), BROKER_PORT
# (default BASE_PORT + 1035), OLD_CONF / NEW_CONF (extra broker.conf lines of each build, e.g.
# NEW_CONF=idlePollMicros=200; a key given again overrides, so one binary can be A/B'd against
# itself with two settings).
# Example: tools/bench/ab.sh /tmp/old target/release 3 ASYNC_FLUSH -- --threads 64 --size 128
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BENCH="${BENCH:-$ROOT/target/release/rmq-fast-bench}"
OLD="$1"; NEW="$2"; shift 2
ROUNDS=3; FLUSH=ASYNC_FLUSH
[[ $# -gt 0 && $1 != -- ]] && { ROUNDS="$1"; shift; }
[[ $# -gt 0 && $1 != -- ]] && { FLUSH="$1"; shift; }
[[ ${1:-} == -- ]] && shift
NS_PORT=${BASE_PORT:-19976}; BR_PORT=${BROKER_PORT:-$((NS_PORT + 1035))}; NS="127.0.0.1:$NS_PORT"
WORK="$(mktemp -d /tmp/rmq-ab.XXXXXX)"
NS_PID=""; BR_PID=""

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap 'stop; rm -rf "$WORK"' EXIT

start() { # bin-dir extra-conf
  rm -rf "$WORK/run" && mkdir -p "$WORK/run/logs"
  printf 'listenPort=%s\n' "$NS_PORT" >"$WORK/run/ns.properties"
  cat >"$WORK/run/broker.conf" <<EOF
brokerName=ab-broker
brokerIP1=127.0.0.1
listenPort=$BR_PORT
namesrvAddr=$NS
flushDiskType=$FLUSH
storePathRootDir=$WORK/run/store
logDir=$WORK/run/logs
$2
EOF
  "$1/rmq-fast" namesrv -c "$WORK/run/ns.properties" >"$WORK/run/logs/ns.out" 2>&1 &
  NS_PID=$!
  wait_port "$NS_PORT"
  "$1/rmq-fast" broker -c "$WORK/run/broker.conf" >"$WORK/run/logs/broker.out" 2>&1 &
  BR_PID=$!
  wait_port "$BR_PORT"
  sleep 1
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for ((round = 1; round <= ROUNDS; round++)); do
  for build in old new; do
    dir=$OLD conf=${OLD_CONF:-}
    [[ $build == new ]] && dir=$NEW conf=${NEW_CONF:-}
    start "$dir" "$conf"
    "$BENCH" produce -n "$NS" --topic AbTopic --duration 2 "$@" >/dev/null 2>&1 || true
    t0=$(ticks "$BR_PID")
    out=$("$BENCH" produce -n "$NS" --topic AbTopic --duration 6 "$@" 2>&1)
    t1=$(ticks "$BR_PID")
    stop
    sent=$(grep -oE '^send: [0-9]+' <<<"$out" | grep -oE '[0-9]+' || echo 0)
    rate=$(grep -oE '[0-9.]+ msg/s' <<<"$out" | head -1)
    # The summary line (`send ms: min .. p50 .. p99 .. p99.9 ..`), not the per-second lines.
    lat=$(grep -E ' ms: min ' <<<"$out" | head -1 |
      grep -oE 'p50 [0-9.]+|p99 [0-9.]+|p99\.9 [0-9.]+' | tr '\n' ' ' || true)
    cpu=$(awk -v t="$((t1 - t0))" -v n="$sent" -v hz="$(getconf CLK_TCK)" \
      'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }')
    echo "round $round $build: ${rate:-no result} ${lat}broker CPU µs/msg $cpu"
  done
done

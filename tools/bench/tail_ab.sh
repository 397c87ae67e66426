#!/usr/bin/env bash
# Send tail at a fixed rate: broker settings and the null broker, interleaved in one run.
#
# Usage: tools/bench/tail_ab.sh ROUNDS RATE FLUSH CONFIG... [-- rmq-fast-bench produce args]
#   CONFIG is `broker:KEY=VALUE[,KEY=VALUE...]` (extra broker.conf lines; `broker:` alone =
#   defaults) or `null:ARGS` (extra `rmq-fast-bench null-broker` args, `,` for spaces).
#   Each round runs every CONFIG once, in order, each on a fresh name server + broker (store
#   in a temp dir under /tmp, or on tmpfs with the CONFIG `broker:storeOnShm`, which puts
#   storePathRootDir under /dev/shm and removes it after the run): 2 s warm-up excluded, 8 s measured, open loop at RATE msg/s, 1 KiB,
#   `--mode async --threads 2 --inflight 128` (the issue's "half load" row) unless produce
#   args are given. Prints one line per run: msg/s, p50/p99/p99.9 (ms) and the broker's CPU
#   per message (`--broker-pid`), then the median and range of each CONFIG.
# Example: tools/bench/tail_ab.sh 3 20000 ASYNC_FLUSH broker: broker:idlePollMicros=200 null:
#          tools/bench/tail_ab.sh 3 20000 ASYNC_FLUSH broker: broker:storeOnShm broker:asyncFlushDirectIo=true null:
#   `old-broker:...` / `old-null:...` are the same with the binaries of OLD_BIN_DIR (an A/B of
#   two builds in one interleaved run; the load generator is always BIN_DIR's).
# Env: BIN_DIR (default target/release), BASE_PORT (default 39100), OLD_BIN_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN_DIR="${BIN_DIR:-$ROOT/target/release}"
ROUNDS="$1"; RATE="$2"; FLUSH="$3"; shift 3
CONFIGS=()
while [[ $# -gt 0 && $1 != -- ]]; do CONFIGS+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
LOAD=("$@")
[[ ${#LOAD[@]} -eq 0 ]] && LOAD=(--mode async --threads 2 --inflight 128 --size 1024)
BASE_PORT="${BASE_PORT:-39100}"
NS_PORT=$BASE_PORT; BR_PORT=$((BASE_PORT + 11)); NS="127.0.0.1:$NS_PORT"
WORK="$(mktemp -d /tmp/rmq-tail.XXXXXX)"
SHM_STORE="/dev/shm/$(basename "$WORK")"
NS_PID=""; BR_PID=""

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap 'stop; rm -rf "$WORK" "$SHM_STORE"' EXIT

start() { # config
  local kind=${1%%:*} args=${1#*:} bin=$BIN_DIR
  if [[ $kind == old-* ]]; then
    bin=${OLD_BIN_DIR:?old-* configs need OLD_BIN_DIR}; kind=${kind#old-}
  fi
  rm -rf "$WORK/run" "$SHM_STORE" && mkdir -p "$WORK/run/logs"
  printf 'listenPort=%s\n' "$NS_PORT" >"$WORK/run/ns.properties"
  "$bin/rmq-fast" namesrv -c "$WORK/run/ns.properties" >"$WORK/run/logs/ns.out" 2>&1 &
  NS_PID=$!
  wait_port "$NS_PORT"
  if [[ $kind == null ]]; then
    # shellcheck disable=SC2086
    "$bin/rmq-fast-bench" null-broker -n "$NS" --listen "127.0.0.1:$BR_PORT" \
      --topic TailTopic --cores "$(nproc)" ${args//,/ } >"$WORK/run/logs/broker.out" 2>&1 &
  else
    cat >"$WORK/run/broker.conf" <<EOF
brokerName=tail-broker
brokerIP1=127.0.0.1
listenPort=$BR_PORT
namesrvAddr=$NS
flushDiskType=$FLUSH
storePathRootDir=$WORK/run/store
logDir=$WORK/run/logs
EOF
    [[ -n $args ]] && tr ',' '\n' <<<"$args" >>"$WORK/run/broker.conf"
    # storeOnShm: the store on tmpfs (last duplicate key wins, as in Java)
    sed -i "s|^storeOnShm\$|storePathRootDir=$SHM_STORE|" "$WORK/run/broker.conf"
    "$bin/rmq-fast" broker -c "$WORK/run/broker.conf" >"$WORK/run/logs/broker.out" 2>&1 &
  fi
  BR_PID=$!
  wait_port "$BR_PORT"
  sleep 1
}

echo "# $(date -u +%FT%TZ) commit $(git -C "$ROOT" rev-parse --short HEAD) rate $RATE $FLUSH load: $(cut -d' ' -f1-3 /proc/loadavg)"
RESULTS="$WORK/results"
for ((round = 1; round <= ROUNDS; round++)); do
  for config in "${CONFIGS[@]}"; do
    start "$config"
    json=$("$BIN_DIR/rmq-fast-bench" produce -n "$NS" --topic TailTopic --rate "$RATE" \
      --warmup 2 --duration 10 --broker-pid "$BR_PID" --json "${LOAD[@]}" 2>/dev/null || true)
    stop
    [[ -n ${KEEP_JSON:-} ]] && printf '%s\n' "$json" >"$KEEP_JSON.$round.${config//[:=,\/]/_}.json"
    line=$(jq -r '[.produce.tps, .produce.latency_ms.p50_ms, .produce.latency_ms.p99_ms,
                    .produce.latency_ms.p999_ms, (.broker.cpu_us_per_message // "-"),
                    ([.produce.errors[]] | add // 0)] | @tsv' <<<"$json" 2>/dev/null || echo "-")
    printf '%s\t%s\n' "$config" "$line" >>"$RESULTS"
    printf 'round %d %-32s msg/s p50 p99 p99.9 cpu_us/msg errors: %s\n' "$round" "$config" "$line"
  done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# medians [min-max] per config: msg/s p50 p99 p99.9 cpu_us/msg"
for config in "${CONFIGS[@]}"; do
  awk -F'\t' -v c="$config" '$1 == c' "$RESULTS" | python3 -c '
import sys, statistics
rows = [l.rstrip("\n").split("\t")[1:6] for l in sys.stdin]
out = []
for col in zip(*rows):
    vals = [float(v) for v in col if v not in ("-", "null", "")]
    out.append(f"{statistics.median(vals):.3g} [{min(vals):.3g}-{max(vals):.3g}]" if vals else "-")
print(sys.argv[1].ljust(32), "  ".join(out))' "$config"
done

#!/usr/bin/env bash
# Cost of broker heartbeats on a 3-member controller quorum on loopback (issue 11): starts
# three `rmq-fast controller` members, then for each broker count runs
# controller-heartbeats.py (simulated brokers register, then heartbeat to the leader every
# INTERVAL ms); it counts the members' fsync/fdatasync calls during the measured window with
# `perf stat` (syscall tracepoints; root).
#
#   tools/bench/controller-heartbeats.sh [INTERVAL_MS] [SECONDS] [BROKER COUNTS...]
#   e.g. tools/bench/controller-heartbeats.sh 500 20 100 300
#
# RMQFAST_BIN: the binary (default target/release/rmq-fast); BASE_PORT: the members listen on
# it and the two ports after it (default: three consecutive ports found unbound in
# 20000-32767, below the ephemeral range, so no outgoing connection holds one; a fixed
# 32101 once made a member exit at start-up with its port taken). A member that exits
# before the measurement stops the script with its output.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${RMQFAST_BIN:-$ROOT/target/release/rmq-fast}
INTERVAL=${1:-500}
SECONDS_RUN=${2:-20}
shift 2 || true
COUNTS=("${@:-100 300}")
[[ ${#COUNTS[@]} -eq 1 ]] && read -ra COUNTS <<<"${COUNTS[0]}"
free_base() {
    python3 - <<'PY'
import random, socket
def unbound(port):
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(1000):
    base = random.randrange(20000, 32765)
    if all(unbound(base + i) for i in range(3)):
        print(base)
        break
else:
    raise SystemExit("no three consecutive free ports")
PY
}
BASE=${BASE_PORT:-$(free_base)}
WORK=$(mktemp -d /tmp/rmq-ctl-hb.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

PEERS="n0-127.0.0.1:$BASE;n1-127.0.0.1:$((BASE + 1));n2-127.0.0.1:$((BASE + 2))"
ADDRS="127.0.0.1:$BASE;127.0.0.1:$((BASE + 1));127.0.0.1:$((BASE + 2))"
for n in 0 1 2; do
    cat >"$WORK/n$n.properties" <<EOF
controllerDLegerGroup=bench
controllerDLegerPeers=$PEERS
controllerDLegerSelfId=n$n
controllerStorePath=$WORK/store
logDir=$WORK/logs-n$n
EOF
    "$BIN" controller -c "$WORK/n$n.properties" >"$WORK/n$n.out" 2>&1 &
    PIDS+=($!)
done
sleep 4
for n in 0 1 2; do
    if ! kill -0 "${PIDS[$n]}" 2>/dev/null; then
        echo "controller member n$n (port $((BASE + n))) exited at start-up:" >&2
        cat "$WORK/n$n.out" >&2
        exit 1
    fi
done
echo "members on ports $BASE-$((BASE + 2))"
echo "machine: $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for count in "${COUNTS[@]}"; do
    pid_list=$(IFS=,; echo "${PIDS[*]}")
    python3 "$ROOT/tools/bench/controller-heartbeats.py" --controllers "$ADDRS" \
        --brokers "$count" --interval-ms "$INTERVAL" --seconds "$SECONDS_RUN" --pids "$pid_list" \
        --perf-fsyncs
    echo "  load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
done

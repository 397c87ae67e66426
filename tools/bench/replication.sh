#!/usr/bin/env bash
# Replication figures of docs/perf.md, on loopback: one name server, one master, one SLAVE
# (same brokerName), rmq-fast only (rmq-fast's stream is its own; Apache slaves do not apply).
#
#   tools/bench/replication.sh throughput [THREADS SIZE SECONDS ROUNDS]
#       ASYNC_MASTER vs SYNC_MASTER send throughput and RT, alternating the two roles ROUNDS
#       times (default 16 1024 10 2) so drift of a noisy machine hits both alike.
#   tools/bench/replication.sh controller [THREADS SIZE SECONDS ROUNDS]
#       the steady-state cost of controller mode (issue 11): classic SYNC_MASTER + SLAVE against
#       the same two brokers in controller mode (three `rmq-fast controller` members,
#       allAckInSyncStateSet=true), alternating ROUNDS times.
#   tools/bench/replication.sh lag [SECONDS]
#       ASYNC_MASTER under async load (1 KiB): how many messages the slave is behind, sampled
#       every 50 ms (consume-queue max offsets of the topic on both brokers).
#   tools/bench/replication.sh catchup [GIB]
#       fill a master alone with GIB (default 1) of 1 KiB messages, then start the slave and
#       time until it holds every message.
#
# Needs target/release/rmq-fast and rmq-fast-bench (cargo build --release -p rmq-fast
# -p rmq-fast-bench; RMQ_BIN_DIR=DIR uses the binaries in DIR instead) and python3.
# Ports 19876, 19858-19878 (controllers), 20911-20912, 21011-21012; stores under ${RB_DIR:-/tmp/rmq-repl-bench},
# deleted on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${RMQ_BIN_DIR:-$ROOT/target/release}"
DIR="${RB_DIR:-/tmp/rmq-repl-bench}"
NS=127.0.0.1:19876
MASTER=127.0.0.1:20911
SLAVE=127.0.0.1:21011
TOPIC=ReplBench
QUEUES=8
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

broker_conf() { # name role id port
  if [[ $2 == CONTROLLER* ]]; then
    # controller mode: brokerId/brokerRole are the controller's to decide
    cat <<C
brokerClusterName=ReplBench
brokerName=repl
listenPort=$4
haListenPort=$(($4 + 1))
flushDiskType=ASYNC_FLUSH
storePathRootDir=$DIR/$1
mapedFileSizeCommitLog=1073741824
logDir=$DIR/$1/logs
brokerIP1=127.0.0.1
defaultTopicQueueNums=$QUEUES
enableControllerMode=true
controllerAddr=127.0.0.1:19878;127.0.0.1:19868;127.0.0.1:19858
allAckInSyncStateSet=true
C
    return 0
  fi
  cat <<C
brokerClusterName=ReplBench
brokerName=repl
brokerId=$3
listenPort=$4
brokerRole=$2
flushDiskType=ASYNC_FLUSH
storePathRootDir=$DIR/$1
mapedFileSizeCommitLog=1073741824
logDir=$DIR/$1/logs
brokerIP1=127.0.0.1
defaultTopicQueueNums=$QUEUES
C
  [[ $2 == SLAVE ]] && echo "haMasterAddress=127.0.0.1:20912"
  return 0
}

wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on $1" >&2; exit 1
}

start() { # name role id port
  mkdir -p "$DIR/$1"
  broker_conf "$@" > "$DIR/$1.properties"
  "$BIN/rmq-fast" broker -c "$DIR/$1.properties" -n "$NS" > "$DIR/$1.out" 2>&1 &
  PIDS+=($!)
  wait_port "127.0.0.1:$4"
}

start_controllers() {
  local ports=(19878 19868 19858) i
  for i in 0 1 2; do
    mkdir -p "$DIR/c$i"
    printf 'controllerDLegerGroup=repl-bench\ncontrollerDLegerPeers=n0-127.0.0.1:19878;n1-127.0.0.1:19868;n2-127.0.0.1:19858\ncontrollerDLegerSelfId=n%s\ncontrollerStorePath=%s\nlogDir=%s\n' \
      "$i" "$DIR/c$i/store" "$DIR/c$i/logs" > "$DIR/c$i.properties"
    "$BIN/rmq-fast" controller -c "$DIR/c$i.properties" > "$DIR/c$i.out" 2>&1 &
    PIDS+=($!)
  done
  for i in 0 1 2; do wait_port "127.0.0.1:${ports[$i]}"; done
}

start_cluster() { # master role (or CONTROLLER); "noslave" to start the master alone
  cleanup; PIDS=(); mkdir -p "$DIR"
  printf 'listenPort=%s\n' "${NS#*:}" > "$DIR/namesrv.properties"
  "$BIN/rmq-fast" namesrv -c "$DIR/namesrv.properties" > "$DIR/namesrv.out" 2>&1 &
  PIDS+=($!)
  wait_port "$NS"
  if [[ $1 == CONTROLLER ]]; then
    start_controllers
    start master CONTROLLER 0 20911
    sleep 2 # the first broker of the group becomes its master
    start slave CONTROLLER 1 21011
    sleep 5 # the slave joins the sync-state set once it caught up
    return 0
  fi
  start master "$1" 0 20911
  [[ "${2:-}" == noslave ]] || start slave SLAVE 1 21011
  sleep 2
}

bench() { "$BIN/rmq-fast-bench" produce -n "$NS" --topic "$TOPIC" --queues "$QUEUES" "$@"; }

throughput() {
  local threads=${1:-16} size=${2:-1024} seconds=${3:-10} rounds=${4:-2}
  local roles=${ROLES:-ASYNC_MASTER SYNC_MASTER}
  printf '| round | master role | msg/s | RT p50 ms | p99 ms | p99.9 ms | errors |\n|---|---|---|---|---|---|---|\n'
  for round in $(seq "$rounds"); do
    for role in $roles; do
      start_cluster "$role"
      bench --threads "$threads" --size "$size" --duration 3 > /dev/null 2>&1 # route + topic
      bench --threads "$threads" --size "$size" --duration "$seconds" --warmup 2 --json 2>/dev/null \
        | python3 -c '
import json, sys
p = json.load(sys.stdin)["produce"]; rt = p["latency_ms"]
row = [sys.argv[1], sys.argv[2], "%.0f" % p["tps"], rt["p50_ms"], rt["p99_ms"], rt["p999_ms"], sum(p["errors"].values())]
print("| " + " | ".join(str(v) for v in row) + " |")
' "$round" "$role"
    done
  done
}

lag() {
  local seconds=${1:-15}
  start_cluster ASYNC_MASTER
  bench --threads 4 --size 1024 --duration 2 > /dev/null 2>&1
  bench --threads 4 --size 1024 --mode async --inflight 128 --duration "$seconds" > "$DIR/bench.out" 2>&1 &
  local load=$!
  python3 "$ROOT/tools/bench/queue_offsets.py" "$MASTER" "$TOPIC" "$QUEUES" --lag-of "$SLAVE" --seconds "$seconds"
  wait "$load" || true
  tail -4 "$DIR/bench.out"
}

catchup() {
  local gib=${1:-1}
  local count=$(( gib * 1024 * 1024 ))
  start_cluster ASYNC_MASTER noslave
  echo "filling the master with $count messages of 1 KiB ..."
  bench --threads 4 --size 1024 --mode batch --batch-size 32 --count "$count" > "$DIR/fill.out" 2>&1
  tail -3 "$DIR/fill.out"
  local total
  total=$(python3 "$ROOT/tools/bench/queue_offsets.py" "$MASTER" "$TOPIC" "$QUEUES")
  echo "master holds $total messages; starting the slave"
  start slave SLAVE 1 21011
  local took
  took=$(python3 "$ROOT/tools/bench/queue_offsets.py" "$SLAVE" "$TOPIC" "$QUEUES" --wait "$total" --timeout 600)
  echo "slave caught up $total messages (~$gib GiB of commit log) in $took s after its start"
}

mode=${1:-throughput}; shift || true
case "$mode" in
  throughput) throughput "$@" ;;
  controller) ROLES="SYNC_MASTER CONTROLLER" throughput "$@" ;;
  lag) lag "$@" ;;
  catchup) catchup "$@" ;;
  *) sed -n 2,20p "$0"; exit 2 ;;
esac

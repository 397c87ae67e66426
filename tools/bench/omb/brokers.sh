#!/usr/bin/env bash
# Runs one OMB workload (run.sh) against each broker in turn, each started as
# tools/bench/compare.sh starts it: its own name server, a fresh store, the same broker.conf
# (cluster OmbCluster, ASYNC_MASTER, the given flush mode), one broker at a time.
#
# usage: tools/bench/omb/brokers.sh [-w WORKLOAD_YAML] [-d DRIVER_YAML] [-o OUT_DIR] [RUN ...]
#   RUN is BROKER:FLUSH with BROKER fast|apache and FLUSH ASYNC_FLUSH|SYNC_FLUSH; default
#   fast:ASYNC_FLUSH fast:SYNC_FLUSH apache:ASYNC_FLUSH apache:SYNC_FLUSH
#   -o  default target/omb/results/<UTC time>/ (one JSON + one log per run, summary.txt)
# Env: OMB_NS_PORT (default 36076), OMB_BR_PORT (default 36011), RMQ_PEER_VERSION (4.9.7).
# Needs target/release/rmq-fast (cargo build --release -p rmq-fast), tools/bench/omb/build.sh
# done, and for apache the jars in tools/bench/peer/lib (compare.sh fetches them, or
# `mvn -B -q -f tools/bench/peer/pom.xml package`).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
PEER="$ROOT/tools/bench/peer"
PEER_VERSION="${RMQ_PEER_VERSION:-4.9.7}"
NS_PORT=${OMB_NS_PORT:-36076}
BR_PORT=${OMB_BR_PORT:-36011}
NS="127.0.0.1:$NS_PORT"
WORKLOAD="$HERE/workloads/smoke-1-topic-16-queues-1kb-5k.yaml"
OUT="" DRIVER_ARGS=()
while getopts "w:d:o:h" opt; do
  case $opt in
    w) WORKLOAD=$(realpath "$OPTARG") ;;
    d) DRIVER_ARGS=(-d "$(realpath "$OPTARG")") ;;
    o) OUT=$(realpath -m "$OPTARG") ;;
    *) sed -n 2,13p "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
RUNS=("$@")
[ ${#RUNS[@]} -gt 0 ] || RUNS=(fast:ASYNC_FLUSH fast:SYNC_FLUSH apache:ASYNC_FLUSH apache:SYNC_FLUSH)
OUT=${OUT:-$ROOT/target/omb/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/omb-brokers.XXXXXX)
# a private copy: a concurrent cargo build must not swap the binary mid-run
FAST="$WORK/rmq-fast"
cp -p "$ROOT/target/release/rmq-fast" "$FAST"
NS_PID="" BR_PID=""

stop_cluster() {
  local pid
  for pid in $BR_PID $NS_PID; do
    kill -TERM "$pid" 2>/dev/null || true
    timeout 30 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  NS_PID="" BR_PID=""
}
trap 'stop_cluster; rm -rf "$WORK"' EXIT

wait_port() { # port seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "brokers.sh: port $1 did not open within $2 s" >&2
  return 1
}

java_opts() { # home: Apache's JVM options as compare.sh uses them (Java 17)
  printf '%s\n' -server -Xms256m -Xmx256m -Xmn128m -XX:+UseG1GC -XX:G1ReservePercent=25 \
    -XX:InitiatingHeapOccupancyPercent=30 -XX:SoftRefLRUPolicyMSPerMB=0 \
    -XX:-OmitStackTraceInFastThrow -Duser.home="$1" -Drocketmq.home.dir="$WORK/home" \
    -Dtls.server.mode=disabled --add-opens=java.base/java.nio=ALL-UNNAMED \
    --add-opens=java.base/jdk.internal.ref=ALL-UNNAMED --add-exports=java.base/sun.nio.ch=ALL-UNNAMED
}

write_logback() { # Apache's servers need ROCKETMQ_HOME/conf/logback_*.xml
  mkdir -p "$WORK/home/conf"
  local name
  for name in namesrv broker; do
    cat >"$WORK/home/conf/logback_$name.xml" <<XML
<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>\${user.home}/logs/$name.log</file>
    <encoder><pattern>%d{HH:mm:ss.SSS} %p %t %c - %m%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="FILE"/></root>
</configuration>
XML
  done
}

start_cluster() { # broker flush run-dir
  local broker=$1 flush=$2 run=$3
  rm -rf "$run" && mkdir -p "$run/logs"
  printf 'listenPort=%s\n' "$NS_PORT" >"$run/namesrv.properties"
  cat >"$run/broker.conf" <<CONF
brokerClusterName=OmbCluster
brokerName=omb-broker
brokerId=0
brokerRole=ASYNC_MASTER
flushDiskType=$flush
brokerIP1=127.0.0.1
listenPort=$BR_PORT
namesrvAddr=$NS
storePathRootDir=$run/store
storePathCommitLog=$run/store/commitlog
autoCreateTopicEnable=true
autoCreateSubscriptionGroup=true
waitTimeMillsInSendQueue=1000
diskMaxUsedSpaceRatio=95
logDir=$run/logs
CONF
  if [[ $broker == apache ]]; then
    ls "$PEER/lib/rocketmq-broker-$PEER_VERSION.jar" >/dev/null 2>&1 \
      || { echo "brokers.sh: no $PEER/lib/rocketmq-broker-$PEER_VERSION.jar" >&2; return 1; }
    write_logback
    local opts
    mapfile -t opts < <(java_opts "$run")
    java "${opts[@]}" -cp "$PEER/lib/*" org.apache.rocketmq.namesrv.NamesrvStartup \
      -c "$run/namesrv.properties" >"$run/logs/namesrv.out" 2>&1 &
    NS_PID=$!
    wait_port "$NS_PORT" 30
    java "${opts[@]}" -XX:+AlwaysPreTouch -XX:MaxDirectMemorySize=256m -cp "$PEER/lib/*" \
      org.apache.rocketmq.broker.BrokerStartup -c "$run/broker.conf" >"$run/logs/broker.out" 2>&1 &
    BR_PID=$!
  elif [[ $broker == fast ]]; then
    "$FAST" namesrv -c "$run/namesrv.properties" >"$run/logs/namesrv.out" 2>&1 &
    NS_PID=$!
    wait_port "$NS_PORT" 30
    "$FAST" broker -c "$run/broker.conf" >"$run/logs/broker.out" 2>&1 &
    BR_PID=$!
  else
    echo "brokers.sh: unknown broker $broker (fast|apache)" >&2
    return 1
  fi
  wait_port "$BR_PORT" 60
  sleep 3 # first registration with the name server (the driver looks the cluster up there)
  kill -0 "$NS_PID" 2>/dev/null && kill -0 "$BR_PID" 2>/dev/null \
    || { echo "brokers.sh: name server or broker exited at start-up; see $run/logs" >&2; return 1; }
}

for r in "${RUNS[@]}"; do
  broker=${r%%:*} flush=${r#*:}
  name="$broker-$flush"
  echo "[$(date -u +%H:%M:%S)] $name: $(basename "$WORKLOAD")" >&2
  start_cluster "$broker" "$flush" "$WORK/$name"
  status=0
  "$HERE/run.sh" -n "$NS" -c OmbCluster -w "$WORKLOAD" "${DRIVER_ARGS[@]}" -o "$OUT/$name.json" >"$OUT/$name.log" 2>&1 \
    || status=$?
  stop_cluster
  cp "$WORK/$name/logs/broker.out" "$OUT/$name.broker.out" 2>/dev/null || true
  if [ $status -ne 0 ]; then
    echo "brokers.sh: $name failed (exit $status); see $OUT/$name.log" >&2
    echo "$name: FAILED (exit $status)" >>"$OUT/summary.txt"
    continue
  fi
  { echo "== $name"; sed -n '/^OMB /,/^result:/p' "$OUT/$name.log"; } | tee -a "$OUT/summary.txt"
done
echo "results: $OUT" >&2

#!/usr/bin/env bash
# Failover time of controller mode (issue 11) on loopback: three `rmq-fast controller`
# members, one name server, and one broker group of two brokers in controller mode
# (allAckInSyncStateSet=true). In each round an official 4.9.8 Java producer
# (tests/cluster/ClusterClient.java, route refresh every 1 s) sends 2 x 100 msg/s; the script
# kills -9 whichever broker is the master, and measures from the kill to the first send
# acknowledged by the other broker (the client's own view: election + route refresh + retry).
# The killed broker is restarted (it rejoins as a slave) before the next round, so rounds
# alternate the master between the two brokers.
#
#   tools/bench/failover.sh [ROUNDS]        (default 5)
#   HEARTBEAT_TIMEOUT_MS=N tools/bench/failover.sh   sets controllerHeartBeatTimeoutMills
#
# Needs target/release/rmq-fast (RMQ_BIN_DIR=DIR for another build), java, javac, mvn with the
# tests/java dependencies cached (scripts/java-tests.sh once). Ports 19876, 19858-19878,
# 20911-20912, 21011-21012; everything under ${FO_DIR:-/tmp/rmq-failover-bench}, deleted on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${RMQ_BIN_DIR:-$ROOT/target/release}"
DIR="${FO_DIR:-/tmp/rmq-failover-bench}"
ROUNDS=${1:-5}
NS=127.0.0.1:19876
CTL_PORTS=(19878 19868 19858)
CTL_ADDR="127.0.0.1:19878;127.0.0.1:19868;127.0.0.1:19858"
declare -A PORT=([b1]=20911 [b2]=21011)
declare -A PID=()

cleanup() {
  for pid in "${PID[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 150); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on $1" >&2; exit 1
}

start_controller() { # index
  local i=$1
  mkdir -p "$DIR/c$i"
  cat > "$DIR/c$i.properties" <<C
controllerDLegerGroup=failover-bench
controllerDLegerPeers=n0-127.0.0.1:${CTL_PORTS[0]};n1-127.0.0.1:${CTL_PORTS[1]};n2-127.0.0.1:${CTL_PORTS[2]}
controllerDLegerSelfId=n$i
controllerStorePath=$DIR/c$i/store
logDir=$DIR/c$i/logs
C
  "$BIN/rmq-fast" controller -c "$DIR/c$i.properties" > "$DIR/c$i.out" 2>&1 &
  PID[c$i]=$!
}

start_broker() { # b1|b2
  local name=$1 port=${PORT[$1]}
  mkdir -p "$DIR/$name"
  cat > "$DIR/$name.properties" <<C
brokerClusterName=FailoverBench
brokerName=fo
listenPort=$port
haListenPort=$((port + 1))
namesrvAddr=$NS
brokerIP1=127.0.0.1
flushDiskType=ASYNC_FLUSH
storePathRootDir=$DIR/$name/store
mapedFileSizeCommitLog=67108864
logDir=$DIR/$name/logs
defaultTopicQueueNums=4
enableControllerMode=true
controllerAddr=$CTL_ADDR
allAckInSyncStateSet=true
C
  [[ -n ${HEARTBEAT_TIMEOUT_MS:-} ]] && echo "controllerHeartBeatTimeoutMills=$HEARTBEAT_TIMEOUT_MS" >> "$DIR/$name.properties"
  "$BIN/rmq-fast" broker -c "$DIR/$name.properties" >> "$DIR/$name.out" 2>&1 &
  PID[$name]=$!
  wait_port "127.0.0.1:$port"
}

client() {
  java -Xss512k -XX:+UseSerialGC -Xmx256m -Dlogback.configurationFile="$DIR/logback.xml" \
    -cp "$DIR/classes:$CP" ClusterClient "$@"
}

setup_client() {
  mkdir -p "$DIR/classes"
  (cd "$ROOT/tests/java" && mvn -o -q dependency:build-classpath -Dmdep.outputFile="$DIR/cp.txt" \
    -Dmdep.includeScope=runtime > "$DIR/mvn.log" 2>&1) || { echo "mvn classpath failed: $DIR/mvn.log" >&2; exit 1; }
  CP=$(cat "$DIR/cp.txt")
  printf '<configuration><root level="OFF"/></configuration>\n' > "$DIR/logback.xml"
  javac -nowarn -cp "$CP" -d "$DIR/classes" "$ROOT/tests/cluster/ClusterClient.java" 2> "$DIR/javac.log"
}

master_of() { # prints b1 or b2: the broker registered as brokerId 0
  local addr
  for name in b1 b2; do
    addr="127.0.0.1:${PORT[$name]}"
    if client cluster "$NS" 2 "fo:0=$addr" > /dev/null 2>&1; then echo "$name"; return 0; fi
  done
  return 1
}

main() {
  rm -rf "$DIR"; mkdir -p "$DIR"
  setup_client
  printf 'listenPort=%s\nlogDir=%s\n' "${NS#*:}" "$DIR/ns-logs" > "$DIR/namesrv.properties"
  "$BIN/rmq-fast" namesrv -c "$DIR/namesrv.properties" > "$DIR/namesrv.out" 2>&1 &
  PID[ns]=$!
  for i in 0 1 2; do start_controller "$i"; done
  wait_port "$NS"
  for p in "${CTL_PORTS[@]}"; do wait_port "127.0.0.1:$p"; done
  start_broker b1
  client cluster "$NS" 30 "fo:0=127.0.0.1:${PORT[b1]}" > /dev/null || { echo "b1 never became master" >&2; exit 1; }
  start_broker b2
  client cluster "$NS" 30 "fo:+=127.0.0.1:${PORT[b2]}" > /dev/null || { echo "b2 never registered as slave" >&2; exit 1; }
  # warm up: the topic exists and both brokers are in the sync-state set once SYNC acks flow
  client produce "$NS" FailoverBench warmup 5 "$DIR/acked-warmup" 1 50 > /dev/null 2>&1 || true
  printf '| round | killed | new master | kill -> first ack on the new master (ms) | acked before / after |\n|---|---|---|---|---|\n'
  local times=()
  for round in $(seq "$ROUNDS"); do
    local master other
    master=$(master_of) || { echo "no master registered" >&2; exit 1; }
    other=$([[ $master == b1 ]] && echo b2 || echo b1)
    sleep 3 # let the slave re-enter the sync-state set
    client produce "$NS" FailoverBench "r$round" 20 "$DIR/acked-r$round" 2 100 > "$DIR/produce-r$round.json" 2> "$DIR/produce-r$round.err" &
    local producer=$!
    sleep 5
    local killed_at
    killed_at=$(date +%s%3N)
    kill -9 "${PID[$master]}"; wait "${PID[$master]}" 2>/dev/null || true
    wait "$producer" || true
    local first before after
    first=$(awk -F'\t' -v h="127.0.0.1:${PORT[$other]}" -v t="$killed_at" '$5 == h && $3 > t {print $3; exit}' "$DIR/acked-r$round")
    before=$(awk -F'\t' -v t="$killed_at" '$3 <= t {n++} END {print n+0}' "$DIR/acked-r$round")
    after=$(awk -F'\t' -v t="$killed_at" '$3 > t {n++} END {print n+0}' "$DIR/acked-r$round")
    if [[ -z $first ]]; then
      echo "| $round | $master | none | no ack within 15 s | $before / $after |"
    else
      times+=($((first - killed_at)))
      echo "| $round | $master | $other | $((first - killed_at)) | $before / $after |"
    fi
    start_broker "$master"
    client cluster "$NS" 40 "fo:+=127.0.0.1:${PORT[$master]}" > /dev/null ||
      { echo "round $round: the killed broker did not rejoin as a slave" >&2; exit 1; }
  done
  if ((${#times[@]} > 0)); then
    printf 'failover ms over %d rounds: %s (median %s)\n' "${#times[@]}" "${times[*]}" \
      "$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
  fi
  client verify "$NS" FailoverBench 60 "$DIR"/acked-* | head -1
}

main

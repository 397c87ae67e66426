#!/usr/bin/env bash
# Side-by-side performance of rmq-fast and Apache RocketMQ 4.9.x on this machine.
#
# Owns: starting each broker (own name server, fresh store in the same directory, same
# broker.conf), driving both with the same load, sampling the broker process
# (/proc/PID/stat utime+stime, /proc/PID/status VmRSS/VmHWM/RssAnon), the physical
# ceilings (iperf3 loopback, fio O_DIRECT write, fdatasync rate and latency, and the null broker:
# `rmq-fast-bench null-broker`, which answers every send without storing it, driven by the
# same load) and the result table.
#
# Contract: brokers run one after the other, never together; every run of one workload
# uses the same rmq-fast-bench (or Apache benchmark Producer) command against both. With
# --rounds N the throughput pass of each flush mode runs N times per broker, the brokers'
# order reversed every round (A F, F A, ...), and the table shows each broker's median round
# per row (the lower middle for even N) beside every round's msg/s: on this shared host a slow
# spell during one broker's pass moved whole rows by 1.5x (docs/perf.md run 16).
# Results: $OUT/results.tsv (one row per run), $OUT/ceilings.tsv, $OUT/table.md (the
# markdown printed at the end), raw JSON and logs beside them. See tools/bench/README.md.
#
# Usage: tools/bench/compare.sh [--quick] [--out DIR] [--no-ceilings] [--no-null] [--brokers "apache fast"]
#          [--flushes "ASYNC_FLUSH SYNC_FLUSH"] [--append (keep DIR/results.tsv, add rows)] [--rounds N]
#          [--phases "throughput e2e half"] (half: produce-only at the e2e rate; with --append
#          and no throughput phase the rate comes from DIR/results.tsv)
#   --quick   ASYNC_FLUSH only, 1 KiB only, short runs (< 5 min in total)
#   --no-null skip the null-broker ceiling rows (sync64/async per size, half@R per flush)
#   full      3 sizes x {ASYNC,SYNC}_FLUSH x {sync 1 thread, sync 64 threads, async} (~20 min)
# Env: SKIP_BUILD=1 (binaries already built), RMQ_EXAMPLE_SRC=dir holding Apache's
#      benchmark Producer.java + AclClient.java (else downloaded from GitHub at the tag),
#      COMPARE_DIR (parent of the work dir, default /tmp), RMQ_PEER_VERSION (default 4.9.7),
#      COMPARE_MIN_FREE_GB (refuse to start with less free space there, default 20).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PEER="$ROOT/tools/bench/peer"
BENCH="$ROOT/target/release/rmq-fast-bench"
FAST="$ROOT/target/release/rmq-fast"
PEER_VERSION="${RMQ_PEER_VERSION:-4.9.7}"
NS_PORT=19876
BR_PORT=20911
NS="127.0.0.1:$NS_PORT"
TOPIC=PerfTopic
QUEUES=8
MODE=full
OUT=""
CEILINGS=1
BROKERS="apache fast"
FLUSHES_ARG=""
APPEND=0
PHASES="throughput e2e half"
NULL=1
ROUNDS=1

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) MODE=quick ;;
    --out) OUT="$2"; shift ;;
    --no-ceilings) CEILINGS=0 ;;
    --no-null) NULL=0 ;;
    --brokers) BROKERS="$2"; shift ;;
    --flushes) FLUSHES_ARG="$2"; shift ;;
    --append) APPEND=1 ;;
    --phases) PHASES="$2"; shift ;;
    --rounds) ROUNDS="$2"; shift
      [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --rounds needs a positive integer" >&2; exit 2; } ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [[ $MODE == quick ]]; then
  SIZES="1024"; FLUSHES="ASYNC_FLUSH"; DUR=8; WARM=2; PEER_TOOL_SECS=22; PEER_TOOL_SIZES="1024"
  WORKLOADS="sync64 async"
else
  SIZES="128 1024 4096"; FLUSHES="ASYNC_FLUSH SYNC_FLUSH"; DUR=14; WARM=3; PEER_TOOL_SECS=22; PEER_TOOL_SIZES="$SIZES"
  WORKLOADS="sync1 sync64 async"
fi

FLUSHES="${FLUSHES_ARG:-$FLUSHES}"
# One broker's pass writes up to ~16 GB (rmq-fast's ASYNC_FLUSH pass; deleted when that broker
# stops); a broker near its disk limit refuses sends (rmq-fast: "disk nearly full", at 90% of
# used + available), which spoiled full run 6's first SYNC_FLUSH pass and run 9's.
MIN_FREE_GB="${COMPARE_MIN_FREE_GB:-20}"
free_gb=$(( $(df -Pk "${COMPARE_DIR:-/tmp}" | awk 'NR == 2 { print $4 }') / 1024 / 1024 ))
if (( free_gb < MIN_FREE_GB )); then
  echo "compare.sh: only ${free_gb} GB free under ${COMPARE_DIR:-/tmp}; a run needs ${MIN_FREE_GB} GB" \
    "(free some space, or set COMPARE_DIR elsewhere or COMPARE_MIN_FREE_GB)" >&2
  exit 2
fi
WORK="$(mktemp -d "${COMPARE_DIR:-/tmp}/rmq-compare.XXXXXX")"
OUT="${OUT:-$WORK/out}"
mkdir -p "$OUT"
RESULTS="$OUT/results.tsv"
CLK_TCK="$(getconf CLK_TCK)"
NS_PID=""; BR_PID=""
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------- preparation

prepare_binaries() {
  if [[ -z "${SKIP_BUILD:-}" ]]; then
    (cd "$ROOT" && cargo build --release -q -p rmq-fast -p rmq-fast-bench)
  fi
  [[ -x $BENCH && -x $FAST ]] || { echo "missing $BENCH or $FAST" >&2; exit 1; }
  # private copies: a concurrent cargo build must not swap the binaries mid-run
  mkdir -p "$WORK/bin"
  cp -p "$BENCH" "$FAST" "$WORK/bin/"
  BENCH="$WORK/bin/rmq-fast-bench"; FAST="$WORK/bin/rmq-fast"
}

# Apache RocketMQ jars (Maven Central) and the benchmark Producer compiled from source.
prepare_peer() {
  if ! ls "$PEER/lib/rocketmq-broker-$PEER_VERSION.jar" >/dev/null 2>&1; then
    rm -rf "$PEER/lib"
    mvn -B -q -f "$PEER/pom.xml" -Drocketmq.version="$PEER_VERSION" package
  fi
  local src="${RMQ_EXAMPLE_SRC:-$PEER/src-download/$PEER_VERSION}"
  if [[ ! -f $src/Producer.java ]]; then
    mkdir -p "$src"
    local base="https://raw.githubusercontent.com/apache/rocketmq/rocketmq-all-$PEER_VERSION"
    base="$base/example/src/main/java/org/apache/rocketmq/example/benchmark"
    for f in Producer AclClient; do
      curl -fsSL --max-time 30 "$base/$f.java" -o "$src/$f.java" || {
        echo "cannot download $f.java; set RMQ_EXAMPLE_SRC to a directory holding it" >&2
        exit 1; }
    done
  fi
  rm -rf "$PEER/classes" && mkdir -p "$PEER/classes"
  javac -nowarn -encoding UTF-8 -cp "$PEER/lib/*" -d "$PEER/classes" \
    "$src/Producer.java" "$src/AclClient.java" 2>"$WORK/javac.log"
  write_logback "$WORK/home/conf"
}

# Minimal logback files: ROCKETMQ_HOME/conf/logback_{namesrv,broker,tools}.xml are
# required by the servers and mqadmin; logback_client.xml keeps the client quiet.
write_logback() {
  local conf="$1" name
  mkdir -p "$conf"
  for name in namesrv broker tools; do
    cat >"$conf/logback_$name.xml" <<EOF
<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>\${user.home}/logs/$name.log</file>
    <encoder><pattern>%d{HH:mm:ss.SSS} %p %t %c - %m%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="FILE"/></root>
</configuration>
EOF
  done
  cat >"$conf/logback_client.xml" <<'EOF'
<configuration>
  <appender name="ERR" class="ch.qos.logback.core.ConsoleAppender"><target>System.err</target>
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level %logger{30} - %msg%n</pattern></encoder></appender>
  <root level="WARN"><appender-ref ref="ERR"/></root>
</configuration>
EOF
}

# ---------------------------------------------------------------- brokers

java_common() { # per-run JVM options (Java 17)
  printf '%s\n' -server -Xms256m -Xmx256m -Xmn128m -XX:+UseG1GC -XX:G1ReservePercent=25 \
    -XX:InitiatingHeapOccupancyPercent=30 -XX:SoftRefLRUPolicyMSPerMB=0 \
    -XX:-OmitStackTraceInFastThrow -Duser.home="$1" -Drocketmq.home.dir="$WORK/home" \
    -Dtls.server.mode=disabled --add-opens=java.base/java.nio=ALL-UNNAMED \
    --add-opens=java.base/jdk.internal.ref=ALL-UNNAMED --add-exports=java.base/sun.nio.ch=ALL-UNNAMED
}

write_configs() { # run-dir flush
  local run="$1" flush="$2"
  printf 'listenPort=%s\n' "$NS_PORT" >"$run/namesrv.properties"
  cat >"$run/broker.conf" <<EOF
brokerClusterName=PerfCluster
brokerName=perf-broker
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
EOF
}

wait_port() { # port seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 did not open within $2 s" >&2
  return 1
}

start_cluster() { # broker flush [run-name] -> NS_PID, BR_PID
  local broker="$1" flush="$2" run="$WORK/${3:-$1-$2}"
  wait_ports_free "$NS_PORT" "$BR_PORT" "$((BR_PORT - 2))" "$((BR_PORT + 1))"
  rm -rf "$run" && mkdir -p "$run/logs"
  RUN_DIR="$run"
  write_configs "$run" "$flush"
  if [[ $broker == null ]]; then
    "$FAST" namesrv -c "$run/namesrv.properties" >"$run/logs/namesrv.out" 2>&1 &
    NS_PID=$!
    wait_port "$NS_PORT" 30
    "$BENCH" null-broker -n "$NS" --listen "127.0.0.1:$BR_PORT" --topic "$TOPIC" \
      --queues "$QUEUES" --cores "$(nproc)" >"$run/logs/broker.out" 2>&1 &
    BR_PID=$!
  elif [[ $broker == apache ]]; then
    mapfile -t JOPTS < <(java_common "$run")
    java "${JOPTS[@]}" -cp "$PEER/lib/*" org.apache.rocketmq.namesrv.NamesrvStartup \
      -c "$run/namesrv.properties" >"$run/logs/namesrv.out" 2>&1 &
    NS_PID=$!
    wait_port "$NS_PORT" 30
    java "${JOPTS[@]}" -XX:+AlwaysPreTouch -XX:MaxDirectMemorySize=256m -cp "$PEER/lib/*" \
      org.apache.rocketmq.broker.BrokerStartup -c "$run/broker.conf" >"$run/logs/broker.out" 2>&1 &
    BR_PID=$!
  else
    "$FAST" namesrv -c "$run/namesrv.properties" >"$run/logs/namesrv.out" 2>&1 &
    NS_PID=$!
    wait_port "$NS_PORT" 30
    "$FAST" broker -c "$run/broker.conf" >"$run/logs/broker.out" 2>&1 &
    BR_PID=$!
  fi
  wait_port "$BR_PORT" 60
  kill -0 "$NS_PID" 2>/dev/null && kill -0 "$BR_PID" 2>/dev/null \
    || { echo "name server or broker exited at start-up; see $run/logs" >&2; return 1; }
  create_topic
}

# UPDATE_AND_CREATE_TOPIC through Apache's mqadmin, then a probe until the route serves.
create_topic() {
  java -Xms64m -Xmx128m -Duser.home="$WORK/admin" -Drocketmq.home.dir="$WORK/home" \
    -cp "$PEER/lib/*" org.apache.rocketmq.tools.command.MQAdminStartup updateTopic \
    -n "$NS" -b "127.0.0.1:$BR_PORT" -t "$TOPIC" -r "$QUEUES" -w "$QUEUES" >"$WORK/admin.out" 2>&1
  grep -q success "$WORK/admin.out" || { cat "$WORK/admin.out" >&2; return 1; }
  local i
  for ((i = 0; i < 30; i++)); do
    "$BENCH" produce -n "$NS" --topic "$TOPIC" --threads 1 --count 200 >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "topic $TOPIC has no route after 30 s" >&2
  return 1
}

stop_cluster() {
  local pid
  for pid in $BR_PID $NS_PID; do
    kill -TERM "$pid" 2>/dev/null || true
    timeout 30 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  NS_PID=""; BR_PID=""
  # Each pass's store goes as soon as its broker stops (logs stay): kept to the end, the
  # stores of all passes added up to ~36 GB and the last pass met a broker refusing sends.
  [[ -n ${RUN_DIR:-} ]] && rm -rf "$RUN_DIR/store"
  RUN_DIR=""
  wait_ports_free "$NS_PORT" "$BR_PORT"
}

# A stopped server's listening socket can outlive its process for a moment (io_uring
# releases files asynchronously); the next server must not find the port taken.
wait_ports_free() {
  local i port busy
  for ((i = 0; i < 300; i++)); do
    busy=0
    for port in "$@"; do
      ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && busy=1
    done
    [[ $busy == 0 ]] && return 0
    sleep 0.1
  done
  echo "ports $* still in use after 30 s" >&2
  return 1
}
trap 'stop_cluster; exit 130' INT TERM
trap 'stop_cluster; rm -rf "$WORK"/*/store "$WORK/fio"' EXIT

# ---------------------------------------------------------------- sampling

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# Runs "$@" while sampling the broker's CPU from $WARM s to the end. Prints "cpu_s wall_s".
with_cpu_sample() {
  local warm="$1"; shift
  local mark="$WORK/cpu.mark"
  rm -f "$mark"
  (sleep "$warm"; printf '%s %s\n' "$(cpu_ticks "$BR_PID")" "$(date +%s.%N)" >"$mark") &
  local sampler=$!
  "$@"
  wait "$sampler" 2>/dev/null || true
  local t1 w1; read -r t1 w1 <"$mark"
  awk -v a="$t1" -v b="$(cpu_ticks "$BR_PID")" -v w0="$w1" -v w1="$(date +%s.%N)" -v hz="$CLK_TCK" \
    'BEGIN {printf "%.3f %.3f\n", (b - a) / hz, w1 - w0}'
}

# One results.tsv row: broker flush workload size tps mb_s p50 p99 p999 errors
# cpu_cores us_per_msg rss_mb hwm_mb anon_mb note
emit_row() {
  local cpu_s="$5" wall_s="$6" tps="${7}"
  local rss hwm anon
  rss=$(status_kb "$BR_PID" VmRSS); hwm=$(status_kb "$BR_PID" VmHWM); anon=$(status_kb "$BR_PID" RssAnon)
  awk -v OFS='\t' -v b="$1" -v f="$2" -v w="$3" -v s="$4" -v c="$cpu_s" -v wl="$wall_s" \
    -v tps="$tps" -v rest="$8" -v rss="$rss" -v hwm="$hwm" -v anon="$anon" -v note="${9:-}" \
    'BEGIN { cores = (wl > 0) ? c / wl : 0; per = (tps > 0) ? cores * 1e6 / tps : 0;
             print b, f, w, s, tps, rest, sprintf("%.2f", cores), sprintf("%.1f", per),
                   sprintf("%.0f", rss / 1024), sprintf("%.0f", hwm / 1024), sprintf("%.0f", anon / 1024), note }' \
    >>"$RESULTS"
}

# ---------------------------------------------------------------- workloads

bench_args() { # workload size
  case "$1" in
    sync1) echo "produce --mode sync --threads 1 --size $2" ;;
    # Two generator threads for the concurrent workloads: one thread was the bottleneck
    # (measured 39k vs 49-55k msg/s against rmq-fast; the same for both brokers).
    sync64) echo "produce --mode sync --threads 64 --cores 2 --size $2" ;;
    async) echo "produce --mode async --threads 2 --cores 2 --inflight 128 --size $2" ;;
  esac
}

run_bench() { # broker flush workload size
  local json="$OUT/$1-$2-$3-$4.json" args sample
  read -r -a args <<<"$(bench_args "$3" "$4")"
  log "$1 $2 $3 ${4}B"
  sample=$(with_cpu_sample "$WARM" bench_json "$json" "${args[@]}")
  local tps rest
  tps=$(jq -r '.produce.tps' "$json")
  rest=$(jq -r '.produce | [.mb_per_sec, .latency_ms.p50_ms, .latency_ms.p99_ms,
      .latency_ms.p999_ms, ([.errors[]] | add // 0)] | @tsv' "$json")
  emit_row "$1" "$2" "$3" "$4" ${sample} "$tps" "$rest"
}

# Apache RocketMQ's benchmark Producer, 64 sync threads, for $PEER_TOOL_SECS s.
peer_producer() { # out-file size
  timeout -s TERM "$PEER_TOOL_SECS" java -server -Xms256m -Xmx256m -Xmn128m -XX:+UseG1GC \
    -Duser.home="$WORK/client" -Drocketmq.client.logRoot="$WORK/client/logs" \
    -Dlogback.configurationFile="$WORK/home/conf/logback_client.xml" \
    -cp "$PEER/classes:$PEER/lib/*" org.apache.rocketmq.example.benchmark.Producer \
    -n "$NS" -t "$TOPIC" -w 64 -s "$2" >"$1" 2>&1 || true
}

# Runs rmq-fast-bench with --json into a file.
bench_json() { # out-file args...
  local out="$1"; shift
  "$BENCH" "$@" -n "$NS" --topic "$TOPIC" --duration "$DUR" --warmup "$WARM" --json >"$out" 2>/dev/null
}

# Apache's Producer as the load; TPS = its last ~9 s window (it prints every 10 s).
run_peer_tool() { # broker flush size
  local outf="$OUT/$1-$2-peertool-$3.out" sample
  log "$1 $2 apache-Producer -w 64 ${3}B"
  sample=$(with_cpu_sample 10 peer_producer "$outf" "$3")
  local line tps avg fails
  line=$(grep 'Send TPS' "$outf" | tail -1)
  tps=$(sed -n 's/.*Send TPS: \([0-9]*\).*/\1/p' <<<"$line"); tps=${tps:-0}
  avg=$(sed -n 's/.*Average RT(ms): *\([0-9.]*\).*/\1/p' <<<"$line")
  fails=$(sed -n 's/.*Send Failed: \([0-9]*\) Response Failed: \([0-9]*\).*/\1 \2/p' <<<"$line" \
    | awk '{print $1 + $2}')
  local mbs; mbs=$(awk -v t="$tps" -v s="$3" 'BEGIN {printf "%.3f", t * s / 1e6}')
  emit_row "$1" "$2" peertool64 "$3" ${sample} "$tps" \
    "$(printf '%s\t%s\t-\t-\t%s' "$mbs" "${avg:--}" "${fails:-0}")" "p50 column = mean RT"
}

run_e2e() { # broker flush rate
  local json="$OUT/$1-$2-e2e-1024.json" sample
  # dynamic scope: bench_json sees the longer run (the first seconds of a new topic stall)
  local DUR=$((DUR + 2)) WARM=$((WARM + 2))
  log "$1 $2 e2e 1024B at $3 msg/s"
  sample=$(with_cpu_sample "$WARM" bench_json "$json" e2e --mode async --threads 2 --inflight 128 \
    --size 1024 --rate "$3")
  local tps rest
  tps=$(jq -r '.consume.tps' "$json")
  rest=$(jq -r '.consume | [.mb_per_sec, .latency_ms.p50_ms, .latency_ms.p99_ms,
      .latency_ms.p999_ms, ([.errors[]] | add // 0)] | @tsv' "$json")
  emit_row "$1" "$2" "e2e@$3" 1024 ${sample} "$tps" "$rest" "born->consume latency"
}

# The issue's "send latency at half load": producers only, open loop at the e2e rate (50% of
# the slower broker's producer-only peak), so a consumer sharing the 2 cores does not decide it.
run_half() { # broker flush rate
  local json="$OUT/$1-$2-half-1024.json" sample
  local DUR=$((DUR + 2)) WARM=$((WARM + 2))
  log "$1 $2 half-load send 1024B at $3 msg/s"
  sample=$(with_cpu_sample "$WARM" bench_json "$json" produce --mode async --threads 2 \
    --inflight 128 --size 1024 --rate "$3")
  local tps rest
  tps=$(jq -r '.produce.tps' "$json")
  rest=$(jq -r '.produce | [.mb_per_sec, .latency_ms.p50_ms, .latency_ms.p99_ms,
      .latency_ms.p999_ms, ([.errors[]] | add // 0)] | @tsv' "$json")
  emit_row "$1" "$2" "half@$3" 1024 ${sample} "$tps" "$rest" "send RT at half load, open loop"
}

throughput_phase() { # broker flush
  start_cluster "$1" "$2"
  local size w
  for size in $SIZES; do
    for w in $WORKLOADS; do run_bench "$1" "$2" "$w" "$size"; done
  done
  for size in $PEER_TOOL_SIZES; do run_peer_tool "$1" "$2" "$size"; done
  stop_cluster
}

# The request/response ceiling: the null broker (stores nothing, rmq-fast's transport)
# under the concurrent workloads of every size, Apache's benchmark Producer included (the
# client shares the two cores, so this is the most any broker can reach with it).
# Flush-independent: rows say "any".
null_phase() {
  start_cluster null any null-ceiling
  local size w
  for size in $SIZES; do
    for w in sync64 async; do run_bench null any "$w" "$size"; done
  done
  for size in $PEER_TOOL_SIZES; do run_peer_tool null any "$size"; done
  stop_cluster
}

# 50% of the slower broker's peak 1 KiB throughput for this flush mode.
e2e_rate() {
  awk -F'\t' -v f="$1" '$2 == f && $1 != "null" && $4 == 1024 && ($3 == "sync64" || $3 == "async") {
      if ($5 > peak[$1]) peak[$1] = $5 }
    END { m = -1; for (b in peak) if (m < 0 || peak[b] < m) m = peak[b]; printf "%d\n", m / 2 }' \
    "$RESULTS"
}

# ---------------------------------------------------------------- ceilings

ensure_tool() { # command package
  command -v "$1" >/dev/null && return 0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null 2>&1 || true
  command -v "$1" >/dev/null
}

ceilings() {
  local c="$OUT/ceilings.tsv" d="$WORK/fio"
  : >"$c"; mkdir -p "$d"
  if ensure_tool iperf3 iperf3; then
    log "ceiling: iperf3 loopback"
    iperf3 -s -1 -p 25201 >/dev/null 2>&1 & local srv=$!
    sleep 0.5
    iperf3 -c 127.0.0.1 -p 25201 -t 5 -J >"$OUT/iperf3.json" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
    jq -r '"loopback TCP (iperf3, 1 stream)\t" + ((.end.sum_received.bits_per_second / 8e6) | floor | tostring) + " MB/s"' \
      "$OUT/iperf3.json" >>"$c" 2>/dev/null || true
  fi
  if ensure_tool fio fio; then
    log "ceiling: fio O_DIRECT sequential write, fdatasync rate"
    fio --name=seqw --directory="$d" --rw=write --bs=1m --size=1g --direct=1 --ioengine=psync \
      --runtime=8 --time_based --output-format=json >"$OUT/fio-seq.json" 2>/dev/null || true
    fio --name=fsync --directory="$d" --rw=write --bs=4k --size=64m --ioengine=psync --fdatasync=1 \
      --runtime=8 --time_based --output-format=json >"$OUT/fio-sync.json" 2>/dev/null || true
    jq -r '"O_DIRECT sequential write (fio, 1 MiB blocks)\t" + ((.jobs[0].write.bw_bytes / 1e6) | floor | tostring) + " MB/s"' \
      "$OUT/fio-seq.json" >>"$c" 2>/dev/null || true
    jq -r '"4 KiB write + fdatasync (fio, 1 job)\t" + (.jobs[0].write.iops | floor | tostring) + " /s"' \
      "$OUT/fio-sync.json" >>"$c" 2>/dev/null || true
    # The yardstick of the SYNC_FLUSH half-load goal ("p99 within 2 device flushes"): the
    # latency of each fdatasync, not only how many fit in a second.
    jq -r '.jobs[0].sync.lat_ns as $l | "fdatasync latency after a 4 KiB write (fio, 1 job): mean / p50 / p99 / p99.9\t"
      + ([$l.mean, $l.percentile["50.000000"], $l.percentile["99.000000"], $l.percentile["99.900000"]]
         | map(. / 1e6 * 1000 | round / 1000 | tostring) | join(" / ")) + " ms"' \
      "$OUT/fio-sync.json" >>"$c" 2>/dev/null || true
  fi
  rm -rf "$d"
}

# ---------------------------------------------------------------- report

machine() {
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)"
  echo "- $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, kernel $(uname -r), store on $(findmnt -no FSTYPE,SOURCE -T "$WORK" | tr -s ' ')"
  echo "- rmq-fast binary: $(stat -c %y "$FAST" | cut -d. -f1) ($(git -C "$ROOT" status --porcelain 2>/dev/null | grep -c . || true) uncommitted files in the tree)"
  echo "- peer: Apache RocketMQ $PEER_VERSION (Maven Central), $(java -version 2>&1 | head -1)"
  echo "- load average before the run: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

table() {
  echo "| flush | workload | size | Apache msg/s | rmq-fast msg/s | ratio | p50 ms A / F | p99 ms A / F | p99.9 ms A / F | broker CPU µs/msg A / F | RSS MB A / F (HWM) | errors A / F | null broker msg/s, p99 ms, CPU µs/msg |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F'\t' '
    $1 == "null" { nul[$2, $3, $4] = $0; next }
    { key = $2 SUBSEP $3 SUBSEP $4; if (!(key in seen)) { seen[key] = 1; order[++n] = key }
      i = ++count[$1, key]; row[$1, key, i] = $0; tps[$1, key, i] = $5 + 0 }
    # The median round (lower middle) of broker b for key k, as a whole row; every rounds
    # msg/s in run order into rounds[b].
    function pick(b, k,    m, i, j, idx, t, list) {
      m = count[b, k]; list = ""
      for (i = 1; i <= m; i++) { idx[i] = i; list = list (i > 1 ? " / " : "") sprintf("%.0f", tps[b, k, i]) }
      for (i = 2; i <= m; i++)
        for (j = i; j > 1 && tps[b, k, idx[j - 1]] > tps[b, k, idx[j]]; j--) { t = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = t }
      rounds[b] = (m > 1) ? " (" list ")" : ""
      return row[b, k, idx[int((m + 1) / 2)]]
    }
    END {
      for (i = 1; i <= n; i++) {
        k = order[i]; split(k, p, SUBSEP)
        if (!(("apache", k, 1) in row) || !(("fast", k, 1) in row)) continue
        split(pick("apache", k), a, "\t"); split(pick("fast", k), f, "\t")
        ratio = (a[5] > 0) ? sprintf("%.2fx", f[5] / a[5]) : "-"
        ceil = "-"
        nk = (p[1] SUBSEP p[2] SUBSEP p[3]) in nul ? p[1] SUBSEP p[2] SUBSEP p[3] : "any" SUBSEP p[2] SUBSEP p[3]
        if (nk in nul) { split(nul[nk], c, "\t"); ceil = sprintf("%.0f, %s, %s", c[5], c[8], c[12]) }
        printf "| %s | %s | %s | %.0f%s | %.0f%s | %s | %s / %s | %s / %s | %s / %s | %s / %s | %s (%s) / %s (%s) | %s / %s | %s |\n",
          p[1], p[2], p[3], a[5], rounds["apache"], f[5], rounds["fast"], ratio, a[7], f[7], a[8], f[8], a[9], f[9],
          a[12], f[12], a[13], a[14], f[13], f[14], a[10], f[10], ceil
      }
    }' "$RESULTS"
}

# ---------------------------------------------------------------- main

main() {
  LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
  log "work dir $WORK, results in $OUT ($MODE mode)"
  prepare_binaries
  prepare_peer
  [[ $APPEND == 1 ]] || : >"$RESULTS"
  [[ $CEILINGS == 1 ]] && ceilings
  [[ $NULL == 1 && " $PHASES " == *" throughput "* ]] && null_phase
  local flush b rate
  for flush in $FLUSHES; do
    if [[ " $PHASES " == *" throughput "* ]]; then
      local round order
      for ((round = 1; round <= ROUNDS; round++)); do
        order="$BROKERS"
        (( round % 2 == 0 )) && order="$(tr ' ' '\n' <<<"$BROKERS" | tac | xargs)"
        for b in $order; do
          (( ROUNDS > 1 )) && log "round $round of $ROUNDS: $b $flush"
          throughput_phase "$b" "$flush"
        done
      done
    fi
    rate=$(e2e_rate "$flush")
    if [[ $rate -gt 0 && " $PHASES " == *" e2e "* ]]; then
      for b in $BROKERS; do start_cluster "$b" "$flush" "$b-$flush-e2e"; run_e2e "$b" "$flush" "$rate"; stop_cluster; done
    fi
    if [[ $rate -gt 0 && " $PHASES " == *" half "* ]]; then
      local half_brokers="$BROKERS"
      [[ $NULL == 1 ]] && half_brokers="$BROKERS null"
      for b in $half_brokers; do start_cluster "$b" "$flush" "$b-$flush-half"; run_half "$b" "$flush" "$rate"; stop_cluster; done
    fi
  done
  {
    echo "### Run $(date -u +%Y-%m-%d) ($MODE mode, ${DUR} s runs, ${WARM} s warmup excluded, $ROUNDS throughput round(s) per broker)"
    machine
    echo
    [[ -s $OUT/ceilings.tsv ]] && { echo "| ceiling | value |"; echo "|---|---|";
      awk -F'\t' '{print "| " $1 " | " $2 " |"}' "$OUT/ceilings.tsv"; echo; }
    table
  } >"$OUT/table.md"
  cat "$OUT/table.md"
  rm -rf "$WORK"/*/store "$WORK/fio"
  log "raw results: $RESULTS (stores deleted, logs kept in $WORK)"
}

main

#!/usr/bin/env bash
# Runs one OMB workload (local mode: the driver, producer and consumer in this JVM) with the
# RocketMQ 4.x driver against a running name server + broker, and prints OMB's aggregated
# publish, publish-delay and end-to-end latency percentiles from its result JSON.
#
# usage: tools/bench/omb/run.sh -n NAMESRV_ADDR [-c CLUSTER] [-w WORKLOAD_YAML] [-o OUT_JSON]
#          [-d DRIVER_YAML]
#   -n  name server address, e.g. 127.0.0.1:36076
#   -c  broker cluster name (brokerClusterName) the driver creates the topic in; default
#       DefaultCluster
#   -w  workload yaml; default workloads/smoke-1-topic-16-queues-1kb-5k.yaml (next to this script)
#   -o  result JSON; default target/omb/results/<workload>-<time>.json
#   -d  driver yaml; default driver-rocketmq4.yaml (next to this script)
# Env: OMB_DIR (build.sh's output dir, default target/omb/src/benchmark-framework/target),
#      OMB_HEAP (default "-Xms1g -Xmx1g").
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
NS="" CLUSTER=DefaultCluster OUT="" DRIVER="$HERE/driver-rocketmq4.yaml"
WORKLOAD="$HERE/workloads/smoke-1-topic-16-queues-1kb-5k.yaml"
while getopts "n:c:w:o:d:h" opt; do
  case $opt in
    n) NS=$OPTARG ;;
    c) CLUSTER=$OPTARG ;;
    w) WORKLOAD=$(realpath "$OPTARG") ;;
    o) OUT=$(realpath -m "$OPTARG") ;;
    d) DRIVER=$(realpath "$OPTARG") ;;
    *) sed -n 2,17p "$0"; exit 2 ;;
  esac
done
[ -n "$NS" ] || { echo "run.sh: -n NAMESRV_ADDR is required" >&2; exit 2; }
FW=${OMB_DIR:-$ROOT/target/omb/src/benchmark-framework/target}
[ -f "$FW/classpath.txt" ] || { echo "run.sh: no OMB build in $FW; run tools/bench/omb/build.sh" >&2; exit 1; }
OMB_SRC=$(cd "$FW/../.." && pwd) # payload/ paths in workloads are relative to OMB's tree
command -v jq >/dev/null || { echo "run.sh: needs jq" >&2; exit 1; }

WORK=$(mktemp -d /tmp/omb-run.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
sed -e "s|^namesrvAddr:.*|namesrvAddr: $NS|" -e "s|^clusterName:.*|clusterName: $CLUSTER|" \
  "$DRIVER" >"$WORK/driver.yaml"
if [ -z "$OUT" ]; then
  mkdir -p "$ROOT/target/omb/results"
  OUT="$ROOT/target/omb/results/$(basename "$WORKLOAD" .yaml)-$(date -u +%Y%m%dT%H%M%SZ).json"
fi
mkdir -p "$(dirname "$OUT")"

# The RocketMQ client writes its logs under user.home; keep them out of $HOME.
(cd "$OMB_SRC" && java -server ${OMB_HEAP:--Xms1g -Xmx1g} -XX:+UseG1GC \
  -Duser.home="$WORK" -Drocketmq.client.logRoot="$WORK/logs" \
  -cp "$FW/classes:$(cat "$FW/classpath.txt")" io.openmessaging.benchmark.Benchmark \
  -d "$WORK/driver.yaml" -o "$OUT" "$WORKLOAD")

jq -r '"OMB \(.workload) on \(.driver): target \(.messageSize) B at " +
  "\((.publishRate | add / length) | floor) msg/s published (mean of 10 s windows), " +
  "\((.consumeRate | add / length) | floor) msg/s consumed, " +
  "max \((.publishErrorRate // [0]) | max) publish errors/s\n" +
  "publish latency ms  p50 \(.aggregatedPublishLatency50pct) p99 \(.aggregatedPublishLatency99pct) " +
  "p99.9 \(.aggregatedPublishLatency999pct) max \(.aggregatedPublishLatencyMax)\n" +
  "publish delay µs    p50 \(.aggregatedPublishDelayLatency50pct) p99 \(.aggregatedPublishDelayLatency99pct) " +
  "p99.9 \(.aggregatedPublishDelayLatency999pct) max \(.aggregatedPublishDelayLatencyMax)\n" +
  "end-to-end ms       p50 \(.aggregatedEndToEndLatency50pct) p99 \(.aggregatedEndToEndLatency99pct) " +
  "p99.9 \(.aggregatedEndToEndLatency999pct) max \(.aggregatedEndToEndLatencyMax)"' "$OUT"
echo "result: $OUT"

#!/usr/bin/env bash
# Broker restart time, RSS, route lookup and send throughput with N topics (issue 12;
# results in docs/perf.md "Topic scale"). Usage: scripts/topic-scale-perf.sh N [PORT_BASE]
# Needs target/release/rmq-fast and target/release/rmq-fast-bench (cargo build --release
# -p rmq-fast -p rmq-fast-bench). The store is written directly: config/topics.json with N
# topics of 8 queues (what a broker that created them leaves after a clean shutdown).
set -euo pipefail
n=${1:?topic count}
base=${2:-35000}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${RMQFAST_BIN:-$root/target/release/rmq-fast}
bench=$root/target/release/rmq-fast-bench
work=$(mktemp -d "${TMPDIR:-/tmp}/topic-scale.XXXXXX")
ns_port=$base
broker_port=$((base + 11))
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/store/config" "$work/logs"
python3 - "$n" "$work/store/config/topics.json" <<'EOF'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
table = {}
for i in range(n):
    name = f"ScaleTopic_{i:07d}"
    table[name] = {"topicName": name, "readQueueNums": 8, "writeQueueNums": 8, "perm": 6,
                   "topicFilterType": "SINGLE_TAG", "topicSysFlag": 0, "order": False}
json.dump({"topicConfigTable": table, "dataVersion": {"timestamp": 0, "counter": 0}},
          open(path, "w"), indent=1)
EOF
cat >"$work/namesrv.properties" <<EOF
listenPort=$ns_port
EOF
cat >"$work/broker.properties" <<EOF
brokerClusterName=ScaleCluster
brokerName=scale-broker
brokerId=0
listenPort=$broker_port
namesrvAddr=127.0.0.1:$ns_port
brokerIP1=127.0.0.1
storePathRootDir=$work/store
logDir=$work/logs
autoCreateTopicEnable=true
EOF
"$bin" namesrv -c "$work/namesrv.properties" >"$work/namesrv.out" 2>&1 &
pids+=($!)
sleep 1

wait_port() {
    local deadline=$((SECONDS + 600))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { echo "port $1 never opened"; exit 1; }
        sleep 0.05
    done
}
# GET_ROUTEINFO_BY_TOPIC (105) to the name server: exit 0 when the topic has a route.
routable() {
    python3 - "$ns_port" "$1" <<'PY'
import json, socket, struct, sys
header = json.dumps({"code": 105, "language": "JAVA", "version": 0, "opaque": 1, "flag": 0,
                     "extFields": {"topic": sys.argv[2]}}).encode()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(struct.pack(">ii", 4 + len(header), len(header)) + header)
def read(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            sys.exit(2)
        data += chunk
    return data
total, header_len = struct.unpack(">ii", read(8))
reply = json.loads(read(header_len & 0xFFFFFF))
sys.exit(0 if reply["code"] == 0 else 1)
PY
}
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

start=$(date +%s.%N)
"$bin" broker -c "$work/broker.properties" >"$work/broker.out" 2>&1 &
broker=$!
pids+=("$broker")
wait_port "$broker_port"
ready=$(date +%s.%N)
echo "topics $n: broker serving $(echo "$ready - $start" | bc) s after start (topics.json $(du -m "$work/store/config/topics.json" | cut -f1) MB), RSS $(rss_mb "$broker") MB"
# Registered: the last topic is routable.
last=$(printf "ScaleTopic_%07d" $((n - 1)))
deadline=$((SECONDS + 600))
until routable "$last"; do
    [ $SECONDS -lt $deadline ] || { echo "never routable"; tail -5 "$work/broker.out"; exit 1; }
    sleep 0.2
done
echo "topics $n: routable $(echo "$(date +%s.%N) - $start" | bc) s after start, RSS $(rss_mb "$broker") MB"
"$bench" produce -n "127.0.0.1:$ns_port" --topic "ScaleTopic_0000000" --threads 4 --mode async \
    --duration 12 --warmup 2 2>"$work/produce.err" | head -20 || tail -3 "$work/produce.err"
echo "topics $n: RSS after sends $(rss_mb "$broker") MB"

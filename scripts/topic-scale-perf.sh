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
# Route lookups of the first topic every 10 ms on one connection until $work/stop-probe
# exists; prints the latency percentiles of those answered while the broker registered
# (from its start until the last topic was routable) and how many took over 5 s.
probe() {
    python3 - "$ns_port" "$work" <<'PY'
import json, os, socket, struct, sys, time
port, work = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=30)
def read(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            sys.exit(2)
        data += chunk
    return data
samples, opaque = [], 0
while not os.path.exists(work + "/stop-probe"):
    opaque += 1
    header = json.dumps({"code": 105, "language": "JAVA", "version": 0, "opaque": opaque,
                         "flag": 0, "extFields": {"topic": "ScaleTopic_0000000"}}).encode()
    asked = time.monotonic()
    s.sendall(struct.pack(">ii", 4 + len(header), len(header)) + header)
    total, header_len = struct.unpack(">ii", read(8))
    read(total - 4)
    samples.append(time.monotonic() - asked)
    time.sleep(0.01)
samples.sort()
at = lambda q: samples[int((len(samples) - 1) * q)] * 1000
print(f"route lookups while registering: {len(samples)}, p50 {at(0.5):.2f} ms, "
      f"p99 {at(0.99):.2f} ms, max {at(1.0):.2f} ms, over 5 s: {sum(x > 5 for x in samples)}")
PY
}

probe >"$work/probe.out" 2>&1 &
prober=$!
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
echo "topics $n: routable $(echo "$(date +%s.%N) - $start" | bc) s after start, RSS $(rss_mb "$broker") MB, name server RSS $(rss_mb "${pids[0]}") MB"
touch "$work/stop-probe"
wait "$prober" || true
cat "$work/probe.out"
"$bench" produce -n "127.0.0.1:$ns_port" --topic "ScaleTopic_0000000" --threads 4 --mode async \
    --duration 12 --warmup 2 2>"$work/produce.err" | head -20 || tail -3 "$work/produce.err"
echo "topics $n: RSS after sends $(rss_mb "$broker") MB, name server RSS $(rss_mb "${pids[0]}") MB"
# Creates over the network on top of the N topics (UPDATE_AND_CREATE_TOPIC, 16 in flight on
# one connection, each answered once durable), then the time until the last one is routable.
python3 - "$broker_port" "$ns_port" <<'PY'
import json, socket, struct, sys, time
broker_port, ns_port = int(sys.argv[1]), int(sys.argv[2])
def conn(port):
    return socket.create_connection(("127.0.0.1", port), timeout=30)
def send(s, code, ext, opaque):
    header = json.dumps({"code": code, "language": "JAVA", "version": 0, "opaque": opaque,
                         "flag": 0, "extFields": ext}).encode()
    s.sendall(struct.pack(">ii", 4 + len(header), len(header)) + header)
def recv(s):
    def read(n):
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                sys.exit(2)
            data += chunk
        return data
    total, header_len = struct.unpack(">ii", read(8))
    header = json.loads(read(header_len & 0xFFFFFF))
    read(total - 4 - (header_len & 0xFFFFFF))
    return header
count, window = 1000, 16
b = conn(broker_port)
started = time.monotonic()
sent = done = 0
while done < count:
    while sent < count and sent - done < window:
        send(b, 17, {"topic": f"Created_{sent:05d}", "readQueueNums": "8", "writeQueueNums": "8",
                     "perm": "6", "topicFilterType": "SINGLE_TAG"}, sent + 1)
        sent += 1
    reply = recv(b)
    assert reply["code"] == 0, reply
    done += 1
created = time.monotonic() - started
n = conn(ns_port)
while True:
    send(n, 105, {"topic": f"Created_{count - 1:05d}"}, 1)
    if recv(n)["code"] == 0:
        break
    time.sleep(0.01)
print(f"created {count} topics in {created:.2f} s ({count / created:.0f}/s); "
      f"the last routable {time.monotonic() - started - created:.2f} s after its create was answered")
PY

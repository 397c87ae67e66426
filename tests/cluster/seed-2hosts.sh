#!/usr/bin/env bash
# The seed's two-host 2m-2s SYNC cluster (conf/2m-2s-sync, seed 000_68a8d2acfbc730ac),
# run on one machine with two network namespaces standing in for the two hosts:
#
#   host1 (10.231.0.1): name server 1, broker-a master (10911), broker-b slave (11011)
#   host2 (10.231.0.2): name server 2, broker-b master (10911), broker-a slave (11011)
#
# joined by one veth pair. The clients (official Java client 4.9.8 via ClusterClient.java,
# and rmq-fast-bench) run inside host1's namespace: that keeps a single link, which the
# partition scenario cuts. Traffic only ever goes to 10.231.0.1, 10.231.0.2 and loopback,
# all inside our own namespaces. Host names resolve through /etc/netns/<ns>/hosts, which
# `ip netns exec` bind-mounts over /etc/hosts, so the seed's
# namesrvAddr=rocketmq-nameserver1:9876;rocketmq-nameserver2:9876 is used unchanged.
#
# Scenarios (each asserts that every acknowledged message is read back):
#   1 steady load across both masters       2 kill -9 master-a under load, read from slave-a
#   3 restart master-a, slave catches up    4 cut the host link, heal, slaves resync
#   5 name server 1 down: sends and consumes continue
#
# Contract: run as root; exit 0 only when every check passed; namespaces, processes and
# /etc/netns entries are removed on exit (trap), also on failure. Logs of a failed run are
# kept under the printed work directory. SEED_CLUSTER_LONG=1 runs longer loads and repeats
# the failover cycle; SEED_CLUSTER_KEEP=1 keeps the work directory after success.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=$ROOT/target/release/rmq-fast
BENCH=$ROOT/target/release/rmq-fast-bench
SEED_CONF=$ROOT/conf/2m-2s-sync
LONG=${SEED_CLUSTER_LONG:-0}
NSADDR="rocketmq-nameserver1:9876;rocketmq-nameserver2:9876"
IP1=10.231.0.1
IP2=10.231.0.2

if [[ $EUID -ne 0 ]]; then
    echo "seed-2hosts: must run as root (network namespaces)" >&2
    exit 2
fi
for tool in ip java javac mvn; do
    command -v "$tool" >/dev/null || { echo "seed-2hosts: $tool not found" >&2; exit 2; }
done
[[ -x $BIN && -x $BENCH ]] || {
    echo "seed-2hosts: build first: cargo build --release -p rmq-fast -p rmq-fast-bench" >&2
    exit 2
}

ID=$(printf '%04x%02x' $(($$ & 0xffff)) $((RANDOM & 0xff)))
NS1=rmqseed-$ID-h1
NS2=rmqseed-$ID-h2
VETH1=rq${ID}a # in NS1; names stay below the 15-character limit
VETH2=rq${ID}b # in NS2
WORK=$(mktemp -d /tmp/rmq-seed-cluster.XXXXXX)
declare -A PIDS=()
FAILED=0
STEP=setup

log() { printf '[%s %5ss] %s\n' "$(date +%T)" "$SECONDS" "$*"; }
fail() {
    log "FAIL ($STEP): $*"
    FAILED=1
    exit 1
}

cleanup() {
    local rc=$?
    set +e
    # Keep the shell's "Killed" job notices of our own kill -9s out of the output.
    exec 3>&2 2>/dev/null
    for name in "${!PIDS[@]}"; do
        kill -9 "${PIDS[$name]}" 2>/dev/null
    done
    for ns in "$NS1" "$NS2"; do
        # Whatever is still inside our namespaces was started by this script.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    done
    wait 2>/dev/null
    ip netns del "$NS1" 2>/dev/null
    ip netns del "$NS2" 2>/dev/null
    rm -rf "/etc/netns/$NS1" "/etc/netns/$NS2"
    # Stores hold fallocated 1 GiB segments: never keep them.
    find "$WORK" -maxdepth 2 -name store -type d -exec rm -rf {} + 2>/dev/null
    if [[ $rc -eq 0 && $FAILED -eq 0 && ${SEED_CLUSTER_KEEP:-0} != 1 ]]; then
        rm -rf "$WORK"
    else
        echo "seed-2hosts: logs kept in $WORK" >&3
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in1() { ip netns exec "$NS1" "$@"; }
in2() { ip netns exec "$NS2" "$@"; }

# ---- network: two "hosts" joined by a veth pair --------------------------------------
setup_network() {
    ip netns add "$NS1"
    ip netns add "$NS2"
    ip link add "$VETH1" netns "$NS1" type veth peer name "$VETH2" netns "$NS2"
    in1 ip addr add "$IP1/24" dev "$VETH1"
    in2 ip addr add "$IP2/24" dev "$VETH2"
    for ns in "$NS1" "$NS2"; do
        ip -n "$ns" link set lo up
        mkdir -p "/etc/netns/$ns"
        # The seed's /etc/hosts, with our namespace addresses for its two machines.
        cat >"/etc/netns/$ns/hosts" <<EOF
127.0.0.1 localhost
$IP1 rocketmq-nameserver1 rocketmq-master1 rocketmq-slave2
$IP2 rocketmq-nameserver2 rocketmq-master2 rocketmq-slave1
EOF
    done
    in1 ip link set "$VETH1" up
    in2 ip link set "$VETH2" up
    in1 getent hosts rocketmq-nameserver2 | grep -q "$IP2" ||
        fail "/etc/netns hosts file not applied"
}

# ---- configs: the seed's four files, only store paths changed ------------------------
# broker-a (host1) and broker-b-s (host1) share storePathRootDir=/usr/local/rocketmq/store
# in the seed, which cannot work on one host (the store is locked by its first broker).
# Each copy gets its own store under $WORK and a logDir (rmq-fast extension; the seed's
# Java broker logs to ~/logs). brokerIP1 is NOT added: as in the seed, the broker detects
# its address (first non-loopback IPv4 = the namespace's veth address), and the
# registration check below asserts it advertises exactly that address.
make_configs() {
    local name
    for name in broker-a broker-b-s broker-b broker-a-s; do
        local dir=$WORK/$name
        mkdir -p "$dir/logs"
        sed -E "s#/usr/local/rocketmq/store2?#$dir/store#g" \
            "$SEED_CONF/$name.properties" >"$dir/broker.properties"
        printf '\n# added by tests/cluster/seed-2hosts.sh\nlogDir=%s/logs\n' "$dir" \
            >>"$dir/broker.properties"
        # Guard: nothing but store paths (and the appended logDir) differs from the seed.
        local changed
        changed=$(diff "$SEED_CONF/$name.properties" "$dir/broker.properties" |
            grep '^[<>]' | grep -vE '^[<>] (storePath|storeCheckpoint|abortFile|logDir|#|$)' || true)
        [[ -z $changed ]] || fail "config copy of $name changed more than paths: $changed"
    done
    for n in 1 2; do
        mkdir -p "$WORK/ns$n/logs"
        printf 'listenPort=9876\nkvConfigPath=%s\nconfigStorePath=%s\nlogDir=%s\n' \
            "$WORK/ns$n/kvConfig.json" "$WORK/ns$n/namesrv.properties.store" "$WORK/ns$n/logs" \
            >"$WORK/ns$n/namesrv.properties"
    done
}

# ---- processes ------------------------------------------------------------------------
ns_of() { case $1 in ns1 | broker-a | broker-b-s) echo "$NS1" ;; *) echo "$NS2" ;; esac; }

start() { # start <name>: the seed's `nohup sh mqnamesrv` / `mqbroker -c <file>`
    local name=$1 ns
    ns=$(ns_of "$name")
    if [[ $name == ns? ]]; then
        ip netns exec "$ns" "$BIN" namesrv -c "$WORK/$name/namesrv.properties" \
            >>"$WORK/$name/stdout.log" 2>&1 &
    else
        ip netns exec "$ns" "$BIN" broker -c "$WORK/$name/broker.properties" \
            >>"$WORK/$name/stdout.log" 2>&1 &
    fi
    PIDS[$name]=$!
}

kill9() { # kill9 <name>
    local pid=${PIDS[$1]}
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$1]"
}

alive() { kill -0 "${PIDS[$1]}" 2>/dev/null; }

wait_port() { # wait_port <ns> <ip> <port> <secs>
    local deadline=$((SECONDS + $4))
    until ip netns exec "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# ---- clients --------------------------------------------------------------------------
setup_clients() {
    # Offline first (the clients run inside namespaces without a route out); the first run on
    # a machine fetches maven-dependency-plugin from Maven Central.
    local goal=(-q dependency:build-classpath -Dmdep.outputFile="$WORK/classpath.txt"
        -Dmdep.includeScope=runtime)
    (cd "$ROOT/tests/java" && { mvn -o "${goal[@]}" || mvn -B -ntp "${goal[@]}"; } >"$WORK/mvn.log" 2>&1) ||
        fail "mvn dependency:build-classpath failed (see $WORK/mvn.log; Maven Central must be reachable once)"
    CP=$(cat "$WORK/classpath.txt")
    # The client jars bring logback, which logs INFO to stdout by default: warnings to stderr.
    cat >"$WORK/logback.xml" <<'EOF'
<configuration>
  <appender name="ERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level %logger{20} - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="ERR"/></root>
</configuration>
EOF
    mkdir -p "$WORK/classes"
    javac -nowarn -cp "$CP" -d "$WORK/classes" "$ROOT/tests/cluster/ClusterClient.java" 2>"$WORK/javac.log" ||
        fail "ClusterClient.java does not compile (see $WORK/javac.log)"
}

client() { # client <args...>: the Java client inside host1's namespace
    in1 java -Xss512k -XX:+UseSerialGC -Xmx256m -Dlogback.configurationFile="$WORK/logback.xml" \
        -cp "$WORK/classes:$CP" ClusterClient "$@"
}

# expect_cluster <timeout> <expectations...>: on BOTH name servers
expect_cluster() {
    local timeout=$1
    shift
    client cluster "rocketmq-nameserver1:9876" "$timeout" "$@" >>"$WORK/cluster.log" 2>&1 ||
        { tail -1 "$WORK/cluster.log"; return 1; }
    client cluster "rocketmq-nameserver2:9876" "$timeout" "$@" >>"$WORK/cluster.log" 2>&1 ||
        { tail -1 "$WORK/cluster.log"; return 1; }
}

expect_one_ns_cluster() { # expect_one_ns_cluster <ns-addr> <timeout> <expectations...>
    client cluster "$@" >>"$WORK/cluster.log" 2>&1 || { tail -1 "$WORK/cluster.log"; return 1; }
}

FULL=("broker-a:0=$IP1:10911" "broker-a:1=$IP2:11011" "broker-b:0=$IP2:10911" "broker-b:1=$IP1:11011")

# produce_bg <tag> <secs> [threads] [rate]: Java producer in the background -> $WORK/acked-<tag>
produce_bg() {
    client produce "$NSADDR" SeedTopic "$1" "$2" "$WORK/acked-$1" "${3:-2}" "${4:-100}" \
        >"$WORK/produce-$1.json" 2>"$WORK/produce-$1.err" &
    PRODUCER=$!
}

produce_wait() { # produce_wait <tag>: waits, prints the summary
    wait "$PRODUCER" || fail "producer $1 exited with an error (see $WORK/produce-$1.err)"
    log "  producer $1: $(cat "$WORK/produce-$1.json")"
}

acked_on() { # acked_on <tag> <broker>: acked count of that broker
    local n
    n=$(grep -c "^$2	" "$WORK/acked-$1" 2>/dev/null || true)
    echo "${n:-0}"
}

verify_all() { # verify_all <timeout>: every acked message of every phase so far is read back
    local out
    out=$(client verify "$NSADDR" SeedTopic "$1" "$WORK"/acked-* 2>>"$WORK/verify.err") ||
        fail "acked messages missing: $out"
    log "  verify: $(head -1 <<<"$out")"
}

await_sync_sends() { # await_sync_sends <secs>: SEND_OK seen from both SYNC masters
    local deadline=$((SECONDS + $1)) round=0
    while ((SECONDS < deadline)); do
        round=$((round + 1))
        client produce "$NSADDR" SeedTopic "warmup$round" 2 "$WORK/acked-warmup$round" 1 20 \
            >"$WORK/produce-warmup$round.json" 2>>"$WORK/produce-warmup.err" || true
        if (($(acked_on "warmup$round" broker-a) > 0 && $(acked_on "warmup$round" broker-b) > 0)); then
            return 0
        fi
    done
    return 1
}

# ---- scenarios ------------------------------------------------------------------------
scenario_steady() {
    STEP="1 steady load"
    log "scenario $STEP"
    local secs=$((LONG == 1 ? 60 : 8))
    produce_bg steady "$secs" 2 100
    in1 "$BENCH" produce -n "$NSADDR" --topic SeedBench --threads 4 --mode async \
        --inflight 16 --duration "$secs" --json >"$WORK/bench-produce.json" 2>"$WORK/bench-produce.err" ||
        fail "bench produce failed: $(tail -3 "$WORK/bench-produce.err")"
    produce_wait steady
    local sent errors
    sent=$(jq -r '.produce.messages' "$WORK/bench-produce.json")
    errors=$(jq -c '.produce.errors' "$WORK/bench-produce.json")
    log "  bench produce: $sent acked, errors $errors"
    ((sent > 0)) || fail "bench sent nothing"
    [[ $errors == "{}" ]] || fail "bench send errors under steady load: $errors"
    # Count check of the bench topic: a new group reads everything from the start.
    in1 "$BENCH" consume -n "$NSADDR" --topic SeedBench --group "seed_bench_$ID" --from-start \
        --count "$sent" --duration 30 --json >"$WORK/bench-consume.json" 2>"$WORK/bench-consume.err" ||
        fail "bench consume failed: $(tail -3 "$WORK/bench-consume.err")"
    local got
    got=$(jq -r '.consume.messages' "$WORK/bench-consume.json")
    log "  bench consume: $got of $sent"
    ((got >= sent)) || fail "bench consumed $got < $sent acked"
    for broker in broker-a broker-b; do
        (($(acked_on steady $broker) > 0)) || fail "no send acked by $broker under steady load"
    done
    jq -e '.failures == {}' "$WORK/produce-steady.json" >/dev/null ||
        fail "steady producer saw failures: $(cat "$WORK/produce-steady.json")"
    verify_all 30
    # The verifier must be able to fail: a key that was never sent is reported missing.
    printf 'broker-a\tnever-sent-%s\n' "$ID" >"$WORK/not-acked"
    if client verify "$NSADDR" SeedTopic 1 "$WORK/not-acked" >/dev/null 2>&1; then
        fail "verify accepted a key that was never sent"
    fi
}

scenario_kill_master() { # $1 = cycle number
    STEP="2 kill -9 master-a (cycle $1)"
    log "scenario $STEP"
    local tag=kill$1 secs=$((LONG == 1 ? 30 : 12))
    local before_b
    produce_bg "$tag" "$secs" 2 100
    sleep 3
    before_b=$(acked_on "$tag" broker-b)
    kill9 broker-a
    log "  master-a killed ($(acked_on "$tag" broker-a) acked on broker-a before)"
    produce_wait "$tag"
    local after_b
    after_b=$(acked_on "$tag" broker-b)
    ((after_b > before_b + 50)) ||
        fail "sends did not keep succeeding on broker-b ($before_b -> $after_b acked)"
    # The name servers drop master-a when its connection closes; the slave stays.
    expect_cluster 40 "!broker-a:0" "broker-a:1=$IP2:11011" ||
        fail "name servers still route to the dead master-a"
    alive broker-a-s || fail "slave-a died"
    # Master-a is dead: every broker-a message read now comes from slave-a.
    verify_all 30
}

scenario_restart_master() {
    STEP="3 restart master-a (cycle $1)"
    log "scenario $STEP"
    start broker-a
    wait_port "$NS1" "$IP1" 10911 30 || fail "master-a did not listen again"
    expect_cluster 40 "${FULL[@]}" || fail "master-a did not register again"
    local tag=restart$1
    produce_bg "$tag" $((LONG == 1 ? 20 : 6)) 2 100
    produce_wait "$tag"
    # SEND_OK from a SYNC_MASTER means slave-a acknowledged that offset; the HA stream
    # is contiguous, so slave-a caught up with everything master-a stored before it.
    (($(acked_on "$tag" broker-a) > 0)) ||
        fail "restarted master-a acked no SYNC send (slave-a not caught up?)"
    verify_all 30
}

scenario_partition() {
    STEP="4 cut the host link (cycle $1)"
    log "scenario $STEP"
    local tag=cut$1 cut_secs=$((LONG == 1 ? 30 : 8))
    produce_bg "$tag" $((cut_secs + 6)) 2 100
    sleep 3
    in1 ip link set "$VETH1" down
    local cut_from cut_to
    cut_from=$(date +%s%3N)
    log "  link down for ${cut_secs}s"
    sleep "$cut_secs"
    cut_to=$(date +%s%3N)
    in1 ip link set "$VETH1" up
    log "  link up"
    produce_wait "$tag"
    # A SYNC_MASTER cannot get its slave's confirmation across a cut link: no send may be
    # acknowledged while the link is down (a small margin for in-flight replies).
    local during
    during=$(awk -F'\t' -v a="$cut_from" -v b="$cut_to" '$3 > a + 500 && $3 < b {n++} END {print n+0}' \
        "$WORK/acked-$tag")
    log "  acked while the link was down: $during"
    ((during == 0)) || fail "$during sends were acked as SEND_OK while master and slave were cut apart"
    for name in ns1 ns2 broker-a broker-b broker-a-s broker-b-s; do
        alive "$name" || fail "$name died during the partition"
    done
    # Re-registration happens on the brokers' 30 s period (registerNameServerPeriod).
    expect_cluster 75 "${FULL[@]}" || fail "cluster did not re-form after the heal"
    local heal=heal$1
    produce_bg "$heal" $((LONG == 1 ? 40 : 8)) 2 100
    produce_wait "$heal"
    # As in scenario 3: SEND_OK after the heal means both slaves resynced past every
    # record their master stored during the cut.
    for broker in broker-a broker-b; do
        (($(acked_on "$heal" $broker) > 0)) || fail "$broker acked no SYNC send after the heal"
    done
    verify_all 45
}

scenario_namesrv_down() {
    STEP="5 name server 1 down"
    log "scenario $STEP"
    produce_bg nsdown-across $((LONG == 1 ? 30 : 10)) 2 100
    local across=$PRODUCER
    sleep 2
    kill9 ns1
    log "  name server 1 killed"
    sleep 2
    # A client started now must find its way through name server 2 alone.
    produce_bg nsdown-after $((LONG == 1 ? 20 : 6)) 2 100
    produce_wait nsdown-after
    for broker in broker-a broker-b; do
        (($(acked_on nsdown-after $broker) > 0)) || fail "no send acked by $broker with ns1 down"
    done
    PRODUCER=$across
    produce_wait nsdown-across
    (($(acked_on nsdown-across broker-a) + $(acked_on nsdown-across broker-b) > 0)) ||
        fail "the producer running across the name server kill acked nothing"
    expect_one_ns_cluster "rocketmq-nameserver2:9876" 10 "${FULL[@]}" ||
        fail "name server 2 lost brokers"
    in1 "$BENCH" consume -n "$NSADDR" --topic SeedTopic --group "seed_ns_$ID" --from-start \
        --count 1 --duration 20 --json >"$WORK/bench-ns.json" 2>"$WORK/bench-ns.err" ||
        fail "bench consume with ns1 down failed: $(tail -3 "$WORK/bench-ns.err")"
    verify_all 30
}

main() {
    log "namespaces $NS1 $NS2, work dir $WORK, mode $([[ $LONG == 1 ]] && echo LONG || echo SHORT)"
    command -v jq >/dev/null || fail "jq not found"
    # The seed sets diskMaxUsedSpaceRatio=88: brokers refuse sends above 88 % used
    # (1 - available/size). Near that, "acked > 0" checks may fail for reasons outside
    # the cluster, so say so up front.
    local used
    used=$(df -P --block-size=1 "$WORK" | awk 'NR == 2 {printf "%d", 100 - 100 * $4 / $2}')
    ((used < 84)) || log "WARNING: $WORK's filesystem is ${used}% used; brokers refuse sends above 88%"
    setup_network
    make_configs
    setup_clients
    STEP=startup
    start ns1
    start ns2
    wait_port "$NS1" "$IP1" 9876 15 || fail "name server 1 not listening"
    # From host1: this also proves the veth link passes traffic.
    wait_port "$NS1" "$IP2" 9876 15 || fail "name server 2 not reachable from host1"
    # Masters first, as the seed does: a slave learns its master's HA address from its
    # REGISTER_BROKER response, so a slave registering before its master would wait one
    # registration period (registerNameServerPeriod, 30 s, as in RocketMQ 4.9.8).
    start broker-a
    start broker-b
    expect_cluster 30 "broker-a:0=$IP1:10911" "broker-b:0=$IP2:10911" || fail "masters did not register"
    start broker-b-s
    start broker-a-s
    expect_cluster 60 "${FULL[@]}" || fail "cluster did not form"
    log "cluster registered; waiting for both slaves to replicate"
    await_sync_sends 45 || fail "SYNC_MASTER sends never succeeded on both masters"
    log "cluster formed"
    scenario_steady
    local cycles=$((LONG == 1 ? 3 : 1))
    for ((cycle = 1; cycle <= cycles; cycle++)); do
        scenario_kill_master "$cycle"
        scenario_restart_master "$cycle"
        scenario_partition "$cycle"
    done
    scenario_namesrv_down
    STEP=done
    log "PASS: all scenarios ($SECONDS s)"
}

main "$@"

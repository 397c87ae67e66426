#!/usr/bin/env python3
"""Healthy masters fenced during a controller leader change (issue 11), on loopback: three
`rmq-fast controller` members, one name server and two broker groups (master + slave each) in
controller mode; a probe sends one message to every broker every ~20 ms (a slave refuses, a
master acknowledges, a fenced master refuses); the raft leader is killed with SIGKILL KILLS
times (restarted as a follower after each). Per kill it reports how many masters logged a
fence ("master cannot reach the controller"), how many refused any probe send, the longest
write-refusal window of a master (first refused send to the next acknowledged one), and
whether a group's master changed (a spurious failover).

Variants run interleaved (A, B, A, B ...: one whole cluster per variant and cycle), each a
binary and optional extra keys: `b.key=value` for the brokers, `c.key=value` for the
controllers, e.g.

  controller-leader-change.py --cycles 2 --kills 3 \\
      --variant old=/tmp/rmq-fast.old \\
      --variant new=target/release/rmq-fast \\
      --variant new-250=target/release/rmq-fast,b.brokerHeartbeatInterval=250,c.scanNotActiveBrokerInterval=100

Ports: 12 odd ones in 41000-41999 found unbound when a cluster starts (--base-port for another
range); everything under a temporary directory, printed at the
end (deleted unless --keep). Load (e.g. compiles) is the caller's; the load average is
printed with each kill.
"""

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "heartbeats", os.path.join(HERE, "controller-heartbeats.py")
)
heartbeats = importlib.util.module_from_spec(spec)
spec.loader.exec_module(heartbeats)
Conn, METADATA = heartbeats.Conn, heartbeats.METADATA

SEND_MESSAGE = 10
FENCE_LINE = b"master cannot reach the controller"
TOPIC = "LeaderChangeProbe"
PROBE_EVERY = 0.02


def unbound(port):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def free_ports(first, count):
    """`count` odd ports from `first` on that nothing holds now. 41000-41999 lie in the
    ephemeral range, whose even ports outgoing connections take (and hold in TIME-WAIT)."""
    found = [p for p in range(first | 1, first + 1000, 2) if unbound(p)][:count]
    if len(found) < count:
        raise SystemExit(f"not {count} free odd ports in {first}-{first + 999}")
    return found


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Sender:
    """One connection sending SEND_MESSAGE with a body; reconnects after a failure."""

    def __init__(self, addr):
        self.addr, self.conn, self.opaque = addr, None, 0

    async def send(self):
        """The response code (None: no answer within 1 s or no connection)."""
        try:
            if self.conn is None:
                self.conn = await asyncio.wait_for(Conn.open(self.addr), 1)
            conn = self.conn
            conn.opaque += 1
            header = {
                "code": SEND_MESSAGE,
                "language": "JAVA",
                "version": 453,
                "opaque": conn.opaque,
                "flag": 0,
                "extFields": {
                    "producerGroup": "leader-change-probe",
                    "topic": TOPIC,
                    "defaultTopic": "TBW102",
                    "defaultTopicQueueNums": "4",
                    "queueId": "0",
                    "sysFlag": "0",
                    "bornTimestamp": str(int(time.time() * 1000)),
                    "flag": "0",
                    "properties": "",
                    "reconsumeTimes": "0",
                },
            }
            data = json.dumps(header).encode()
            body = b"probe"
            frame = struct.pack(">ii", 4 + len(data) + len(body), len(data)) + data + body
            future = asyncio.get_running_loop().create_future()
            conn.waiting[conn.opaque] = future
            conn.writer.write(frame)
            await conn.writer.drain()
            answer = await asyncio.wait_for(future, 1)
            return answer.get("code")
        except (OSError, asyncio.TimeoutError, ConnectionError):
            if self.conn is not None:
                self.conn.writer.close()
                self.conn.task.cancel()
            self.conn = None
            return None


class Cluster:
    def __init__(self, binary, ports, work, broker_keys, controller_keys):
        self.binary, self.work = binary, work
        self.broker_keys, self.controller_keys = broker_keys, controller_keys
        self.ns = f"127.0.0.1:{ports[0]}"
        self.ctl = [f"127.0.0.1:{port}" for port in ports[1:4]]
        names = [f"{group}{n}" for group in "ab" for n in range(2)]
        self.brokers = {name: f"127.0.0.1:{ports[4 + i]}" for i, name in enumerate(names)}
        self.ha_ports = {name: ports[8 + i] for i, name in enumerate(names)}
        self.procs = {}
        # (monotonic time, broker, code) of every probe send
        self.sent = []
        self.probing = True

    def spawn(self, name, args):
        out = open(os.path.join(self.work, f"{name}.out"), "ab")
        self.procs[name] = subprocess.Popen([self.binary] + args, stdout=out, stderr=out)

    def conf(self, name, lines):
        path = os.path.join(self.work, f"{name}.properties")
        with open(path, "w") as f:
            f.write("".join(f"{k}={v}\n" for k, v in lines))
        return path

    def start_controller(self, n):
        os.makedirs(f"{self.work}/c{n}", exist_ok=True)
        peers = ";".join(f"n{i}-{a}" for i, a in enumerate(self.ctl))
        lines = [
            ("controllerDLegerGroup", "leader-change"),
            ("controllerDLegerPeers", peers),
            ("controllerDLegerSelfId", f"n{n}"),
            ("controllerStorePath", f"{self.work}/c{n}/store"),
            ("logDir", f"{self.work}/c{n}/logs"),
        ] + self.controller_keys
        self.spawn(f"c{n}", ["controller", "-c", self.conf(f"c{n}", lines)])

    def start_broker(self, name):
        port = int(self.brokers[name].rsplit(":", 1)[1])
        os.makedirs(f"{self.work}/{name}", exist_ok=True)
        lines = [
            ("brokerClusterName", "LeaderChange"),
            ("brokerName", f"broker-{name[0]}"),
            ("listenPort", port),
            ("haListenPort", self.ha_ports[name]),
            ("namesrvAddr", self.ns),
            ("brokerIP1", "127.0.0.1"),
            ("flushDiskType", "ASYNC_FLUSH"),
            ("storePathRootDir", f"{self.work}/{name}/store"),
            ("mapedFileSizeCommitLog", 16 << 20),
            ("logDir", f"{self.work}/{name}/logs"),
            ("enableControllerMode", "true"),
            ("controllerAddr", ";".join(self.ctl)),
            ("allAckInSyncStateSet", "true"),
        ] + self.broker_keys
        self.spawn(name, ["broker", "-c", self.conf(name, lines)])

    def kill(self, name):
        proc = self.procs.pop(name, None)
        if proc is not None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def stop_all(self):
        for name in list(self.procs):
            self.kill(name)

    def log_size(self, name):
        return os.path.getsize(os.path.join(self.work, f"{name}.out"))

    def fenced_since(self, name, offset):
        with open(os.path.join(self.work, f"{name}.out"), "rb") as f:
            f.seek(offset)
            return f.read().count(FENCE_LINE)

    async def named(self, n):
        try:
            conn = await asyncio.wait_for(Conn.open(self.ctl[n]), 1)
            try:
                answer = await asyncio.wait_for(conn.call(METADATA, {}), 1)
            finally:
                conn.writer.close()
                conn.task.cancel()
            return answer.get("extFields", {}).get("controllerLeaderAddress") or None
        except (OSError, asyncio.TimeoutError, ConnectionError):
            return None

    async def agreed(self, members, timeout, other_than=None):
        """The leader every member in `members` names (not `other_than`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            exited = [n for n, p in self.procs.items() if p.poll() is not None]
            if exited:
                raise SystemExit(f"exited: {exited} (see their .out in {self.work})")
            views = await asyncio.gather(*(self.named(n) for n in members))
            if views[0] and views[0] != other_than and all(v == views[0] for v in views):
                return views[0]
            await asyncio.sleep(0.02)
        raise SystemExit(f"no agreed controller leader among {members} within {timeout} s")

    async def probe(self, name):
        sender = Sender(self.brokers[name])
        while self.probing:
            started = time.monotonic()
            code = await sender.send()
            self.sent.append((started, name, code))
            await asyncio.sleep(max(0.0, PROBE_EVERY - (time.monotonic() - started)))

    def masters(self, since):
        """group -> broker whose every probe send since `since` was acknowledged."""
        ok = {}
        for at, name, code in self.sent:
            if at >= since:
                ok.setdefault(name, True)
                ok[name] = ok[name] and code == 0
        found = {}
        for name, all_ok in ok.items():
            if all_ok:
                found[name[0]] = name
        return found


def refusal(sent, broker, start, end):
    """(refused sends, longest refusal window in s) of `broker` within [start, end)."""
    refused, longest, first_refused = 0, 0.0, None
    for at, name, code in sent:
        if name != broker or not start <= at < end:
            continue
        if code != 0:
            refused += 1
            if first_refused is None:
                first_refused = at
        elif first_refused is not None:
            longest = max(longest, at - first_refused)
            first_refused = None
    if first_refused is not None:
        longest = max(longest, end - first_refused)
    return refused, longest


async def run_cluster(label, binary, keys, args, work):
    broker_keys = [(k[2:], v) for k, v in keys if k.startswith("b.")]
    controller_keys = [(k[2:], v) for k, v in keys if k.startswith("c.")]
    ports = free_ports(args.base_port, 12)
    cluster = Cluster(binary, ports, work, broker_keys, controller_keys)
    rows = []
    probes = []
    try:
        cluster.conf("ns", [("listenPort", cluster.ns.rsplit(":", 1)[1]), ("logDir", f"{work}/ns")])
        cluster.spawn("ns", ["namesrv", "-c", os.path.join(work, "ns.properties")])
        for n in range(3):
            cluster.start_controller(n)
        leader = await cluster.agreed([0, 1, 2], 30)
        for name in ("a0", "b0"):
            cluster.start_broker(name)
        probes = [asyncio.ensure_future(cluster.probe(name)) for name in cluster.brokers]
        deadline = time.monotonic() + 60
        while len(cluster.masters(time.monotonic() - 0.5)) < 2:
            if time.monotonic() > deadline:
                raise SystemExit(f"{label}: no master in both groups after 60 s")
            await asyncio.sleep(0.2)
        for name in ("a1", "b1"):
            cluster.start_broker(name)
        await asyncio.sleep(args.warmup)
        if args.stop_master:
            return await stop_masters(label, cluster, args)
        for kill in range(1, args.kills + 1):
            before = cluster.masters(time.monotonic() - 1.0)
            if len(before) < 2:
                raise SystemExit(f"{label}: kill {kill}: masters before the kill: {before}")
            dead = cluster.ctl.index(leader)
            survivors = [n for n in range(3) if n != dead]
            offsets = {name: cluster.log_size(name) for name in cluster.brokers}
            killed = time.monotonic()
            cluster.kill(f"c{dead}")
            await cluster.agreed(survivors, 30, other_than=leader)
            elected = time.monotonic() - killed
            await asyncio.sleep(args.settle)
            end = time.monotonic()
            after = cluster.masters(end - 1.0)
            fenced_log = sum(1 for m in before.values() if cluster.fenced_since(m, offsets[m]))
            refused, longest = 0, 0.0
            for master in before.values():
                count, window = refusal(cluster.sent, master, killed, end)
                refused += 1 if count else 0
                longest = max(longest, window)
            changed = [g for g in before if after.get(g) != before[g]]
            rows.append((label, kill, elected, fenced_log, refused, longest, changed, loadavg()))
            print(
                f"{label} kill {kill}: new leader after {elected * 1000:.0f} ms; masters fenced "
                f"(log) {fenced_log}/2, refused a send {refused}/2, longest refusal "
                f"{longest * 1000:.0f} ms, master changed in {changed or 'no group'} "
                f"(load {loadavg()})",
                flush=True,
            )
            cluster.start_controller(dead)
            leader = await cluster.agreed([0, 1, 2], 30)
            await asyncio.sleep(args.pause)
        return rows
    finally:
        cluster.probing = False
        for probe in probes:
            probe.cancel()
        cluster.stop_all()


async def stop_masters(label, cluster, args):
    """--stop-master: SIGSTOP group a's master (its connections stay open, as in a
    partition; only its heartbeats stop), time until its slave acknowledges a probe send,
    then SIGCONT it and let it rejoin as a slave."""
    rows = []
    for round_ in range(1, args.kills + 1):
        master = cluster.masters(time.monotonic() - 1.0).get("a")
        if master is None:
            raise SystemExit(f"{label}: round {round_}: no master in group a")
        other = "a1" if master == "a0" else "a0"
        stopped = time.monotonic()
        cluster.procs[master].send_signal(signal.SIGSTOP)
        took = None
        while took is None and time.monotonic() - stopped < 30:
            await asyncio.sleep(0.02)
            acked = [at for at, name, code in cluster.sent if name == other and code == 0 and at >= stopped]
            if acked:
                took = min(acked) - stopped
        cluster.procs[master].send_signal(signal.SIGCONT)
        if took is None:
            raise SystemExit(f"{label}: round {round_}: {other} did not take over in 30 s")
        rows.append((label, round_, took, 0, 0, 0.0, [], loadavg()))
        print(f"{label} stop {round_}: {master} stopped, {other} acknowledged after "
              f"{took * 1000:.0f} ms (load {loadavg()})", flush=True)
        await asyncio.sleep(args.settle + args.pause)
    return rows


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", action="append", required=True,
                        help="LABEL=BINARY[,b.key=value|c.key=value...]")
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--kills", type=int, default=3, help="raft leader kills per cluster")
    parser.add_argument("--base-port", type=int, default=41000)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds watched after the new leader is agreed")
    parser.add_argument("--pause", type=float, default=2.0,
                        help="seconds between a restarted member's return and the next kill")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--stop-master", action="store_true",
                        help="instead of killing the raft leader, SIGSTOP group a's master "
                        "--kills times and time its slave's first acknowledged send")
    args = parser.parse_args()
    variants = []
    for spec_ in args.variant:
        label, rest = spec_.split("=", 1)
        binary, *keys = rest.split(",")
        variants.append((label, binary, [tuple(k.split("=", 1)) for k in keys]))
    top = tempfile.mkdtemp(prefix="rmq-leader-change.")
    rows = []
    try:
        print(f"load average at start: {loadavg()}", flush=True)
        for cycle in range(args.cycles):
            for label, binary, keys in variants:
                work = os.path.join(top, f"{label}-{cycle}")
                os.makedirs(work)
                rows += await run_cluster(label, binary, keys, args, work)
        if args.stop_master:
            print("\n| variant | SIGSTOP of the master -> its slave's first ack (ms) |\n|---|---|")
            for label, _, _ in variants:
                times = " / ".join(f"{r[2] * 1000:.0f}" for r in rows if r[0] == label)
                print(f"| {label} | {times} |")
            return
        print("\n| variant | kills | masters fenced (log) | masters refusing a send | "
              "longest refusal per kill (ms) | spurious master changes |")
        print("|---|---|---|---|---|---|")
        for label, _, _ in variants:
            mine = [r for r in rows if r[0] == label]
            windows = " / ".join(f"{r[5] * 1000:.0f}" for r in mine)
            print(f"| {label} | {len(mine)} | {sum(r[3] for r in mine)} of {2 * len(mine)} | "
                  f"{sum(r[4] for r in mine)} of {2 * len(mine)} | {windows} | "
                  f"{sum(len(r[6]) for r in mine)} |")
        print(f"load average at the end: {loadavg()}")
    finally:
        print(f"logs in {top}" + ("" if args.keep else " (deleted)"))
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)


asyncio.run(main())

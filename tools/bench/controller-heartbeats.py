#!/usr/bin/env python3
"""Heartbeat load on a controller quorum (issue 11): N simulated brokers heartbeat to the
raft leader at a fixed interval, as controller-mode brokers do (BROKER_HEARTBEAT 904, answered
once the leader wrote it through raft). Prints heartbeat latency percentiles and, for the
local controller processes given with --pids, their CPU use and fsync calls per second
(fsyncs counted with `strace -c` when --strace is given; strace slows the process a little).

Usage (see tools/bench/controller-heartbeats.sh, which starts the three controllers):
  controller-heartbeats.py --controllers 127.0.0.1:32101;127.0.0.1:32102;127.0.0.1:32103 \
      --brokers 300 --interval-ms 500 --seconds 20 [--pids 1,2,3]
"""

import argparse
import asyncio
import json
import os
import struct
import time

HEARTBEAT = 904
REGISTER = 1003
METADATA = 1005
APPLY_BROKER_ID = 1013


class Conn:
    """One remoting connection; requests answered in order by opaque."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.opaque = 0
        self.waiting = {}
        self.task = asyncio.ensure_future(self.read_loop())

    @classmethod
    async def open(cls, addr):
        host, port = addr.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def read_loop(self):
        try:
            while True:
                length = struct.unpack(">i", await self.reader.readexactly(4))[0]
                frame = await self.reader.readexactly(length)
                header_len = struct.unpack(">i", frame[:4])[0] & 0xFFFFFF
                header = json.loads(frame[4 : 4 + header_len])
                future = self.waiting.pop(header.get("opaque"), None)
                if future is not None and not future.done():
                    future.set_result(header)
        except (asyncio.IncompleteReadError, ConnectionError):
            for future in self.waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("closed"))

    async def call(self, code, fields):
        self.opaque += 1
        header = {
            "code": code,
            "language": "JAVA",
            "version": 453,
            "opaque": self.opaque,
            "flag": 0,
            "extFields": {k: str(v) for k, v in fields.items()},
        }
        data = json.dumps(header).encode()
        self.writer.write(struct.pack(">ii", 4 + len(data), len(data)) + data)
        future = asyncio.get_running_loop().create_future()
        self.waiting[self.opaque] = future
        await self.writer.drain()
        return await asyncio.wait_for(future, 10)


async def leader_of(addrs):
    for addr in addrs:
        try:
            conn = await Conn.open(addr)
            answer = await conn.call(METADATA, {})
            conn.writer.close()
            leader = answer.get("extFields", {}).get("controllerLeaderAddress")
            if leader:
                return leader
        except (OSError, asyncio.TimeoutError):
            continue
    raise SystemExit("no controller leader")


async def register(index, leader, limit):
    """Applies the broker id and registers, retrying refusals (a real broker retries too:
    a thousand brokers registering at once queue up behind the quorum's writes)."""
    # One replica per group: ids of a group must be applied in order (1 first).
    name = f"bench-{index}"
    addr = f"127.0.0.2:{20000 + index}"
    base = {"clusterName": "BenchCluster", "brokerName": name}
    conn = await Conn.open(leader)
    async with limit:
        for code, fields in [
            (APPLY_BROKER_ID, {"appliedBrokerId": 1, "registerCheckCode": f"{addr};0"}),
            (REGISTER, {"brokerId": 1, "brokerAddress": addr, "invokeTime": 0}),
        ]:
            for attempt in range(10):
                answer = await conn.call(code, {**base, **fields})
                if answer["code"] == 0:
                    break
                await asyncio.sleep(0.5)
            else:
                raise SystemExit(f"registration ({code}) of {name}: {answer}")
    return conn, base, addr


async def broker(index, registered, args, latencies, errors, stop_at):
    conn, base, addr = registered
    broker_id = 1
    beat = {
        **base,
        "brokerAddr": addr,
        "brokerId": broker_id,
        "epoch": 1,
        "maxOffset": 0,
        "heartbeatTimeoutMills": args.timeout_ms,
    }
    # Spread the brokers over the interval, as independent brokers are.
    await asyncio.sleep(args.interval_ms / 1000 * index / args.brokers)
    next_at = time.monotonic()
    while time.monotonic() < stop_at:
        sent = time.monotonic()
        try:
            answer = await conn.call(HEARTBEAT, beat)
            if answer["code"] == 0:
                latencies.append((time.monotonic() - sent) * 1000)
            else:
                errors.append(answer.get("remark"))
        except (OSError, asyncio.TimeoutError) as error:
            errors.append(str(error))
        next_at += args.interval_ms / 1000
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--controllers", required=True)
    parser.add_argument("--brokers", type=int, default=100)
    parser.add_argument("--interval-ms", type=int, default=500)
    parser.add_argument("--timeout-ms", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--pids", default="")
    parser.add_argument("--perf-fsyncs", action="store_true")
    args = parser.parse_args()
    leader = await leader_of([a.strip() for a in args.controllers.split(";") if a.strip()])
    latencies, errors = [], []
    pids = [int(p) for p in args.pids.split(",") if p]
    limit = asyncio.Semaphore(64)
    registered = await asyncio.gather(*(register(i, leader, limit) for i in range(args.brokers)))
    warmup = 2.0
    stop_at = time.monotonic() + warmup + args.seconds
    tasks = [
        asyncio.ensure_future(broker(i, registered[i], args, latencies, errors, stop_at))
        for i in range(args.brokers)
    ]
    await asyncio.sleep(warmup)
    latencies.clear()
    cpu_before = {pid: cpu_seconds(pid) for pid in pids}
    perf = None
    if args.perf_fsyncs and pids:
        # fsync + fdatasync calls of the members during the measured window (root).
        perf = await asyncio.create_subprocess_exec(
            "perf", "stat", "-x,", "-e", "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync",
            "-p", ",".join(map(str, pids)), "--", "sleep", str(args.seconds),
            stderr=asyncio.subprocess.PIPE,
        )
    started = time.monotonic()
    await asyncio.gather(*tasks)
    took = time.monotonic() - started
    cpu = {pid: (cpu_seconds(pid) - cpu_before[pid]) / took for pid in pids}
    latencies.sort()
    fsyncs = None
    if perf is not None:
        _, out = await perf.communicate()
        fsyncs = sum(
            float(line.split(",")[0])
            for line in out.decode().splitlines()
            if "syscalls" in line and line.split(",")[0].replace(".", "").isdigit()
        )

    def pct(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] if latencies else 0

    print(
        json.dumps(
            {
                "brokers": args.brokers,
                "interval_ms": args.interval_ms,
                "leader": leader,
                "heartbeats_per_s": round(len(latencies) / took, 1),
                "latency_ms": {
                    "p50": round(pct(0.5), 2),
                    "p99": round(pct(0.99), 2),
                    "max": round(latencies[-1], 2) if latencies else 0,
                },
                "errors": len(errors),
                "first_error": errors[0] if errors else None,
                "cpu_cores_by_pid": {str(k): round(v, 3) for k, v in cpu.items()},
                "fsyncs_per_s_all_members": (
                    round(fsyncs / args.seconds, 1) if fsyncs is not None else None
                ),
                "fsyncs_per_heartbeat": (
                    round(fsyncs / max(1, len(latencies)), 2) if fsyncs is not None else None
                ),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())

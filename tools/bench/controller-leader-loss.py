#!/usr/bin/env python3
"""Raft leader loss on a 3-member controller quorum on loopback (issue 11): starts three
`rmq-fast controller` members, kills the raft leader with SIGKILL ROUNDS times (restarting it
after each round) and reports, per round, how long until no survivor names the dead leader in
CONTROLLER_GET_METADATA_INFO and until both survivors name the same new leader; then watches
the idle quorum for IDLE seconds and counts leader changes (there should be none).

Usage:
  controller-leader-loss.py [--bin target/release/rmq-fast] [--base-port 33101]
      [--rounds 10] [--idle 300]
Load (e.g. compiles) is the caller's to start; the load average is printed.
"""

import argparse
import asyncio
import importlib.util
import os
import signal
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


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Quorum:
    def __init__(self, binary, base, work):
        self.binary, self.work = binary, work
        self.addrs = [f"127.0.0.1:{base + n}" for n in range(3)]
        self.peers = ";".join(f"n{n}-{a}" for n, a in enumerate(self.addrs))
        self.procs = [None] * 3

    def start(self, n):
        conf = os.path.join(self.work, f"n{n}.properties")
        with open(conf, "w") as f:
            f.write(
                f"controllerDLegerGroup=loss\ncontrollerDLegerPeers={self.peers}\n"
                f"controllerDLegerSelfId=n{n}\ncontrollerStorePath={self.work}/store\n"
                f"logDir={self.work}/logs-n{n}\n"
            )
        out = open(os.path.join(self.work, f"n{n}.out"), "a")
        self.procs[n] = subprocess.Popen([self.binary, "controller", "-c", conf], stdout=out, stderr=out)

    def kill(self, n):
        self.procs[n].send_signal(signal.SIGKILL)
        self.procs[n].wait()
        self.procs[n] = None

    def stop_all(self):
        for n, proc in enumerate(self.procs):
            if proc is not None:
                self.kill(n)

    async def named(self, n):
        """The leader member n names (None: none, or no answer)."""
        try:
            conn = await asyncio.wait_for(Conn.open(self.addrs[n]), 1)
            try:
                answer = await asyncio.wait_for(conn.call(METADATA, {}), 1)
            finally:
                conn.writer.close()
                conn.task.cancel()
            return answer.get("extFields", {}).get("controllerLeaderAddress") or None
        except (OSError, asyncio.TimeoutError, ConnectionError):
            return None

    async def views(self, members):
        return await asyncio.gather(*(self.named(n) for n in members))

    async def agreed(self, members, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            views = await self.views(members)
            if views[0] and all(v == views[0] for v in views):
                return views[0]
            await asyncio.sleep(0.02)
        raise SystemExit(f"no agreed leader among n{members} within {timeout} s")


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=os.path.join(HERE, "../../target/release/rmq-fast"))
    parser.add_argument("--base-port", type=int, default=33101)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--idle", type=int, default=300)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="rmq-leader-loss.")
    quorum = Quorum(args.bin, args.base_port, work)
    try:
        for n in range(3):
            quorum.start(n)
        leader = await quorum.agreed([0, 1, 2], 20)
        print(f"load average at start: {loadavg()}")
        forgot, elected = [], []
        for round_ in range(1, args.rounds + 1):
            dead = quorum.addrs.index(leader)
            survivors = [n for n in range(3) if n != dead]
            await asyncio.sleep(1)
            killed = time.monotonic()
            quorum.kill(dead)
            forgotten = None
            while True:
                views = await quorum.views(survivors)
                now = time.monotonic() - killed
                if forgotten is None and all(v != leader for v in views):
                    forgotten = now
                if views[0] and views[0] != leader and all(v == views[0] for v in views):
                    break
                if now > 30:
                    raise SystemExit(f"round {round_}: no new leader after 30 s")
                await asyncio.sleep(0.01)
            new = views[0]
            forgot.append(forgotten)
            elected.append(now)
            print(
                f"round {round_}: killed n{dead}; not named any more after {forgotten * 1000:.0f} ms, "
                f"new leader {new} agreed after {now * 1000:.0f} ms (load {loadavg()})"
            )
            quorum.start(dead)
            leader = await quorum.agreed([0, 1, 2], 20)
            if leader != new:
                print(f"  note: the restarted member's return changed the leader to {leader}")
        if elected:
            elected.sort()
            print(
                f"leader loss -> agreed new leader: min {elected[0] * 1000:.0f} ms, "
                f"median {elected[len(elected) // 2] * 1000:.0f} ms, max {elected[-1] * 1000:.0f} ms"
            )
        if args.idle > 0:
            changes, gaps, last = 0, 0, leader
            stop = time.monotonic() + args.idle
            while time.monotonic() < stop:
                views = await quorum.views([0, 1, 2])
                if any(v is None for v in views):
                    gaps += 1
                named = {v for v in views if v}
                if len(named) == 1 and last not in named:
                    changes += 1
                    last = named.pop()
                    print(f"  leader changed to {last} while idle (load {loadavg()})")
                await asyncio.sleep(0.1)
            print(
                f"idle {args.idle} s: {changes} leader changes, {gaps} polls where a member "
                f"named no leader (load {loadavg()})"
            )
    finally:
        quorum.stop_all()
        print(f"logs in {work}")


asyncio.run(main())

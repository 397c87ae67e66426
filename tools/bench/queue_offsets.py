#!/usr/bin/env python3
"""Sum of a topic's consume-queue max offsets on one broker (GET_MAX_OFFSET, request code 30),
over the RocketMQ remoting protocol with JSON headers. Used by replication.sh to watch a slave
catch up with its master.

    queue_offsets.py BROKER_ADDR TOPIC QUEUES                 print the sum once
    queue_offsets.py BROKER_ADDR TOPIC QUEUES --wait N --timeout S
                                                              poll until the sum reaches N;
                                                              print the seconds it took
    queue_offsets.py MASTER TOPIC QUEUES --lag-of SLAVE --seconds S
                                                              sample every 50 ms how many
                                                              messages SLAVE is behind MASTER
"""
import argparse
import json
import socket
import struct
import sys
import time

GET_MAX_OFFSET = 30


class Broker:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.opaque = 0

    def call(self, code, ext):
        self.opaque += 1
        header = json.dumps({"code": code, "language": "JAVA", "version": 409, "opaque": self.opaque,
                             "flag": 0, "extFields": ext, "serializeTypeCurrentRPC": "JSON"}).encode()
        self.sock.sendall(struct.pack(">ii", 4 + len(header), len(header)) + header)
        length = struct.unpack(">i", self._read(4))[0]
        frame = self._read(length)
        header_len = struct.unpack(">i", frame[:4])[0] & 0xFFFFFF
        reply = json.loads(frame[4:4 + header_len])
        if reply.get("code") != 0:
            raise RuntimeError(f"code {reply.get('code')}: {reply.get('remark')}")
        return reply.get("extFields", {})

    def _read(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            out += chunk
        return out

    def total(self, topic, queues):
        return sum(int(self.call(GET_MAX_OFFSET, {"topic": topic, "queueId": str(q)})["offset"])
                   for q in range(queues))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("broker")
    ap.add_argument("topic")
    ap.add_argument("queues", type=int)
    ap.add_argument("--wait", type=int)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--lag-of")
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    start = time.monotonic()
    if args.lag_of:
        return sample_lag(args)
    if args.wait is None:
        print(Broker(args.broker).total(args.topic, args.queues))
        return 0
    broker = None
    while time.monotonic() - start < args.timeout:
        try:
            broker = broker or Broker(args.broker)
            if broker.total(args.topic, args.queues) >= args.wait:
                print(f"{time.monotonic() - start:.2f}")
                return 0
        except (OSError, RuntimeError):
            broker = None
        time.sleep(0.05)
    print(f"timeout after {args.timeout} s", file=sys.stderr)
    return 1


def sample_lag(args):
    master, slave = Broker(args.broker), Broker(args.lag_of)
    lags = []
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        # Slave first: a message counted on the slave is then surely counted on the master.
        behind = -slave.total(args.topic, args.queues)
        behind += master.total(args.topic, args.queues)
        lags.append(behind)
        time.sleep(0.05)
    lags.sort()
    pick = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]
    print(f"slave behind master, messages ({len(lags)} samples): "
          f"p50 {pick(0.5)} p90 {pick(0.9)} p99 {pick(0.99)} max {lags[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

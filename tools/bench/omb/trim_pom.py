#!/usr/bin/env python3
"""Drops every driver-* dependency but driver-api and driver-rocketmq from OMB's
benchmark-framework/pom.xml (given as the only argument), in place."""
import re
import sys

KEEP = {"driver-api", "driver-rocketmq"}

path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    pom = f.read()


def keep(m):
    art = re.search(r"<artifactId>([^<]+)</artifactId>", m.group(0)).group(1)
    return m.group(0) if not art.startswith("driver-") or art in KEEP else ""


out = re.sub(r"[ \t]*<dependency>.*?</dependency>\s*?\n", keep, pom, flags=re.S)
left = set(re.findall(r"<artifactId>(driver-[^<]+)</artifactId>", out))
assert left == KEEP, f"unexpected driver dependencies left: {left}"
with open(path, "w", encoding="utf-8") as f:
    f.write(out)

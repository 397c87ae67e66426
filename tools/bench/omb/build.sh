#!/usr/bin/env bash
# Builds the OpenMessaging Benchmark (OMB) runner with only its RocketMQ 4.x remoting driver
# (driver-rocketmq) from a pinned commit, using Maven Central only. OMB's sources are never
# committed here: they are cloned into the work dir. benchmark-framework depends on every
# driver, so its pom is edited to keep only driver-api and driver-rocketmq (the framework loads
# drivers by class name from the driver yaml, so nothing else refers to them).
#
# usage: tools/bench/omb/build.sh [--src GIT_URL_OR_PATH] [--dir WORK_DIR]
#   --src  default: /work/.mirror/openmessaging+benchmark/repo if it exists,
#          else https://github.com/openmessaging/benchmark.git
#   --dir  default: target/omb (relative to the repo root)
# Prints the directory holding classes + classpath.txt (what run.sh needs) on its last line.
set -euo pipefail

OMB_COMMIT=8559989
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
SRC=/work/.mirror/openmessaging+benchmark/repo
[ -d "$SRC" ] || SRC=https://github.com/openmessaging/benchmark.git
DIR="$ROOT/target/omb"
while [ $# -gt 0 ]; do
  case "$1" in
    --src) SRC=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v mvn >/dev/null || { echo "build.sh: needs Maven (mvn) and Java 17" >&2; exit 1; }
command -v python3 >/dev/null || { echo "build.sh: needs python3 (pom edit)" >&2; exit 1; }

SRC_DIR="$DIR/src"
if [ ! -d "$SRC_DIR/.git" ]; then
  rm -rf "$SRC_DIR"
  mkdir -p "$DIR"
  git clone -q "$SRC" "$SRC_DIR"
fi
git -C "$SRC_DIR" fetch -q origin 2>/dev/null || true
git -C "$SRC_DIR" checkout -q --force "$OMB_COMMIT"
git -C "$SRC_DIR" clean -qfdx -e target

# Keep only driver-api and driver-rocketmq among benchmark-framework's driver-* dependencies.
python3 "$(dirname "$0")/trim_pom.py" "$SRC_DIR/benchmark-framework/pom.xml"

start=$(date +%s)
# -am builds the parent, driver-api and driver-rocketmq only; the source checks (license,
# checkstyle, spotless, spotbugs) are OMB's own and need extra plugin downloads.
(cd "$SRC_DIR" && nice mvn -B -q -Dstyle.color=never -pl benchmark-framework -am package \
  -DskipTests -Dspotbugs.skip=true -Dcheckstyle.skip=true -Dspotless.check.skip=true \
  -Dspotless.apply.skip=true -Dlicense.skip=true -Denforcer.skip=true -Dmaven.javadoc.skip=true)
echo "build.sh: built OMB $OMB_COMMIT in $(( $(date +%s) - start )) s" >&2
FW="$SRC_DIR/benchmark-framework/target"
[ -f "$FW/classpath.txt" ] && [ -d "$FW/classes" ] || { echo "build.sh: no classpath.txt/classes in $FW" >&2; exit 1; }
grep -q 'rocketmq-client-' "$FW/classpath.txt" || { echo "build.sh: rocketmq-client missing from classpath" >&2; exit 1; }
echo "$FW"

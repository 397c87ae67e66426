#!/usr/bin/env bash
# The project's test command (see README.md): formatting, lints, unit and property tests,
# the criterion benches in test mode, then the end-to-end tests that drive the real
# binaries with the official Apache RocketMQ Java client.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

echo "== cargo fmt --check ($(date -u +%T))"
cargo fmt --all -- --check

echo "== cargo clippy ($(date -u +%T))"
cargo clippy --workspace --all-targets -q -- -D warnings

echo "== cargo test ($(date -u +%T))"
cargo test --workspace -q 2>&1 | tee target/cargo-test.log
grep -q "test result: ok" target/cargo-test.log

# Under `cargo test` criterion runs each bench once as a test. The dev profile and the same
# package selection as above reuse the test build (`cargo bench -- --test` compiled every
# dependency again in the bench profile: 6 of CI's minutes).
echo "== criterion benches (test mode: each bench runs once) ($(date -u +%T))"
cargo test --workspace -q --bench '*' >/dev/null

echo "== instruction-count gate (valgrind; benches/baseline/icount.json; ICOUNT_UPDATE=1 rewrites it) ($(date -u +%T))"
if ! command -v valgrind >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >/dev/null 2>&1; } \
    || true
fi
if command -v valgrind >/dev/null; then
  # rmq-fast in the same build: with it selected, the dependencies resolve to the features
  # the Java phase's `cargo build -p rmq-fast` uses, so that build redoes only our crates.
  cargo build --release -q -p rmq-benches -p rmq-fast --bins
  target/release/icount-gate
else
  echo "SKIPPED: valgrind is not installed and could not be installed with apt-get"
fi

echo "== Java client end-to-end tests ($(date -u +%T))"
bash scripts/java-tests.sh

# The seed's two-host 2m-2s SYNC cluster in network namespaces (root, ~2 min, ~8 GiB of
# disk): opt-in, see tests/cluster/README.md. The loopback master/slave test above
# (ReplicationTest) is the always-on replication check.
if [ "${RMQ_SEED_CLUSTER:-0}" = "1" ]; then
  echo "== seed two-host cluster (network namespaces) ($(date -u +%T))"
  cargo build --release -q -p rmq-fast -p rmq-fast-bench
  bash tests/cluster/seed-2hosts.sh
fi
# Automatic failover (controller mode) on three network-namespace hosts (root, ~3 min): opt-in,
# see tests/cluster/README.md. Its loopback counterparts run above (controller tests,
# broker/tests/controller_client.rs, ControllerAdminTest).
if [ "${RMQ_FAILOVER_CLUSTER:-0}" = "1" ]; then
  echo "== controller-mode failover, three hosts (network namespaces) ($(date -u +%T))"
  cargo build --release -q -p rmq-fast
  bash tests/cluster/failover-3hosts.sh
fi
echo "== all tests passed ($(date -u +%T))"

#!/usr/bin/env bash
# The project's test command (see README.md): formatting, lints, unit and property tests,
# the criterion benches in test mode, then the end-to-end tests that drive the real
# binaries with the official Apache RocketMQ Java client.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -q -- -D warnings

echo "== cargo test"
cargo test --workspace -q 2>&1 | tee target/cargo-test.log
grep -q "test result: ok" target/cargo-test.log

echo "== criterion benches (test mode: each bench runs once)"
cargo bench -q -p rmq-benches -- --test >/dev/null

echo "== Java client end-to-end tests"
bash scripts/java-tests.sh

//! rmq-fast-bench: a load generator speaking the RocketMQ 4.x remoting protocol, in the
//! spirit of Apache RocketMQ's `benchmark/Producer` and `Consumer`.
//!
//! ```text
//! rmq-fast-bench produce -n 127.0.0.1:9876 --topic BenchmarkTest --threads 4 --size 128
//! rmq-fast-bench consume --topic BenchmarkTest --duration 60
//! rmq-fast-bench e2e --rate 20000 --warmup 5 --duration 65 --json
//! rmq-fast-bench null-broker --listen 127.0.0.1:10911 --topic BenchmarkTest
//! ```
//!
//! Layout: `options` (command line), `runner` (threads, stop conditions, progress),
//! `producer` / `consumer` (the two sides), `route` (name server routes, broker
//! connections), `message` (send headers, properties, unique keys), `rate` (open-loop
//! schedule), `report` (statistics, summary, JSON), `clock` (wall clock, calendar),
//! `null_broker` (a broker that stores nothing: the machine's request/response ceiling).
//!
//! Output: a progress line per second on stderr; the summary on stdout, as text or, with
//! `--json`, as one JSON object. Exit code 0 after a run (errors are in the summary),
//! 1 when the run could not start, 130 on a second Ctrl-C.

/// mimalloc, as in the broker: the load generator should spend the shared cores on load,
/// not on glibc's allocator (~15% of its CPU in a sync64 run).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod clock;
mod consumer;
mod message;
mod null_broker;
mod options;
mod process_usage;
mod producer;
mod rate;
mod report;
mod route;
mod runner;

use clap::Parser;

use crate::options::Cli;

fn main() {
    init_tracing();
    let (workload, options) = match Cli::parse().workload.split() {
        Ok(load) => load,
        Err(null_broker) => {
            if let Err(error) = null_broker::run(*null_broker) {
                eprintln!("rmq-fast-bench: {error:#}");
                std::process::exit(1);
            }
            return;
        }
    };
    if let Err(problem) = options.validate() {
        eprintln!("rmq-fast-bench: {problem}");
        std::process::exit(2);
    }
    let json = options.json;
    match runner::run(workload, options) {
        Ok(summary) => {
            if json {
                println!("{}", summary.to_json());
            } else {
                print!("{}", summary.to_text());
            }
            // Consumers may still be parked in a long poll; the summary is out, so leave.
            std::process::exit(0);
        }
        Err(error) => {
            eprintln!("rmq-fast-bench: {error:#}");
            std::process::exit(1);
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings), keeping stdout for the
/// summary.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

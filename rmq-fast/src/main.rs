//! The `rmq-fast` binary: `namesrv`, `broker`, `controller` (RocketMQ 5 controller mode) and
//! `standalone` (name server and broker, on defaults).
//!
//! Command lines mirror mqnamesrv/mqbroker: `-c FILE` for a RocketMQ `.properties` file
//! and `-n ADDR` to override `namesrvAddr`. Errors reach the operator as one clear
//! message naming the key and the file, with a non-zero exit status.

mod logging;

/// mimalloc: per-thread free lists suit thread-per-core (every request allocates and frees
/// on its own core); measured against glibc malloc in docs/perf.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rmq_core::config::{BrokerConfig, ConfigWarning, ControllerConfig, NamesrvConfig};

#[derive(Parser)]
#[command(
    name = "rmq-fast",
    version,
    about = "Apache RocketMQ-compatible name server and broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a name server (like mqnamesrv).
    Namesrv {
        /// Name server properties file (listenPort, kvConfigPath, logDir...).
        #[arg(short = 'c', long = "configFile")]
        config: Option<PathBuf>,
    },
    /// Run one member of the controller quorum of RocketMQ 5's controller mode (like
    /// mqcontroller).
    Controller {
        /// Controller properties file (controllerDLegerGroup, controllerDLegerPeers,
        /// controllerDLegerSelfId, controllerStorePath...).
        #[arg(short = 'c', long = "configFile")]
        config: Option<PathBuf>,
    },
    /// Run a broker (like mqbroker).
    Broker {
        /// Broker properties file (RocketMQ keys, e.g. conf/2m-2s-sync/broker-a.properties).
        #[arg(short = 'c', long = "configFile")]
        config: Option<PathBuf>,
        /// Name server addresses, `host:port;host:port` (overrides namesrvAddr).
        #[arg(short = 'n', long = "namesrvAddr")]
        namesrv_addr: Option<String>,
    },
    /// Run a name server (127.0.0.1:9876) and a single-master broker (10911) in one
    /// process, storing under ./rmq-store: a working cluster with no config.
    Standalone {
        /// Store directory.
        #[arg(long, default_value = "rmq-store")]
        store: PathBuf,
        /// Broker properties file applied on top of the standalone defaults.
        #[arg(short = 'c', long = "configFile")]
        config: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli) {
        eprintln!("rmq-fast: {error:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Namesrv { config: file } => {
            let (config, warnings) = NamesrvConfig::load(file.as_deref(), &[])?;
            let _guard = logging::init(&config.log_dir, "namesrv.log")?;
            log_warnings(&warnings);
            // RocketMQ 5: the name server's file also configures an embedded controller.
            let controller = if config.enable_controller_in_namesrv {
                let (controller, warnings) =
                    ControllerConfig::load(file.as_deref(), &[], NamesrvConfig::KEYS)?;
                log_warnings(&warnings);
                Some(start_controller(&controller)?)
            } else {
                None
            };
            run_until_signal(
                |stop| start_namesrv(config, stop).map(|h| vec![h]),
                || {
                    if let Some(controller) = controller {
                        controller.shutdown();
                    }
                    Ok(())
                },
            )
        }
        Command::Controller { config } => {
            let (config, warnings) = ControllerConfig::load(config.as_deref(), &[], &[])?;
            let _guard = logging::init(&config.log_dir, "controller.log")?;
            log_warnings(&warnings);
            let signals = signal_set()?;
            let controller = start_controller(&config)?;
            wait_for_signal(signals);
            tracing::info!("shutting down");
            controller.shutdown();
            Ok(())
        }
        Command::Broker {
            config,
            namesrv_addr,
        } => {
            let overrides: Vec<(String, String)> = namesrv_addr
                .map(|addr| vec![("namesrvAddr".to_string(), addr)])
                .unwrap_or_default();
            let (config, warnings) = BrokerConfig::load(config.as_deref(), &overrides)?;
            let _guard = logging::init(&config.log_dir, "broker.log")?;
            log_warnings(&warnings);
            run_broker(config, None)
        }
        Command::Standalone { store, config } => {
            let store = std::path::absolute(&store).context("store path")?;
            let overrides = vec![
                ("storePathRootDir".to_string(), store.display().to_string()),
                ("namesrvAddr".to_string(), "127.0.0.1:9876".to_string()),
                ("brokerIP1".to_string(), "127.0.0.1".to_string()),
            ];
            let (broker, warnings) = BrokerConfig::load(config.as_deref(), &overrides)?;
            let (namesrv, _) = NamesrvConfig::load(None, &[])?;
            let _guard = logging::init(&broker.log_dir, "broker.log")?;
            log_warnings(&warnings);
            run_broker(broker, Some(namesrv))
        }
    }
}

fn log_warnings(warnings: &[ConfigWarning]) {
    for warning in warnings {
        tracing::warn!("{warning}");
    }
}

fn start_namesrv(
    config: NamesrvConfig,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let port = config.listen_port;
    let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    rmq_namesrv::run_namesrv(config, ip, stop)
        .with_context(|| format!("name server on port {port}"))
}

fn start_controller(config: &ControllerConfig) -> Result<rmq_controller::ElectionController> {
    let member = &config.controller_dleger_self_id;
    rmq_controller::start_controller(config).with_context(|| {
        format!(
            "controller member {member} ({})",
            config.controller_dleger_peers
        )
    })
}

fn run_broker(config: BrokerConfig, namesrv: Option<NamesrvConfig>) -> Result<()> {
    tracing::info!(
        broker = %config.broker_name, cluster = %config.broker_cluster_name, role = ?config.broker_role,
        flush = ?config.flush_disk_type, store = %config.store_path_root_dir,
        commit_log_file_size = config.mapped_file_size_commit_log,
        size_key = ?config.commit_log_size_key_used, "starting broker"
    );
    // Registered before start-up so a SIGTERM during recovery still shuts down cleanly.
    let signals = signal_set()?;
    let stop = Arc::new(AtomicBool::new(false));
    let namesrv_thread = match namesrv {
        Some(namesrv) => Some(start_namesrv(namesrv, stop.clone())?),
        None => None,
    };
    let broker = rmq_broker::start_broker(config).context("broker start-up")?;
    wait_for_signal(signals);
    tracing::info!("shutting down");
    broker.stop().context("broker shutdown")?;
    stop.store(true, Ordering::Release);
    if let Some(thread) = namesrv_thread {
        let _ = thread.join();
    }
    Ok(())
}

fn run_until_signal(
    start: impl FnOnce(Arc<AtomicBool>) -> Result<Vec<std::thread::JoinHandle<()>>>,
    after: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let signals = signal_set()?;
    let stop = Arc::new(AtomicBool::new(false));
    let threads = start(stop.clone())?;
    wait_for_signal(signals);
    tracing::info!("shutting down");
    stop.store(true, Ordering::Release);
    for thread in threads {
        let _ = thread.join();
    }
    after()
}

fn signal_set() -> Result<signal_hook::iterator::Signals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]).context("signal handler")
}

/// Blocks until SIGTERM, SIGINT or SIGHUP.
fn wait_for_signal(mut signals: signal_hook::iterator::Signals) {
    if let Some(signal) = signals.forever().next() {
        tracing::info!(signal, "signal received");
    }
}

#[cfg(test)]
mod tests {
    /// Anonymous memory the kernel backs with transparent huge pages, in KiB.
    fn anon_huge_kib() -> u64 {
        let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").expect("smaps_rollup");
        rollup
            .lines()
            .find_map(|line| line.strip_prefix("AnonHugePages:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("AnonHugePages line")
    }

    /// The allocator never asks for transparent huge pages: each one is cleared (2 MiB) on
    /// first touch, on the thread that touches it, which gave the shard threads 4-16 ms
    /// stretches away from their rings at 20k msg/s (docs/perf.md, "Huge pages off"). 64 MiB
    /// allocated and touched through the global allocator stay in 4 KiB pages. (Meaningful
    /// where THP is `madvise` or `always`; with `never` nothing is huge either way.)
    #[test]
    fn the_allocator_leaves_memory_in_small_pages() {
        let before = anon_huge_kib();
        let mut blocks: Vec<Vec<u8>> = (0..16).map(|_| vec![1u8; 4 << 20]).collect();
        for block in &mut blocks {
            block[4095] = 2;
        }
        let huge = anon_huge_kib().saturating_sub(before);
        assert_eq!(huge, 0, "{huge} KiB of the allocations are huge pages");
        drop(blocks);
    }
}

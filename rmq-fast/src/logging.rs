//! Logs to stderr and to `<logDir>/<file>` (default `~/logs/rocketmqlogs/`, where the
//! seed tells operators to look). `RUST_LOG` overrides the level (default info; openraft, the
//! controller's raft library, logs every vote and heartbeat at info, so it gets warn).

use std::path::Path;

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the subscriber; keep the guard alive for the life of the process so the
/// file writer flushes.
pub fn init(
    log_dir: &Path,
    file_name: &str,
) -> Result<tracing_appender::non_blocking::WorkerGuard> {
    std::fs::create_dir_all(log_dir)
        .with_context(|| format!("cannot create log directory {}", log_dir.display()))?;
    let file = tracing_appender::rolling::never(log_dir, file_name);
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false),
        )
        .try_init()
        .context("logging already initialised")?;
    Ok(guard)
}

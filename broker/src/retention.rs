//! The broker's store housekeeping loop (runs on core 0): watches the disk holding the
//! commit log and deletes expired files on every shard.
//!
//! - Every `min(cleanResourceInterval, 1 s)` it reads the filesystem's usage and updates the
//!   store's [`DiskGuard`]: at or above 90% sends are refused (SERVICE_NOT_AVAILABLE, "disk
//!   is full", checked in `send::check_broker_accepts_sends`) until use drops again; reads
//!   are never refused.
//! - Every `cleanResourceInterval` (and at once when the disk is nearly full) it asks
//!   [`plan_cleanup`] whether to delete (the `deleteWhen` hour, `diskMaxUsedSpaceRatio`,
//!   `cleanFileForciblyEnable` at 85%) and runs the round on each shard's owner core.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rmq_storage::disk_space::{DiskGuard, FreeSpace, disk_guard};
use rmq_storage::retention::{CleanupInputs, DISK_CLEAN_FORCIBLY_RATIO, plan_cleanup};

use crate::context::now_ms;
use crate::core_context::CoreContext;

/// Runs until the broker stops.
pub async fn retention_loop(core: Rc<CoreContext>, reader: Arc<dyn FreeSpace>) {
    let config = &core.broker.config;
    let dir: PathBuf = config.store_path_commit_log();
    let guard = disk_guard(&dir);
    let clean_every =
        Duration::from_millis(config.clean_resource_interval.clamp(100, 60_000) as u64);
    let check_every = clean_every.min(Duration::from_secs(1));
    let delete_hours = config.delete_when_hours().unwrap_or_else(|_| vec![4]);
    let mut last_clean = Instant::now();
    while !core.broker.stopping.load(Ordering::Acquire) {
        compio::time::sleep(check_every).await;
        let ratio = match read_usage(&*reader, &dir, &guard) {
            Some(ratio) => ratio,
            None => continue,
        };
        if last_clean.elapsed() < clean_every && ratio < DISK_CLEAN_FORCIBLY_RATIO {
            continue;
        }
        last_clean = Instant::now();
        let inputs = CleanupInputs {
            now_ms: now_ms(),
            hour: local_hour(),
            delete_hours: &delete_hours,
            disk_used_ratio: ratio,
            max_used_ratio: f64::from(config.disk_max_used_space_ratio) / 100.0,
            file_reserved_hours: i64::from(config.file_reserved_time),
            clean_forcibly_enable: config.clean_file_forcibly_enable,
        };
        if let Some(policy) = plan_cleanup(&inputs) {
            clean_all_shards(&core, policy).await;
        }
    }
}

fn read_usage(reader: &dyn FreeSpace, dir: &std::path::Path, guard: &DiskGuard) -> Option<f64> {
    match reader.usage(dir) {
        Ok(usage) => Some(guard.update(usage)),
        Err(error) => {
            tracing::warn!(?dir, %error, "cannot read disk usage");
            None
        }
    }
}

async fn clean_all_shards(core: &CoreContext, policy: rmq_storage::retention::ExpiryPolicy) {
    for shard in 0..core.broker.shard_count {
        let outcome = core
            .on_shard(shard, move |store| async move {
                store.delete_expired_files(&policy).await
            })
            .await;
        match outcome {
            Ok(Ok(deleted)) if deleted.segments > 0 => {
                tracing::info!(shard, ?deleted, "expired store files deleted");
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(shard, %error, "deleting expired files failed"),
            Err(error) => tracing::warn!(shard, %error, "retention round skipped"),
        }
    }
}

/// The local hour of the day (deleteWhen is local time, as in RocketMQ).
fn local_hour() -> u8 {
    let now = nix::libc::time_t::try_from(now_ms() / 1000).unwrap_or(0);
    // SAFETY: `tm` is a plain C struct for which all-zero bytes are valid; localtime_r only
    // writes into it and reads `now`.
    let mut tm: nix::libc::tm = unsafe { std::mem::zeroed() };
    let converted = unsafe { nix::libc::localtime_r(&now, &mut tm) };
    if converted.is_null() {
        return 0;
    }
    u8::try_from(tm.tm_hour.clamp(0, 23)).unwrap_or(0)
}

//! SYNC_FLUSH building blocks compared: `O_DIRECT` write + `fdatasync` (what the flusher
//! does) against `O_DIRECT | O_DSYNC` writes (durable on return, no separate sync), for
//! sequential block-aligned writes of several sizes into a preallocated, zero-filled file.
//!
//! `cargo run --release -p rmq-storage --example sync_write_modes -- [DIR] [WRITES]`
//! Prints the mean latency per durable write and the throughput; results in docs/perf.md.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Instant;

use rmq_storage::AlignedBuffer;

const FILE_SIZE: u64 = 256 << 20;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| ".".into());
    let writes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let temp = tempfile::tempdir_in(&dir).expect("temp dir");
    let path = temp.path().join("segment");
    prepare(&path);
    println!("mode                      write  mean_us  MiB/s");
    for size in [4096usize, 16 << 10, 64 << 10, 256 << 10] {
        for (name, dsync) in [
            ("O_DIRECT + fdatasync", false),
            ("O_DIRECT | O_DSYNC", true),
        ] {
            let (mean_us, mib_s) = measure(&path, size, writes, dsync);
            println!("{name:<24} {:>6}K {mean_us:>8.1} {mib_s:>6.1}", size >> 10);
        }
    }
}

fn prepare(path: &Path) {
    let file = File::create(path).expect("create");
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < FILE_SIZE {
        file.write_all_at(&zeros, at).expect("zero fill");
        at += zeros.len() as u64;
    }
    file.sync_all().expect("sync");
}

/// Mean microseconds per durable write and MiB/s for `writes` writes of `size` bytes.
fn measure(path: &Path, size: usize, writes: usize, dsync: bool) -> (f64, f64) {
    let mut flags = nix::libc::O_DIRECT;
    if dsync {
        flags |= nix::libc::O_DSYNC;
    }
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(flags)
        .open(path)
        .expect("open O_DIRECT (not on tmpfs)");
    let mut buffer = AlignedBuffer::zeroed(size);
    buffer.as_full_mut_slice().fill(b'm');
    let count = writes.min((FILE_SIZE / size as u64) as usize);
    let started = Instant::now();
    for i in 0..count {
        file.write_all_at(buffer.as_slice(), (i * size) as u64)
            .expect("write");
        if !dsync {
            file.sync_data().expect("fdatasync");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mean_us = elapsed * 1e6 / count as f64;
    let mib_s = (count * size) as f64 / (1 << 20) as f64 / elapsed;
    (mean_us, mib_s)
}

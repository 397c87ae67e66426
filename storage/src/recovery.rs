//! Recovery of one shard's commit log at open, after a clean shutdown or a crash.
//!
//! Scan start: the smaller of the checkpoint's `commit_log_flushed` and `consume_queue_safe`
//! (both record boundaries below which the commit log, the consume queues and the index were
//! fsynced). After a dirty shutdown (abort marker present) the scan starts earlier, at the
//! checkpoint's `revalidate_from` (a record boundary about 16 MiB before), so damage to the
//! most recently flushed records (a disk cache that lied, manual damage) is still found, and
//! the scan stays bounded: restart time does not grow with the store or segment size. Damage
//! older than that window is not looked for. Without a valid checkpoint the scan starts at the
//! first segment of the shard: slow but correct, and only when the checkpoint is missing or
//! torn.
//!
//! From there every record is validated: `parse_record` accepts it, its body CRC matches,
//! its PHYSICALOFFSET equals its position, and it leaves room for a segment filler. A BLANK
//! filler whose size reaches exactly the segment end moves the scan to the next segment. The
//! first position that fails (zeros, torn write, garbage) is the end of the log: later segment
//! files are deleted and the bytes after the end in its segment are zeroed on disk until the
//! first all-zero window, so stale records can never be resurrected by a later append that
//! happens to end where one of them starts. Every valid record is handed to a callback, which
//! re-dispatches consume queue entries. The touched segments are fsynced, so the recovered end
//! is also the flushed offset.

use std::collections::BTreeMap;
use std::rc::Rc;

use rmq_core::message::{RecordError, RecordView, parse_record};

use crate::aligned_buffer::{AlignedBuffer, BLOCK_SIZE, align_down, align_up};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::segment::{Segment, parse_segment_name};

/// Read size of the recovery scan and of the zeroing pass.
const SCAN_WINDOW_BYTES: usize = 4 << 20;

/// Where the checkpoint lets a scan start: `safe` (everything below is durable, its consume
/// queue entries and index keys too) and `revalidate_from`, an older record boundary used
/// after a crash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanStart {
    pub safe: i64,
    pub revalidate_from: i64,
}

pub(crate) struct RecoveredLog {
    pub segments: BTreeMap<i64, Rc<Segment>>,
    pub end: i64,
    /// The bytes `[align_down(end), end)`, which the first write re-sends.
    pub tail_block: Vec<u8>,
    pub last_store_timestamp: i64,
}

pub(crate) async fn recover_commit_log(
    cfg: &StoreConfig,
    shard: u32,
    scan_from: Option<ScanStart>,
    previous_shutdown_clean: bool,
    on_record: &mut dyn FnMut(&RecordView<'_>, i64),
) -> Result<RecoveredLog, StoreError> {
    let base = crate::shard_base(shard);
    let size = cfg.commit_log_file_size;
    let mut segments = open_segments(cfg, shard).await?;
    let Some((&first, _)) = segments.first_key_value() else {
        // SYNC_FLUSH: zero-fill the first segment like every prepared one, so the first
        // gigabyte is not written into unwritten extents (each group commit would convert
        // extents and sync their metadata: measured ~20% fewer sends/s than in prepared
        // segments). A one-time cost on a new store: one sequential write of the segment.
        let zero_fill = cfg.flush_mode == crate::FlushMode::Sync;
        if zero_fill {
            tracing::info!(
                shard,
                size,
                "zero-filling the first commit log segment (SYNC_FLUSH)"
            );
        }
        let segment = Segment::create(
            &cfg.commit_log_dir,
            base,
            size,
            zero_fill,
            &cfg.segment_io(),
        )
        .await?;
        segments.insert(base, Rc::new(segment));
        return Ok(RecoveredLog {
            segments,
            end: base,
            tail_block: Vec::new(),
            last_store_timestamp: 0,
        });
    };
    let segment_start = |offset: i64| base + ((offset - base) as u64 / size * size) as i64;
    // After a crash the scan starts at the checkpoint's `revalidate_from` (about 16 MiB before
    // the safe offset), not at the segment start: re-reading a whole segment (1 GiB: 4.5 s on
    // the machine of docs/perf.md) would make restart time grow with the segment size.
    let usable = |offset: i64| offset >= first && segments.contains_key(&segment_start(offset));
    let start = match scan_from {
        Some(from) if !previous_shutdown_clean && usable(from.revalidate_from) => {
            from.revalidate_from
        }
        Some(from) if usable(from.safe) => from.safe,
        _ => first,
    };
    if !previous_shutdown_clean {
        tracing::warn!(shard, start, "dirty shutdown: re-validating the log tail");
    }
    let mut scan = Scan {
        position: start,
        last_store_timestamp: 0,
        records: 0,
    };
    scan.run(&segments, size, on_record).await?;
    let end = scan.position;
    tracing::info!(
        shard,
        start,
        end,
        records = scan.records,
        "commit log recovered"
    );
    let end_segment = segment_start(end);
    trim_after_end(cfg, &mut segments, end_segment).await?;
    let segment = segments[&end_segment].clone();
    let tail_block = zero_after_end(&segment, end).await?;
    for segment in segments.range(segment_start(start)..).map(|(_, s)| s) {
        segment.sync().await?;
    }
    Ok(RecoveredLog {
        segments,
        end,
        tail_block,
        last_store_timestamp: scan.last_store_timestamp,
    })
}

/// Deletes the segments after the one holding the end and makes sure that one exists.
async fn trim_after_end(
    cfg: &StoreConfig,
    segments: &mut BTreeMap<i64, Rc<Segment>>,
    end_segment: i64,
) -> Result<(), StoreError> {
    let beyond: Vec<i64> = segments.range(end_segment + 1..).map(|(&s, _)| s).collect();
    for stale in beyond {
        let segment = segments.remove(&stale).expect("listed");
        tracing::warn!(path = ?segment.path, "deleting segment beyond the end of the log");
        std::fs::remove_file(&segment.path)
            .map_err(|e| StoreError::io("remove", &segment.path, 0, e))?;
    }
    if let std::collections::btree_map::Entry::Vacant(vacant) = segments.entry(end_segment) {
        let segment = Segment::create(
            &cfg.commit_log_dir,
            end_segment,
            cfg.commit_log_file_size,
            false,
            &cfg.segment_io(),
        )
        .await?;
        vacant.insert(Rc::new(segment));
    }
    Ok(())
}

/// Opens every segment of the shard (and removes its leftover `.prep` files).
async fn open_segments(
    cfg: &StoreConfig,
    shard: u32,
) -> Result<BTreeMap<i64, Rc<Segment>>, StoreError> {
    let base = crate::shard_base(shard);
    let size = cfg.commit_log_file_size;
    let dir = &cfg.commit_log_dir;
    let mut starts = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| StoreError::io("read_dir", dir, 0, e))? {
        let entry = entry.map_err(|e| StoreError::io("read_dir", dir, 0, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(prefix) = name.strip_suffix(".prep") {
            if parse_segment_name(prefix).is_some_and(|s| crate::shard_of_offset(s) == shard) {
                let _ = std::fs::remove_file(entry.path());
            }
            continue;
        }
        let Some(start) = parse_segment_name(name) else {
            continue;
        };
        if crate::shard_of_offset(start) != shard {
            continue;
        }
        if !((start - base) as u64).is_multiple_of(size) {
            return Err(StoreError::Config(format!(
                "segment {name} is not aligned to commit_log_file_size {size}"
            )));
        }
        starts.push(start);
    }
    let mut segments = BTreeMap::new();
    for start in starts {
        segments.insert(
            start,
            Rc::new(Segment::open(dir, start, size, &cfg.segment_io()).await?),
        );
    }
    Ok(segments)
}

struct Scan {
    position: i64,
    last_store_timestamp: i64,
    records: u64,
}

/// A block-aligned window of one segment.
struct Window {
    start: i64,
    data: AlignedBuffer,
}

impl Window {
    fn covers(&self, from: i64, to: i64) -> bool {
        self.start <= from && to <= self.start + self.data.len() as i64
    }

    fn bytes_from(&self, from: i64) -> &[u8] {
        &self.data.as_slice()[(from - self.start) as usize..]
    }
}

enum Step {
    Record(usize),
    NextSegment,
    More(usize),
    End(String),
}

impl Scan {
    async fn run(
        &mut self,
        segments: &BTreeMap<i64, Rc<Segment>>,
        size: u64,
        on_record: &mut dyn FnMut(&RecordView<'_>, i64),
    ) -> Result<(), StoreError> {
        loop {
            let segment_start = segments
                .range(..=self.position)
                .next_back()
                .map(|(&s, _)| s)
                .filter(|&s| self.position < s + size as i64);
            let Some(segment) = segment_start.and_then(|s| segments.get(&s)) else {
                return Ok(());
            };
            if !self.scan_segment(segment, on_record).await? {
                return Ok(());
            }
        }
    }

    /// Scans one segment from `position`; true when a filler moved on to the next segment.
    async fn scan_segment(
        &mut self,
        segment: &Segment,
        on_record: &mut dyn FnMut(&RecordView<'_>, i64),
    ) -> Result<bool, StoreError> {
        let mut window: Option<Window> = None;
        let mut need = 8usize;
        loop {
            let position = self.position;
            if segment.end() - position < 8 {
                return Ok(false);
            }
            let covered = window
                .as_ref()
                .is_some_and(|w| w.covers(position, position + need as i64));
            if !covered {
                window = Some(read_window(segment, position, need).await?);
            }
            let window_ref = window.as_ref().expect("window read");
            let remaining = (segment.end() - position) as usize;
            match step(window_ref.bytes_from(position), position, remaining) {
                Step::Record(len) => {
                    let record = parse_record(window_ref.bytes_from(position)).expect("validated");
                    on_record(&record, position);
                    self.last_store_timestamp = record.store_timestamp();
                    self.records += 1;
                    self.position += len as i64;
                    need = 8;
                }
                Step::NextSegment => {
                    self.position = segment.end();
                    return Ok(true);
                }
                Step::More(len) if len + 8 <= remaining && len > need => need = len,
                Step::More(_) => return self.end_here(segment, "record runs past its segment"),
                Step::End(reason) => return self.end_here(segment, &reason),
            }
        }
    }

    fn end_here(&self, segment: &Segment, reason: &str) -> Result<bool, StoreError> {
        if reason != "zero" {
            tracing::warn!(path = ?segment.path, position = self.position, reason, "commit log ends at an invalid record");
        }
        Ok(false)
    }
}

/// Classifies the bytes at `position` (a slice that may stop before the record ends).
fn step(bytes: &[u8], position: i64, remaining: usize) -> Step {
    if bytes.len() >= 8 && bytes[..8].iter().all(|&b| b == 0) {
        return Step::End("zero".into());
    }
    match parse_record(bytes) {
        Ok(record) => {
            let len = record.total_size();
            if !record.crc_ok() {
                Step::End("body CRC mismatch".into())
            } else if record.physical_offset() != position {
                Step::End(format!(
                    "physical offset field {} != position",
                    record.physical_offset()
                ))
            } else if len + 8 > remaining {
                Step::End("record leaves no room for the segment filler".into())
            } else {
                Step::Record(len)
            }
        }
        Err(RecordError::Blank { size }) if size as i64 == remaining as i64 => Step::NextSegment,
        Err(RecordError::Truncated { need, .. }) => Step::More(need),
        Err(error) => Step::End(format!("{error:?}")),
    }
}

async fn read_window(segment: &Segment, position: i64, need: usize) -> Result<Window, StoreError> {
    let relative = (position - segment.start) as u64;
    let from = align_down(relative);
    let to = align_up(relative + need.max(SCAN_WINDOW_BYTES) as u64).min(segment.size);
    let data = segment.read_at(from, (to - from) as usize).await?;
    Ok(Window {
        start: segment.start + from as i64,
        data,
    })
}

/// Zeroes the segment's bytes after `end` up to the first all-zero window; returns the
/// bytes of `end`'s block before `end`.
async fn zero_after_end(segment: &Segment, end: i64) -> Result<Vec<u8>, StoreError> {
    let relative = (end - segment.start) as u64;
    let block = align_down(relative);
    let mut tail_block = Vec::new();
    let mut at = block;
    while at < segment.size {
        let len = (segment.size - at).min(SCAN_WINDOW_BYTES as u64) as usize;
        let mut data = segment.read_at(at, len).await?;
        let keep = if at == block {
            (relative - block) as usize
        } else {
            0
        };
        if at == block {
            tail_block = data.as_slice()[..keep].to_vec();
        }
        if data.as_slice()[keep..].iter().all(|&b| b == 0) {
            break;
        }
        tracing::warn!(path = ?segment.path, from = at + keep as u64, len, "zeroing stale bytes after the end of the log");
        data.as_full_mut_slice()[keep..len].fill(0);
        segment.write_at(data, at).await?;
        at += len as u64;
    }
    assert!(tail_block.len() < BLOCK_SIZE);
    Ok(tail_block)
}

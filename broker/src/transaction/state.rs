//! [`TransactionState`]: which half messages are resolved, how often pending ones were
//! checked, and how far the op queue must be re-read after a restart (see the `transaction`
//! module doc). One mutex, taken per END_TRANSACTION and per half message in a check round.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// `config/transactionProgress.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ProgressFile {
    /// Every half offset below this is resolved.
    half_offset: i64,
    /// Op records naming half offsets >= `half_offset` are all at or after this op offset.
    op_offset: i64,
    /// Checks already sent per pending half offset.
    check_times: BTreeMap<i64, i32>,
}

#[derive(Default)]
struct Inner {
    half_watermark: i64,
    /// Next op queue offset the check service reads.
    op_scanned: i64,
    /// Resolved half offsets >= watermark -> op offset of their decision.
    resolved: BTreeMap<i64, i64>,
    in_flight: BTreeSet<i64>,
    check_times: BTreeMap<i64, i32>,
}

pub struct TransactionState {
    inner: Mutex<Inner>,
    dirty: AtomicBool,
    path: PathBuf,
    /// Opaque of the next broker-initiated request (CHECK_TRANSACTION_STATE).
    next_opaque: AtomicI32,
}

impl TransactionState {
    /// # Errors
    /// The progress file exists but neither it nor its backup can be read.
    pub fn load(config_dir: &std::path::Path) -> Result<Self, crate::json_file::LoadError> {
        let path = config_dir.join("transactionProgress.json");
        let file: ProgressFile = crate::json_file::load_or_default(&path)?;
        let inner = Inner {
            half_watermark: file.half_offset,
            op_scanned: file.op_offset,
            check_times: file.check_times,
            ..Inner::default()
        };
        Ok(Self {
            inner: Mutex::new(inner),
            dirty: AtomicBool::new(false),
            path,
            next_opaque: AtomicI32::new(1),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("transaction state lock")
    }

    pub fn next_opaque(&self) -> i32 {
        self.next_opaque.fetch_add(1, Ordering::Relaxed) & i32::MAX
    }

    /// Takes the right to decide `half_offset`: false when it is resolved or being decided.
    pub fn claim(&self, half_offset: i64) -> bool {
        let mut inner = self.lock();
        if half_offset < inner.half_watermark || inner.resolved.contains_key(&half_offset) {
            return false;
        }
        inner.in_flight.insert(half_offset)
    }

    /// Gives a claim back after a failed decision.
    pub fn release(&self, half_offset: i64) {
        self.lock().in_flight.remove(&half_offset);
    }

    /// Records the decision of `half_offset`, logged at op queue offset `op_offset`.
    pub fn resolve(&self, half_offset: i64, op_offset: i64) {
        let mut inner = self.lock();
        inner.in_flight.remove(&half_offset);
        if half_offset >= inner.half_watermark {
            inner.resolved.insert(half_offset, op_offset);
            inner.check_times.remove(&half_offset);
        }
        self.dirty.store(true, Ordering::Release);
    }

    pub fn is_resolved(&self, half_offset: i64) -> bool {
        let inner = self.lock();
        half_offset < inner.half_watermark || inner.resolved.contains_key(&half_offset)
    }

    pub fn is_in_flight(&self, half_offset: i64) -> bool {
        self.lock().in_flight.contains(&half_offset)
    }

    pub fn half_watermark(&self) -> i64 {
        self.lock().half_watermark
    }

    pub fn op_scanned(&self) -> i64 {
        self.lock().op_scanned
    }

    pub fn set_op_scanned(&self, offset: i64) {
        let mut inner = self.lock();
        if offset > inner.op_scanned {
            inner.op_scanned = offset;
        }
    }

    /// Moves the watermark over resolved offsets; `max_half` caps it at the half queue's end.
    pub fn advance_watermark(&self, max_half: i64) {
        let mut inner = self.lock();
        let before = inner.half_watermark;
        while inner.half_watermark < max_half {
            let w = inner.half_watermark;
            if inner.resolved.remove(&w).is_none() {
                break;
            }
            inner.check_times.remove(&w);
            inner.half_watermark = w + 1;
        }
        if inner.half_watermark != before {
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Checks sent so far for a pending half offset.
    pub fn check_times(&self, half_offset: i64) -> i32 {
        self.lock()
            .check_times
            .get(&half_offset)
            .copied()
            .unwrap_or(0)
    }

    /// Counts one more check.
    pub fn bump_check(&self, half_offset: i64) -> i32 {
        let mut inner = self.lock();
        let times = inner.check_times.entry(half_offset).or_insert(0);
        *times += 1;
        let now = *times;
        self.dirty.store(true, Ordering::Release);
        now
    }

    fn snapshot(&self) -> ProgressFile {
        let inner = self.lock();
        let op_min = inner.resolved.values().copied().min();
        ProgressFile {
            half_offset: inner.half_watermark,
            op_offset: op_min.map_or(inner.op_scanned, |m| m.min(inner.op_scanned)),
            check_times: inner.check_times.clone(),
        }
    }

    /// Writes the progress file if anything changed.
    pub fn persist(&self) {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Err(error) = crate::json_file::store(&self.path, &self.snapshot()) {
            self.dirty.store(true, Ordering::Release);
            tracing::error!(path = %self.path.display(), "cannot persist transaction progress: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_moves_over_resolved_offsets_only() {
        let dir = tempfile::tempdir().unwrap();
        let state = TransactionState::load(dir.path()).unwrap();
        assert!(state.claim(0));
        assert!(!state.claim(0), "second claim while in flight");
        state.resolve(0, 5);
        state.resolve(2, 6);
        assert_eq!(state.bump_check(1), 1);
        state.advance_watermark(3);
        assert_eq!(state.half_watermark(), 1);
        assert!(state.is_resolved(0) && state.is_resolved(2) && !state.is_resolved(1));
        state.set_op_scanned(7);
        state.persist();
        let again = TransactionState::load(dir.path()).unwrap();
        assert_eq!(again.half_watermark(), 1);
        assert_eq!(again.op_scanned(), 6, "op 6 (half 2) must be re-read");
        assert_eq!(again.check_times(1), 1);
        assert!(!again.claim(0));
    }
}

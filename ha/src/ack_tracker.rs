//! Which SYNC_MASTER sends the slave acknowledgements have released.
//!
//! Sends wait with the end offset of their record; each slave report releases, in one
//! go, every waiter whose end offset it covers (group release, like the flush group
//! commit). Pure bookkeeping: the caller owns the wake-up mechanism (`W`).

use std::collections::BTreeMap;

/// Waiters keyed by end offset, released by acknowledgements.
pub struct AckTracker<W> {
    acked: i64,
    waiting: BTreeMap<i64, Vec<W>>,
}

impl<W> Default for AckTracker<W> {
    fn default() -> Self {
        Self {
            acked: 0,
            waiting: BTreeMap::new(),
        }
    }
}

impl<W> AckTracker<W> {
    /// Highest offset any slave acknowledged.
    pub fn acked(&self) -> i64 {
        self.acked
    }

    /// Registers a waiter; returns it back at once if already covered.
    pub fn wait(&mut self, end_offset: i64, waiter: W) -> Option<W> {
        if end_offset <= self.acked {
            return Some(waiter);
        }
        self.waiting.entry(end_offset).or_default().push(waiter);
        None
    }

    /// Records an acknowledgement and returns every waiter it releases. Reports that go
    /// backwards (a reconnecting slave) release nothing and do not move `acked` back.
    pub fn ack(&mut self, offset: i64) -> Vec<W> {
        if offset <= self.acked {
            return Vec::new();
        }
        self.acked = offset;
        let still_waiting = self.waiting.split_off(&(offset + 1));
        let released = std::mem::replace(&mut self.waiting, still_waiting);
        assert!(
            self.waiting.keys().all(|end| *end > offset),
            "released every covered waiter"
        );
        released.into_values().flatten().collect()
    }

    /// Removes every waiter (the last slave left): dropping them fails their sends at once.
    pub fn drain(&mut self) -> Vec<W> {
        std::mem::take(&mut self.waiting)
            .into_values()
            .flatten()
            .collect()
    }

    pub fn waiting(&self) -> usize {
        self.waiting.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ack_releases_every_covered_waiter() {
        let mut tracker = AckTracker::default();
        assert!(tracker.wait(100, "a").is_none());
        assert!(tracker.wait(200, "b").is_none());
        assert!(tracker.wait(300, "c").is_none());
        let mut released = tracker.ack(200);
        released.sort();
        assert_eq!(released, vec!["a", "b"]);
        assert_eq!(tracker.waiting(), 1);
        assert!(tracker.ack(150).is_empty());
        assert_eq!(tracker.acked(), 200);
        assert_eq!(tracker.wait(180, "d"), Some("d"));
        assert_eq!(tracker.ack(300), vec!["c"]);
    }
}

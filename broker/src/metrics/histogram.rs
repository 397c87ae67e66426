//! A fixed-bucket histogram that lives on one core: plain integer increments when recorded,
//! merged across cores when scraped.

/// Upper bounds (inclusive, as Prometheus' `le`) of RocketMQ 5's `rocketmq_message_size`
/// buckets, in bytes.
pub const MESSAGE_SIZE_BUCKETS: &[f64] = &[
    1024.0,
    4.0 * 1024.0,
    512.0 * 1024.0,
    1024.0 * 1024.0,
    2.0 * 1024.0 * 1024.0,
    4.0 * 1024.0 * 1024.0,
];

/// RocketMQ 5's `rocketmq_rpc_latency` buckets, in milliseconds.
pub const RPC_LATENCY_BUCKETS: &[f64] = &[1.0, 3.0, 5.0, 7.0, 10.0, 100.0, 1000.0, 2000.0, 3000.0];

/// Our send and pull latency buckets, in milliseconds: finer than RocketMQ's below 1 ms,
/// where most of our round trips are.
pub const LATENCY_MS_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 3000.0,
    10_000.0, 30_000.0,
];

/// The storage's group-commit size buckets (`rmq_storage::GROUP_COMMIT_BOUNDS`), in bytes.
pub const GROUP_COMMIT_BYTES_BUCKETS: &[f64] = &[
    4096.0, 8192.0, 16384.0, 32768.0, 65536.0, 131072.0, 262144.0, 524288.0, 1048576.0, 2097152.0,
    4194304.0, 8388608.0,
];

/// The storage's sync latency buckets (`rmq_storage::SYNC_MICROS_BOUNDS`), in milliseconds.
pub const SYNC_LATENCY_MS_BUCKETS: &[f64] = &[
    0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0,
];

/// The storage's buckets of acks per sync (`rmq_storage::SYNC_ACKS_BOUNDS`).
pub const SYNC_ACKS_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Counts per bucket (the last slot is `+Inf`), their sum and count.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds ascend");
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    /// A histogram from counts per bucket (`+Inf` last) kept elsewhere.
    pub fn from_counts(bounds: &'static [f64], counts: &[u64], sum: f64) -> Self {
        assert_eq!(
            counts.len(),
            bounds.len() + 1,
            "one count per bucket and +Inf"
        );
        Self {
            bounds,
            counts: counts.to_vec(),
            sum,
        }
    }

    pub fn record(&mut self, value: f64) {
        let slot = self.bounds.partition_point(|&bound| bound < value);
        self.counts[slot] += 1;
        self.sum += value;
    }

    /// Adds `other`'s observations (same bounds) to this one.
    pub fn merge(&mut self, other: &Histogram) {
        assert!(
            std::ptr::eq(self.bounds, other.bounds) || self.bounds == other.bounds,
            "merged histograms share their buckets"
        );
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// `(upper bound, count of observations in this bucket alone)`, `+Inf` last: the shape
    /// prometheus-client's encoder takes (it accumulates them into `le` buckets).
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        self.bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_commit_buckets_are_the_storage_ones() {
        let storage: Vec<f64> = rmq_storage::GROUP_COMMIT_BOUNDS
            .iter()
            .map(|&b| b as f64)
            .collect();
        assert_eq!(GROUP_COMMIT_BYTES_BUCKETS, &storage[..]);
    }

    #[test]
    fn sync_buckets_are_the_storage_ones() {
        let millis: Vec<f64> = rmq_storage::SYNC_MICROS_BOUNDS
            .iter()
            .map(|&b| b as f64 / 1000.0)
            .collect();
        assert_eq!(SYNC_LATENCY_MS_BUCKETS, &millis[..]);
        let acks: Vec<f64> = rmq_storage::SYNC_ACKS_BOUNDS
            .iter()
            .map(|&b| b as f64)
            .collect();
        assert_eq!(SYNC_ACKS_BUCKETS, &acks[..]);
    }

    #[test]
    fn values_land_in_the_first_bucket_whose_bound_is_not_below_them() {
        let mut h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 1.0, 1.5, 10.0, 11.0] {
            h.record(v);
        }
        assert_eq!(h.buckets(), vec![(1.0, 2), (10.0, 2), (f64::INFINITY, 1)]);
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum(), 24.0);
        let mut other = Histogram::new(&[1.0, 10.0]);
        other.record(100.0);
        h.merge(&other);
        assert_eq!(h.count(), 6);
        assert_eq!(h.buckets()[2], (f64::INFINITY, 2));
    }
}

//! Timer bucket arithmetic (see the module doc of `schedule` for the cascade design).
//!
//! Bucket 0 holds records due in less than [`BUCKET_UNIT_MS`] and releases each at its exact
//! delivery time; bucket b ≥ 1 holds a record for `2^(b-1)` units. A record due in `r` ms goes
//! to the largest bucket whose span is ≤ r, so every hop at least halves the remaining time.

use rmq_core::message::properties::{self, keys};

/// Span of bucket 1 and the timer precision.
pub const BUCKET_UNIT_MS: i64 = 1000;
/// Highest bucket: spans 2^19 s (about 6 days).
pub const MAX_BUCKET: i32 = 20;
/// Number of queues of the timer topic.
pub const BUCKET_COUNT: i32 = MAX_BUCKET + 1;
/// Longest accepted timer delay: 7 days (< 2^20 s, so the cascade terminates).
pub const MAX_DELAY_MS: i64 = 7 * 24 * 3600 * 1000;

const _: () = assert!(MAX_DELAY_MS < BUCKET_UNIT_MS << MAX_BUCKET);

/// Span of bucket `bucket` in ms (0 for the exact-time bucket).
pub fn span_ms(bucket: i32) -> i64 {
    assert!((0..=MAX_BUCKET).contains(&bucket), "bucket {bucket}");
    if bucket == 0 {
        0
    } else {
        BUCKET_UNIT_MS << (bucket - 1)
    }
}

/// The bucket for a record due in `remaining_ms` (> 0).
pub fn bucket_for(remaining_ms: i64) -> i32 {
    if remaining_ms < BUCKET_UNIT_MS {
        return 0;
    }
    let units = remaining_ms / BUCKET_UNIT_MS;
    let bucket = (63 - units.leading_zeros() as i32) + 1;
    let bucket = bucket.min(MAX_BUCKET);
    assert!(span_ms(bucket) <= remaining_ms);
    bucket
}

/// When a record stored at `stored_ms` in `bucket` and due at `deliver_ms` leaves the bucket.
pub fn leave_ms(bucket: i32, stored_ms: i64, deliver_ms: i64) -> i64 {
    if bucket == 0 {
        return deliver_ms;
    }
    stored_ms.saturating_add(span_ms(bucket)).min(deliver_ms)
}

/// The absolute delivery time the timer properties ask for, if any.
///
/// # Errors
/// A remark when a timer property is not a number.
pub fn deliver_ms(props: &str, now_ms: i64) -> Result<Option<i64>, String> {
    let number = |key: &str| -> Result<Option<i64>, String> {
        properties::get_property(props, key)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("property {key} is not a number: {v:?}"))
            })
            .transpose()
    };
    if let Some(at) = number(keys::TIMER_DELIVER_MS)? {
        return Ok(Some(at));
    }
    if let Some(ms) = number(keys::TIMER_DELAY_MS)? {
        return Ok(Some(now_ms.saturating_add(ms)));
    }
    if let Some(sec) = number(keys::TIMER_DELAY_SEC)? {
        return Ok(Some(now_ms.saturating_add(sec.saturating_mul(1000))));
    }
    Ok(None)
}

/// Properties with the relative timer keys replaced by the absolute `TIMER_DELIVER_MS`, so every
/// hop of the cascade computes the same due time.
pub fn normalized_properties(props: &str, deliver_ms: i64) -> String {
    let props = properties::remove_property(props, keys::TIMER_DELAY_MS);
    let props = properties::remove_property(&props, keys::TIMER_DELAY_SEC);
    properties::set_property(&props, keys::TIMER_DELIVER_MS, &deliver_ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_halve_the_remaining_time() {
        assert_eq!(bucket_for(1), 0);
        assert_eq!(bucket_for(999), 0);
        assert_eq!(bucket_for(1000), 1);
        assert_eq!(bucket_for(1999), 1);
        assert_eq!(bucket_for(2000), 2);
        assert_eq!(bucket_for(3 * 24 * 3600 * 1000), 18);
        assert_eq!(bucket_for(262_144_000), 19);
        assert_eq!(bucket_for(MAX_DELAY_MS), MAX_BUCKET);
        for remaining in [1500, 7_777, 65_000, 259_200_000, MAX_DELAY_MS] {
            let mut left = remaining;
            let mut hops = 0;
            while left >= BUCKET_UNIT_MS {
                let bucket = bucket_for(left);
                let next = left - span_ms(bucket);
                assert!(next < left && (next < span_ms(bucket) || bucket == MAX_BUCKET));
                left = next;
                hops += 1;
            }
            assert!(hops <= 21, "{remaining}: {hops} hops");
        }
    }

    #[test]
    fn leave_time_never_passes_delivery() {
        assert_eq!(leave_ms(0, 10, 500), 500);
        assert_eq!(leave_ms(3, 0, 10_000), 4000);
        assert_eq!(leave_ms(3, 8000, 10_000), 10_000);
    }

    #[test]
    fn relative_properties_become_absolute() {
        let p = properties::encode_properties([("TIMER_DELAY_SEC", "3")]);
        assert_eq!(deliver_ms(&p, 1000).unwrap(), Some(4000));
        let n = normalized_properties(&p, 4000);
        assert_eq!(properties::get_property(&n, "TIMER_DELAY_SEC"), None);
        assert_eq!(
            properties::get_property(&n, "TIMER_DELIVER_MS"),
            Some("4000")
        );
        let bad = properties::encode_properties([("TIMER_DELAY_MS", "x")]);
        assert!(deliver_ms(&bad, 0).is_err());
    }
}

//! The seeded hasher for maps keyed by names that come from the network (topic and group
//! names in the metrics counters; formerly the custom header fields).
//!
//! With std's SipHash the hashing alone was ~3% of the broker's CPU at 30k sends/s, so these
//! maps use a cheap word-at-a-time hash. The names come from the network, though: with an
//! unseeded multiply-rotate hash, 100,000 crafted colliding names in one 2.2 MB frame cost
//! 18 s of a core. So the hash is **seeded per process** (random, from std's `RandomState`):
//! each 8-byte word is mixed by a folded 64x64→128-bit multiply with a secret multiplier, so
//! an attacker cannot compute colliding names offline (one `mul` per word).

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// This process's secret hash keys: (initial state, odd multiplier).
fn process_keys() -> (u64, u64) {
    static KEYS: OnceLock<(u64, u64)> = OnceLock::new();
    *KEYS.get_or_init(|| {
        // RandomState draws its keys from the OS's random source once per thread.
        let random = std::collections::hash_map::RandomState::new();
        let state = random.hash_one(0x6578_7446_6965_6c64_u64);
        let multiplier = random.hash_one(0x7365_6564_2d6b_6579_u64) | 1;
        (state, multiplier)
    })
}

/// Builds [`FieldHasher`]s keyed with this process's secret keys. Zero-sized (the keys are
/// read from a process-wide cell per hasher), so maps keep the layout they had unseeded.
#[derive(Clone, Copy, Default)]
pub struct FieldHasherBuilder;

impl BuildHasher for FieldHasherBuilder {
    type Hasher = FieldHasher;

    fn build_hasher(&self) -> FieldHasher {
        let (state, multiplier) = process_keys();
        FieldHasher {
            hash: state,
            multiplier,
        }
    }
}

/// Seeded folded-multiply hasher over 8-byte words (see the module docs).
#[derive(Clone, Copy)]
pub struct FieldHasher {
    hash: u64,
    multiplier: u64,
}

impl FieldHasher {
    fn add(&mut self, word: u64) {
        let product = u128::from(self.hash ^ word) * u128::from(self.multiplier);
        // Both halves: the high half depends on every input bit and on the secret multiplier.
        self.hash = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for FieldHasher {
    fn write(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 8 {
            let (word, rest) = bytes.split_at(8);
            self.add(u64::from_le_bytes(word.try_into().expect("8 bytes")));
            bytes = rest;
        }
        if !bytes.is_empty() {
            let mut last = [0u8; 8];
            last[..bytes.len()].copy_from_slice(bytes);
            self.add(u64::from_le_bytes(last));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(value as u64);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn hash(s: &str) -> u64 {
        FieldHasherBuilder.hash_one(s)
    }

    #[test]
    fn distinct_header_names_hash_apart() {
        let names = [
            "a",
            "b",
            "c",
            "d",
            "e",
            "f",
            "g",
            "h",
            "i",
            "j",
            "k",
            "l",
            "m",
            "n",
            "topic",
            "queueId",
            "producerGroup",
            "defaultTopic",
            "defaultTopicQueueNums",
            "sysFlag",
            "bornTimestamp",
            "flag",
            "properties",
            "reconsumeTimes",
            "unitMode",
            "batch",
            "maxReconsumeTimes",
            "consumerGroup",
            "queueOffset",
            "maxMsgNums",
        ];
        let mut hashes: Vec<u64> = names.iter().map(|n| hash(n)).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), names.len());
        // Same bytes, same hash; a one-byte difference in the tail changes it.
        assert_eq!(hash("producerGroup"), hash("producerGroup"));
        assert_ne!(hash("producerGroup"), hash("producerGrouq"));
    }

    #[test]
    fn map_round_trips_fields() {
        let mut fields = std::collections::HashMap::with_hasher(FieldHasherBuilder);
        for i in 0..100 {
            fields.insert(format!("field{i}"), i.to_string());
        }
        for i in 0..100 {
            assert_eq!(fields.get(&format!("field{i}")), Some(&i.to_string()));
        }
        assert_eq!(fields.get("field100"), None);
    }

    /// The hash this map used before it was seeded: multiply-rotate from a zero state.
    fn old_hash(key: &[u8]) -> u64 {
        const OLD_MULTIPLIER: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let add = |hash: u64, word: u64| (hash.rotate_left(5) ^ word).wrapping_mul(OLD_MULTIPLIER);
        let mut hash = 0;
        for chunk in key.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            hash = add(hash, u64::from_le_bytes(word));
        }
        add(hash, 0xff)
    }

    /// `count` distinct 16-byte ASCII names that all had the same old hash: the second
    /// word cancels whatever the first made of the state. (Some bytes are control
    /// characters: valid UTF-8, and JSON can carry them escaped.)
    pub(crate) fn colliding_names(count: usize) -> Vec<String> {
        const OLD_MULTIPLIER: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let target = 0x2a2a_2a2a_2a2a_2a2a_u64;
        let mut names = Vec::with_capacity(count);
        let mut candidate = 0u64;
        while names.len() < count {
            candidate += 1;
            // Six bits of the counter per byte, each byte in 0x40..0x80: distinct ASCII.
            let first = (0..8).fold(0u64, |word, byte| {
                word | ((0x40 | ((candidate >> (6 * byte)) & 0x3f)) << (8 * byte))
            });
            let state = first.wrapping_mul(OLD_MULTIPLIER);
            let second = state.rotate_left(5) ^ target;
            if second & 0x8080_8080_8080_8080 == 0 {
                let mut bytes = first.to_le_bytes().to_vec();
                bytes.extend_from_slice(&second.to_le_bytes());
                names.push(String::from_utf8(bytes).expect("ASCII"));
            }
        }
        names
    }

    /// Names crafted to collide under the old unseeded hash (it gave them all one value)
    /// spread under the seeded one.
    #[test]
    fn names_colliding_under_the_old_hash_spread() {
        let names = colliding_names(200);
        let old: std::collections::HashSet<u64> =
            names.iter().map(|n| old_hash(n.as_bytes())).collect();
        assert_eq!(old.len(), 1, "the crafted names collide under the old hash");
        let new: std::collections::HashSet<u64> = names.iter().map(|n| hash(n)).collect();
        assert_eq!(new.len(), names.len(), "the seeded hash keeps them apart");
        // hashbrown picks the bucket from the low bits and the tag from the top 7: check
        // the names do not crowd into few buckets of a 256-bucket table either.
        let buckets: std::collections::HashSet<u64> = names.iter().map(|n| hash(n) & 255).collect();
        assert!(buckets.len() > 100, "{} buckets", buckets.len());
    }
}

//! The machine's memory, as RocketMQ's "in memory" rules see it.
//!
//! RocketMQ takes the newest `accessMessageInMemoryMaxRatio`% of physical RAM of commit log
//! as held in the page cache: a consumer reading within it is "in memory". The broker uses
//! the same span for that judgement and, split over the shards, as the default page cache
//! each shard's commit log keeps (`asyncFlushPageCacheBytes=-1`).

/// Physical memory of this machine (`MemTotal` of /proc/meminfo), read once; 8 GiB when
/// unknown.
pub fn total_memory_bytes() -> u64 {
    static TOTAL: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(|| {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        parse_mem_total(&meminfo).unwrap_or(8 << 30)
    })
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
}

/// Bytes of commit log RocketMQ counts as in memory: `ratio`% (clamped to 0..=100) of RAM.
pub fn in_memory_span(ratio: i32) -> u64 {
    total_memory_bytes() / 100 * u64::from(ratio.clamp(0, 100).unsigned_abs())
}

/// The page cache each of `shards` commit logs keeps behind its write-back point for the
/// `asyncFlushPageCacheBytes` setting: -1 (default) splits the in-memory span over the
/// shards, 0 keeps everything (no drop-behind), a positive value is taken as is.
pub fn page_cache_per_shard(setting: i64, ratio: i32, shards: u32) -> u64 {
    match setting {
        0 => 0,
        bytes if bytes > 0 => bytes.unsigned_abs(),
        _ => (in_memory_span(ratio) / u64::from(shards.max(1))).max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_in_kib() {
        let meminfo = "MemFree:  100 kB\nMemTotal:       24576000 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(24_576_000 * 1024));
        assert_eq!(parse_mem_total("nothing"), None);
    }

    #[test]
    fn the_default_splits_the_in_memory_span_over_the_shards() {
        let span = in_memory_span(40);
        assert_eq!(page_cache_per_shard(-1, 40, 2), span / 2);
        assert_eq!(page_cache_per_shard(-1, 40, 1), span);
        assert_eq!(page_cache_per_shard(0, 40, 2), 0, "0 turns drop-behind off");
        assert_eq!(page_cache_per_shard(1 << 30, 40, 2), 1 << 30);
        assert!(
            page_cache_per_shard(-1, 0, 2) > 0,
            "ratio 0 still keeps something"
        );
    }
}

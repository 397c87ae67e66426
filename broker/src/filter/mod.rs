//! Broker-side glue of SQL92 property filtering (`rmq_core::filter` holds the language).
//!
//! - [`compile_cached`]: compiled selectors, cached per core by expression text: a push
//!   consumer pulls with the same expression many times a second, so each pull must not
//!   re-parse it. The cache is thread-local (no lock) and bounded by entries
//!   ([`CACHE_CAPACITY`]) and by the total length of the expressions it holds
//!   ([`CACHE_TEXT_BYTES`]); an expression longer than [`CACHED_EXPRESSION_BYTES`] is
//!   compiled on every pull and never kept. A compiled tree takes roughly 30 bytes per byte of
//!   text, so the cache holds at most ~8 MiB per core whatever clients send.
//! - [`retain_matching`]: the consume queue only has tag codes, so a SQL92 pull reads the
//!   records and drops those whose properties do not match. Records are evaluated where
//!   the read ran (the shard's core), before the body travels back.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rmq_core::filter::{Expression, FilterError, compile};
use rmq_core::message::parse_record;
use rmq_core::message::properties::get_property;

/// Distinct expressions remembered per core before the cache starts over.
const CACHE_CAPACITY: usize = 1024;

/// Total expression text (bytes) remembered per core before the cache starts over.
const CACHE_TEXT_BYTES: usize = 256 * 1024;

/// Longest expression that is cached at all; longer ones (rare, and bounded by
/// `rmq_core::filter::MAX_EXPRESSION_BYTES`) are compiled per pull.
const CACHED_EXPRESSION_BYTES: usize = 4 * 1024;

/// This core's compiled selectors and the total length of their texts.
#[derive(Default)]
struct Cache {
    entries: HashMap<String, Compiled>,
    text_bytes: usize,
}

type Compiled = Result<Arc<Expression>, FilterError>;

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// The compiled form of `sql`, from this core's cache when seen before.
///
/// # Errors
/// The [`FilterError`] of an expression that does not compile (cached too).
pub fn compile_cached(sql: &str) -> Compiled {
    CACHE.with(|cache| {
        if let Some(compiled) = cache.borrow().entries.get(sql) {
            return compiled.clone();
        }
        let compiled = compile(sql).map(Arc::new);
        if sql.len() > CACHED_EXPRESSION_BYTES {
            return compiled;
        }
        let mut cache = cache.borrow_mut();
        if cache.entries.len() >= CACHE_CAPACITY || cache.text_bytes + sql.len() > CACHE_TEXT_BYTES
        {
            cache.entries.clear();
            cache.text_bytes = 0;
        }
        cache.text_bytes += sql.len();
        cache.entries.insert(sql.to_owned(), compiled.clone());
        assert!(cache.text_bytes <= CACHE_TEXT_BYTES);
        compiled
    })
}

/// Keeps the records of `body` (concatenated commit-log records, as a pull returns them)
/// whose properties match `filter`. Returns the kept bytes and how many records they hold.
/// A record that does not parse is dropped with a warning rather than sent.
pub fn retain_matching(body: &Bytes, filter: &Expression) -> (Bytes, usize) {
    let mut kept = BytesMut::with_capacity(body.len());
    let mut count = 0;
    let mut at = 0;
    while at + 4 <= body.len() {
        let size = i32::from_be_bytes(body[at..at + 4].try_into().expect("4 bytes"));
        let Ok(size) = usize::try_from(size) else {
            break;
        };
        if size < 4 || at + size > body.len() {
            tracing::warn!(at, size, "pull body holds a truncated record");
            break;
        }
        let bytes = &body[at..at + size];
        match parse_record(bytes) {
            Ok(record) => {
                let props = record.properties();
                if filter.matches(&|name| get_property(props, name)) {
                    kept.extend_from_slice(bytes);
                    count += 1;
                }
            }
            Err(error) => tracing::warn!(at, "skipping a record that does not parse: {error}"),
        }
        at += size;
    }
    (kept.freeze(), count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmq_core::message::NewRecord;
    use rmq_core::message::properties::encode_properties;

    fn record(a: &str) -> Vec<u8> {
        let props = encode_properties([("a", a), ("TAGS", "t")]);
        let host: std::net::SocketAddr = "127.0.0.1:10911".parse().unwrap();
        let new = NewRecord {
            topic: "T",
            queue_id: 0,
            flag: 0,
            body: b"body",
            properties: &props,
            sys_flag: 0,
            born_timestamp: 1,
            born_host: host,
            store_host: host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        let mut out = BytesMut::new();
        new.encode_into(&mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn keeps_only_matching_records() {
        let mut body = Vec::new();
        for a in ["1", "7", "3", "9"] {
            body.extend(record(a));
        }
        let filter = compile_cached("a > 5 AND TAGS = 't'").unwrap();
        let (kept, count) = retain_matching(&Bytes::from(body), &filter);
        assert_eq!(count, 2);
        let first = parse_record(&kept).unwrap();
        assert_eq!(get_property(first.properties(), "a"), Some("7"));
        assert!(compile_cached("a >").is_err());
        assert!(compile_cached("a >").is_err(), "errors are cached too");
    }

    fn cached_text_bytes() -> (usize, usize) {
        CACHE.with(|cache| {
            let cache = cache.borrow();
            let total = cache.entries.keys().map(String::len).sum();
            assert_eq!(total, cache.text_bytes);
            (cache.entries.len(), total)
        })
    }

    /// 1,000 distinct 1 MB expressions used to stay cached (2.2 GB per core). Long
    /// expressions are not cached now, and the total text cached is bounded.
    #[test]
    fn cache_is_bounded_by_bytes() {
        std::thread::spawn(|| {
            for n in 0..50 {
                let big = format!("a = '{n}{}'", "x".repeat(CACHED_EXPRESSION_BYTES));
                assert!(compile_cached(&big).is_ok());
            }
            assert_eq!(cached_text_bytes(), (0, 0), "long expressions are not kept");
            for n in 0..1_000 {
                let mid = format!("a = '{n}{}'", "x".repeat(CACHED_EXPRESSION_BYTES - 20));
                assert!(compile_cached(&mid).is_ok());
                assert!(cached_text_bytes().1 <= CACHE_TEXT_BYTES);
            }
            let (entries, _) = cached_text_bytes();
            assert!(entries > 0 && entries < 1_000);
        })
        .join()
        .unwrap();
    }
}

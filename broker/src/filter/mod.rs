//! Broker-side glue of SQL92 property filtering (`rmq_core::filter` holds the language).
//!
//! - [`compile_cached`]: compiled selectors, cached per core by expression text: a push
//!   consumer pulls with the same expression many times a second, so each pull must not
//!   re-parse it. The cache is thread-local (no lock) and bounded.
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

type Compiled = Result<Arc<Expression>, FilterError>;

thread_local! {
    static CACHE: RefCell<HashMap<String, Compiled>> = RefCell::new(HashMap::new());
}

/// The compiled form of `sql`, from this core's cache when seen before.
///
/// # Errors
/// The [`FilterError`] of an expression that does not compile (cached too).
pub fn compile_cached(sql: &str) -> Compiled {
    CACHE.with(|cache| {
        if let Some(compiled) = cache.borrow().get(sql) {
            return compiled.clone();
        }
        let compiled = compile(sql).map(Arc::new);
        let mut cache = cache.borrow_mut();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(sql.to_owned(), compiled.clone());
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
}

//! Fixture of the consume-queue dispatch path: the store's [`DispatchTarget`] (an in-memory
//! consume queue plus the index of shard 0, its mmapped file in a temp dir) and one patched
//! 1 KiB record dispatched at increasing positions.

use std::path::Path;

use bytes::BytesMut;
use rmq_core::message::{parse_record, patch_record};
use rmq_storage::StoreConfig;
use rmq_storage::bench_hooks::DispatchTarget;

use crate::{TOPIC, ready, sample_record};

pub struct DispatchFixture {
    target: DispatchTarget,
    record: BytesMut,
    tags_code: i64,
    position: i64,
    _dir: tempfile::TempDir,
}

impl DispatchFixture {
    /// A fresh target under a new temp dir inside `parent`, with one record already
    /// dispatched (so the index file exists and the first measured call does not create it).
    pub fn new(parent: &Path, body_len: usize) -> DispatchFixture {
        let dir = tempfile::tempdir_in(parent).expect("temp dir");
        let cfg = StoreConfig::new(dir.path());
        let target = ready(DispatchTarget::open(&cfg, TOPIC, 3)).expect("dispatch target");
        let mut record = sample_record(body_len);
        patch_record(&mut record, 0, 0, 1_700_000_000_123);
        let tags_code = parse_record(&record).expect("valid record").tags_code();
        let mut fixture = DispatchFixture {
            target,
            record,
            tags_code,
            position: 0,
            _dir: dir,
        };
        fixture.dispatch_next();
        fixture
    }

    /// Dispatches the record once more, right after the previous one.
    pub fn dispatch_next(&mut self) {
        self.target
            .dispatch(&self.record, self.position, self.tags_code);
        self.position += self.record.len() as i64;
    }

    /// Consume queue entries so far.
    pub fn entries(&self) -> i64 {
        self.target.max_queue_offset()
    }
}

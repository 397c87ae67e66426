//! Fixture of the pull-response path: a real [`ShardStore`] (temp dir, compio runtime) whose
//! queue holds `messages` records of `body_len` bytes, all still in the commit log's in-memory
//! tail, and a PULL_MESSAGE request for them with a tag subscription, as a Java consumer
//! sends it.

use std::path::Path;
use std::rc::Rc;

use bytes::BytesMut;
use rmq_broker::processor::pull::pull_from_store;
use rmq_core::message::parse_record;
use rmq_core::message::sysflag::pull as pull_flag;
use rmq_core::remoting::{RemotingCommand, encode_frame, request_code};
use rmq_net::rt::Runtime;
use rmq_storage::{Durability, ShardStore, StoreConfig, StoreLayout};

use crate::{TOPIC, sample_record};

const QUEUE: i32 = 3;

pub struct PullFixture {
    pub runtime: Runtime,
    pub store: Rc<ShardStore>,
    pub request: RemotingCommand,
    /// Bytes of the records one pull returns.
    pub body_bytes: usize,
    _dir: tempfile::TempDir,
}

impl PullFixture {
    /// Appends `messages` records (tag `TagA`) and waits until they are written, so no
    /// background write is pending when the pulls run; checks that one pull returns them all.
    pub fn new(parent: &Path, messages: usize, body_len: usize) -> PullFixture {
        let dir = tempfile::tempdir_in(parent).expect("temp dir");
        let mut cfg = StoreConfig::new(dir.path());
        cfg.commit_log_file_size = 64 << 20;
        let runtime = Runtime::new().expect("compio runtime");
        let store = runtime.block_on(async {
            let layout = StoreLayout::open(&cfg).expect("layout");
            let store = ShardStore::open(cfg.clone(), 0, layout.previous_shutdown_clean)
                .await
                .expect("open");
            let mut end = 0;
            for _ in 0..messages {
                let mut record = sample_record(body_len);
                let tags_code = parse_record(&record).expect("valid").tags_code();
                end = store
                    .append(TOPIC, QUEUE, &mut record, tags_code, 1_700_000_000_123)
                    .expect("append")
                    .end_offset;
            }
            store
                .wait_durable(end, Durability::Written)
                .await
                .expect("written");
            store
        });
        let fixture = PullFixture {
            runtime,
            store,
            request: pull_request(messages),
            body_bytes: messages * sample_record(body_len).len(),
            _dir: dir,
        };
        let mut out = BytesMut::new();
        let response =
            fixture
                .runtime
                .block_on(assemble_pull(&fixture.store, &fixture.request, &mut out));
        assert_eq!(response.code, 0, "pull succeeds: {:?}", response.remark);
        assert_eq!(
            response.body.len(),
            fixture.body_bytes,
            "every record pulled"
        );
        fixture
    }
}

/// PULL_MESSAGE for `max` messages from offset 0 with the subscription `TagA || TagB` in the
/// header (the field names of the Java client's PullMessageRequestHeader).
fn pull_request(max: usize) -> RemotingCommand {
    let mut request = RemotingCommand::new_request(request_code::PULL_MESSAGE)
        .with_ext("consumerGroup", "bench_consumer_group")
        .with_ext("topic", TOPIC)
        .with_ext("queueId", QUEUE)
        .with_ext("queueOffset", 0)
        .with_ext("maxMsgNums", max)
        .with_ext(
            "sysFlag",
            pull_flag::COMMIT_OFFSET | pull_flag::SUSPEND | pull_flag::SUBSCRIPTION,
        )
        .with_ext("commitOffset", 0)
        .with_ext("suspendTimeoutMillis", 15_000)
        .with_ext("subscription", "TagA || TagB")
        .with_ext("subVersion", 1_700_000_000_000i64)
        .with_ext("expressionType", "TAG");
    request.opaque = 7;
    request
}

/// The broker's pull path for `request` (header parse, tag filter, consume queue and
/// commit log reads, response), then the response frame encoded into `out` as the
/// connection writes it. Returns the response.
pub async fn assemble_pull(
    store: &ShardStore,
    request: &RemotingCommand,
    out: &mut BytesMut,
) -> RemotingCommand {
    let response = pull_from_store(store, request).await;
    out.clear();
    encode_frame(&response, out);
    response
}

//! An in-process broker for tests of the request processors: the store on a temporary
//! directory, the topic, group and offset registries, and one core's context, driven on
//! the caller's compio runtime. Requests go straight to the processor dispatch (no
//! socket, no child process, no background loops), so a test takes milliseconds.
//!
//! Built for this crate's unit tests and, with the `test-support` feature, for other
//! crates' and this crate's integration tests.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;

use rmq_core::config::BrokerConfig;
use rmq_core::remoting::RemotingCommand;
use rmq_net::mesh::Mesh;
use rmq_net::{ConnectionInfo, RequestHandler};
use rmq_storage::{ShardStore, StoreLayout};

use crate::context::SharedContext;
use crate::core_context::{CoreContext, ShardJob};
use crate::processor::BrokerHandler;

/// One broker core in the current thread's compio runtime, over a store in a temporary
/// directory that is removed when the harness is dropped.
pub struct Harness {
    pub handler: Rc<BrokerHandler>,
    pub conn: Rc<ConnectionInfo>,
    /// Messages the broker pushes to the client outside responses (e.g. CHECK_TRANSACTION_STATE).
    pub pushed: futures_channel::mpsc::UnboundedReceiver<RemotingCommand>,
    _dir: tempfile::TempDir,
}

/// Config keys every harness sets: a small store on the temporary directory.
fn base_overrides(root: &str) -> Vec<(String, String)> {
    [
        ("storePathRootDir", root),
        ("brokerName", "broker-a"),
        ("brokerClusterName", "DefaultCluster"),
        ("brokerIP1", "127.0.0.1"),
        ("listenPort", "10911"),
        ("mapedFileSizeCommitLog", "16777216"),
        ("mapedFileSizeConsumeQueue", "60000"),
        ("shardCount", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Harness {
    /// A broker with the default config (auto-create on).
    ///
    /// # Panics
    /// When the temporary store cannot be created or opened (the test cannot run).
    pub async fn new() -> Harness {
        Harness::with_config(&[]).await
    }

    /// A broker whose config is the defaults plus `overrides` (RocketMQ key spellings).
    ///
    /// # Panics
    /// On an invalid override or when the temporary store cannot be opened.
    pub async fn with_config(overrides: &[(&str, &str)]) -> Harness {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path().to_str().expect("utf-8 temp path").to_string();
        let mut pairs = base_overrides(&root);
        pairs.extend(
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        );
        let (config, _warnings) = BrokerConfig::load(None, &pairs).expect("harness config");
        let store_cfg = crate::server::store_config(&config, 1);
        let layout = StoreLayout::open(&store_cfg).expect("store layout");
        assert_eq!(layout.shard_count, 1, "the harness runs one shard");
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), config.listen_port);
        let ctx: SharedContext = Arc::new(
            crate::server::build_context(config, addr, layout.shard_count, 1, None)
                .expect("metadata files of a fresh store"),
        );
        crate::schedule::ensure_system_topics(&ctx);
        let store = ShardStore::open(store_cfg, 0, true)
            .await
            .expect("open shard 0");
        let (sender, _receiver) = Mesh::new::<ShardJob>(1)
            .into_iter()
            .next()
            .expect("one mesh end");
        let shards: HashMap<u32, Rc<ShardStore>> = HashMap::from([(0, store)]);
        let core = Rc::new(CoreContext::new(0, ctx, shards, sender));
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);
        let (conn, pushed) = ConnectionInfo::in_process(peer, addr, 0);
        Harness {
            handler: Rc::new(BrokerHandler { core }),
            conn: Rc::new(conn),
            pushed,
            _dir: dir,
        }
    }

    /// The broker-wide state (topics, groups, offsets, clients, config).
    pub fn ctx(&self) -> &SharedContext {
        &self.handler.core.broker
    }

    /// The core context the processors run with.
    pub fn core(&self) -> &Rc<CoreContext> {
        &self.handler.core
    }

    /// The only shard's slave state (tests stand in for a slave with `connected` and
    /// `on_report`).
    pub fn replica(&self) -> &Rc<rmq_ha::master::ShardReplica> {
        &self.handler.core.replicas[&0]
    }

    /// The only shard's store.
    pub fn store(&self) -> &Rc<ShardStore> {
        &self.handler.core.shards[&0]
    }

    /// Sends `request` through the broker's dispatch, as a request on the harness's
    /// connection, and returns the response.
    ///
    /// # Panics
    /// When the broker gives no response (only oneway requests may do that).
    pub async fn call(&self, request: RemotingCommand) -> RemotingCommand {
        self.try_call(request).await.expect("a response")
    }

    /// Like `call`, for requests that may have no response.
    pub async fn try_call(&self, request: RemotingCommand) -> Option<RemotingCommand> {
        self.handler
            .clone()
            .handle(self.conn.clone(), request)
            .await
    }
}

/// Runs `test` to completion on a fresh compio runtime on this thread.
///
/// # Panics
/// When io_uring (or the fallback driver) cannot start.
pub fn run<F: std::future::Future>(test: F) -> F::Output {
    rmq_net::rt::block_on(test).expect("compio runtime")
}

//! The master's HA listener: core 0 accepts slave connections, reads each hello and hands
//! the socket to the core owning the requested shard, which streams it.

use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use compio::BufResult;
use compio::io::AsyncWriteExt;
use rmq_ha::handshake::{HELLO_LEN, Status, Welcome, decode_hello, encode_welcome};
use rmq_ha::master::MasterSettings;
use rmq_net::listener::{TcpListener, TcpStream};

use super::{ms, stopping_of};
use crate::context::BrokerContext;
use crate::core_context::{CoreContext, OwnedShard};

/// Smallest frame body the master sends (RocketMQ's haTransferBatchSize of 32 KiB is too
/// small to keep a fast link busy).
const CHUNK_MIN: usize = 1 << 20;

async fn bind(broker: &BrokerContext) -> Option<TcpListener> {
    let addr = std::net::SocketAddr::from(([0, 0, 0, 0], broker.config.ha_listen_port()));
    // A just-killed predecessor may hold the port for a moment (io_uring closes lazily).
    for attempt in 0..150 {
        match std::net::TcpListener::bind(addr).and_then(TcpListener::from_std) {
            Ok(listener) => return Some(listener),
            Err(error) if attempt == 149 || broker.stopping.load(Ordering::Acquire) => {
                tracing::error!(%addr, %error, "cannot listen on the HA port: slaves cannot replicate");
                return None;
            }
            Err(_) => rmq_net::rt::sleep(Duration::from_millis(100)).await,
        }
    }
    None
}

/// Core 0 of a master: accepts slave connections and hands each to its shard's core, until
/// role `generation` is outdated (then the listener closes and every session it started ends).
pub(super) async fn listen(core: Rc<CoreContext>, generation: u64) {
    let Some(listener) = bind(&core.broker).await else {
        return;
    };
    tracing::info!(
        port = core.broker.config.ha_listen_port(),
        "HA service listening"
    );
    while !super::role::outdated(&core.broker, generation) {
        match rmq_net::rt::timeout(Duration::from_millis(200), listener.accept()).await {
            Ok(Ok((stream, peer))) => {
                let core = core.clone();
                rmq_net::rt::spawn(async move {
                    if let Err(error) = hand_over(&core, stream, generation).await {
                        tracing::warn!(%peer, %error, "slave connection refused");
                    }
                })
                .detach();
            }
            Ok(Err(error)) => tracing::warn!(%error, "HA accept failed"),
            Err(_) => {}
        }
    }
}

/// Reads a slave's hello and moves the socket to the core owning the shard it asks for.
async fn hand_over(
    core: &Rc<CoreContext>,
    mut stream: TcpStream,
    generation: u64,
) -> Result<(), rmq_ha::HaError> {
    let _ = stream.set_nodelay(true);
    let mut inbox = BytesMut::new();
    let reading = rmq_ha::slave::read_at_least(&mut stream, &mut inbox, HELLO_LEN);
    rmq_net::rt::timeout(Duration::from_secs(5), reading)
        .await
        .map_err(|_| rmq_ha::HaError::Silent {
            peer: stream.peer_addr().ok(),
        })??;
    let hello = decode_hello(&inbox)?;
    let broker = &core.broker;
    if hello.shard >= broker.shard_count || inbox.len() != HELLO_LEN {
        let refusal = Welcome {
            status: Status::BadRequest,
            shard_count: broker.shard_count,
            segment_size: broker.config.mapped_file_size_commit_log,
            master_end: 0,
            start: 0,
            epochs_follow: false,
        };
        let BufResult(sent, _) = stream.write_all(encode_welcome(&refusal)).await;
        return sent.map_err(|source| rmq_ha::HaError::Io {
            op: "welcome",
            source,
        });
    }
    // The session must run on the shard's core; a duplicate of the descriptor crosses the
    // mesh (sockets are not tied to a ring), the original closes here.
    let fd: OwnedFd = stream
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| rmq_ha::HaError::Io { op: "dup", source })?;
    drop(stream);
    let settings = master_settings(broker);
    let stopping_broker = broker.clone();
    let handed = core
        .on_owned_shard(hello.shard, move |owned: OwnedShard| async move {
            let stream = TcpStream::from_std(std::net::TcpStream::from(fd)).map_err(|source| {
                rmq_ha::HaError::Io {
                    op: "adopt",
                    source,
                }
            })?;
            let stopping = stopping_of(&stopping_broker, generation);
            rmq_net::rt::spawn(async move {
                if let Err(error) = rmq_ha::master::serve_slave(
                    owned.store,
                    owned.replica,
                    stream,
                    hello,
                    settings,
                    stopping,
                )
                .await
                {
                    tracing::warn!(%error, "slave session failed");
                }
            })
            .detach();
            Ok::<(), rmq_ha::HaError>(())
        })
        .await;
    handed.map_err(|busy| rmq_ha::HaError::Io {
        op: "hand over",
        source: std::io::Error::other(busy.to_string()),
    })?
}

fn master_settings(broker: &BrokerContext) -> MasterSettings {
    let config = &broker.config;
    MasterSettings {
        chunk_max: usize::try_from(config.ha_transfer_batch_size)
            .unwrap_or(0)
            .max(CHUNK_MIN),
        heartbeat: ms(config.ha_send_heartbeat_interval, 100),
        housekeeping: ms(config.ha_housekeeping_interval, 1000),
        zero_copy: true,
    }
}

//! Runs the name server: one pinned core, one listener, a 10 s expiry scan.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rmq_core::config::NamesrvConfig;
use rmq_core::remoting::{DEFAULT_MAX_FRAME, RemotingCommand};
use rmq_net::connection::LocalFuture;
use rmq_net::{ConnectionInfo, ConnectionLimits, NetError, RequestHandler, serve_connection};

use crate::kv_config::KvConfig;
use crate::processor::{NamesrvState, handle};

struct Handler {
    state: Rc<NamesrvState>,
}

impl RequestHandler for Handler {
    fn handle(
        self: Rc<Self>,
        conn: Rc<ConnectionInfo>,
        request: RemotingCommand,
    ) -> LocalFuture<Option<RemotingCommand>> {
        Box::pin(async move { Some(handle(&self.state, &conn, &request).await) })
    }

    fn closed(&self, conn: &ConnectionInfo) {
        let gone = self.state.routes.borrow_mut().connection_closed(conn.id);
        for addr in gone {
            tracing::info!(broker = %addr, peer = %conn.peer, "broker connection closed, unregistered");
        }
    }
}

/// Starts the name server on its own thread and returns once it listens.
///
/// `stop` ends it: the listener closes and the thread exits.
///
/// # Errors
/// `AddrInUse` when another process, or another name server in this one, listens on the
/// port; io_uring unavailable.
pub fn run_namesrv(
    config: NamesrvConfig,
    bind_ip: std::net::IpAddr,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, NetError> {
    let addr = SocketAddr::new(bind_ip, config.listen_port);
    let listener =
        rmq_net::listener::bind_exclusive(addr, rmq_net::listener::PORT_RELEASE_PATIENCE)?;
    let config = Arc::new(config);
    let listener = Arc::new(std::sync::Mutex::new(Some(listener)));
    let handles = rmq_net::cores::run_cores("namesrv", 1, move |_core| {
        let listener = listener.lock().expect("listener lock").take();
        let config = config.clone();
        let stop = stop.clone();
        async move {
            let Some(listener) = listener else { return };
            serve(listener, &config, &stop).await;
        }
    })
    .map_err(|source| NetError::Bind { addr, source })?;
    Ok(handles.into_iter().next().expect("one core"))
}

async fn serve(listener: std::net::TcpListener, config: &NamesrvConfig, stop: &Arc<AtomicBool>) {
    let state = Rc::new(NamesrvState::new(
        KvConfig::load(config.kv_config_path.clone().into()),
        config.clone(),
    ));
    let listener = match rmq_net::listener::register(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!("cannot register listener with io_uring: {error}");
            return;
        }
    };
    let handler = Rc::new(Handler {
        state: state.clone(),
    });
    let expiry = Duration::from_millis(config.broker_channel_expired_time_ms);
    let scan = Duration::from_millis(config.scan_not_active_broker_interval_ms);
    rmq_net::rt::spawn(expiry_loop(state, expiry, scan, stop.clone())).detach();
    tracing::info!(
        port = config.listen_port,
        "The Name Server boot success. serializeType=JSON"
    );
    println!("The Name Server boot success. serializeType=JSON");
    let limits = ConnectionLimits {
        max_frame: usize::try_from(config.max_frame_length).unwrap_or(DEFAULT_MAX_FRAME),
        max_in_flight: usize::try_from(config.connection_max_in_flight_requests)
            .unwrap_or(usize::MAX),
        max_parked: ConnectionLimits::DEFAULT_MAX_PARKED,
        max_queued_reply_bytes: usize::try_from(config.connection_max_queued_reply_bytes)
            .unwrap_or(usize::MAX),
    };
    let stopping = stop.clone();
    rmq_net::listener::accept_until(
        listener,
        move || stopping.load(Ordering::Relaxed),
        move |stream| {
            rmq_net::rt::spawn(serve_connection(stream, handler.clone(), 0, limits)).detach();
        },
    )
    .await;
    tracing::info!("name server stopped");
}

async fn expiry_loop(
    state: Rc<NamesrvState>,
    expiry: Duration,
    scan: Duration,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        rmq_net::rt::sleep(scan.min(Duration::from_secs(1))).await;
        state.routes.borrow_mut().expire(Instant::now(), expiry);
    }
}

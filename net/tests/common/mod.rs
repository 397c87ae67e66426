//! Shared by the transport's socket tests: a server on its own thread serving every
//! connection with `serve_connection`.

use std::net::SocketAddr;
use std::rc::Rc;

use rmq_net::{ConnectionLimits, RequestHandler};

/// Starts a server on a loopback port, on its own thread and runtime: `handler` is built
/// there, every accepted connection is served with it and frames up to `max_frame` bytes.
/// Returns the address.
pub fn serve<H, F>(handler: F, max_frame: usize) -> SocketAddr
where
    H: RequestHandler + 'static,
    F: FnOnce() -> H + Send + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        rmq_net::rt::block_on(async move {
            let listener = rmq_net::listener::register(listener).unwrap();
            let handler = Rc::new(handler());
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let limits = ConnectionLimits::with_max_frame(max_frame);
                rmq_net::rt::spawn(rmq_net::serve_connection(
                    stream,
                    handler.clone(),
                    0,
                    limits,
                ))
                .detach();
            }
        })
        .unwrap();
    });
    addr
}

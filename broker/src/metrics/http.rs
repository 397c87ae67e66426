//! The metrics listener: a thread of its own (not a core: a scrape never competes with
//! request handling on a core's runtime beyond the snapshot each core answers) serving a
//! minimal HTTP/1.1: `GET /metrics` → 200 with the Prometheus text, any other path → 404,
//! any other method → 405, a core that does not report → 503. One request per connection
//! (`Connection: close`); requests are read up to 8 KiB with a 5 s timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::context::SharedContext;

/// Largest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// How often the accept loop looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// The address the endpoint binds: `metricsPromExporterHost`, else the broker's address
/// (brokerIP1, as RocketMQ 5), on `metricsPromExporterPort`.
pub fn bind_addr(ctx: &SharedContext) -> Result<SocketAddr, String> {
    let config = &ctx.config;
    let port = config.metrics_prom_exporter_port;
    let host = match config.metrics_prom_exporter_host.as_deref() {
        Some(host) => host.trim().to_string(),
        None => ctx.broker_addr.ip().to_string(),
    };
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("metricsPromExporterHost: cannot resolve \"{host}\""))
}

/// Binds the endpoint and starts its thread; it stops once the broker is stopping.
///
/// # Errors
/// The address does not parse or cannot be bound (port in use).
pub fn start(ctx: SharedContext) -> Result<JoinHandle<()>, String> {
    let addr = bind_addr(&ctx)?;
    let listener = TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| {
            format!("metrics endpoint (metricsPromExporterPort) cannot bind {addr}: {e}")
        })?;
    tracing::info!(%addr, "metrics endpoint serving GET /metrics");
    std::thread::Builder::new()
        .name("broker-metrics".into())
        .spawn(move || serve(listener, ctx))
        .map_err(|e| format!("cannot start the metrics thread: {e}"))
}

fn serve(listener: TcpListener, ctx: SharedContext) {
    while !ctx.stopping.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(error) = answer(stream, &ctx) {
                    tracing::debug!(%peer, "metrics request failed: {error}");
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(STOP_CHECK);
            }
            Err(error) => {
                tracing::warn!("metrics endpoint accept failed: {error}");
                std::thread::sleep(STOP_CHECK);
            }
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Metrics,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Routes a request head (`GET /metrics HTTP/1.1`, query strings allowed).
pub fn route(head: &str) -> Route {
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Route::BadRequest;
    };
    if method != "GET" {
        return Route::MethodNotAllowed;
    }
    let path = target.split('?').next().unwrap_or(target);
    if path == "/metrics" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

fn answer(mut stream: TcpStream, ctx: &SharedContext) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let (status, content_type, body) = match route(&head) {
        Route::Metrics => match render(ctx) {
            Ok(text) => ("200 OK", super::exposition::CONTENT_TYPE, text),
            Err(error) => (
                "503 Service Unavailable",
                "text/plain",
                format!("{error}\n"),
            ),
        },
        Route::NotFound => ("404 Not Found", "text/plain", "only GET /metrics\n".into()),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "text/plain", "only GET\n".into()),
        Route::BadRequest => ("400 Bad Request", "text/plain", "bad request\n".into()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

/// One scrape, rendered.
pub fn render(ctx: &SharedContext) -> Result<String, String> {
    let cores = ctx.metrics.gather(ctx).map_err(|e| e.to_string())?;
    let scrape = super::scrape::Scrape::build(ctx, cores);
    super::exposition::render(scrape).map_err(|_| "metrics encoding failed".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route("GET /metrics?x=1 HTTP/1.1\r\n\r\n"), Route::Metrics);
        assert_eq!(route("GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route("POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(""), Route::BadRequest);
    }
}

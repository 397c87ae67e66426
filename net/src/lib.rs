//! rmq-net: the thin runtime layer rmq-fast runs on, and the RocketMQ remoting transport.
//!
//! Owns:
//! - `cores`: one OS thread per core, each running its own compio (io_uring) runtime,
//!   pinned to its own CPU while it idle-polls (`placement`, `pinCores`). Nothing here is
//!   shared between cores except what crosses a [`mesh`] ring.
//! - `mesh`: cross-core message passing over bounded SPSC rings (rtrb), one ring per
//!   ordered pair of cores, with a wake-up per receiving core. Work for a shard owned by
//!   another core travels this way, so shard state needs no locks.
//! - `listener`: a server's one listening socket, bound exclusively (a second process on the
//!   port fails with "address in use") and accepted on by every core through its own
//!   descriptor, and the runtime's listener and stream types (`TcpListener`, `TcpStream`,
//!   `register`).
//! - `balance`: each accepted connection is served by the core with the fewest open
//!   connections (whichever core's accept the kernel woke may get all of a few clients).
//! - `connection`: the server side of one remoting connection: frames in, concurrent
//!   request handling (a long-polling pull never blocks the sends behind it), batched
//!   writes out.
//! - `direct_write`: a connection's socket shared with the other cores, so the core that
//!   finished a request can write its reply without waking the connection's core.
//! - `flow`: per-connection limits (requests in flight, parked long-polls, queued reply
//!   bytes); over a limit the connection's socket is not read until replies drain.
//! - `client`: the client side (broker → name server, bench tool): request/response
//!   matching by `opaque`, timeouts, oneway.
//! - `idle_poll`: the cores' run loop, which polls the ring for a bounded time before it
//!   sleeps (`idlePollMicros`), and `poll_probe`, which measures whether that pays
//!   (`idlePollProbe`).
//! - `rt`: the runtime seam for the crates above: spawn, sleep, timeout, yield, the clock.
//!
//! Contracts: a malformed frame closes only its own connection; a handler error is a
//! response with a code and a remark, never a dropped connection. The crates above are meant
//! to see only futures, `Rc` handlers and the types defined here (`rt` for tasks and timers);
//! docs/architecture.md lists the call sites that still name compio directly.

pub mod balance;
pub mod client;
pub mod connection;
pub mod cores;
pub mod direct_write;
pub mod error;
pub mod flow;
pub mod idle_poll;
pub mod listener;
pub mod mesh;
pub mod placement;
pub mod poll_probe;
pub mod rt;

pub use client::RemotingClient;
pub use connection::{ConnectionInfo, RequestHandler, Responder, serve_connection};
pub use error::NetError;
pub use flow::{ConnectionLimits, Flow, Parked};

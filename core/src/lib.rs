//! rmq-core: everything about Apache RocketMQ 4.x compatibility that needs no runtime.
//!
//! Owns: the remoting protocol (frames, JSON and ROCKETMQ binary headers, request and
//! response codes), the message record format stored in the commit log and sent to
//! consumers, message ids, the JSON bodies exchanged with clients and name servers, and
//! the `.properties` configuration of brokers and name servers.
//!
//! Contracts:
//! - Decoders never panic on bad input: every malformed frame, header, record or body
//!   becomes a typed error that the caller turns into a RocketMQ response code with a
//!   remark, or into closing one connection.
//! - Encoders produce bytes that the official Java client (4.9.x) accepts; decoders accept
//!   what the Java, C++ and Go clients send, including their known deviations (see
//!   `remoting::lenient_json`).
//! - No I/O and no runtime here, so everything can be unit-tested, fuzzed and run under Miri.
//!
//! Also here, because the storage and network crates both use it and it needs no runtime:
//! `way_probe`, which picks one of two correct ways of running something by measuring both
//! on live traffic.

pub mod body;
pub mod config;
pub mod filter;
pub mod message;
pub mod remoting;
pub mod way_probe;

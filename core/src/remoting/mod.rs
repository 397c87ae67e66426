//! The RocketMQ 4.x remoting protocol: commands, codes, framing and header codecs.
//!
//! Wire format (details in `frame.rs`):
//! ```text
//! int32 length | int32 (serializeType << 24 | headerLength) | header | body
//! ```
//! The header is JSON (type 0, `header_json.rs`) or the ROCKETMQ binary layout (type 1,
//! `header_binary.rs`); a reply uses the serialization of its request.
//!
//! Layout of this module:
//! - `codes`: request codes, response codes, language tags (wire-stable numbers);
//! - `command`: `RemotingCommand` and typed access to its `extFields`;
//! - `controller`: RocketMQ 5's controller-mode codes and headers (failover);
//! - `frame`: length-prefixed framing, the only entry point for bytes from a socket;
//! - `header_json`, `header_binary`: the two header encodings (`header_json_fast`: the
//!   one-pass reader of the JSON header's common shape, checked against the serde path);
//! - `ext_fields`: the flat map of custom header fields; `field_hash`: the seeded hasher for
//!   maps keyed by names from the network;
//! - `lenient_json`: fastjson-compatible parsing, also used for JSON bodies elsewhere.
//!
//! # Errors
//! Framing and header errors are [`FrameError`] and close the connection; a missing or
//! malformed custom header field is a [`HeaderError`] and becomes an error response.
//! Nothing here panics on any input bytes.

pub mod codes;
pub mod command;
pub mod controller;
pub mod ext_fields;
pub mod field_hash;
pub mod frame;
pub mod header_binary;
pub mod header_json;
mod header_json_fast;
pub mod lenient_json;

pub use codes::{LanguageCode, ResponseCode, request_code};
pub use command::{
    Field, HeaderError, RPC_TYPE_ONEWAY, RPC_TYPE_RESPONSE, RemotingCommand, SerializeType,
};
pub use ext_fields::{ExtFields, ext_fields_with_capacity};
pub use frame::{DEFAULT_MAX_FRAME, FrameError, announced_frame_len, decode_frame, encode_frame};

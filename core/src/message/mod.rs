//! The RocketMQ message as it exists on the wire and on disk.
//!
//! - [`record`]: the commit-log record (docs/protocol.md §3.1). The same bytes are stored in the
//!   commit log, returned by PULL / QUERY / VIEW, and shipped to slaves, so one codec serves all
//!   three.
//! - [`properties`]: the `name\u{1}value\u{2}` properties string (§3.3) and its well-known keys.
//! - [`batch`]: the SEND_BATCH_MESSAGE body (§3.4).
//! - [`msg_id`]: the broker's offsetMsgId (§3.2).
//! - [`hash`]: Java `String.hashCode`, which RocketMQ uses for tag codes and index keys.
//! - [`sysflag`]: the message and pull sysflag bits (§3.5, §2.4).
//!
//! Decoders here never panic on input bytes; encoders assert only on programmer errors.

pub mod batch;
pub mod hash;
pub mod msg_id;
pub mod properties;
pub mod record;
pub mod sysflag;

pub use record::{
    BLANK_MAGIC_CODE, MESSAGE_MAGIC_CODE, MESSAGE_MAGIC_CODE_V2, NewRecord, RecordError,
    RecordView, body_crc, parse_record, patch_record, record_len,
};

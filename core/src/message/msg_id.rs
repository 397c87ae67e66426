//! The broker's message id, "offsetMsgId" (docs/protocol.md §3.2, Java
//! `MessageDecoder.createMessageId`).
//!
//! Layout before hex encoding, big-endian:
//! ```text
//! IPv4: [store host ip 4 B][port int32][commit-log offset int64] = 16 B -> 32 hex chars
//! IPv6: [store host ip 16 B][port int32][commit-log offset int64] = 28 B -> 56 hex chars
//! ```
//! SEND returns it as `msgId`; VIEW_MESSAGE_BY_ID receives the offset decoded from it. Hex is
//! uppercase like Java's `UtilAll.bytes2string`; decoding accepts either case.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Hex length of an id whose store host is IPv4.
pub const MSG_ID_LEN_V4: usize = 32;
/// Hex length of an id whose store host is IPv6.
pub const MSG_ID_LEN_V6: usize = 56;

/// Why a string is not an offsetMsgId.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgIdError {
    #[error("message id has {0} characters; expected 32 (IPv4) or 56 (IPv6)")]
    BadLength(usize),
    #[error("message id has a non-hex character at position {0}")]
    BadHex(usize),
    #[error("message id port {0} is out of range")]
    BadPort(i32),
    #[error("message id commit-log offset {0} is negative")]
    NegativeOffset(i64),
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// The offsetMsgId of the record at `physical_offset` stored by `store_host`.
pub fn offset_msg_id(store_host: SocketAddr, physical_offset: i64) -> String {
    let id = OffsetMsgId {
        store_host,
        physical_offset,
    }
    .to_string();
    assert!(id.len() == MSG_ID_LEN_V4 || id.len() == MSG_ID_LEN_V6);
    id
}

/// An offsetMsgId that writes itself (see [`offset_msg_id`]): a response field takes it
/// without an intermediate `String`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetMsgId {
    pub store_host: SocketAddr,
    pub physical_offset: i64,
}

impl std::fmt::Display for OffsetMsgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = [0u8; 28];
        let host_len = match self.store_host.ip() {
            IpAddr::V4(ip) => {
                raw[..4].copy_from_slice(&ip.octets());
                4
            }
            IpAddr::V6(ip) => {
                raw[..16].copy_from_slice(&ip.octets());
                16
            }
        };
        let port = i32::from(self.store_host.port()).to_be_bytes();
        raw[host_len..host_len + 4].copy_from_slice(&port);
        raw[host_len + 4..host_len + 12].copy_from_slice(&self.physical_offset.to_be_bytes());
        let raw = &raw[..host_len + 12];
        let mut hex = [0u8; MSG_ID_LEN_V6];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(raw) {
            pair[0] = HEX_UPPER[usize::from(byte >> 4)];
            pair[1] = HEX_UPPER[usize::from(byte & 0xF)];
        }
        let text = std::str::from_utf8(&hex[..raw.len() * 2]).expect("hex digits are ASCII");
        f.write_str(text)
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// The store host and commit-log offset encoded in an offsetMsgId.
///
/// # Errors
/// Wrong length, a non-hex character, a port outside 0..=65535 or a negative offset.
pub fn decode_offset_msg_id(id: &str) -> Result<(SocketAddr, i64), MsgIdError> {
    let hex = id.as_bytes();
    if hex.len() != MSG_ID_LEN_V4 && hex.len() != MSG_ID_LEN_V6 {
        return Err(MsgIdError::BadLength(id.chars().count()));
    }
    let mut raw = Vec::with_capacity(hex.len() / 2);
    for (index, pair) in hex.chunks_exact(2).enumerate() {
        let high = hex_value(pair[0]).ok_or(MsgIdError::BadHex(index * 2))?;
        let low = hex_value(pair[1]).ok_or(MsgIdError::BadHex(index * 2 + 1))?;
        raw.push(high << 4 | low);
    }
    let ip_len = raw.len() - 12;
    let ip = if ip_len == 4 {
        let mut octets = [0u8; 4];
        octets.copy_from_slice(&raw[..4]);
        IpAddr::V4(Ipv4Addr::from(octets))
    } else {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&raw[..16]);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    let mut port = [0u8; 4];
    port.copy_from_slice(&raw[ip_len..ip_len + 4]);
    let port = i32::from_be_bytes(port);
    let port = u16::try_from(port).map_err(|_| MsgIdError::BadPort(port))?;
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&raw[ip_len + 4..]);
    let offset = i64::from_be_bytes(offset);
    if offset < 0 {
        return Err(MsgIdError::NegativeOffset(offset));
    }
    Ok((SocketAddr::new(ip, port), offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        let host: SocketAddr = "192.168.1.100:10911".parse().unwrap();
        let id = offset_msg_id(host, 0x1234);
        assert_eq!(id, "C0A8016400002A9F0000000000001234");
        assert_eq!(decode_offset_msg_id(&id), Ok((host, 0x1234)));
        let lower = id.to_lowercase();
        assert_eq!(decode_offset_msg_id(&lower), Ok((host, 0x1234)));
    }

    #[test]
    fn round_trips() {
        for (host, offset) in [
            ("127.0.0.1:10911", 0),
            ("10.1.2.3:65535", i64::MAX),
            ("[2001:db8::7]:10911", 1 << 40),
        ] {
            let host: SocketAddr = host.parse().unwrap();
            let id = offset_msg_id(host, offset);
            let expected_len = if host.is_ipv6() {
                MSG_ID_LEN_V6
            } else {
                MSG_ID_LEN_V4
            };
            assert_eq!(id.len(), expected_len);
            assert_eq!(decode_offset_msg_id(&id), Ok((host, offset)));
        }
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(decode_offset_msg_id(""), Err(MsgIdError::BadLength(0)));
        assert_eq!(decode_offset_msg_id("ABC"), Err(MsgIdError::BadLength(3)));
        let bad_hex = "C0A8016400002A9F000000000000123G";
        assert_eq!(decode_offset_msg_id(bad_hex), Err(MsgIdError::BadHex(31)));
        // 32 bytes but containing multi-byte UTF-8: must not panic.
        let multibyte = "é".repeat(16);
        assert!(matches!(
            decode_offset_msg_id(&multibyte),
            Err(MsgIdError::BadHex(0))
        ));
        let bad_port = "C0A80164FFFFFFFF0000000000001234";
        assert_eq!(decode_offset_msg_id(bad_port), Err(MsgIdError::BadPort(-1)));
        let negative = "C0A8016400002A9FF000000000001234";
        assert!(matches!(
            decode_offset_msg_id(negative),
            Err(MsgIdError::NegativeOffset(_))
        ));
    }
}

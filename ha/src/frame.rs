//! Replication frames.
//!
//! Master → slave: `int64 masterPhyOffset | int32 bodySize | body` (commit log bytes
//! starting at masterPhyOffset; bodySize 0 = heartbeat).
//! Slave → master: `int64 slaveMaxOffset` (acknowledges everything before it).

use bytes::{Buf, BufMut, BytesMut};

/// Size of the master's frame header.
pub const TRANSFER_HEADER_LEN: usize = 12;
/// Size of a slave report.
pub const REPORT_LEN: usize = 8;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("negative body size {0}")]
    NegativeBody(i32),
    #[error("body size {size} over the limit {max}")]
    BodyTooLarge { size: usize, max: usize },
}

/// A decoded master frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferHeader {
    pub master_offset: i64,
    pub body_size: usize,
}

pub fn encode_transfer_header(master_offset: i64, body_size: usize, dst: &mut BytesMut) {
    let size = i32::try_from(body_size).expect("transfer bodies are bounded by the batch size");
    dst.put_i64(master_offset);
    dst.put_i32(size);
}

/// Decodes a header from the front of `src` once 12 bytes are there.
pub fn decode_transfer_header(
    src: &mut BytesMut,
    max_body: usize,
) -> Result<Option<TransferHeader>, FrameError> {
    if src.len() < TRANSFER_HEADER_LEN {
        return Ok(None);
    }
    let master_offset = src.get_i64();
    let size = src.get_i32();
    let body_size = usize::try_from(size).map_err(|_| FrameError::NegativeBody(size))?;
    if body_size > max_body {
        return Err(FrameError::BodyTooLarge {
            size: body_size,
            max: max_body,
        });
    }
    Ok(Some(TransferHeader {
        master_offset,
        body_size,
    }))
}

/// The last complete 8-byte report in `src` (older ones are superseded), consuming
/// every complete report.
pub fn take_latest_report(src: &mut BytesMut) -> Option<i64> {
    let complete = src.len() / REPORT_LEN * REPORT_LEN;
    if complete == 0 {
        return None;
    }
    let mut reports = src.split_to(complete);
    reports.advance(complete - REPORT_LEN);
    Some(reports.get_i64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_partial() {
        let mut buf = BytesMut::new();
        encode_transfer_header(1 << 30, 32 * 1024, &mut buf);
        let mut partial = BytesMut::from(&buf[..7]);
        assert_eq!(decode_transfer_header(&mut partial, 65536), Ok(None));
        let header = decode_transfer_header(&mut buf, 65536).unwrap().unwrap();
        assert_eq!(
            header,
            TransferHeader {
                master_offset: 1 << 30,
                body_size: 32 * 1024
            }
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_and_negative_bodies_are_errors() {
        let mut buf = BytesMut::new();
        buf.put_i64(0);
        buf.put_i32(-1);
        assert_eq!(
            decode_transfer_header(&mut buf, 10),
            Err(FrameError::NegativeBody(-1))
        );
        let mut buf = BytesMut::new();
        encode_transfer_header(0, 11, &mut buf);
        assert_eq!(
            decode_transfer_header(&mut buf, 10),
            Err(FrameError::BodyTooLarge { size: 11, max: 10 })
        );
    }

    #[test]
    fn latest_report_wins_and_partial_report_stays() {
        let mut buf = BytesMut::new();
        buf.put_i64(10);
        buf.put_i64(20);
        buf.put_slice(&[0, 0, 0]);
        assert_eq!(take_latest_report(&mut buf), Some(20));
        assert_eq!(buf.len(), 3);
        assert_eq!(take_latest_report(&mut buf), None);
    }
}

//! The REGISTER_BROKER body (Java `RegisterBrokerBody`), plain JSON or compressed.
//!
//! Plain (`compressed=false` in the request header):
//! `{"topicConfigSerializeWrapper":{...},"filterServerList":[]}`.
//!
//! Compressed: a zlib stream (`java.util.zip.DeflaterOutputStream`, zlib header) of,
//! big-endian:
//! ```text
//! int32 len | DataVersion JSON
//! int32 topicCount
//! topicCount x { int32 len | TopicConfig::encode() text }   (loses topicSysFlag and order)
//! int32 len | filterServerList JSON
//! ```
//! A broker with tens of thousands of topics sends megabytes uncompressed every 30 s to every
//! name server, which is why the compressed form exists. Java brokers deflate at
//! `BEST_COMPRESSION`; we deflate at the fastest level (any level inflates the same, and only
//! name servers read this body): at a million topics level 9 cost seconds of CPU per
//! registration for a body about a third smaller.
//!
//! Decompression is bounded: the zlib stream is parsed as it inflates (never inflated into
//! one buffer), at most [`DECOMPRESSED_LEN_MAX`] bytes of it, and each chunk is read only
//! if its declared length is within its own limit ([`CHUNK_LEN_MAX`], [`FILTER_LIST_LEN_MAX`]).
//! So a zlib bomb costs at most one chunk buffer of memory, whatever it inflates to: a
//! 0.26 MB bomb used to leave the name server 500 MB larger (the inflated buffer grew by
//! doubling, and the allocator kept the freed pages).

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use serde::{Deserialize, Serialize};

use super::topic::{DataVersion, TopicConfig, TopicConfigSerializeWrapper};
use super::{BodyError, decode_body, encode_body};

/// Largest decompressed body we accept: 128 MiB, above a million topics in text form
/// (~100 bytes each); past it the registration is refused.
pub const DECOMPRESSED_LEN_MAX: u64 = 128 * 1024 * 1024;

/// Largest data-version or topic-config chunk (each is one short line of text).
pub const CHUNK_LEN_MAX: usize = 64 * 1024;

/// Largest filter-server-list chunk.
pub const FILTER_LIST_LEN_MAX: usize = 1024 * 1024;

/// What a broker tells the name server about itself every 30 s.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegisterBrokerBody {
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
    pub filter_server_list: Vec<String>,
}

impl RegisterBrokerBody {
    /// Encodes as JSON, or in the compressed form when `compress` (header `compressed=true`).
    /// Topics are written in name order so equal bodies give equal bytes (and CRCs).
    pub fn encode(&self, compress: bool) -> Vec<u8> {
        if !compress {
            return encode_body(self);
        }
        let wrapper = &self.topic_config_serialize_wrapper;
        let mut plain = Vec::new();
        put_chunk(&mut plain, &encode_body(&wrapper.data_version));
        let mut topics: Vec<&TopicConfig> = wrapper.topic_config_table.values().collect();
        topics.sort_by(|a, b| a.topic_name.cmp(&b.topic_name));
        let count = i32::try_from(topics.len()).expect("topic count fits i32");
        plain.extend_from_slice(&count.to_be_bytes());
        for topic in topics {
            put_chunk(&mut plain, topic.encode().as_bytes());
        }
        put_chunk(&mut plain, &encode_body(&self.filter_server_list));
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::fast());
        // Writing into a Vec cannot fail.
        encoder.write_all(&plain).expect("zlib into Vec");
        encoder.finish().expect("zlib into Vec")
    }

    /// Decodes either form; `compressed` is the request header's `compressed` flag.
    ///
    /// # Errors
    /// `Json` for a bad plain body or DataVersion; `Compressed` for a bad zlib stream, a length
    /// overrunning the data, a malformed topic entry, or more than [`DECOMPRESSED_LEN_MAX`].
    pub fn decode(body: &[u8], compressed: bool) -> Result<Self, BodyError> {
        if !compressed {
            return decode_body(body);
        }
        let mut reader = ChunkReader {
            stream: ZlibDecoder::new(body).take(DECOMPRESSED_LEN_MAX),
        };
        let data_version: DataVersion = decode_body(&reader.chunk("data version", CHUNK_LEN_MAX)?)?;
        let count = reader.int("topic count")?;
        let mut wrapper = TopicConfigSerializeWrapper {
            data_version,
            ..Default::default()
        };
        for index in 0..count {
            let text = reader.chunk("topic config", CHUNK_LEN_MAX)?;
            let config = std::str::from_utf8(&text)
                .ok()
                .and_then(TopicConfig::decode);
            let config = config.ok_or_else(|| {
                let text = String::from_utf8_lossy(&text);
                BodyError::Compressed(format!("topic config {index} is malformed: {text:?}"))
            })?;
            wrapper
                .topic_config_table
                .insert(config.topic_name.clone(), config);
        }
        let filter_json = reader.chunk("filter server list", FILTER_LIST_LEN_MAX)?;
        // Java logs and continues with an empty list here; so do we.
        let filter_server_list = decode_body(&filter_json).unwrap_or_else(|error| {
            tracing::warn!(%error, "ignoring malformed filterServerList in REGISTER_BROKER");
            Vec::new()
        });
        Ok(RegisterBrokerBody {
            topic_config_serialize_wrapper: wrapper,
            filter_server_list,
        })
    }
}

fn put_chunk(dst: &mut Vec<u8>, chunk: &[u8]) {
    let len = i32::try_from(chunk.len()).expect("chunk fits i32");
    dst.extend_from_slice(&len.to_be_bytes());
    dst.extend_from_slice(chunk);
}

/// Reads length-prefixed chunks straight from the inflating stream (at most
/// [`DECOMPRESSED_LEN_MAX`] bytes of it); overruns become `Compressed` errors.
struct ChunkReader<R: Read> {
    stream: std::io::Take<R>,
}

impl<R: Read> ChunkReader<R> {
    fn int(&mut self, what: &str) -> Result<usize, BodyError> {
        let mut bytes = [0u8; 4];
        self.read_exact(&mut bytes, what)?;
        let value = i32::from_be_bytes(bytes);
        usize::try_from(value)
            .map_err(|_| BodyError::Compressed(format!("negative {what} length {value}")))
    }

    /// The next chunk, refused before any allocation when its length is above `max`.
    fn chunk(&mut self, what: &str, max: usize) -> Result<Vec<u8>, BodyError> {
        let len = self.int(what)?;
        if len > max {
            let reason = format!("{what} of {len} bytes exceeds its limit of {max} bytes");
            return Err(BodyError::Compressed(reason));
        }
        let mut chunk = vec![0u8; len];
        self.read_exact(&mut chunk, what)?;
        Ok(chunk)
    }

    fn read_exact(&mut self, dst: &mut [u8], what: &str) -> Result<(), BodyError> {
        self.stream.read_exact(dst).map_err(|error| {
            let reason = if self.stream.limit() == 0 {
                format!("decompressed body exceeds {DECOMPRESSED_LEN_MAX} bytes")
            } else if error.kind() == std::io::ErrorKind::UnexpectedEof {
                format!("{what} needs {} bytes, the body ended first", dst.len())
            } else {
                format!("zlib: {error}")
            };
            BodyError::Compressed(reason)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RegisterBrokerBody {
        let mut body = RegisterBrokerBody::default();
        let wrapper = &mut body.topic_config_serialize_wrapper;
        wrapper.data_version = DataVersion {
            timestamp: 1_700_000_000_000,
            counter: 7,
            state_version: 0,
        };
        for name in ["TopicTest", "TBW102", "%RETRY%cg"] {
            let mut config = TopicConfig::new(name);
            config.read_queue_nums = 4;
            wrapper.topic_config_table.insert(name.to_owned(), config);
        }
        body.filter_server_list = vec!["10.0.0.9:3000".to_owned()];
        body
    }

    #[test]
    fn compressed_round_trip() {
        let body = sample();
        let bytes = body.encode(true);
        assert_eq!(
            bytes[0], 0x78,
            "zlib header as java.util.zip.Deflater writes"
        );
        assert_eq!(RegisterBrokerBody::decode(&bytes, true).unwrap(), body);
        assert_eq!(body.encode(true), bytes, "deterministic");
    }

    #[test]
    fn plain_round_trip() {
        let body = sample();
        let bytes = body.encode(false);
        let json = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            json.contains("\"topicConfigSerializeWrapper\"")
                && json.contains("\"filterServerList\"")
        );
        assert_eq!(RegisterBrokerBody::decode(&bytes, false).unwrap(), body);
    }

    #[test]
    fn compressed_errors() {
        assert!(matches!(
            RegisterBrokerBody::decode(b"not zlib", true),
            Err(BodyError::Compressed(_))
        ));
        let bytes = sample().encode(true);
        let cut = &bytes[..bytes.len() / 2];
        assert!(RegisterBrokerBody::decode(cut, true).is_err());
        // A topic count that overruns the data.
        let mut plain = Vec::new();
        put_chunk(&mut plain, b"{\"counter\":1,\"timestamp\":2}");
        plain.extend_from_slice(&i32::MAX.to_be_bytes());
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&plain).unwrap();
        let overrun = encoder.finish().unwrap();
        assert!(matches!(
            RegisterBrokerBody::decode(&overrun, true),
            Err(BodyError::Compressed(_))
        ));
    }
}

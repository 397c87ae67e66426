//! The REGISTER_BROKER body (Java `RegisterBrokerBody`), plain JSON or compressed.
//!
//! Plain (`compressed=false` in the request header):
//! `{"topicConfigSerializeWrapper":{...},"filterServerList":[]}`.
//!
//! Compressed: a zlib stream (`java.util.zip.DeflaterOutputStream`, zlib header, best
//! compression) of, big-endian:
//! ```text
//! int32 len | DataVersion JSON
//! int32 topicCount
//! topicCount x { int32 len | TopicConfig::encode() text }   (loses topicSysFlag and order)
//! int32 len | filterServerList JSON
//! ```
//! A broker with tens of thousands of topics sends megabytes uncompressed every 30 s to every
//! name server, which is why the compressed form exists. Decompression is capped at
//! [`DECOMPRESSED_LEN_MAX`] so a hostile peer cannot make us allocate without bound.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use serde::{Deserialize, Serialize};

use super::topic::{DataVersion, TopicConfig, TopicConfigSerializeWrapper};
use super::{BodyError, decode_body, encode_body};

/// Largest decompressed body we accept (about 4 million topics in text form).
pub const DECOMPRESSED_LEN_MAX: u64 = 256 * 1024 * 1024;

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
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
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
        let plain = inflate(body)?;
        let mut reader = ChunkReader {
            data: &plain,
            pos: 0,
        };
        let data_version: DataVersion = decode_body(reader.chunk("data version")?)?;
        let count = reader.int("topic count")?;
        let mut wrapper = TopicConfigSerializeWrapper {
            data_version,
            ..Default::default()
        };
        for index in 0..count {
            let text = reader.chunk("topic config")?;
            let config = std::str::from_utf8(text).ok().and_then(TopicConfig::decode);
            let config = config.ok_or_else(|| {
                let text = String::from_utf8_lossy(text);
                BodyError::Compressed(format!("topic config {index} is malformed: {text:?}"))
            })?;
            wrapper
                .topic_config_table
                .insert(config.topic_name.clone(), config);
        }
        let filter_json = reader.chunk("filter server list")?;
        // Java logs and continues with an empty list here; so do we.
        let filter_server_list = decode_body(filter_json).unwrap_or_else(|error| {
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

fn inflate(body: &[u8]) -> Result<Vec<u8>, BodyError> {
    let mut plain = Vec::new();
    let mut decoder = ZlibDecoder::new(body).take(DECOMPRESSED_LEN_MAX + 1);
    decoder
        .read_to_end(&mut plain)
        .map_err(|error| BodyError::Compressed(format!("zlib: {error}")))?;
    if plain.len() as u64 > DECOMPRESSED_LEN_MAX {
        let reason = format!("decompressed body exceeds {DECOMPRESSED_LEN_MAX} bytes");
        return Err(BodyError::Compressed(reason));
    }
    Ok(plain)
}

/// Cursor over the decompressed body; overruns become `Compressed` errors.
struct ChunkReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ChunkReader<'a> {
    fn int(&mut self, what: &str) -> Result<usize, BodyError> {
        let bytes = self.take(4, what)?;
        let value = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        usize::try_from(value)
            .map_err(|_| BodyError::Compressed(format!("negative {what} length {value}")))
    }

    fn chunk(&mut self, what: &str) -> Result<&'a [u8], BodyError> {
        let len = self.int(what)?;
        self.take(len, what)
    }

    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], BodyError> {
        let rest = &self.data[self.pos..];
        if rest.len() < len {
            let reason = format!("{what} needs {len} bytes, {} left", rest.len());
            return Err(BodyError::Compressed(reason));
        }
        self.pos += len;
        Ok(&rest[..len])
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

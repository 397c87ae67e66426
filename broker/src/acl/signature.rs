//! The request signature of RocketMQ's AclClientRPCHook: HmacSHA1, keyed with the
//! account's secret key (UTF-8), over the values of the request's extFields sorted by
//! name (every field but `Signature`; the broker also leaves out `_UNIQUE_KEY_QUERY`, as
//! PlainAccessValidator.parse does), concatenated and UTF-8 encoded, followed by the body;
//! Base64 (standard alphabet, padded).

use base64::Engine;
use hmac::{Hmac, Mac};
use rmq_core::remoting::RemotingCommand;
use sha1::Sha1;

/// extField carrying the signature.
pub const SIGNATURE: &str = "Signature";
/// extField carrying the access key.
pub const ACCESS_KEY: &str = "AccessKey";
/// extField carrying the optional security token (signed like any other field).
pub const SECURITY_TOKEN: &str = "SecurityToken";
/// MixAll.UNIQUE_MSG_QUERY_FLAG: not part of the signed content on the broker side.
pub const UNIQUE_MSG_QUERY_FLAG: &str = "_UNIQUE_KEY_QUERY";

/// The bytes the broker checks the signature over.
pub fn signed_content(req: &RemotingCommand) -> Vec<u8> {
    let mut fields: Vec<(&str, &str)> = req
        .ext_fields
        .iter()
        .filter(|(name, _)| *name != SIGNATURE && *name != UNIQUE_MSG_QUERY_FLAG)
        .collect();
    // Java's TreeMap<String> orders by UTF-16 code units; field names are ASCII, where
    // that is byte order.
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let len = fields.iter().map(|(_, v)| v.len()).sum::<usize>() + req.body.len();
    let mut content = Vec::with_capacity(len);
    for (_, value) in fields {
        content.extend_from_slice(value.as_bytes());
    }
    content.extend_from_slice(&req.body);
    content
}

/// Base64(HmacSHA1(secret, data)).
pub fn sign(data: &[u8], secret_key: &str) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret_key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(data);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is the signature of `data` under `secret_key` (constant time in
/// the signature's content).
pub fn verify(data: &[u8], secret_key: &str, signature: Option<&str>) -> bool {
    let expected = sign(data, secret_key);
    let Some(given) = signature else {
        return false;
    };
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha1_base64_matches_rfc2202_vector() {
        // RFC 2202 test case 2: key "Jefe", data "what do ya want for nothing?",
        // HMAC-SHA1 = effcdf6ae5eb2fa2d27416d5f184df9c259a7c79.
        assert_eq!(
            sign(b"what do ya want for nothing?", "Jefe"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
    }

    #[test]
    fn content_is_sorted_values_then_body_without_signature() {
        let mut req = RemotingCommand::new_request(10)
            .with_ext("b", "topicA")
            .with_ext("AccessKey", "rocketmq2")
            .with_ext("a", "pg")
            .with_ext(SIGNATURE, "ignored")
            .with_ext(UNIQUE_MSG_QUERY_FLAG, "true")
            .with_body(b"hello".to_vec());
        // Sorted by name: AccessKey, a, b (upper case sorts before lower case).
        assert_eq!(signed_content(&req), b"rocketmq2pgtopicAhello");
        let signature = sign(&signed_content(&req), "12345678");
        req.set_ext(SIGNATURE, &signature);
        assert!(verify(&signed_content(&req), "12345678", Some(&signature)));
        assert!(!verify(&signed_content(&req), "12345679", Some(&signature)));
        assert!(!verify(&signed_content(&req), "12345678", None));
        req.set_ext("b", "topicB");
        assert!(!verify(&signed_content(&req), "12345678", Some(&signature)));
    }
}

//! Java `KVTable`: a flat string map, used by GET_BROKER_RUNTIME_INFO and the name server's
//! KV config responses.
//!
//! ```text
//! {"table":{"brokerVersion":"409","msgPutTotalTodayNow":"12"}}
//! ```

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KVTable {
    pub table: HashMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{decode_body, encode_body};

    #[test]
    fn round_trip() {
        let mut kv = KVTable::default();
        kv.table.insert("brokerVersion".into(), "409".into());
        assert_eq!(encode_body(&kv), br#"{"table":{"brokerVersion":"409"}}"#);
        assert_eq!(
            decode_body::<KVTable>(br#"{table:{'brokerVersion':'409'}}"#).unwrap(),
            kv
        );
    }
}

//! Message sysflag bits (docs/protocol.md §3.5, Java `MessageSysFlag`) and pull sysflag bits (§2.4,
//! Java `PullSysFlag`).
//!
//! Message sysflag layout (int32):
//! ```text
//! bit 0      COMPRESSED            body is compressed (bits 8-10 name the codec in 5.x)
//! bit 1      MULTI_TAGS
//! bits 2-3   transaction type      0 NOT, 0x4 PREPARED, 0x8 COMMIT, 0xC ROLLBACK
//! bit 4      BORNHOST_V6           born host is 16 + 4 bytes instead of 4 + 4
//! bit 5      STOREHOSTADDRESS_V6   store host is 16 + 4 bytes instead of 4 + 4
//! ```

/// The body is compressed (the producer compressed it; the broker stores it as is).
pub const COMPRESSED_FLAG: i32 = 0x1;
/// The message carries several tags.
pub const MULTI_TAGS_FLAG: i32 = 0x2;
/// Not a transactional message.
pub const TRANSACTION_NOT_TYPE: i32 = 0;
/// Half message: stored but invisible until committed.
pub const TRANSACTION_PREPARED_TYPE: i32 = 0x4;
/// Committed transactional message.
pub const TRANSACTION_COMMIT_TYPE: i32 = 0x8;
/// Rolled-back transactional message; also the mask of the two transaction bits.
pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0xC;
/// The record's BORNHOST field is IPv6 (20 bytes).
pub const BORNHOST_V6_FLAG: i32 = 0x10;
/// The record's STOREHOST field is IPv6 (20 bytes).
pub const STOREHOSTADDRESS_V6_FLAG: i32 = 0x20;

/// The transaction type bits of `sys_flag` (one of the `TRANSACTION_*_TYPE` values).
pub fn transaction_value(sys_flag: i32) -> i32 {
    sys_flag & TRANSACTION_ROLLBACK_TYPE
}

/// `sys_flag` with its transaction bits replaced by `ty`.
pub fn reset_transaction_value(sys_flag: i32, ty: i32) -> i32 {
    assert_eq!(
        ty & !TRANSACTION_ROLLBACK_TYPE,
        0,
        "not a transaction type: {ty:#x}"
    );
    (sys_flag & !TRANSACTION_ROLLBACK_TYPE) | ty
}

/// PULL_MESSAGE request `sysFlag` bits.
pub mod pull {
    /// The request carries `commitOffset`: store it as the group's consumer offset.
    pub const COMMIT_OFFSET: i32 = 0x1;
    /// Long polling allowed: hold the request up to `suspendTimeoutMillis` when nothing is found.
    pub const SUSPEND: i32 = 0x2;
    /// The request carries a subscription expression; build the filter from it.
    pub const SUBSCRIPTION: i32 = 0x4;
    /// Class filter mode (filter servers; obsolete).
    pub const CLASS_FILTER: i32 = 0x8;
    /// Sent by the lite pull consumer.
    pub const LITE_PULL: i32 = 0x10;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_bits() {
        let flag = BORNHOST_V6_FLAG | TRANSACTION_PREPARED_TYPE | COMPRESSED_FLAG;
        assert_eq!(transaction_value(flag), TRANSACTION_PREPARED_TYPE);
        let committed = reset_transaction_value(flag, TRANSACTION_COMMIT_TYPE);
        assert_eq!(transaction_value(committed), TRANSACTION_COMMIT_TYPE);
        assert_eq!(
            committed & !TRANSACTION_ROLLBACK_TYPE,
            BORNHOST_V6_FLAG | COMPRESSED_FLAG
        );
        let plain = reset_transaction_value(committed, TRANSACTION_NOT_TYPE);
        assert_eq!(transaction_value(plain), TRANSACTION_NOT_TYPE);
    }
}

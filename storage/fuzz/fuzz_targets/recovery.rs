//! Fuzz target: crash a store, damage its segment files as the input says, recover, and read
//! everything back (see `rmq_storage::recovery_fuzz` for what counts as a failure).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    rmq_storage::recovery_fuzz::run_case(dir.path(), data);
});

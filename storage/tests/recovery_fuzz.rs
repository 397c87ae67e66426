//! The recovery fuzz target run deterministically: seeded inputs through the same harness
//! as `storage/fuzz` (cargo fuzz). `RMQ_FUZZ_CASES` raises the number of cases.

mod common;

use rmq_storage::recovery_fuzz::run_case;

fn input_for(seed: u64) -> Vec<u8> {
    let mut rng = rmq_test_support::rng::XorShift::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (0..2048).map(|_| rng.next_u64() as u8).collect()
}

#[test]
fn recovery_survives_random_damage() {
    let cases: u64 = std::env::var("RMQ_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    for seed in 0..cases {
        let dir = common::temp_dir();
        let input = input_for(seed);
        let outcome = std::panic::catch_unwind(|| run_case(dir.path(), &input));
        assert!(outcome.is_ok(), "recovery fuzz seed {seed} failed");
    }
}

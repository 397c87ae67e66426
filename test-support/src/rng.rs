//! A tiny deterministic xorshift64 generator: tests print the seed so a failure replays.

/// Marsaglia's xorshift64 (13, 7, 17). Not for anything but tests.
#[derive(Debug, Clone)]
pub struct XorShift {
    state: u64,
}

impl XorShift {
    /// A generator from `seed` (a zero seed is made odd: xorshift never leaves 0).
    pub fn new(seed: u64) -> XorShift {
        XorShift { state: seed | 1 }
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// A value in `0..bound` (`bound` > 0; slightly biased, fine for tests).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "an empty range");
        self.next_u64() % bound
    }
}

/// The generator as a closure, for tests that only draw values.
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut rng = XorShift::new(seed);
    move || rng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence_and_zero_does_not_stick() {
        let mut a = xorshift(42);
        let mut b = XorShift::new(42);
        let first: Vec<u64> = (0..4).map(|_| a()).collect();
        assert_eq!(first, (0..4).map(|_| b.next_u64()).collect::<Vec<_>>());
        let mut x = 42u64 | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        assert_eq!(first[0], x);
        let mut zero = XorShift::new(0);
        assert_ne!(zero.next_u64(), 0);
        assert!(XorShift::new(7).below(3) < 3);
    }
}

//! [`Rng`]: a small xorshift generator for tests whose randomness must replay from a seed.

/// A xorshift64 generator: the same seed gives the same numbers, so a failure replays.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number (a seed of 0 stays 0: give a non-zero seed).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

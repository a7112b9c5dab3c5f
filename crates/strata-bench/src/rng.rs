//! A tiny seeded PRNG. The generator must produce byte-identical output for a seed on every
//! platform and every release, which a third-party crate's algorithm choice cannot promise; a
//! fixed, published algorithm (SplitMix64) can.

/// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state, full period, good enough statistics
/// for workload shaping, and trivially reproducible.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1): the top 53 bits fill an f64 mantissa exactly.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `share` (0 never, 1 always).
    pub fn chance(&mut self, share: f64) -> bool {
        // Always draw, so the stream position does not depend on the share and changing one
        // share does not reshuffle every other decision.
        let draw = self.next_f64();
        draw < share
    }

    /// Uniform in [low, high).
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        debug_assert!(low <= high);
        low + (high - low) * self.next_f64()
    }

    /// Uniform integer in [0, bound). `bound` must be positive.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "below() needs a positive bound");
        // Multiply-shift mapping: the bias is below 2^-64 * bound, irrelevant for workloads.
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        assert!(!items.is_empty(), "pick() needs a non-empty slice");
        items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_splitmix64_sequence() {
        // Reference values for seed 1234567 from the original C implementation (Vigna).
        let mut rng = SplitMix64::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(rng.next_u64(), 9_817_491_932_198_370_423);
    }

    #[test]
    fn floats_and_bounds_stay_in_range() {
        let mut rng = SplitMix64::new(7);
        for _ in 0..10_000 {
            let f = rng.next_f64();
            assert!((0.0..1.0).contains(&f));
            assert!(rng.below(3) < 3);
            let u = rng.uniform(-2.0, 5.0);
            assert!((-2.0..5.0).contains(&u));
        }
        assert!(!rng.chance(0.0));
        assert!(rng.chance(1.0));
    }
}

//! Tiny deterministic randomness: SplitMix64 and helpers built on it.
//!
//! The mock needs reproducible "random" decisions and contents, and nothing more; a
//! 20-line generator keeps the crate free of `rand` and its version churn.

use bytes::Bytes;

/// The SplitMix64 generator (Steele, Lea, Flood 2014).
///
/// Exists so that fault plans and generated object contents are a pure function of a seed:
/// the same seed always yields the same sequence, on every platform and Rust version.
/// Not cryptographic, not meant to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fully determined by `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// A value uniformly (up to a negligible bias) drawn from `0..bound`; `0` when `bound` is 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A value drawn from `[0, 1)` with 53 bits of precision, for comparing with probabilities.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Fills `buf` with pseudo-random bytes.
    pub fn fill_bytes(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// `len` pseudo-random bytes determined by `seed`.
///
/// Exists so that tests can build large, incompressible, reproducible objects in one line
/// (`pseudo_random_bytes(seed, 5 << 20)`), and so that [`Fault::ChangeObject`] can derive a
/// new version's content without the test supplying it.
///
/// [`Fault::ChangeObject`]: crate::Fault::ChangeObject
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Bytes {
    let mut buf = vec![0u8; len];
    SplitMix64::new(seed).fill_bytes(&mut buf);
    Bytes::from(buf)
}

/// SplitMix64's output function: a strong 64-bit bit mixer.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over `data`: a cheap, stable content hash for etags.
pub(crate) fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_reference_values() {
        // Reference outputs of SplitMix64 seeded with 1234567 (from the original paper's C code).
        let mut r = SplitMix64::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(r.next_u64(), 9_817_491_932_198_370_423);
    }

    #[test]
    fn below_stays_in_bounds() {
        let mut r = SplitMix64::new(7);
        for bound in [1u64, 2, 3, 10, 1000, u64::MAX] {
            for _ in 0..100 {
                assert!(r.below(bound) < bound);
            }
        }
        assert_eq!(r.below(0), 0);
        for _ in 0..100 {
            let u = r.unit_f64();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn pseudo_random_bytes_is_reproducible() {
        assert_eq!(pseudo_random_bytes(9, 1001), pseudo_random_bytes(9, 1001));
        assert_ne!(pseudo_random_bytes(9, 64), pseudo_random_bytes(10, 64));
        assert_eq!(pseudo_random_bytes(9, 13).len(), 13);
    }
}

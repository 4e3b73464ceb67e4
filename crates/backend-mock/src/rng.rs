//! Tiny deterministic randomness: helpers on the engine's SplitMix64.
//!
//! The mock needs reproducible "random" decisions and contents, and nothing more; a
//! 20-line generator keeps the crate free of `rand` and its version churn.

use bytes::Bytes;

pub use resume_core::{SplitMix64, mix64};

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

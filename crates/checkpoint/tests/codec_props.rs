//! Property tests of the snapshot codec: it round-trips, and no single-byte change,
//! truncation or extension of an encoding is ever accepted.

mod common;

use checkpoint::codec::{FORMAT_VERSION, decode, encode};
use checkpoint::{Checkpoint, CheckpointError};
use common::{cases, large_checkpoint, small_checkpoint};
use proptest::prelude::*;

fn assert_corrupt(result: Result<Checkpoint, CheckpointError>, what: &str) {
    match result {
        Err(CheckpointError::Corrupt { .. }) => {}
        other => panic!("{what}: expected Corrupt, got {other:?}"),
    }
}

fn check_every_truncation(bytes: &[u8]) {
    for len in 0..bytes.len() {
        assert_corrupt(decode(&bytes[..len], "t"), &format!("truncated to {len}"));
    }
}

fn check_flip(bytes: &[u8], pos: usize, xor: u8) {
    let mut b = bytes.to_vec();
    b[pos] ^= xor;
    assert_corrupt(decode(&b, "t"), &format!("byte {pos} xor {xor:#04x}"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn small_round_trip(cp in small_checkpoint(64)) {
        let bytes = encode(&cp);
        prop_assert_eq!(&bytes[8..12], &FORMAT_VERSION.to_le_bytes());
        prop_assert_eq!(decode(&bytes, "t").expect("round trip"), cp);
    }

    /// Every position, each with a random non-identity xor (the unit tests in `codec` try all
    /// 255 xors at every position of small fixed checkpoints).
    #[test]
    fn small_every_single_byte_change_is_detected(
        cp in small_checkpoint(64),
        xors in proptest::collection::vec(1u8..=255, 1..32),
    ) {
        let bytes = encode(&cp);
        for pos in 0..bytes.len() {
            check_flip(&bytes, pos, xors[pos % xors.len()]);
        }
    }

    #[test]
    fn small_every_truncation_is_detected(cp in small_checkpoint(64)) {
        check_every_truncation(&encode(&cp));
    }

    #[test]
    fn small_appending_is_detected(
        cp in small_checkpoint(64),
        extra in proptest::collection::vec(any::<u8>(), 1..100),
    ) {
        let mut bytes = encode(&cp);
        bytes.extend_from_slice(&extra);
        assert_corrupt(decode(&bytes, "t"), "appended bytes");
    }
}

proptest! {
    // Each case encodes thousands of parts and decodes every truncation of them.
    #![proptest_config(ProptestConfig::with_cases(cases(32)))]

    #[test]
    fn large_round_trip_truncation_and_extension(
        cp in large_checkpoint(),
        extra in proptest::collection::vec(any::<u8>(), 1..100),
    ) {
        prop_assert!(cp.done.len() >= 700, "strategy yields thousands of parts");
        let bytes = encode(&cp);
        prop_assert_eq!(decode(&bytes, "t").expect("round trip"), cp);
        check_every_truncation(&bytes);
        let mut longer = bytes.clone();
        longer.extend_from_slice(&extra);
        assert_corrupt(decode(&longer, "t"), "appended bytes");
    }

    /// Every position of encodings of up to 512 done parts (tens of kilobytes), each with a
    /// random non-identity xor.
    #[test]
    fn medium_every_single_byte_change_is_detected(
        cp in small_checkpoint(512),
        xors in proptest::collection::vec(1u8..=255, 1..32),
    ) {
        let bytes = encode(&cp);
        for pos in 0..bytes.len() {
            check_flip(&bytes, pos, xors[pos % xors.len()]);
        }
    }

    /// Every position of a large encoding would cost O(len²) hashing per case; this checks
    /// the whole header and checksum and 512 random positions in between, with random xors.
    #[test]
    fn large_single_byte_changes_are_detected(
        cp in large_checkpoint(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 512),
    ) {
        let bytes = encode(&cp);
        let n = bytes.len();
        for pos in (0..20).chain(n - 32..n) {
            check_flip(&bytes, pos, 0x01 << (pos % 8));
        }
        for (at, xor) in flips {
            check_flip(&bytes, at.index(n), xor);
        }
    }
}

/// Deterministic complement to the sampled large case: every position of a checkpoint with
/// a thousand done parts, cycling through all 255 non-identity xors.
#[test]
fn thousand_part_checkpoint_every_single_byte_change_is_detected() {
    let cp = common::checkpoint("big/object.bin", 1_200, 0..1_000);
    let bytes = encode(&cp);
    for pos in 0..bytes.len() {
        check_flip(&bytes, pos, (pos % 255) as u8 + 1);
    }
}

/// A zero-part checkpoint (an empty object): every position, every xor.
#[test]
fn empty_object_checkpoint_every_xor_everywhere_is_detected() {
    let cp = common::checkpoint("empty", 0, []);
    let bytes = encode(&cp);
    for pos in 0..bytes.len() {
        for xor in 1..=255 {
            check_flip(&bytes, pos, xor);
        }
    }
    check_every_truncation(&bytes);
}

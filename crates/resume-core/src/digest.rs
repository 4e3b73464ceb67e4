//! Hashing as bytes pass: BLAKE3 for per-part identity, CRC-64/XZ for OSS's end-to-end check.

use checkpoint::PartDigest;
use crc_fast::{CrcAlgorithm, Digest};

/// CRC-64/XZ (ECMA-182, reflected, init and xorout all ones): OSS's `x-oss-hash-crc64ecma`.
pub fn crc64(data: &[u8]) -> u64 {
    crc_fast::checksum(CrcAlgorithm::Crc64Xz, data)
}

/// CRC-64/XZ of `a ‖ b` from `crc64(a)`, `crc64(b)` and `b`'s length, without the bytes.
pub fn crc64_combine(crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
    crc_fast::checksum_combine(CrcAlgorithm::Crc64Xz, crc_a, crc_b, len_b)
}

/// Combines CRCs of many blocks of one length: `crc64(a ‖ b)` from `crc64(a)` and `crc64(b)`
/// for every `b` of `len` bytes.
///
/// `crc64_combine` (crc-fast) rebuilds the "shift by `len` zero bytes" operator on every call
/// (tens of µs); a download of 100 000 equal parts needs the same operator 100 000 times, so
/// it is built once here: a 64 × 64 matrix over GF(2), as in zlib's `crc32_combine`. The CRC
/// itself is always computed by crc-fast; the tests check this operator against crc-fast's
/// own combine.
pub(crate) struct Crc64Appender {
    /// Column `n` is the image of bit `n` of a CRC register after `len` zero bytes.
    op: [u64; 64],
}

fn gf2_times(mat: &[u64; 64], mut vec: u64) -> u64 {
    let mut sum = 0u64;
    let mut i = 0;
    while vec != 0 {
        if vec & 1 == 1 {
            sum ^= mat[i];
        }
        vec >>= 1;
        i += 1;
    }
    sum
}

fn gf2_square(mat: &[u64; 64]) -> [u64; 64] {
    std::array::from_fn(|n| gf2_times(mat, mat[n]))
}

impl Crc64Appender {
    pub(crate) fn new(len: u64) -> Self {
        // The operator for one zero bit on the reflected register: shift right, and fold in
        // the reflected polynomial when the low bit falls out.
        let mut one_bit = [0u64; 64];
        one_bit[0] = 0xC96C_5795_D787_0F42;
        for (n, col) in one_bit.iter_mut().enumerate().skip(1) {
            *col = 1 << (n - 1);
        }
        // 2, 4, 8 bits: one zero byte.
        let mut power = gf2_square(&gf2_square(&gf2_square(&one_bit)));
        let mut op: [u64; 64] = std::array::from_fn(|n| 1u64 << n);
        let mut n = len;
        while n > 0 {
            if n & 1 == 1 {
                op = std::array::from_fn(|c| gf2_times(&power, op[c]));
            }
            power = gf2_square(&power);
            n >>= 1;
        }
        Self { op }
    }

    /// `crc64(a ‖ b)` where `b` has the length this appender was built for.
    pub(crate) fn append(&self, crc_a: u64, crc_b: u64) -> u64 {
        gf2_times(&self.op, crc_a) ^ crc_b
    }
}

/// Both digests of one part, updated chunk by chunk as the body arrives.
pub(crate) struct PartHasher {
    blake3: blake3::Hasher,
    crc: Digest,
}

impl PartHasher {
    pub(crate) fn new() -> Self {
        Self {
            blake3: blake3::Hasher::new(),
            crc: Digest::new(CrcAlgorithm::Crc64Xz),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.blake3.update(data);
        self.crc.update(data);
    }

    pub(crate) fn finish(&self) -> PartDigest {
        PartDigest {
            blake3: *self.blake3.finalize().as_bytes(),
            crc64: self.crc.finalize(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from the official OSS SDKs' unit tests (shared/OSS-FACTS.md).
    #[test]
    fn crc64_matches_oss_sdk_vectors() {
        assert_eq!(crc64(b""), 0);
        assert_eq!(crc64(b"123456789"), 11051210869376104954);
        assert_eq!(crc64(b"12345"), 6748440630437108969);
        assert_eq!(crc64(b"6789"), 10278880121275185425);
        assert_eq!(
            crc64(b"This is a test of the emergency broadcast system."),
            2871916124362751090
        );
        assert_eq!(
            crc64(b"123456789This is a test of the emergency broadcast system."),
            7672622622872733320
        );
    }

    #[test]
    fn crc64_combine_matches_oss_sdk_vector() {
        assert_eq!(
            crc64_combine(6748440630437108969, 10278880121275185425, 4),
            11051210869376104954
        );
    }

    #[test]
    fn crc64_combine_with_empty_suffix_is_identity() {
        assert_eq!(crc64_combine(crc64(b"abc"), crc64(b""), 0), crc64(b"abc"));
        assert_eq!(crc64_combine(0, crc64(b"abc"), 3), crc64(b"abc"));
    }

    proptest::proptest! {
        /// The precomputed operator agrees with crc-fast's combine and with a direct CRC.
        #[test]
        fn appender_matches_crc_fast_combine(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            crc_a in proptest::prelude::any::<u64>(),
            crc_b in proptest::prelude::any::<u64>(),
            len in 0u64..(1 << 40),
        ) {
            let app = Crc64Appender::new(b.len() as u64);
            let whole: Vec<u8> = a.iter().chain(&b).copied().collect();
            proptest::prop_assert_eq!(app.append(crc64(&a), crc64(&b)), crc64(&whole));
            let app = Crc64Appender::new(len);
            proptest::prop_assert_eq!(app.append(crc_a, crc_b), crc64_combine(crc_a, crc_b, len));
        }
    }

    #[test]
    fn appender_matches_the_oss_sdk_combine_vector() {
        let app = Crc64Appender::new(4);
        assert_eq!(
            app.append(6748440630437108969, 10278880121275185425),
            11051210869376104954
        );
    }

    #[test]
    fn part_hasher_is_independent_of_chunking() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut whole = PartHasher::new();
        whole.update(&data);
        let mut chunked = PartHasher::new();
        for c in data.chunks(333) {
            chunked.update(c);
        }
        assert_eq!(whole.finish(), chunked.finish());
        assert_eq!(whole.finish().crc64, crc64(&data));
        assert_eq!(whole.finish().blake3, *blake3::hash(&data).as_bytes());
    }
}

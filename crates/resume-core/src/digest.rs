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

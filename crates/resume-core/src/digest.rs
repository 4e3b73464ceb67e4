//! Hashing as bytes pass: BLAKE3 and CRC-64/XZ for each part's record, plus the CRCs the
//! download's checks need (`integrity`), all in one pass over each chunk.

use checkpoint::{PARTIAL_BLAKE3_LEN, PartDigest, PartialPart};
use crc_fast::{CrcAlgorithm, Digest};

use crate::integrity::{CrcHasher, CrcSet, PartCrcs};

/// CRC-64/XZ (ECMA-182, reflected, init and xorout all ones): OSS's `x-oss-hash-crc64ecma`.
pub fn crc64(data: &[u8]) -> u64 {
    crc_fast::checksum(CrcAlgorithm::Crc64Xz, data)
}

/// CRC-64/XZ of `a ‖ b` from `crc64(a)`, `crc64(b)` and `b`'s length, without the bytes.
pub fn crc64_combine(crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
    crc_fast::checksum_combine(CrcAlgorithm::Crc64Xz, crc_a, crc_b, len_b)
}

/// The digests of one part, updated chunk by chunk as the body arrives: the record's
/// (BLAKE3, CRC-64/XZ) and the other CRCs of `set`.
pub(crate) struct PartHasher {
    blake3: blake3::Hasher,
    crc: Digest,
    extra: CrcHasher,
}

impl PartHasher {
    pub(crate) fn new(set: CrcSet) -> Self {
        Self {
            blake3: blake3::Hasher::new(),
            crc: Digest::new(CrcAlgorithm::Crc64Xz),
            extra: CrcHasher::new(set),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.blake3.update(data);
        self.crc.update(data);
        self.extra.update(data);
    }

    /// The record of the bytes hashed so far, `received` of them, as the beginning of a part.
    pub(crate) fn beginning(&self, received: u64) -> PartialPart {
        let mut blake3 = [0u8; PARTIAL_BLAKE3_LEN];
        blake3.copy_from_slice(&self.blake3.finalize().as_bytes()[..PARTIAL_BLAKE3_LEN]);
        PartialPart {
            received,
            blake3,
            crc64: self.crc.finalize(),
        }
    }

    pub(crate) fn finish(&self) -> (PartDigest, PartCrcs) {
        let crc64 = self.crc.finalize();
        (
            PartDigest {
                blake3: *self.blake3.finalize().as_bytes(),
                crc64,
            },
            self.extra.finish(crc64),
        )
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
    fn appender_matches_the_oss_sdk_combine_vector() {
        let app = crate::integrity::CrcAppender::new(crate::integrity::Crc::Xz, 4);
        assert_eq!(
            app.append(6748440630437108969, 10278880121275185425),
            11051210869376104954
        );
    }

    #[test]
    fn part_hasher_is_independent_of_chunking() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut set = CrcSet::default();
        set.insert(crate::integrity::Crc::C);
        let mut whole = PartHasher::new(set);
        whole.update(&data);
        let mut chunked = PartHasher::new(set);
        for c in data.chunks(333) {
            chunked.update(c);
        }
        assert_eq!(whole.finish(), chunked.finish());
        let (digest, crcs) = whole.finish();
        assert_eq!(digest.crc64, crc64(&data));
        assert_eq!(crcs.0[0], crc64(&data));
        assert_eq!(
            crcs.0[crate::integrity::Crc::C as usize],
            crc_fast::checksum(CrcAlgorithm::Crc32Iscsi, &data)
        );
        assert_eq!(digest.blake3, *blake3::hash(&data).as_bytes());
    }
}

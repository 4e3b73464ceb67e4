//! The versioned, self-checking binary encoding of one [`Checkpoint`] (a *snapshot*).
//!
//! ```text
//! offset        size  field
//! 0             8     MAGIC  = 89 'R' 'G' 'C' 'K' 'P' 'T' 0A
//! 8             4     format version, u32 little endian (FORMAT_VERSION)
//! 12            8     payload length P, u64 little endian
//! 20            P     payload: the Checkpoint, bincode 2 `config::standard()` via serde
//! 20 + P        32    blake3 of bytes [0, 20 + P)
//! ```
//!
//! The *envelope* (magic, version, length, checksum) is the same for every format version;
//! only the payload's schema may change. That is what lets a reader tell "a checkpoint from a
//! newer build" ([`CheckpointError::UnsupportedVersion`]) apart from "damaged bytes"
//! ([`CheckpointError::Corrupt`]): the version field is believed only once the checksum over
//! it has verified, so a flipped bit in the version is reported as corruption, never as a
//! misleading version number.
//!
//! The magic starts with a non-ASCII byte and ends with a newline so that a file mangled by a
//! 7-bit or newline-translating transfer fails the magic check rather than the checksum.

use crate::error::CheckpointError;
use crate::model::Checkpoint;

/// Identifies a checkpoint file (first 8 bytes).
pub const MAGIC: [u8; 8] = *b"\x89RGCKPT\n";

/// The payload schema this build writes and reads.
///
/// 2: the checkpoint records its temp file ([`crate::TempFile`]).
/// 3: the object's fingerprint holds every checksum the source published
/// ([`crate::StoredChecksum`]) instead of one optional CRC-64/XZ.
///
/// 4: the beginnings of parts not done ([`crate::PartialPart`]), in the snapshot and as journal
/// records of their own (a flag in the part index, which formats 1 to 3 never set).
///
/// Formats 1 to 3 are still read (their CRC-64 becomes a [`crate::CRC64_XZ_FULL_OBJECT`]
/// checksum, format 1's temp file [`crate::TempFile::Unrecorded`], and they have no partial
/// parts), so downloads interrupted by an older build resume. Their journals hold only done
/// records, which format 4 encodes the same way. A build that reads at most format 3 reports
/// a format 4 checkpoint as [`CheckpointError::UnsupportedVersion`] and discards it (never
/// misreads it): the version is the first thing checked once the checksum verified.
pub const FORMAT_VERSION: u32 = 4;

/// The oldest payload schema this build still reads.
pub const OLDEST_READ_VERSION: u32 = 1;

/// Bytes before the payload: magic, version, payload length.
pub const HEADER_LEN: usize = 8 + 4 + 8;

/// Bytes of the trailing blake3 checksum.
pub const CHECKSUM_LEN: usize = 32;

/// Upper bound on what bincode may account as decoded (strings, map entries, integers).
///
/// Only reached by input whose checksum verified, that is, by a file crafted on purpose: it
/// stops such a file from making the decoder allocate absurd amounts of memory for a claimed
/// string length. 4 GiB of accounted data is roughly 89 million done parts, far beyond any
/// real download (bincode accounts about 48 bytes per done part).
const DECODE_LIMIT: usize = (u32::MAX as usize).saturating_add(1);

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// A snapshot decoded from the start of a byte string that may continue (with a journal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub checkpoint: Checkpoint,
    /// Number of bytes the snapshot occupies, checksum included.
    pub len: usize,
    /// The snapshot's own blake3 checksum (its last 32 bytes).
    pub checksum: [u8; 32],
}

/// Encodes `checkpoint` as a complete, self-checking snapshot.
pub fn encode(checkpoint: &Checkpoint) -> Vec<u8> {
    encode_with_checksum(checkpoint).0
}

/// Encodes and also returns the snapshot's checksum (which keys its journal).
pub(crate) fn encode_with_checksum(checkpoint: &Checkpoint) -> (Vec<u8>, [u8; 32]) {
    let mut out = Vec::with_capacity(HEADER_LEN + 64 + 48 * checkpoint.done.len() + CHECKSUM_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // patched below
    // Serializing plain data (strings, integers, options, a map) into a Vec cannot fail: the
    // serde impls are derived and bincode's Vec writer never reports an error.
    if let Err(e) = bincode::serde::encode_into_std_write(checkpoint, &mut out, config()) {
        unreachable!("encoding a checkpoint into memory failed: {e}");
    }
    let payload_len = (out.len() - HEADER_LEN) as u64;
    out[12..HEADER_LEN].copy_from_slice(&payload_len.to_le_bytes());
    let checksum = *blake3::hash(&out).as_bytes();
    out.extend_from_slice(&checksum);
    (out, checksum)
}

/// Decodes a snapshot that must span all of `bytes`.
///
/// `location` names where the bytes came from, for the error message.
pub fn decode(bytes: &[u8], location: &str) -> Result<Checkpoint, CheckpointError> {
    let snapshot = decode_prefix(bytes, location)?;
    if snapshot.len != bytes.len() {
        return Err(corrupt(
            location,
            format!(
                "{} unexpected bytes after the checkpoint's end at offset {}",
                bytes.len() - snapshot.len,
                snapshot.len
            ),
        ));
    }
    Ok(snapshot.checkpoint)
}

/// Decodes the snapshot at the start of `bytes`; anything after it is left to the caller.
///
/// Order of checks, each chosen so the message names the real problem: enough bytes for a
/// header, magic, a length field consistent with the bytes present, the checksum, *then* the
/// version (now known to be what the writer wrote), then the payload and its meaning.
pub(crate) fn decode_prefix(bytes: &[u8], location: &str) -> Result<Snapshot, CheckpointError> {
    if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
        return Err(corrupt(
            location,
            format!(
                "only {} bytes, a checkpoint has at least {}",
                bytes.len(),
                HEADER_LEN + CHECKSUM_LEN
            ),
        ));
    }
    let (magic, rest) = bytes.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(corrupt(
            location,
            "not a checkpoint file (wrong magic bytes)".into(),
        ));
    }
    let (version, rest) = rest.split_at(4);
    let version = u32::from_le_bytes(version.try_into().unwrap_or_default());
    let payload_len = u64::from_le_bytes(rest[..8].try_into().unwrap_or_default());
    let available = (bytes.len() - HEADER_LEN - CHECKSUM_LEN) as u64;
    if payload_len > available {
        return Err(corrupt(
            location,
            format!(
                "truncated: the header announces {payload_len} payload bytes, only {available} \
                 are present"
            ),
        ));
    }
    // Lossless: payload_len <= available, which came from a usize.
    let body_end = HEADER_LEN + payload_len as usize;
    let len = body_end + CHECKSUM_LEN;
    let mut checksum = [0u8; 32];
    checksum.copy_from_slice(&bytes[body_end..len]);
    // `blake3::Hash` compares in constant time; not needed here, but free.
    if blake3::hash(&bytes[..body_end]) != blake3::Hash::from_bytes(checksum) {
        return Err(corrupt(
            location,
            "checksum mismatch (the file was damaged or partly written)".into(),
        ));
    }
    if !(OLDEST_READ_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(CheckpointError::UnsupportedVersion {
            location: location.to_owned(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let payload = &bytes[HEADER_LEN..body_end];
    let limited = config().with_limit::<DECODE_LIMIT>();
    let decoded = if version == 1 {
        bincode::serde::decode_from_slice::<v1::Checkpoint, _>(payload, limited)
            .map(|(cp, used)| (cp.into(), used))
    } else if version == 2 {
        bincode::serde::decode_from_slice::<v2::Checkpoint, _>(payload, limited)
            .map(|(cp, used)| (cp.into(), used))
    } else if version == 3 {
        bincode::serde::decode_from_slice::<v3::Checkpoint, _>(payload, limited)
            .map(|(cp, used)| (cp.into(), used))
    } else {
        bincode::serde::decode_from_slice::<Checkpoint, _>(payload, limited)
    };
    let (checkpoint, used): (Checkpoint, usize) =
        decoded.map_err(|e| corrupt(location, format!("undecodable payload: {e}")))?;
    if used != payload.len() {
        return Err(corrupt(
            location,
            format!(
                "payload has {} unused bytes after the checkpoint",
                payload.len() - used
            ),
        ));
    }
    validate(&checkpoint).map_err(|reason| corrupt(location, reason))?;
    Ok(Snapshot {
        checkpoint,
        len,
        checksum,
    })
}

/// Format 1's payload, read so that downloads interrupted by an older build still resume:
/// format 2 without the temp file's claim.
mod v1 {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::v2;
    use crate::model::{self, CheckpointId, PartDigest, PartLayout, TempFile};

    #[derive(Deserialize)]
    pub(super) struct Checkpoint {
        id: CheckpointId,
        object: v2::ObjectFingerprint,
        layout: PartLayout,
        done: BTreeMap<u64, PartDigest>,
    }

    impl From<Checkpoint> for model::Checkpoint {
        fn from(cp: Checkpoint) -> Self {
            v2::Checkpoint {
                id: cp.id,
                temp_file: TempFile::Unrecorded,
                object: cp.object,
                layout: cp.layout,
                done: cp.done,
            }
            .into()
        }
    }
}

/// Format 2's payload: the object's fingerprint had one optional CRC-64/XZ.
mod v2 {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use crate::model::{
        self, CRC64_XZ_FULL_OBJECT, CheckpointId, PartDigest, PartLayout, StoredChecksum, TempFile,
        Timestamp,
    };

    #[derive(Serialize, Deserialize)]
    pub(super) struct ObjectFingerprint {
        pub(super) size: u64,
        pub(super) etag: Option<String>,
        pub(super) last_modified: Option<Timestamp>,
        pub(super) version_id: Option<String>,
        pub(super) crc64: Option<u64>,
    }

    impl From<ObjectFingerprint> for model::ObjectFingerprint {
        fn from(f: ObjectFingerprint) -> Self {
            model::ObjectFingerprint {
                size: f.size,
                etag: f.etag,
                last_modified: f.last_modified,
                version_id: f.version_id,
                checksums: f
                    .crc64
                    .map(|crc| StoredChecksum {
                        kind: CRC64_XZ_FULL_OBJECT.to_owned(),
                        value: crc.to_be_bytes().to_vec(),
                    })
                    .into_iter()
                    .collect(),
            }
        }
    }

    #[derive(Deserialize)]
    pub(super) struct Checkpoint {
        pub(super) id: CheckpointId,
        pub(super) temp_file: TempFile,
        pub(super) object: ObjectFingerprint,
        pub(super) layout: PartLayout,
        pub(super) done: BTreeMap<u64, PartDigest>,
    }

    impl From<Checkpoint> for model::Checkpoint {
        fn from(cp: Checkpoint) -> Self {
            let mut out = model::Checkpoint::new(cp.id, cp.object.into(), cp.layout)
                .with_temp_file(cp.temp_file);
            out.done = cp.done;
            out
        }
    }
}

/// Format 3's payload: format 4 without partial parts.
mod v3 {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use crate::model::{self, CheckpointId, ObjectFingerprint, PartDigest, PartLayout, TempFile};

    #[derive(Deserialize)]
    pub(super) struct Checkpoint {
        id: CheckpointId,
        temp_file: TempFile,
        object: ObjectFingerprint,
        layout: PartLayout,
        done: BTreeMap<u64, PartDigest>,
    }

    impl From<Checkpoint> for model::Checkpoint {
        fn from(cp: Checkpoint) -> Self {
            let mut out =
                model::Checkpoint::new(cp.id, cp.object, cp.layout).with_temp_file(cp.temp_file);
            out.done = cp.done;
            out
        }
    }
}

/// Checks what the types cannot express, so that a decoded checkpoint never makes the engine
/// index out of range or overflow while computing part ranges.
fn validate(checkpoint: &Checkpoint) -> Result<(), String> {
    let layout = &checkpoint.layout;
    if layout.part_size == 0 {
        return Err("part size is zero".into());
    }
    let expected = layout.len.div_ceil(layout.part_size);
    if layout.part_count != expected {
        return Err(format!(
            "part count {} does not match {} bytes in parts of {} ({expected} parts)",
            layout.part_count, layout.len, layout.part_size
        ));
    }
    if layout.start.checked_add(layout.len).is_none() {
        return Err(format!(
            "range start {} plus length {} overflows",
            layout.start, layout.len
        ));
    }
    if let Some((&last, _)) = checkpoint.done.last_key_value()
        && last >= layout.part_count
    {
        return Err(format!(
            "part {last} is recorded done but there are only {} parts",
            layout.part_count
        ));
    }
    for (&index, partial) in &checkpoint.partial {
        if index >= layout.part_count {
            return Err(format!(
                "part {index} is recorded partly received but there are only {} parts",
                layout.part_count
            ));
        }
        if checkpoint.done.contains_key(&index) {
            return Err(format!(
                "part {index} is recorded both done and partly received"
            ));
        }
        let len = layout.part_len(index);
        if partial.received == 0 || partial.received >= len {
            return Err(format!(
                "part {index} is recorded with {} of its {len} bytes received, which is not a \
                 partial part",
                partial.received
            ));
        }
    }
    Ok(())
}

/// Why a partial record of `received` bytes cannot describe part `index` of `layout`, if it
/// cannot (shared by the snapshot's validation and the journal's reader).
pub(crate) fn partial_out_of_bounds(layout: &crate::PartLayout, index: u64, received: u64) -> bool {
    index >= layout.part_count || received == 0 || received >= layout.part_len(index)
}

pub(crate) fn corrupt(location: &str, reason: String) -> CheckpointError {
    CheckpointError::Corrupt {
        location: location.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        CheckpointId, ObjectFingerprint, PartDigest, PartLayout, RangeSpec, StoredChecksum,
    };

    fn sample(parts: u64, done: u64) -> Checkpoint {
        let layout = PartLayout::new(0, parts * 10, 10).expect("part size is not zero");
        let mut cp = Checkpoint::new(
            CheckpointId {
                source: "mem://bucket".into(),
                key: "a/b.bin".into(),
                version_id: None,
                range: RangeSpec::Full,
                destination: "/tmp/b.bin".into(),
            },
            ObjectFingerprint {
                size: parts * 10,
                etag: Some("\"etag\"".into()),
                last_modified: None,
                version_id: None,
                checksums: vec![StoredChecksum {
                    kind: crate::model::CRC64_XZ_FULL_OBJECT.into(),
                    value: 7u64.to_be_bytes().to_vec(),
                }],
            },
            layout,
        );
        for i in 0..done {
            cp.done.insert(
                i,
                PartDigest {
                    blake3: [i as u8; 32],
                    crc64: i,
                },
            );
        }
        cp
    }

    fn is_corrupt(r: Result<Checkpoint, CheckpointError>) -> bool {
        matches!(r, Err(CheckpointError::Corrupt { .. }))
    }

    /// Rewrites the version field and re-seals the checksum, as a newer build would.
    fn with_version(bytes: &[u8], version: u32) -> Vec<u8> {
        let mut out = bytes[..bytes.len() - CHECKSUM_LEN].to_vec();
        out[8..12].copy_from_slice(&version.to_le_bytes());
        let sum = *blake3::hash(&out).as_bytes();
        out.extend_from_slice(&sum);
        out
    }

    #[test]
    fn round_trip_and_layout() {
        let cp = sample(5, 3);
        let bytes = encode(&cp);
        assert_eq!(&bytes[..8], &MAGIC);
        assert_eq!(&bytes[8..12], &FORMAT_VERSION.to_le_bytes());
        let payload_len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        assert_eq!(bytes.len() as u64, 20 + payload_len + 32);
        assert_eq!(decode(&bytes, "t").expect("decodes"), cp);
    }

    #[test]
    fn newer_version_with_valid_checksum_is_unsupported_not_corrupt() {
        let newer = FORMAT_VERSION + 1;
        let bytes = with_version(&encode(&sample(2, 1)), newer);
        match decode(&bytes, "here") {
            Err(CheckpointError::UnsupportedVersion {
                location,
                found,
                supported,
            }) => {
                assert_eq!(
                    (location.as_str(), found, supported),
                    ("here", newer, FORMAT_VERSION)
                );
            }
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
        let older = with_version(&encode(&sample(2, 1)), OLDEST_READ_VERSION - 1);
        assert!(matches!(
            decode(&older, "here"),
            Err(CheckpointError::UnsupportedVersion { found: 0, .. })
        ));
    }

    /// The object's fingerprint as formats 1 and 2 wrote it: one optional CRC-64/XZ (bincode
    /// encodes a struct as its fields in order).
    fn old_fingerprint(f: &ObjectFingerprint) -> v2::ObjectFingerprint {
        let crc64 = f.checksums.first().map(|c| {
            assert_eq!(c.kind, crate::model::CRC64_XZ_FULL_OBJECT);
            u64::from_be_bytes(c.value.clone().try_into().expect("8 bytes"))
        });
        v2::ObjectFingerprint {
            size: f.size,
            etag: f.etag.clone(),
            last_modified: f.last_modified,
            version_id: f.version_id.clone(),
            crc64,
        }
    }

    fn seal(version: u32, payload: Vec<u8>) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&payload);
        let sum = *blake3::hash(&out).as_bytes();
        out.extend_from_slice(&sum);
        out
    }

    /// A snapshot as format 1 wrote it: format 2 without the temp file.
    fn encode_v1(cp: &Checkpoint) -> Vec<u8> {
        let object = old_fingerprint(&cp.object);
        let payload =
            bincode::serde::encode_to_vec((&cp.id, &object, &cp.layout, &cp.done), config())
                .expect("encodes");
        seal(1, payload)
    }

    /// A snapshot as format 2 wrote it.
    fn encode_v2(cp: &Checkpoint) -> Vec<u8> {
        let object = old_fingerprint(&cp.object);
        let payload = bincode::serde::encode_to_vec(
            (&cp.id, &cp.temp_file, &object, &cp.layout, &cp.done),
            config(),
        )
        .expect("encodes");
        seal(2, payload)
    }

    #[test]
    fn format_1_is_read_with_its_temp_file_unrecorded() {
        let cp = sample(5, 3);
        let v1 = encode_v1(&cp);
        assert_ne!(v1, encode(&cp), "format 3 must differ from format 1");
        let read = decode(&v1, "old").expect("format 1 still reads");
        assert_eq!(read.temp_file, crate::model::TempFile::Unrecorded);
        assert_eq!(read.with_temp_file(cp.temp_file), cp);
        // Damage in a format-1 snapshot is still caught.
        let mut bad = v1.clone();
        bad[HEADER_LEN + 3] ^= 1;
        assert!(is_corrupt(decode(&bad, "old")));
    }

    #[test]
    fn format_2_is_read_with_its_crc64_as_the_one_published_checksum() {
        for cp in [
            sample(5, 3).with_temp_file(crate::model::TempFile::Created(
                crate::model::FileIdentity {
                    ino: 42,
                    birth: None,
                },
            )),
            {
                let mut none = sample(2, 1);
                none.object.checksums.clear();
                none
            },
        ] {
            let v2 = encode_v2(&cp);
            assert_eq!(&v2[8..12], &2u32.to_le_bytes());
            assert_ne!(v2, encode(&cp), "format 3 must differ from format 2");
            assert_eq!(decode(&v2, "old").expect("format 2 still reads"), cp);
            let mut bad = v2.clone();
            bad[HEADER_LEN + 5] ^= 1;
            assert!(is_corrupt(decode(&bad, "old")));
        }
    }

    /// A snapshot as format 3 wrote it: format 4 without the partial parts.
    fn encode_v3(cp: &Checkpoint) -> Vec<u8> {
        let payload = bincode::serde::encode_to_vec(
            (&cp.id, &cp.temp_file, &cp.object, &cp.layout, &cp.done),
            config(),
        )
        .expect("encodes");
        seal(3, payload)
    }

    fn with_partial(mut cp: Checkpoint, index: u64, received: u64) -> Checkpoint {
        cp.partial.insert(
            index,
            crate::model::PartialPart {
                received,
                blake3: [received as u8; crate::model::PARTIAL_BLAKE3_LEN],
                crc64: !received,
            },
        );
        cp
    }

    #[test]
    fn format_3_is_read_without_partial_parts_and_format_4_keeps_them() {
        let cp = sample(5, 3);
        let v3 = encode_v3(&cp);
        assert_eq!(&v3[8..12], &3u32.to_le_bytes());
        assert_eq!(decode(&v3, "old").expect("format 3 still reads"), cp);
        let cp = with_partial(with_partial(sample(5, 3), 3, 1), 4, 9);
        let v4 = encode(&cp);
        assert_ne!(v4, encode_v3(&cp), "format 4 must differ from format 3");
        assert_eq!(decode(&v4, "new").expect("round trip"), cp);
        assert_eq!(cp.partial_bytes(), 10);
        let mut bad = v3.clone();
        bad[HEADER_LEN + 5] ^= 1;
        assert!(is_corrupt(decode(&bad, "old")));
    }

    #[test]
    fn partial_parts_that_cannot_be_are_corrupt() {
        for (cp, what) in [
            (
                with_partial(sample(5, 3), 2, 4),
                "both done and partly received",
            ),
            (with_partial(sample(5, 3), 5, 4), "only 5 parts"),
            (with_partial(sample(5, 3), 4, 0), "0 of its 10 bytes"),
            (with_partial(sample(5, 3), 4, 10), "10 of its 10 bytes"),
        ] {
            match decode(&encode(&cp), "t") {
                Err(CheckpointError::Corrupt { reason, .. }) => {
                    assert!(reason.contains(what), "{reason:?} lacks {what:?}")
                }
                other => panic!("expected Corrupt for {what}, got {other:?}"),
            }
        }
    }

    #[test]
    fn flipped_version_byte_is_corrupt_not_a_version() {
        let mut bytes = encode(&sample(2, 1));
        bytes[8] ^= 0x02;
        assert!(is_corrupt(decode(&bytes, "t")));
    }

    #[test]
    fn every_xor_at_every_position_of_small_checkpoints_is_detected() {
        for cp in [sample(0, 0), sample(3, 2), with_partial(sample(3, 1), 2, 5)] {
            let bytes = encode(&cp);
            for pos in 0..bytes.len() {
                for x in 1..=255u8 {
                    let mut b = bytes.clone();
                    b[pos] ^= x;
                    assert!(
                        is_corrupt(decode(&b, "t")),
                        "pos {pos} xor {x:#x} undetected"
                    );
                }
            }
        }
    }

    #[test]
    fn semantic_validation_rejects_sealed_but_inconsistent_checkpoints() {
        let mut zero_size = sample(2, 0);
        zero_size.layout.part_size = 0;
        let mut wrong_count = sample(2, 0);
        wrong_count.layout.part_count = 3;
        let mut done_past_end = sample(2, 0);
        done_past_end.done.insert(
            2,
            PartDigest {
                blake3: [0; 32],
                crc64: 0,
            },
        );
        let mut overflow = sample(2, 0);
        overflow.layout.start = u64::MAX - 5;
        for (cp, what) in [
            (zero_size, "part size is zero"),
            (wrong_count, "part count 3"),
            (done_past_end, "part 2 is recorded done"),
            (overflow, "overflows"),
        ] {
            match decode(&encode(&cp), "t") {
                Err(CheckpointError::Corrupt { reason, .. }) => {
                    assert!(reason.contains(what), "{reason:?} lacks {what:?}")
                }
                other => panic!("expected Corrupt for {what}, got {other:?}"),
            }
        }
    }

    #[test]
    fn error_messages_say_where_and_what() {
        let err = decode(b"hello", "/x/y.rgcp").expect_err("too short");
        let msg = err.to_string();
        assert!(
            msg.contains("/x/y.rgcp") && msg.contains("only 5 bytes"),
            "{msg}"
        );
        let mut bytes = encode(&sample(1, 1));
        bytes.push(0);
        let msg = decode(&bytes, "loc").expect_err("trailing").to_string();
        assert!(msg.contains("1 unexpected bytes"), "{msg}");
    }

    #[test]
    fn decode_prefix_reports_snapshot_length_and_checksum() {
        let (bytes, sum) = encode_with_checksum(&sample(4, 4));
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[1, 2, 3]);
        let snap = decode_prefix(&longer, "t").expect("prefix decodes");
        assert_eq!(snap.len, bytes.len());
        assert_eq!(snap.checksum, sum);
        assert_eq!(&bytes[bytes.len() - 32..], &sum);
    }

    #[test]
    fn payload_with_unused_bytes_is_corrupt() {
        // A valid payload followed by one extra byte inside the sealed region.
        let bytes = encode(&sample(1, 0));
        let mut body = bytes[..bytes.len() - CHECKSUM_LEN].to_vec();
        body.push(0);
        let payload_len = (body.len() - HEADER_LEN) as u64;
        body[12..20].copy_from_slice(&payload_len.to_le_bytes());
        let sum = *blake3::hash(&body).as_bytes();
        body.extend_from_slice(&sum);
        match decode(&body, "t") {
            Err(CheckpointError::Corrupt { reason, .. }) => assert!(reason.contains("unused")),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}

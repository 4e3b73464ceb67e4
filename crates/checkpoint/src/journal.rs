//! The stored form shared by the file and the memory store: a snapshot followed by an
//! append-only journal of done parts.
//!
//! ```text
//! snapshot   codec::encode(checkpoint)                    (see `codec`)
//! record*    RECORD_LEN = 64 bytes each, appended by `flush`:
//!              0   8   part index, u64 LE
//!              8  32   blake3 of the part
//!             40   8   CRC-64/XZ of the part, u64 LE
//!             48  16   tag = blake3_keyed(key, seq u64 LE ‖ bytes 0..48)[..16]
//!            key = blake3::derive_key(JOURNAL_CONTEXT, snapshot checksum)
//!            seq = 0 for the first record after the snapshot, 1 for the next, ...
//! ```
//!
//! Why this shape:
//! * Recording a part costs one fixed-size append, so checkpoint I/O over a whole download is
//!   O(parts) (invariant 6), where rewriting a snapshot per flush would be O(parts²).
//! * A crash while appending leaves a *torn tail*: a partial record, or (on file systems that
//!   extend the size before the data lands) zeros or stale bytes. The tag makes any such
//!   record fail verification, and the reader stops at the first record that does not verify,
//!   so it only ever applies a prefix of what was written, never part of a record.
//! * The tag's key comes from the snapshot's own checksum and the tag covers the record's
//!   position, so a record can be neither replayed onto another snapshot nor moved within
//!   its journal.
//!
//! A journal only grows until the engine's next `save`, which replaces the whole file
//! (snapshot with every part done so far, empty journal) atomically.

use crate::codec;
use crate::error::CheckpointError;
use crate::model::{Checkpoint, CheckpointId, PartDigest};
use crate::store::Loaded;

/// Bytes of one journal record.
pub const RECORD_LEN: usize = 64;

const TAG_LEN: usize = 16;
const BODY_LEN: usize = RECORD_LEN - TAG_LEN;
const JOURNAL_CONTEXT: &str = "resume-get checkpoint journal v1 record tag";

/// Derives the key that tags the records appended after the snapshot with `checksum`.
fn record_key(snapshot_checksum: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(JOURNAL_CONTEXT, snapshot_checksum)
}

fn tag(key: &[u8; 32], seq: u64, body: &[u8]) -> [u8; TAG_LEN] {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(&seq.to_le_bytes());
    hasher.update(body);
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..TAG_LEN]);
    out
}

/// Which download a journal belongs to and how many parts it has, to refuse records the
/// reader would reject before they reach the disk. Immutable once the snapshot is saved, so
/// `record` can check without waiting for a `flush` in progress.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    id: CheckpointId,
    part_count: u64,
}

/// The state needed to append records after one snapshot: the tag key and the position of
/// the next record.
#[derive(Debug, Clone)]
pub(crate) struct Appender {
    key: [u8; 32],
    next_seq: u64,
}

/// Starts an empty journal after the snapshot of `checkpoint` whose checksum is
/// `snapshot_checksum`.
pub(crate) fn start(checkpoint: &Checkpoint, snapshot_checksum: &[u8; 32]) -> (Target, Appender) {
    (
        Target {
            id: checkpoint.id.clone(),
            part_count: checkpoint.layout.part_count,
        },
        Appender {
            key: record_key(snapshot_checksum),
            next_seq: 0,
        },
    )
}

impl Target {
    /// Refuses an `id` other than the saved one (its journal is not this download's).
    pub fn check_id(&self, id: &CheckpointId, location: &str) -> Result<(), CheckpointError> {
        if *id == self.id {
            return Ok(());
        }
        Err(CheckpointError::Misuse(format!(
            "{location} was saved for key {:?} (source {:?}) and is used for key {:?} (source \
             {:?}); call save for this download before recording parts",
            self.id.key, self.id.source, id.key, id.source
        )))
    }

    /// Refuses records the reader would have to treat as a torn tail: a caller bug.
    pub fn check(
        &self,
        id: &CheckpointId,
        index: u64,
        location: &str,
    ) -> Result<(), CheckpointError> {
        self.check_id(id, location)?;
        if index >= self.part_count {
            return Err(CheckpointError::Misuse(format!(
                "part {index} recorded in {location}, but the saved layout has only {} parts",
                self.part_count
            )));
        }
        Ok(())
    }
}

impl Appender {
    /// Encodes `parts` as the next records, without committing to their position: call
    /// [`Appender::advance`] once they are written.
    pub fn encode(&self, parts: &[(u64, PartDigest)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(parts.len() * RECORD_LEN);
        for (seq, (index, digest)) in (self.next_seq..).zip(parts) {
            let start = out.len();
            out.extend_from_slice(&index.to_le_bytes());
            out.extend_from_slice(&digest.blake3);
            out.extend_from_slice(&digest.crc64.to_le_bytes());
            let tag = tag(&self.key, seq, &out[start..]);
            out.extend_from_slice(&tag);
        }
        out
    }

    /// Notes that `records` more records are in the journal.
    pub fn advance(&mut self, records: usize) {
        self.next_seq += records as u64;
    }
}

/// Reads a snapshot and its journal. The snapshot must be intact; the journal is applied up to
/// its first record that is incomplete, fails its tag, or names a part past the end, and the
/// rest is ignored as a torn tail with a note saying how much and where.
pub(crate) fn parse(bytes: &[u8], location: &str) -> Result<Loaded, CheckpointError> {
    let snapshot = codec::decode_prefix(bytes, location)?;
    let mut checkpoint = snapshot.checkpoint;
    let key = record_key(&snapshot.checksum);
    let mut notes = Vec::new();
    let mut offset = snapshot.len;
    let mut seq = 0u64;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let problem = match rest.get(..RECORD_LEN) {
            None => Some("incomplete record"),
            Some(record) => {
                let (body, stored_tag) = record.split_at(BODY_LEN);
                let index = u64::from_le_bytes(take::<8>(body, 0));
                if tag(&key, seq, body) != stored_tag {
                    Some("record checksum mismatch")
                } else if index >= checkpoint.layout.part_count {
                    Some("record names a part past the end")
                } else {
                    let digest = PartDigest {
                        blake3: take::<32>(body, 8),
                        crc64: u64::from_le_bytes(take::<8>(body, 40)),
                    };
                    // A part recorded twice (re-verified, re-fetched) keeps its last digest.
                    checkpoint.done.insert(index, digest);
                    None
                }
            }
        };
        if let Some(why) = problem {
            notes.push(format!(
                "ignored a torn checkpoint tail of {} bytes at offset {offset} of {location} \
                 ({why}); the parts it covered will be downloaded again",
                rest.len()
            ));
            break;
        }
        offset += RECORD_LEN;
        seq += 1;
    }
    Ok(Loaded { checkpoint, notes })
}

/// Copies `N` bytes at `at` out of a record body whose length is checked by the caller.
fn take<const N: usize>(body: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&body[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ObjectFingerprint, PartLayout, RangeSpec};

    fn checkpoint(parts: u64) -> Checkpoint {
        Checkpoint::new(
            CheckpointId {
                source: "s".into(),
                key: "k".into(),
                version_id: None,
                range: RangeSpec::Full,
                destination: "/d".into(),
            },
            ObjectFingerprint {
                size: parts,
                etag: None,
                last_modified: None,
                version_id: None,
                checksums: Vec::new(),
            },
            PartLayout::new(0, parts, 1).expect("nonzero part size"),
        )
    }

    fn digest(i: u64) -> PartDigest {
        PartDigest {
            blake3: [i as u8 ^ 0x5a; 32],
            crc64: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        }
    }

    fn journal(cp: &Checkpoint, parts: &[u64]) -> (Vec<u8>, usize) {
        let (mut bytes, sum) = codec::encode_with_checksum(cp);
        let snap = bytes.len();
        let (_, mut app) = start(cp, &sum);
        let entries: Vec<_> = parts.iter().map(|&i| (i, digest(i))).collect();
        // Two batches, to exercise sequence numbers across appends.
        let (a, b) = entries.split_at(entries.len() / 2);
        bytes.extend(app.encode(a));
        app.advance(a.len());
        bytes.extend(app.encode(b));
        app.advance(b.len());
        (bytes, snap)
    }

    #[test]
    fn records_apply_in_order_and_later_wins() {
        let cp = checkpoint(10);
        let (bytes, snap) = journal(&cp, &[3, 1, 4, 1, 5, 9]);
        assert_eq!(bytes.len(), snap + 6 * RECORD_LEN);
        let loaded = parse(&bytes, "t").expect("parses");
        assert!(loaded.notes.is_empty());
        let keys: Vec<_> = loaded.checkpoint.done.keys().copied().collect();
        assert_eq!(keys, [1, 3, 4, 5, 9]);
        assert_eq!(loaded.checkpoint.done[&9], digest(9));
    }

    #[test]
    fn record_replayed_on_another_snapshot_or_position_is_rejected() {
        let cp = checkpoint(10);
        let (bytes, snap) = journal(&cp, &[1, 2]);
        // Same records after a different snapshot (another object size).
        let other = checkpoint(11);
        let mut foreign = codec::encode(&other);
        foreign.extend_from_slice(&bytes[snap..]);
        let loaded = parse(&foreign, "t").expect("snapshot is fine");
        assert!(loaded.checkpoint.done.is_empty());
        assert_eq!(loaded.notes.len(), 1);
        // Records swapped within their own journal.
        let mut swapped = bytes[..snap].to_vec();
        swapped.extend_from_slice(&bytes[snap + RECORD_LEN..]);
        swapped.extend_from_slice(&bytes[snap..snap + RECORD_LEN]);
        let loaded = parse(&swapped, "t").expect("snapshot is fine");
        assert!(
            loaded.checkpoint.done.is_empty(),
            "{:?}",
            loaded.checkpoint.done
        );
    }

    #[test]
    fn index_past_end_stops_the_journal() {
        let cp = checkpoint(4);
        let (mut bytes, sum) = codec::encode_with_checksum(&cp);
        let snap = bytes.len();
        // Appender::check would refuse index 7; encode it anyway, as a bug or an attack would.
        bytes.extend(
            start(&cp, &sum)
                .1
                .encode(&[(0, digest(0)), (7, digest(7)), (1, digest(1))]),
        );
        let loaded = parse(&bytes, "f").expect("parses");
        assert_eq!(loaded.checkpoint.done.len(), 1);
        assert_eq!(
            loaded.notes,
            [format!(
                "ignored a torn checkpoint tail of 128 bytes at offset {} of f (record names a \
                 part past the end); the parts it covered will be downloaded again",
                snap + RECORD_LEN
            )]
        );
    }

    #[test]
    fn check_refuses_foreign_ids_and_out_of_range_parts() {
        let cp = checkpoint(4);
        let (target, _) = start(&cp, &[0; 32]);
        assert!(target.check(&cp.id, 3, "l").is_ok());
        assert!(matches!(
            target.check(&cp.id, 4, "l"),
            Err(CheckpointError::Misuse(_))
        ));
        let mut other = cp.id.clone();
        other.key = "other".into();
        assert!(matches!(
            target.check(&other, 0, "l"),
            Err(CheckpointError::Misuse(_))
        ));
        assert!(matches!(
            target.check_id(&other, "l"),
            Err(CheckpointError::Misuse(_))
        ));
    }
}

//! The stored form shared by the file and the memory store: a snapshot followed by an
//! append-only journal of done parts.
//!
//! ```text
//! snapshot   codec::encode(checkpoint)                    (see `codec`)
//! record*    RECORD_LEN = 64 bytes each, appended by `flush`; a done part:
//!              0   8   part index, u64 LE (top bit clear)
//!              8  32   blake3 of the part
//!             40   8   CRC-64/XZ of the part, u64 LE
//!             48  16   tag = blake3_keyed(key, seq u64 LE ‖ bytes 0..48)[..16]
//!            or the beginning of a part (format 4):
//!              0   8   part index | 1 << 63, u64 LE
//!              8   8   bytes received from the part's start, u64 LE (0 < n < part length)
//!             16  24   blake3 of those bytes, first 24 bytes
//!             40   8   CRC-64/XZ of those bytes, u64 LE
//!             48  16   tag, as above
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
//! * The records of one part apply in order, the last one winning: a done record replaces the
//!   part's partial one, and a partial record (the part fetched again) its done one.
//!
//! A journal grows until the engine's next `save`, which replaces the whole file (snapshot
//! with every part done so far, empty journal) atomically. Done records are bounded by the
//! parts (O(parts) bytes); partial records are not (one per 512 KiB received per part, say),
//! so the stores also rewrite the snapshot themselves — the same atomic `save` — once the
//! partial records since the last snapshot outweigh the rest of the file and
//! [`COMPACT_MIN`] ([`Tracker`]): the file stays O(parts + in-flight parts) + 1 MiB, and the
//! rewrites cost at most as many bytes as the partial records that caused them.

use crate::codec;
use crate::error::CheckpointError;
use crate::model::{Checkpoint, CheckpointId, PARTIAL_BLAKE3_LEN, PartDigest, PartialPart};
use crate::store::Loaded;

/// Bytes of one journal record.
pub const RECORD_LEN: usize = 64;

/// Set in a record's part index when it describes the beginning of a part (format 4).
const PARTIAL_FLAG: u64 = 1 << 63;

/// Partial records below this many bytes never trigger a rewrite of the snapshot.
pub const COMPACT_MIN: u64 = 1 << 20;

/// One journal record: a part done, or the beginning of a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    Done(u64, PartDigest),
    Partial(u64, PartialPart),
}

impl Entry {
    pub(crate) fn apply(&self, checkpoint: &mut Checkpoint) {
        match *self {
            Entry::Done(i, d) => checkpoint.apply_done(i, d),
            Entry::Partial(i, p) => checkpoint.apply_partial(i, p),
        }
    }
}

/// What a store keeps to rewrite its snapshot on its own: the checkpoint as its file now says
/// (snapshot plus records), and how the file's bytes split between partial records and the
/// rest.
#[derive(Debug, Clone)]
pub(crate) struct Tracker {
    pub(crate) state: Checkpoint,
    /// Bytes of partial records since the last snapshot.
    partial_bytes: u64,
    /// Every other byte of the file: the snapshot and the done records.
    other_bytes: u64,
}

impl Tracker {
    pub(crate) fn new(state: Checkpoint, snapshot_len: usize) -> Self {
        Self {
            state,
            partial_bytes: 0,
            other_bytes: snapshot_len as u64,
        }
    }

    /// Notes that `entries` reached the file.
    pub(crate) fn applied(&mut self, entries: &[Entry]) {
        for e in entries {
            e.apply(&mut self.state);
            match e {
                Entry::Done(..) => self.other_bytes += RECORD_LEN as u64,
                Entry::Partial(..) => self.partial_bytes += RECORD_LEN as u64,
            }
        }
    }

    /// Whether the snapshot should be rewritten: the partial records outweigh the rest of
    /// the file (and [`COMPACT_MIN`]), so a rewrite costs less than they did.
    pub(crate) fn wants_compaction(&self) -> bool {
        self.partial_bytes > self.other_bytes.max(COMPACT_MIN)
    }
}

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
    layout: crate::PartLayout,
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
            layout: checkpoint.layout,
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

    /// Refuses a partial record the reader would reject: a caller bug.
    pub fn check_partial(
        &self,
        id: &CheckpointId,
        index: u64,
        partial: &PartialPart,
        location: &str,
    ) -> Result<(), CheckpointError> {
        self.check(id, index, location)?;
        if codec::partial_out_of_bounds(&self.layout, index, partial.received) {
            return Err(CheckpointError::Misuse(format!(
                "part {index} recorded in {location} with {} bytes received, but it has {} \
                 bytes: a partial record covers more than none and less than all of them",
                partial.received,
                self.layout.part_len(index)
            )));
        }
        Ok(())
    }
}

impl Appender {
    /// Encodes `parts` as the next records, without committing to their position: call
    /// [`Appender::advance`] once they are written.
    pub fn encode(&self, entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::with_capacity(entries.len() * RECORD_LEN);
        for (seq, entry) in (self.next_seq..).zip(entries) {
            let start = out.len();
            match entry {
                Entry::Done(index, digest) => {
                    out.extend_from_slice(&index.to_le_bytes());
                    out.extend_from_slice(&digest.blake3);
                    out.extend_from_slice(&digest.crc64.to_le_bytes());
                }
                Entry::Partial(index, partial) => {
                    out.extend_from_slice(&(index | PARTIAL_FLAG).to_le_bytes());
                    out.extend_from_slice(&partial.received.to_le_bytes());
                    out.extend_from_slice(&partial.blake3);
                    out.extend_from_slice(&partial.crc64.to_le_bytes());
                }
            }
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
                let raw = u64::from_le_bytes(take::<8>(body, 0));
                let index = raw & !PARTIAL_FLAG;
                if tag(&key, seq, body) != stored_tag {
                    Some("record checksum mismatch")
                } else if index >= checkpoint.layout.part_count {
                    Some("record names a part past the end")
                } else if raw & PARTIAL_FLAG != 0 {
                    let partial = PartialPart {
                        received: u64::from_le_bytes(take::<8>(body, 8)),
                        blake3: take::<PARTIAL_BLAKE3_LEN>(body, 16),
                        crc64: u64::from_le_bytes(take::<8>(body, 40)),
                    };
                    if codec::partial_out_of_bounds(&checkpoint.layout, index, partial.received) {
                        Some("record names bytes outside its part")
                    } else {
                        checkpoint.apply_partial(index, partial);
                        None
                    }
                } else {
                    let digest = PartDigest {
                        blake3: take::<32>(body, 8),
                        crc64: u64::from_le_bytes(take::<8>(body, 40)),
                    };
                    // A part recorded twice (re-verified, re-fetched) keeps its last digest.
                    checkpoint.apply_done(index, digest);
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
        let entries: Vec<_> = parts.iter().map(|&i| Entry::Done(i, digest(i))).collect();
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
        bytes.extend(start(&cp, &sum).1.encode(&[
            Entry::Done(0, digest(0)),
            Entry::Done(7, digest(7)),
            Entry::Done(1, digest(1)),
        ]));
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

    fn partial(received: u64) -> PartialPart {
        PartialPart {
            received,
            blake3: [received as u8; PARTIAL_BLAKE3_LEN],
            crc64: received ^ 0xabc,
        }
    }

    /// A checkpoint of `parts` parts of 10 bytes.
    fn checkpoint10(parts: u64) -> Checkpoint {
        let mut cp = checkpoint(parts);
        cp.layout = crate::PartLayout::new(0, parts * 10, 10).expect("nonzero part size");
        cp.object.size = parts * 10;
        cp
    }

    fn append(cp: &Checkpoint, entries: &[Entry]) -> Vec<u8> {
        let (mut bytes, sum) = codec::encode_with_checksum(cp);
        bytes.extend(start(cp, &sum).1.encode(entries));
        bytes
    }

    #[test]
    fn partial_records_apply_in_order_with_done_records_and_the_last_wins() {
        let cp = checkpoint10(4);
        let bytes = append(
            &cp,
            &[
                Entry::Partial(0, partial(3)),
                Entry::Partial(1, partial(2)),
                Entry::Partial(0, partial(7)),
                Entry::Done(1, digest(1)),
                // Part 2 done, then fetched again (damaged on disk): partial wins.
                Entry::Done(2, digest(2)),
                Entry::Partial(2, partial(5)),
            ],
        );
        assert_eq!(bytes.len(), codec::encode(&cp).len() + 6 * RECORD_LEN);
        let loaded = parse(&bytes, "t").expect("parses");
        assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
        let c = loaded.checkpoint;
        assert_eq!(c.done.keys().copied().collect::<Vec<_>>(), [1]);
        assert_eq!(
            c.partial.iter().map(|(&i, p)| (i, *p)).collect::<Vec<_>>(),
            [(0, partial(7)), (2, partial(5))]
        );
        assert_eq!(c.partial_bytes(), 12);
        assert_eq!(c.saved_bytes(), 22);
    }

    #[test]
    fn a_partial_record_outside_its_part_stops_the_journal() {
        let cp = checkpoint10(3);
        // The last part is 10 bytes too; 0 and 10 received are not partial.
        for bad in [0, 10, 11, u64::MAX] {
            let bytes = append(
                &cp,
                &[
                    Entry::Partial(0, partial(4)),
                    Entry::Partial(1, partial(bad)),
                    Entry::Done(2, digest(2)),
                ],
            );
            let loaded = parse(&bytes, "f").expect("parses");
            assert_eq!(loaded.checkpoint.partial.len(), 1, "received {bad}");
            assert!(loaded.checkpoint.done.is_empty());
            assert_eq!(loaded.notes.len(), 1);
            assert!(
                loaded.notes[0].contains("record names bytes outside its part"),
                "{:?}",
                loaded.notes
            );
        }
        // A partial record of a part past the end.
        let bytes = append(&cp, &[Entry::Partial(3, partial(1))]);
        let loaded = parse(&bytes, "f").expect("parses");
        assert!(
            loaded.notes[0].contains("past the end"),
            "{:?}",
            loaded.notes
        );
    }

    #[test]
    fn done_records_are_encoded_as_formats_1_to_3_wrote_them() {
        // The layout older builds appended: index, blake3, crc64, tag.
        let cp = checkpoint(4);
        let (snap, sum) = codec::encode_with_checksum(&cp);
        let (_, app) = start(&cp, &sum);
        let rec = app.encode(&[Entry::Done(3, digest(3))]);
        let mut body = 3u64.to_le_bytes().to_vec();
        body.extend_from_slice(&digest(3).blake3);
        body.extend_from_slice(&digest(3).crc64.to_le_bytes());
        assert_eq!(&rec[..BODY_LEN], &body[..]);
        assert_eq!(&rec[BODY_LEN..], &tag(&record_key(&sum), 0, &body));
        let mut bytes = snap;
        bytes.extend(rec);
        assert!(
            parse(&bytes, "t")
                .expect("parses")
                .checkpoint
                .done
                .contains_key(&3)
        );
    }

    #[test]
    fn tracker_asks_for_compaction_only_when_partial_records_outweigh_the_rest() {
        let cp = checkpoint10(100_000);
        let snap = codec::encode(&cp).len();
        let mut t = Tracker::new(cp, snap);
        // Done records never ask for it: they are bounded by the parts.
        let dones: Vec<_> = (0..50_000).map(|i| Entry::Done(i, digest(i))).collect();
        t.applied(&dones);
        assert!(!t.wants_compaction());
        let limit = (snap as u64 + 50_000 * RECORD_LEN as u64).max(COMPACT_MIN);
        let mut n = 0u64;
        while !t.wants_compaction() {
            t.applied(&[Entry::Partial(60_000, partial(1 + n % 9))]);
            n += 1;
        }
        assert!(n * RECORD_LEN as u64 > limit && (n - 1) * RECORD_LEN as u64 <= limit);
        assert_eq!(t.state.partial[&60_000], partial(1 + (n - 1) % 9));
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
        for received in [0, 1] {
            // Parts of 1 byte: nothing is partial.
            assert!(matches!(
                target.check_partial(&cp.id, 0, &partial(received), "l"),
                Err(CheckpointError::Misuse(_))
            ));
        }
        let cp = checkpoint10(4);
        let (target, _) = start(&cp, &[0; 32]);
        assert!(target.check_partial(&cp.id, 3, &partial(9), "l").is_ok());
        assert!(matches!(
            target.check_partial(&cp.id, 4, &partial(9), "l"),
            Err(CheckpointError::Misuse(_))
        ));
    }
}

//! Builders and proptest strategies shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use checkpoint::{
    Checkpoint, CheckpointId, FileIdentity, ObjectFingerprint, PARTIAL_BLAKE3_LEN, PartDigest,
    PartLayout, PartialPart, RangeSpec, TempFile, Timestamp,
};
use proptest::prelude::*;

/// Proptest cases: `PROPTEST_CASES` when set, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn id(key: &str) -> CheckpointId {
    CheckpointId {
        source: "oss://oss-cn-hangzhou.aliyuncs.com/bucket".into(),
        key: key.into(),
        version_id: None,
        range: RangeSpec::Full,
        destination: "/downloads/file.bin".into(),
    }
}

/// A deterministic, distinct digest per part.
pub fn digest(i: u64) -> PartDigest {
    PartDigest {
        blake3: *blake3::hash(&i.to_le_bytes()).as_bytes(),
        crc64: i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xfeed,
    }
}

/// A checkpoint for `key` with `parts` parts of 1 MiB (the last one shorter) and `done` done.
pub fn checkpoint(key: &str, parts: u64, done: impl IntoIterator<Item = u64>) -> Checkpoint {
    let part_size = 1 << 20;
    let len = (parts * part_size).saturating_sub(part_size / 2);
    let layout = PartLayout::new(0, len, part_size).expect("nonzero part size");
    assert_eq!(layout.part_count, parts);
    let mut cp = Checkpoint::new(
        id(key),
        ObjectFingerprint {
            size: len,
            etag: Some("\"5B3C1A2E053D763E1B002CC607C5A0FE\"".into()),
            last_modified: Some(Timestamp {
                secs: 1_700_000_000,
                nanos: 5,
            }),
            version_id: None,
            checksums: vec![checkpoint::StoredChecksum {
                kind: checkpoint::CRC64_XZ_FULL_OBJECT.into(),
                value: 0x1234_5678u64.to_be_bytes().to_vec(),
            }],
        },
        layout,
    );
    cp.done.extend(done.into_iter().map(|i| (i, digest(i))));
    cp
}

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, including empty and control characters.
    prop_oneof![".{0,24}", "[a-z/._-]{0,40}"]
}

fn range_spec() -> impl Strategy<Value = RangeSpec> {
    prop_oneof![
        Just(RangeSpec::Full),
        (any::<u64>(), any::<u64>()).prop_map(|(first, last)| RangeSpec::Inclusive { first, last }),
        any::<u64>().prop_map(|first| RangeSpec::From { first }),
        any::<u64>().prop_map(|len| RangeSpec::Suffix { len }),
    ]
}

pub fn checkpoint_id() -> impl Strategy<Value = CheckpointId> {
    (
        text(),
        text(),
        proptest::option::of(text()),
        range_spec(),
        text(),
    )
        .prop_map(
            |(source, key, version_id, range, destination)| CheckpointId {
                source,
                key,
                version_id,
                range,
                destination,
            },
        )
}

fn fingerprint() -> impl Strategy<Value = ObjectFingerprint> {
    (
        any::<u64>(),
        proptest::option::of(text()),
        proptest::option::of((any::<i64>(), 0..1_000_000_000u32)),
        proptest::option::of(text()),
        proptest::collection::vec(
            (text(), proptest::collection::vec(any::<u8>(), 0..40)),
            0..4,
        ),
    )
        .prop_map(|(size, etag, lm, version_id, sums)| ObjectFingerprint {
            size,
            etag,
            last_modified: lm.map(|(secs, nanos)| Timestamp { secs, nanos }),
            version_id,
            checksums: sums
                .into_iter()
                .map(|(kind, value)| checkpoint::StoredChecksum { kind, value })
                .collect(),
        })
}

pub fn part_digest() -> impl Strategy<Value = PartDigest> {
    (any::<[u8; 32]>(), any::<u64>()).prop_map(|(blake3, crc64)| PartDigest { blake3, crc64 })
}

/// A consistent layout with exactly `part_count` parts: random part size, a random short
/// last part, and a start that does not overflow.
fn layout_with(part_count: u64) -> impl Strategy<Value = PartLayout> {
    (1u64..=1 << 40, any::<u64>(), any::<u64>()).prop_map(move |(part_size, last, start)| {
        let len = match part_count {
            0 => 0,
            n => (n - 1) * part_size + 1 + last % part_size,
        };
        let start = start % (u64::MAX - len).saturating_add(1);
        let layout = PartLayout {
            start,
            len,
            part_size,
            part_count,
        };
        debug_assert_eq!(len.div_ceil(part_size), part_count);
        layout
    })
}

/// Every kind of temp-file claim, with and without a birth time.
pub fn temp_file() -> impl Strategy<Value = TempFile> {
    prop_oneof![
        Just(TempFile::NotCreated),
        Just(TempFile::Unrecorded),
        (
            any::<u64>(),
            proptest::option::of((any::<i64>(), 0u32..1_000_000_000))
        )
            .prop_map(|(ino, birth)| TempFile::Created(FileIdentity {
                ino,
                birth: birth.map(|(secs, nanos)| Timestamp { secs, nanos }),
            })),
    ]
}

/// Checkpoints with up to `max_done` done parts, scattered over a layout of up to a million
/// parts (including none at all).
pub fn small_checkpoint(max_done: usize) -> impl Strategy<Value = Checkpoint> {
    prop_oneof![Just(0u64), 1u64..=16, 1u64..=1_000_000]
        .prop_flat_map(move |part_count| {
            let done = if part_count == 0 {
                proptest::collection::btree_map(Just(0u64), part_digest(), 0..=0).boxed()
            } else {
                proptest::collection::btree_map(0..part_count, part_digest(), 0..=max_done).boxed()
            };
            (
                checkpoint_id(),
                temp_file(),
                fingerprint(),
                layout_with(part_count),
                done,
                proptest::collection::vec((any::<u64>(), any::<u64>(), any::<u8>()), 0..4),
            )
        })
        .prop_map(|(id, temp_file, object, layout, done, partial)| {
            let mut cp = Checkpoint::new(id, object, layout).with_temp_file(temp_file);
            cp.done = done;
            add_partials(&mut cp, &partial);
            cp
        })
}

/// Adds partial parts to `cp` where `seeds` (index, received, digest byte) fit: a part not
/// done, with more than none and less than all of its bytes.
pub fn add_partials(cp: &mut Checkpoint, seeds: &[(u64, u64, u8)]) {
    for &(i, r, b) in seeds {
        if cp.layout.part_count == 0 {
            return;
        }
        let index = i % cp.layout.part_count;
        let len = cp.layout.part_len(index);
        if len < 2 || cp.done.contains_key(&index) {
            continue;
        }
        cp.partial.insert(
            index,
            PartialPart {
                received: 1 + r % (len - 1),
                blake3: [b; PARTIAL_BLAKE3_LEN],
                crc64: r ^ u64::from(b),
            },
        );
    }
}

/// Checkpoints with thousands of done parts (most of 1 000..=5 000 parts done).
pub fn large_checkpoint() -> impl Strategy<Value = Checkpoint> {
    (1_000u64..=5_000)
        .prop_flat_map(|part_count| {
            (
                checkpoint_id(),
                temp_file(),
                fingerprint(),
                layout_with(part_count),
                proptest::collection::vec(
                    proptest::option::weighted(0.9, part_digest()),
                    part_count as usize,
                ),
            )
        })
        .prop_map(|(id, temp_file, object, layout, digests)| {
            let mut cp = Checkpoint::new(id, object, layout).with_temp_file(temp_file);
            cp.done = (0u64..)
                .zip(digests)
                .filter_map(|(i, d)| d.map(|d| (i, d)))
                .collect();
            cp
        })
}

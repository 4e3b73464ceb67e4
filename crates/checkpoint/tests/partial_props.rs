//! Partial-part records (format 4) under random sequences of records, flushes and torn
//! tails, in the file store and the memory store alike: a load returns exactly the state the
//! records built, or — after a tail cut at any byte — the state after some prefix of them,
//! never a part or a beginning that was not recorded; and partial records never make the file
//! grow without bound (the store rewrites its snapshot).

mod common;

use checkpoint::{
    Checkpoint, CheckpointStore, FileCheckpointStore, MemoryCheckpointStore, PARTIAL_BLAKE3_LEN,
    PartLayout, PartialPart, codec,
};
use common::{cases, checkpoint, digest};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Done(u64),
    Partial(u64, u64),
    Flush,
}

fn op(parts: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..parts).prop_map(Op::Done),
        6 => (0..parts, any::<u64>()).prop_map(|(i, r)| Op::Partial(i, r)),
        2 => Just(Op::Flush),
    ]
}

fn partial(layout: &PartLayout, index: u64, seed: u64) -> PartialPart {
    let len = layout.part_len(index);
    PartialPart {
        received: 1 + seed % (len - 1),
        blake3: [seed as u8; PARTIAL_BLAKE3_LEN],
        crc64: seed.rotate_left(7),
    }
}

/// Applies `ops` to both stores; returns the model state after every flushed record.
fn play(
    file: &FileCheckpointStore,
    mem: &MemoryCheckpointStore,
    cp: &Checkpoint,
    ops: &[Op],
) -> Vec<Checkpoint> {
    file.save(cp).unwrap();
    mem.save(cp).unwrap();
    let mut model = cp.clone();
    let mut unflushed = Vec::new();
    let mut states = vec![model.clone()];
    for op in ops.iter().chain([&Op::Flush]) {
        match *op {
            Op::Done(i) => {
                file.record(&cp.id, i, digest(i)).unwrap();
                mem.record(&cp.id, i, digest(i)).unwrap();
                unflushed.push(op.clone());
            }
            Op::Partial(i, seed) => {
                let p = partial(&cp.layout, i, seed);
                file.record_partial(&cp.id, i, p).unwrap();
                mem.record_partial(&cp.id, i, p).unwrap();
                unflushed.push(op.clone());
            }
            Op::Flush => {
                file.flush(&cp.id).unwrap();
                mem.flush(&cp.id).unwrap();
                for u in unflushed.drain(..) {
                    match u {
                        Op::Done(i) => model.apply_done(i, digest(i)),
                        Op::Partial(i, seed) => {
                            model.apply_partial(i, partial(&cp.layout, i, seed))
                        }
                        Op::Flush => {}
                    }
                    states.push(model.clone());
                }
            }
        }
    }
    states
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]

    #[test]
    fn loads_are_the_recorded_state_or_a_prefix_of_it_never_more(
        parts in 1u64..40,
        ops in proptest::collection::vec(op(40), 0..3000),
        cut in any::<u64>(),
    ) {
        let ops: Vec<Op> = ops.into_iter().filter(|o| match o {
            Op::Done(i) | Op::Partial(i, _) => *i < parts,
            Op::Flush => true,
        }).collect();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        let file = FileCheckpointStore::beside(&dest);
        let mem = MemoryCheckpointStore::new();
        let cp = checkpoint("k", parts, []);
        let states = play(&file, &mem, &cp, &ops);
        let last = states.last().unwrap();
        let path = file.path(&cp.id);
        let bytes = std::fs::read(&path).unwrap();
        // Both stores hold the same bytes, compactions included.
        prop_assert_eq!(Some(bytes.clone()), mem.raw(&cp.id));
        let loaded = file.load(&cp.id).unwrap().unwrap();
        prop_assert!(loaded.notes.is_empty());
        prop_assert_eq!(&loaded.checkpoint, last);
        // Bounded: at most the snapshot of everything, as much again, and the floor.
        let bound = 2 * codec::encode(last).len() as u64 + checkpoint::COMPACT_MIN
            + 2 * checkpoint::RECORD_LEN as u64;
        prop_assert!((bytes.len() as u64) <= bound, "{} > {}", bytes.len(), bound);
        // A torn tail at any byte: a prefix of the records, never anything else.
        let at = (cut % (bytes.len() as u64 + 1)) as usize;
        std::fs::write(&path, &bytes[..at]).unwrap();
        match FileCheckpointStore::beside(&dest).load(&cp.id) {
            Ok(Some(l)) => prop_assert!(
                states.contains(&l.checkpoint),
                "cut at {} of {}: a state no prefix of the records made", at, bytes.len()
            ),
            // Cut inside the snapshot: damaged, never trusted.
            Err(_) => prop_assert!(at < bytes.len()),
            Ok(None) => prop_assert!(false, "the file is there"),
        }
    }
}

#[test]
fn a_long_run_of_partial_records_is_compacted_and_io_stays_linear() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileCheckpointStore::beside(dir.path().join("f"));
    let cp = checkpoint("k", 1000, 0..500);
    store.save(&cp).unwrap();
    let snapshot = store.bytes_written();
    // 200 000 partial records: 12.8 MB of records, as a 100 GiB download records every
    // 512 KiB.
    const N: u64 = 200_000;
    for n in 0..N {
        let i = 500 + n % 8;
        store
            .record_partial(&cp.id, i, partial(&cp.layout, i, n))
            .unwrap();
        if n % 8 == 7 {
            store.flush(&cp.id).unwrap();
        }
    }
    store.flush(&cp.id).unwrap();
    let len = std::fs::metadata(store.path(&cp.id)).unwrap().len();
    assert!(
        len <= 2 * snapshot + checkpoint::COMPACT_MIN + 8 * 64,
        "file of {len} bytes"
    );
    let records = N * checkpoint::RECORD_LEN as u64;
    let written = store.bytes_written();
    assert!(
        written <= snapshot + 2 * records,
        "wrote {written} bytes for {records} bytes of records"
    );
    let loaded = store.load(&cp.id).unwrap().unwrap().checkpoint;
    assert_eq!(loaded.done.len(), 500);
    assert_eq!(loaded.partial.len(), 8);
    assert_eq!(loaded.partial[&507], partial(&cp.layout, 507, N - 1));
}

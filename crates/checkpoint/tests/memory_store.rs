//! The memory store: flushed-vs-unflushed semantics, test hooks, and a model-based property
//! test of record/flush/save sequences with a crash at a random byte.

mod common;

use std::collections::BTreeMap;

use checkpoint::{
    CheckpointError, CheckpointStore, MemoryCheckpointStore, PartDigest, RECORD_LEN, codec,
};
use common::{cases, checkpoint, digest, id};
use proptest::prelude::*;

#[test]
fn dropping_the_engine_loses_exactly_the_unflushed_records() {
    let store = MemoryCheckpointStore::new();
    let cp = checkpoint("k", 10, [0]);
    {
        let engine = store.clone();
        engine.save(&cp).expect("save");
        for i in 1..=3 {
            engine.record(&cp.id, i, digest(i)).expect("record");
        }
        engine.flush(&cp.id).expect("flush");
        engine.record(&cp.id, 4, digest(4)).expect("record");
        assert_eq!(
            store.raw(&cp.id).expect("raw").len(),
            codec::encode(&cp).len() + 3 * RECORD_LEN,
            "unflushed records are invisible"
        );
    }
    let loaded = store.load(&cp.id).expect("load").expect("present");
    assert_eq!(loaded.checkpoint, checkpoint("k", 10, 0..=3));
    assert!(loaded.notes.is_empty());
}

#[test]
fn torn_tail_set_through_set_raw_is_ignored_with_a_note() {
    let store = MemoryCheckpointStore::new();
    let cp = checkpoint("k", 10, []);
    store.save(&cp).expect("save");
    store.record(&cp.id, 7, digest(7)).expect("record");
    store.record(&cp.id, 8, digest(8)).expect("record");
    store.flush(&cp.id).expect("flush");
    let raw = store.raw(&cp.id).expect("raw");
    store.set_raw(&cp.id, raw[..raw.len() - 10].to_vec());
    let loaded = store.load(&cp.id).expect("load").expect("present");
    assert_eq!(loaded.checkpoint, checkpoint("k", 10, [7]));
    assert_eq!(loaded.notes.len(), 1);
    assert!(
        loaded.notes[0].contains("torn checkpoint tail of 54 bytes"),
        "{:?}",
        loaded.notes
    );
}

#[test]
fn hooks_list_and_expose_stored_bytes() {
    let store = MemoryCheckpointStore::new();
    assert!(store.ids().is_empty());
    let a = checkpoint("a", 2, []);
    let b = checkpoint("b", 2, [1]);
    store.save(&a).expect("save");
    store.save(&b).expect("save");
    let mut keys: Vec<_> = store.ids().into_iter().map(|id| id.key).collect();
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(store.raw(&b.id), Some(codec::encode(&b)));
    assert_eq!(
        store.bytes_written(),
        (codec::encode(&a).len() + codec::encode(&b).len()) as u64
    );
    assert!(store.location(&a.id).contains("\"a\""));
    assert_eq!(CheckpointStore::path(&store, &a.id), None);
    store.set_raw(&a.id, b"garbage".to_vec());
    assert!(matches!(
        store.load(&a.id),
        Err(CheckpointError::Corrupt { .. })
    ));
    store.delete(&a.id).expect("delete");
    assert_eq!(store.ids(), std::slice::from_ref(&b.id));
    assert!(store.load(&id("never saved")).expect("load").is_none());
}

#[test]
fn misuse_is_refused() {
    let store = MemoryCheckpointStore::new();
    let cp = checkpoint("k", 3, []);
    let misuse = |r: Result<(), CheckpointError>| matches!(r, Err(CheckpointError::Misuse(_)));
    assert!(misuse(store.record(&cp.id, 0, digest(0))));
    assert!(misuse(store.flush(&cp.id)));
    store.save(&cp).expect("save");
    assert!(misuse(store.record(&cp.id, 3, digest(3))));
    store.delete(&cp.id).expect("delete");
    assert!(misuse(store.flush(&cp.id)));
}

#[derive(Debug, Clone)]
enum Op {
    Record(u64),
    Flush,
    /// Compaction: save everything recorded so far as a snapshot.
    Save,
}

fn op(parts: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..parts).prop_map(Op::Record),
        2 => Just(Op::Flush),
        1 => Just(Op::Save),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// Against a model of what is durable: after any sequence of calls, a crash that keeps
    /// only a prefix of the stored bytes (at least the snapshot) loads the snapshot plus
    /// exactly the whole records in that prefix; without a cut it loads everything flushed.
    #[test]
    fn crash_after_any_sequence_loads_a_durable_prefix(
        ops in proptest::collection::vec(op(50), 0..120),
        cut in any::<prop::sample::Index>(),
    ) {
        let store = MemoryCheckpointStore::new();
        let base = checkpoint("k", 50, []);
        store.save(&base).expect("save");
        let mut known: BTreeMap<u64, PartDigest> = BTreeMap::new(); // engine's view
        let mut snapshot = base.clone();
        let mut journal: Vec<u64> = Vec::new(); // flushed since the snapshot
        let mut pending: Vec<u64> = Vec::new();
        for op in ops {
            match op {
                Op::Record(i) => {
                    store.record(&base.id, i, digest(i)).expect("record");
                    known.insert(i, digest(i));
                    pending.push(i);
                }
                Op::Flush => {
                    store.flush(&base.id).expect("flush");
                    journal.append(&mut pending);
                }
                Op::Save => {
                    snapshot = base.clone();
                    snapshot.done = known.clone();
                    store.save(&snapshot).expect("save");
                    journal.clear();
                    pending.clear();
                }
            }
        }
        let raw = store.raw(&base.id).expect("raw");
        let snap_len = codec::encode(&snapshot).len();
        prop_assert_eq!(raw.len(), snap_len + journal.len() * RECORD_LEN);

        let mut durable = snapshot.clone();
        durable.done.extend(journal.iter().map(|&i| (i, digest(i))));
        let loaded = store.load(&base.id).expect("load").expect("present");
        prop_assert_eq!(&loaded.checkpoint, &durable);
        prop_assert!(loaded.notes.is_empty());

        let cut = snap_len + cut.index(raw.len() - snap_len + 1);
        store.set_raw(&base.id, raw[..cut].to_vec());
        let whole = (cut - snap_len) / RECORD_LEN;
        let mut want = snapshot;
        want.done.extend(journal[..whole].iter().map(|&i| (i, digest(i))));
        let loaded = store.load(&base.id).expect("a torn tail is never an error").expect("present");
        prop_assert_eq!(loaded.checkpoint, want);
        prop_assert_eq!(loaded.notes.len(), usize::from(!(cut - snap_len).is_multiple_of(RECORD_LEN)));
    }
}

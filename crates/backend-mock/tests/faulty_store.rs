//! `FaultyCheckpointStore` over a minimal in-memory store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use backend_mock::{FaultyCheckpointStore, StoreFault, StoreFaultPlan, StoreOp};
use checkpoint::{
    Checkpoint, CheckpointError, CheckpointId, CheckpointStore, Loaded, ObjectFingerprint,
    PartDigest, PartLayout, RangeSpec,
};

/// Saved snapshots plus records that become visible on flush.
#[derive(Debug, Default)]
struct MemStore {
    durable: Mutex<HashMap<CheckpointId, Checkpoint>>,
    pending: Mutex<HashMap<CheckpointId, BTreeMap<u64, PartDigest>>>,
}

impl CheckpointStore for MemStore {
    fn location(&self, _id: &CheckpointId) -> String {
        "memory".to_owned()
    }
    fn load(&self, id: &CheckpointId) -> Result<Option<Loaded>, CheckpointError> {
        Ok(self.durable.lock().unwrap().get(id).map(|c| Loaded {
            checkpoint: c.clone(),
            notes: Vec::new(),
        }))
    }
    fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        self.pending.lock().unwrap().remove(&checkpoint.id);
        self.durable
            .lock()
            .unwrap()
            .insert(checkpoint.id.clone(), checkpoint.clone());
        Ok(())
    }
    fn record(
        &self,
        id: &CheckpointId,
        index: u64,
        digest: PartDigest,
    ) -> Result<(), CheckpointError> {
        self.pending
            .lock()
            .unwrap()
            .entry(id.clone())
            .or_default()
            .insert(index, digest);
        Ok(())
    }
    fn flush(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        let pending = self.pending.lock().unwrap().remove(id).unwrap_or_default();
        let mut durable = self.durable.lock().unwrap();
        let c = durable
            .get_mut(id)
            .ok_or_else(|| CheckpointError::Misuse("flush before save".into()))?;
        c.done.extend(pending);
        Ok(())
    }
    fn delete(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        self.durable.lock().unwrap().remove(id);
        self.pending.lock().unwrap().remove(id);
        Ok(())
    }
}

fn checkpoint() -> Checkpoint {
    let id = CheckpointId {
        source: "mock://t".into(),
        key: "k".into(),
        version_id: None,
        range: RangeSpec::Full,
        destination: "/tmp/dest".into(),
    };
    let object = ObjectFingerprint {
        size: 100,
        etag: Some("\"e\"".into()),
        last_modified: None,
        version_id: None,
        checksums: Vec::new(),
    };
    Checkpoint::new(id, object, PartLayout::new(0, 100, 10).unwrap())
}

fn digest(i: u8) -> PartDigest {
    PartDigest {
        blake3: [i; 32],
        crc64: u64::from(i),
    }
}

fn done_parts(store: &impl CheckpointStore, id: &CheckpointId) -> Vec<u64> {
    store
        .load(id)
        .unwrap()
        .map(|l| l.checkpoint.done.keys().copied().collect())
        .unwrap_or_default()
}

fn io_message(e: &CheckpointError) -> String {
    match e {
        CheckpointError::Io { source, .. } => source.to_string(),
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn without_a_plan_every_call_is_delegated() {
    let inner = Arc::new(MemStore::default());
    let store = FaultyCheckpointStore::new(Arc::clone(&inner));
    let cp = checkpoint();
    assert!(store.load(&cp.id).unwrap().is_none());
    store.save(&cp).unwrap();
    store.record(&cp.id, 0, digest(0)).unwrap();
    store.flush(&cp.id).unwrap();
    assert_eq!(done_parts(inner.as_ref(), &cp.id), [0]);
    store.delete(&cp.id).unwrap();
    assert!(inner.load(&cp.id).unwrap().is_none());
    for op in [
        StoreOp::Load,
        StoreOp::Save,
        StoreOp::Record,
        StoreOp::Flush,
        StoreOp::Delete,
    ] {
        assert_eq!(store.calls(op), 1, "{op:?}");
    }
    assert!(store.injected().is_empty());
    assert_eq!(store.location(&cp.id), "memory");
}

#[test]
fn failed_save_has_no_effect() {
    let inner = Arc::new(MemStore::default());
    let store = FaultyCheckpointStore::new(Arc::clone(&inner))
        .with_plan(StoreFaultPlan::new().fail_save(0));
    let cp = checkpoint();
    let e = store.save(&cp).unwrap_err();
    assert_eq!(io_message(&e), "injected");
    let CheckpointError::Io { op, source, .. } = &e else {
        unreachable!()
    };
    assert_eq!(*op, "save");
    assert_eq!(source.kind(), std::io::ErrorKind::StorageFull);
    assert!(inner.load(&cp.id).unwrap().is_none());
    store.save(&cp).unwrap();
    assert!(inner.load(&cp.id).unwrap().is_some());
    assert_eq!(store.calls(StoreOp::Save), 2);
}

#[test]
fn failed_and_torn_flushes_make_nothing_visible() {
    let inner = Arc::new(MemStore::default());
    let store = FaultyCheckpointStore::new(Arc::clone(&inner))
        .with_plan(StoreFaultPlan::new().fail_flush(1).tear_flush(2));
    let cp = checkpoint();
    store.save(&cp).unwrap();
    store.record(&cp.id, 0, digest(0)).unwrap();
    store.flush(&cp.id).unwrap(); // flush 0
    store.record(&cp.id, 1, digest(1)).unwrap();
    assert_eq!(io_message(&store.flush(&cp.id).unwrap_err()), "injected"); // flush 1
    assert_eq!(done_parts(&store, &cp.id), [0]);
    assert_eq!(
        io_message(&store.flush(&cp.id).unwrap_err()), // flush 2
        "injected torn write"
    );
    assert_eq!(done_parts(&store, &cp.id), [0]);
    store.flush(&cp.id).unwrap(); // flush 3: the records were only buffered, not lost
    assert_eq!(done_parts(&store, &cp.id), [0, 1]);
    assert_eq!(store.calls(StoreOp::Flush), 4);
    let injected = store.injected();
    assert_eq!(injected.len(), 2);
    assert_eq!(
        (injected[0].op, injected[0].n, injected[0].fault),
        (StoreOp::Flush, 1, StoreFault::Fail)
    );
    assert_eq!(
        (injected[1].op, injected[1].n, injected[1].fault),
        (StoreOp::Flush, 2, StoreFault::Tear)
    );
}

#[test]
fn fail_after_takes_effect_but_reports_an_error() {
    let inner = Arc::new(MemStore::default());
    let store = FaultyCheckpointStore::new(Arc::clone(&inner)).with_plan(StoreFaultPlan::new().on(
        StoreOp::Flush,
        0,
        StoreFault::FailAfter,
    ));
    let cp = checkpoint();
    store.save(&cp).unwrap();
    store.record(&cp.id, 3, digest(3)).unwrap();
    assert!(store.flush(&cp.id).is_err());
    assert_eq!(done_parts(inner.as_ref(), &cp.id), [3]);
}

#[test]
fn corrupt_load_and_other_ops() {
    let store = FaultyCheckpointStore::new(MemStore::default()).with_plan(
        StoreFaultPlan::new()
            .on(StoreOp::Load, 0, StoreFault::Corrupt)
            .on(StoreOp::Record, 0, StoreFault::Fail)
            .on(StoreOp::Delete, 0, StoreFault::Corrupt),
    );
    let cp = checkpoint();
    assert!(matches!(
        store.load(&cp.id),
        Err(CheckpointError::Corrupt { .. })
    ));
    assert!(store.load(&cp.id).unwrap().is_none());
    store.save(&cp).unwrap();
    assert!(store.record(&cp.id, 0, digest(0)).is_err());
    assert!(matches!(
        store.delete(&cp.id),
        Err(CheckpointError::Io { .. })
    ));
    assert!(store.inner().load(&cp.id).unwrap().is_some());
    let store_debug = format!("{store:?}");
    assert!(
        store_debug.contains("FaultyCheckpointStore"),
        "{store_debug}"
    );
    let inner = store.into_inner();
    assert!(inner.load(&cp.id).unwrap().is_some());
}

#[test]
fn numbering_continues_across_plans() {
    let store = FaultyCheckpointStore::new(MemStore::default());
    let cp = checkpoint();
    store.save(&cp).unwrap();
    store.save(&cp).unwrap();
    store.set_plan(StoreFaultPlan::new().fail_save(2));
    assert!(store.save(&cp).is_err());
    assert!(store.save(&cp).is_ok());
}

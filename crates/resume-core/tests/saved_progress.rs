//! Saved progress survives every failure of a later run that did not prove it worthless, and
//! files that merely have the temp file's or the checkpoint's name are never taken over.
//!
//! Each "survives" scenario interrupts a download (a simulated crash), runs it again under a
//! failure, checks that the temp file and checkpoint are byte-for-byte what the crash left,
//! then resumes and checks that the saved parts were reused, not fetched again.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use backend_mock::{Fault, FaultPlan, FaultyCheckpointStore, StoreFault, StoreFaultPlan, StoreOp};
use checkpoint::{
    Checkpoint, CheckpointError, CheckpointId, CheckpointStore, FileCheckpointStore, Loaded,
    ObjectFingerprint, PartDigest, PartLayout,
};
use common::{Fixture, KEY, quick_retry};
use resume_core::{CancellationToken, Downloader, Error, ErrorKind, Event, RetryPolicy};

const PART: u64 = 10_000;

fn rgcp(dest: &Path) -> PathBuf {
    resume_core::with_suffix(dest, ".rgcp")
}

/// A downloader keeping its checkpoint in a file beside DEST (where users' progress lives).
fn on_disk(f: &Fixture) -> Downloader {
    f.downloader()
        .checkpoint(FileCheckpointStore::beside(&f.dest))
        .part_size(PART)
        .concurrency(2)
}

/// Crashes a download after `bytes` bytes were served; returns the parts it saved.
async fn interrupt(f: &Fixture, bytes: u64) -> u64 {
    f.crash_after(on_disk(f), bytes).await;
    let saved = FileCheckpointStore::beside(&f.dest)
        .load(&saved_id(f))
        .expect("the checkpoint loads")
        .expect("the crash left a checkpoint")
        .checkpoint
        .done
        .len() as u64;
    assert!(
        saved >= 2,
        "the crash should leave parts to reuse, left {saved}"
    );
    let found = on_disk(f)
        .saved_progress(KEY, &f.dest)
        .expect("saved progress");
    assert_eq!((found.parts_done, found.temp), (saved, f.part_path()));
    assert_eq!(found.done_bytes, saved * PART);
    saved
}

fn saved_id(f: &Fixture) -> CheckpointId {
    let bytes = std::fs::read(rgcp(&f.dest)).expect("checkpoint file");
    checkpoint::codec::decode(&bytes[..snapshot_len(&bytes)], "t")
        .expect("snapshot")
        .id
}

fn snapshot_len(bytes: &[u8]) -> usize {
    let payload = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")) as usize;
    checkpoint::codec::HEADER_LEN + payload + checkpoint::codec::CHECKSUM_LEN
}

/// The temp file and checkpoint, byte for byte.
fn state(f: &Fixture) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(f.part_path()).expect("temp file"),
        std::fs::read(rgcp(&f.dest)).expect("checkpoint file"),
    )
}

/// Resumes to completion and checks that exactly the `saved` parts were reused.
async fn resume_reuses(f: &Fixture, saved: u64, what: &str) {
    let r = on_disk(f)
        .download(KEY, &f.dest)
        .await
        .unwrap_or_else(|e| panic!("{what}: the resume failed: {e}"));
    assert_eq!(f.dest_bytes(), f.content, "{what}");
    assert_eq!(
        r.parts_reused, saved,
        "{what}: the saved parts must be reused"
    );
    assert_eq!(f.files(), vec!["out.bin"], "{what}");
}

#[tokio::test(start_paused = true)]
async fn a_rerun_whose_metadata_request_fails_keeps_the_saved_progress() {
    for (fault, kind) in [
        (Fault::http(503), ErrorKind::Network),
        (Fault::http(403), ErrorKind::Denied),
        (Fault::http(404), ErrorKind::NotFound),
    ] {
        let f = Fixture::new(100_000, 41);
        let saved = interrupt(&f, 45_000).await;
        let before = state(&f);
        let mut plan = FaultPlan::new();
        for n in 0..8 {
            plan = plan.on_stat(f.source.stat_requests() + n, fault.clone());
        }
        f.source.set_fault_plan(plan);
        let err = on_disk(&f)
            .retry(RetryPolicy {
                max_attempts: 2,
                ..quick_retry(7)
            })
            .download(KEY, &f.dest)
            .await
            .expect_err("the metadata request fails");
        assert_eq!(err.kind(), kind, "{err}");
        assert_eq!(
            state(&f),
            before,
            "{kind:?}: the saved progress must be untouched"
        );
        f.source.set_fault_plan(FaultPlan::new());
        resume_reuses(&f, saved, &format!("after {kind:?}")).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_rerun_that_cannot_read_the_checkpoint_keeps_it() {
    let f = Fixture::new(100_000, 42);
    let saved = interrupt(&f, 45_000).await;
    let before = state(&f);
    let faulty = FaultyCheckpointStore::new(FileCheckpointStore::beside(&f.dest))
        .with_plan(StoreFaultPlan::new().on(StoreOp::Load, 0, StoreFault::Fail));
    let err = on_disk(&f)
        .checkpoint(faulty)
        .download(KEY, &f.dest)
        .await
        .expect_err("the checkpoint cannot be read");
    assert_eq!(err.kind(), ErrorKind::LocalIo, "{err}");
    assert_eq!(f.source.stat_requests(), 1, "refused before any request");
    assert_eq!(state(&f), before);
    resume_reuses(&f, saved, "after a failed load").await;
}

#[tokio::test(start_paused = true)]
async fn a_rerun_whose_snapshot_save_fails_keeps_the_saved_progress() {
    let f = Fixture::new(100_000, 43);
    let saved = interrupt(&f, 45_000).await;
    let before = state(&f);
    let faulty = FaultyCheckpointStore::new(FileCheckpointStore::beside(&f.dest))
        .with_plan(StoreFaultPlan::new().fail_save(0));
    let err = on_disk(&f)
        .checkpoint(faulty)
        .download(KEY, &f.dest)
        .await
        .expect_err("the save fails");
    assert!(matches!(err, Error::Checkpoint(_)), "{err}");
    assert_eq!(state(&f), before);
    resume_reuses(&f, saved, "after a failed save").await;
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_verify_on_resume_keeps_the_saved_progress() {
    let f = Fixture::new(400_000, 44);
    let saved = interrupt(&f, 200_000).await;
    let before = state(&f);
    let reads = f.source.read_requests();
    let stats = f.source.stat_requests();
    let token = CancellationToken::new();
    let dl = on_disk(&f)
        .verify_on_resume(true)
        .buffer_size(1024)
        .cancel_token(token.clone());
    let download = dl.download(KEY, &f.dest);
    // Cancel once the rerun has its metadata: it is then re-hashing saved parts (1 KiB per
    // step, yielding between steps) and has sent no ranged read.
    let cancel = async {
        while f.source.stat_requests() == stats {
            tokio::task::yield_now().await;
        }
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        token.cancel();
    };
    let (result, ()) = tokio::join!(download, cancel);
    let err = result.expect_err("cancelled");
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert_eq!(f.source.read_requests(), reads, "cancelled while verifying");
    assert_eq!(state(&f), before);
    resume_reuses(&f, saved, "after a cancelled verification").await;
}

#[tokio::test(start_paused = true)]
async fn a_fresh_download_that_fails_before_any_part_leaves_nothing() {
    let f = Fixture::new(50_000, 45);
    let mut plan = FaultPlan::new();
    for n in 0..4 {
        plan = plan.on_request(n, Fault::http(503));
    }
    f.source.set_fault_plan(plan);
    on_disk(&f)
        .concurrency(1)
        .retry(RetryPolicy {
            max_attempts: 2,
            ..quick_retry(3)
        })
        .download(KEY, &f.dest)
        .await
        .expect_err("every read fails");
    assert!(f.files().is_empty(), "{:?}", f.files());
    assert_eq!(on_disk(&f).saved_progress(KEY, &f.dest), None);
    // A temp file no checkpoint claims is nothing saved either.
    std::fs::write(f.part_path(), vec![0u8; 50_000]).unwrap();
    assert_eq!(on_disk(&f).saved_progress(KEY, &f.dest), None);
}

/// The reproduction: objects named `data.rgpart` and `data.rgcp` downloaded into a
/// directory, then object `data` into the same directory.
#[tokio::test(start_paused = true)]
async fn files_named_like_the_temp_file_or_checkpoint_are_never_taken_over() {
    let f = Fixture::new(30_000, 46);
    let dest = f.dir.path().join("data");
    for (name, content) in [
        ("data.rgpart", &b"object one"[..]),
        ("data.rgcp", b"object two"),
    ] {
        f.source.put(name, content.to_vec());
        f.downloader()
            .download(name, &f.dir.path().join(name))
            .await
            .expect("downloads");
    }
    f.source.put("data", f.content.clone());
    let stats = f.source.stat_requests();
    let err = f
        .downloader()
        .checkpoint(FileCheckpointStore::beside(&dest))
        .download("data", &dest)
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::LocalIo, "{err}");
    assert_eq!(
        f.source.stat_requests(),
        stats,
        "refused before any request"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("data.rgcp") || msg.contains("data.rgpart"),
        "{msg}"
    );
    assert!(msg.contains("move it away"), "{msg}");
    assert_eq!(
        std::fs::read(f.dir.path().join("data.rgpart")).unwrap(),
        b"object one"
    );
    assert_eq!(
        std::fs::read(f.dir.path().join("data.rgcp")).unwrap(),
        b"object two"
    );
    assert!(!dest.exists());

    // Each name alone is refused too, with and without checkpoints, naming the file.
    for (present, checkpoints) in [
        ("data.rgpart", true),
        ("data.rgpart", false),
        ("data.rgcp", true),
    ] {
        let g = Fixture::new(30_000, 47);
        let dest = g.dir.path().join("data");
        std::fs::write(g.dir.path().join(present), b"somebody's file").unwrap();
        let dl = g
            .downloader()
            .checkpoint(FileCheckpointStore::beside(&dest));
        let dl = if checkpoints { dl } else { dl.no_checkpoint() };
        let err = dl.download(KEY, &dest).await.expect_err("refused");
        assert!(err.to_string().contains(present), "{present}: {err}");
        assert_eq!(g.source.stat_requests(), 0, "{present}: no request");
        assert_eq!(
            std::fs::read(g.dir.path().join(present)).unwrap(),
            b"somebody's file"
        );
        assert_eq!(g.files(), vec![present.to_string()], "{present}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_temp_file_replaced_by_another_file_is_refused_and_kept() {
    let f = Fixture::new(100_000, 48);
    interrupt(&f, 45_000).await;
    // Same name, same length, another file (a copy made by some other program).
    let copy = std::fs::read(f.part_path()).unwrap();
    std::fs::remove_file(f.part_path()).unwrap();
    std::fs::write(f.part_path(), &copy).unwrap();
    let before = state(&f);
    let err = on_disk(&f)
        .download(KEY, &f.dest)
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::ForeignFile { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("recorded as this download's temp file"),
        "{err}"
    );
    assert_eq!(state(&f), before);
}

#[tokio::test(start_paused = true)]
async fn another_destinations_checkpoint_at_the_checkpoint_path_is_refused_and_kept() {
    let f = Fixture::new(30_000, 49);
    let mut other = Checkpoint::new(
        CheckpointId {
            source: "mock://elsewhere".into(),
            key: KEY.into(),
            version_id: None,
            range: Default::default(),
            destination: "/some/other/out.bin".into(),
        },
        ObjectFingerprint {
            size: 30_000,
            etag: None,
            last_modified: None,
            version_id: None,
            checksums: Vec::new(),
        },
        PartLayout::new(0, 30_000, PART).unwrap(),
    );
    other.done.insert(
        0,
        PartDigest {
            blake3: [1; 32],
            crc64: 2,
        },
    );
    let bytes = checkpoint::codec::encode(&other);
    std::fs::write(rgcp(&f.dest), &bytes).unwrap();
    let err = on_disk(&f)
        .download(KEY, &f.dest)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, Error::Checkpoint(CheckpointError::Foreign { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("/some/other/out.bin"), "{err}");
    assert_eq!(std::fs::read(rgcp(&f.dest)).unwrap(), bytes);
}

/// A crash between the checkpoint's claim on the temp file and the file's creation (or its
/// identity being recorded) leaves a claim and no file, or an empty file: both are this
/// download's, and the next run goes on.
#[tokio::test(start_paused = true)]
async fn a_crash_between_claiming_and_creating_the_temp_file_is_recovered() {
    for create_empty in [false, true] {
        let f = Fixture::new(30_000, 50);
        let meta = f.source.meta(KEY).unwrap();
        let store = FileCheckpointStore::beside(&f.dest);
        let claim = Checkpoint::new(
            CheckpointId {
                source: resume_core::RangeSource::identity(&f.source),
                key: KEY.into(),
                version_id: None,
                range: Default::default(),
                destination: f.dest.to_string_lossy().into_owned(),
            },
            ObjectFingerprint {
                size: meta.size,
                etag: meta.etag.clone(),
                last_modified: None,
                version_id: meta.version_id.clone(),
                checksums: meta
                    .crc64()
                    .map(|c| checkpoint::StoredChecksum {
                        kind: checkpoint::CRC64_XZ_FULL_OBJECT.into(),
                        value: c.to_be_bytes().to_vec(),
                    })
                    .into_iter()
                    .collect(),
            },
            PartLayout::new(0, 30_000, PART).unwrap(),
        );
        store.save(&claim).unwrap();
        if create_empty {
            std::fs::write(f.part_path(), b"").unwrap();
        }
        let r = on_disk(&f).download(KEY, &f.dest).await.unwrap();
        assert_eq!(f.dest_bytes(), f.content);
        assert_eq!(r.parts_reused, 0);
        assert_eq!(f.files(), vec!["out.bin"]);
    }
}

/// A run stopped after renaming the finished file over DEST, before deleting the
/// checkpoint: the next run recognises DEST as the finished file and fetches nothing.
#[tokio::test(start_paused = true)]
async fn a_checkpoint_left_after_the_final_rename_finishes_at_once() {
    let f = Fixture::new(100_000, 51);
    let keeps_checkpoint = FaultyCheckpointStore::new(FileCheckpointStore::beside(&f.dest))
        .with_plan(StoreFaultPlan::new().on(StoreOp::Delete, 0, StoreFault::Fail));
    on_disk(&f)
        .checkpoint(keeps_checkpoint)
        .download(KEY, &f.dest)
        .await
        .expect("complete, with a note about the checkpoint");
    assert_eq!(f.files(), vec!["out.bin", "out.bin.rgcp"]);
    let note = f.events().iter().any(|e| {
        matches!(e, Event::CheckpointNote { note, .. } if note.contains("could not be deleted"))
    });
    assert!(note, "the undeleted checkpoint is reported");
    let reads = f.source.read_requests();
    let r = on_disk(&f).download(KEY, &f.dest).await.unwrap();
    assert_eq!(f.source.read_requests(), reads, "nothing fetched");
    assert_eq!((r.fetched_bytes, r.parts_reused), (0, r.parts));
    assert!(r.crc64_verified);
    assert_eq!(f.dest_bytes(), f.content);
    assert_eq!(f.files(), vec!["out.bin"]);

    // DEST edited since (another file now): downloaded again, never trusted by name.
    let g = Fixture::new(100_000, 52);
    let keeps_checkpoint = FaultyCheckpointStore::new(FileCheckpointStore::beside(&g.dest))
        .with_plan(StoreFaultPlan::new().on(StoreOp::Delete, 0, StoreFault::Fail));
    on_disk(&g)
        .checkpoint(keeps_checkpoint)
        .download(KEY, &g.dest)
        .await
        .unwrap();
    std::fs::remove_file(&g.dest).unwrap();
    std::fs::write(&g.dest, vec![0u8; 100_000]).unwrap();
    let r = on_disk(&g).download(KEY, &g.dest).await.unwrap();
    assert_eq!(r.fetched_bytes, 100_000);
    assert_eq!(g.dest_bytes(), g.content);
}

/// A store whose first `sync` is held until the checkpoint is saved or deleted again (or
/// 300 ms pass): exactly the moment a background sync must not outlive.
#[derive(Debug)]
struct HeldSync {
    inner: FileCheckpointStore,
    gate: Arc<(Mutex<Gate>, Condvar)>,
}

#[derive(Debug, Default)]
struct Gate {
    syncs: u64,
    holding: bool,
    replaced: bool,
    sync_errors: Vec<String>,
}

impl CheckpointStore for HeldSync {
    fn location(&self, id: &CheckpointId) -> String {
        self.inner.location(id)
    }
    fn load(&self, id: &CheckpointId) -> Result<Option<Loaded>, CheckpointError> {
        self.inner.load(id)
    }
    fn save(&self, cp: &Checkpoint) -> Result<(), CheckpointError> {
        self.replaced();
        self.inner.save(cp)
    }
    fn record(&self, id: &CheckpointId, i: u64, d: PartDigest) -> Result<(), CheckpointError> {
        self.inner.record(id, i, d)
    }
    fn flush(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        self.inner.flush(id)
    }
    fn sync(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        let (lock, cv) = &*self.gate;
        let mut g = lock.lock().unwrap();
        g.syncs += 1;
        if g.syncs == 1 {
            g.holding = true;
            g.replaced = false;
            let (held, _) = cv
                .wait_timeout_while(g, Duration::from_millis(300), |g| !g.replaced)
                .unwrap();
            g = held;
            g.holding = false;
        }
        drop(g);
        let result = self.inner.sync(id);
        if let Err(e) = &result {
            lock.lock().unwrap().sync_errors.push(e.to_string());
        }
        result
    }
    fn delete(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        self.replaced();
        self.inner.delete(id)
    }
}

impl HeldSync {
    fn replaced(&self) {
        let (lock, cv) = &*self.gate;
        let mut g = lock.lock().unwrap();
        if g.holding {
            g.replaced = true;
            cv.notify_all();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_sync_in_flight_when_the_object_changes_does_not_fail_the_restart() {
    let f = Fixture::new(100_000, 53);
    // The first part's sync starts in the background and is held; the object changes before
    // the fourth read, while it is held.
    f.source
        .set_fault_plan(FaultPlan::new().change_object_after(3));
    let gate = Arc::new((Mutex::new(Gate::default()), Condvar::new()));
    let store = HeldSync {
        inner: FileCheckpointStore::beside(&f.dest),
        gate: gate.clone(),
    };
    let r = f
        .downloader()
        .checkpoint(store)
        .part_size(PART)
        .concurrency(1)
        .sync_interval(Some(Duration::ZERO))
        .download(KEY, &f.dest)
        .await
        .expect("the restarted download completes");
    assert_eq!(r.restarts, 1);
    assert_eq!(f.dest_bytes(), f.source.content(KEY).unwrap().to_vec());
    let g = gate.0.lock().unwrap();
    assert!(g.syncs >= 2, "syncs ran: {}", g.syncs);
    assert!(g.sync_errors.is_empty(), "{:?}", g.sync_errors);
}

//! The file store: naming, round trips at scale, O(parts) journal I/O, crash safety at every
//! byte of the journal, corruption handling and misuse.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use checkpoint::codec::{self, FORMAT_VERSION};
use checkpoint::{
    Checkpoint, CheckpointError, CheckpointStore, FileCheckpointStore, MemoryCheckpointStore,
    RECORD_LEN,
};
use common::{checkpoint, digest, id};

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

fn load(store: &impl CheckpointStore, cp: &Checkpoint) -> checkpoint::Loaded {
    store
        .load(&cp.id)
        .expect("load succeeds")
        .expect("a checkpoint is stored")
}

fn done_keys(cp: &Checkpoint) -> Vec<u64> {
    cp.done.keys().copied().collect()
}

/// Saves `base`, then records `journal` in flushes of `batch`; returns the file's bytes and
/// the snapshot's length.
fn write_journal(
    path_dir: &Path,
    base: &Checkpoint,
    journal: &[u64],
    batch: usize,
) -> (FileCheckpointStore, Vec<u8>, usize) {
    let store = FileCheckpointStore::in_dir(path_dir);
    store.save(base).expect("save");
    for chunk in journal.chunks(batch) {
        for &i in chunk {
            store.record(&base.id, i, digest(i)).expect("record");
        }
        store.flush(&base.id).expect("flush");
    }
    let bytes = fs::read(store.path(&base.id)).expect("read checkpoint file");
    let snapshot_len = codec::encode(base).len();
    assert_eq!(bytes.len(), snapshot_len + journal.len() * RECORD_LEN);
    (store, bytes, snapshot_len)
}

#[test]
fn hundred_thousand_part_snapshot_round_trips() {
    let dir = tempdir();
    let store = FileCheckpointStore::in_dir(dir.path());
    let cp = checkpoint("abc/efg/123.jpg", 100_000, 0..100_000);
    let started = Instant::now();
    store.save(&cp).expect("save");
    let loaded = load(&store, &cp);
    eprintln!(
        "100 000-part snapshot: {} bytes, save + load in {:?}",
        store.bytes_written(),
        started.elapsed()
    );
    assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
    assert_eq!(loaded.checkpoint, cp);
    assert_eq!(store.bytes_written(), codec::encode(&cp).len() as u64);
}

/// Invariant 6: checkpoint I/O over a whole download is O(parts). One snapshot, then one
/// fixed-size record per part, whatever the flush cadence.
#[test]
fn journal_io_is_linear_in_parts() {
    const N: u64 = 100_000;
    const FLUSH_EVERY: u64 = 64;
    let dir = tempdir();
    let store = FileCheckpointStore::in_dir(dir.path());
    let fresh = checkpoint("big.bin", N, []);
    let started = Instant::now();
    store.save(&fresh).expect("save");
    let snapshot_len = store.bytes_written();
    for i in 0..N {
        store.record(&fresh.id, i, digest(i)).expect("record");
        if (i + 1) % FLUSH_EVERY == 0 {
            store.flush(&fresh.id).expect("flush");
        }
    }
    store.flush(&fresh.id).expect("final flush");
    let elapsed = started.elapsed();
    let written = store.bytes_written();
    let linear_bound = snapshot_len + N * RECORD_LEN as u64 + 4096;
    assert!(written <= linear_bound, "{written} > {linear_bound}");
    assert_eq!(written, snapshot_len + N * RECORD_LEN as u64);

    // What rewriting the snapshot at every flush would have cost: snapshot k holds 64·k parts.
    let full_len = codec::encode(&checkpoint("big.bin", N, 0..N)).len() as u64;
    let per_part = (full_len - snapshot_len) as f64 / N as f64;
    let flushes = N.div_ceil(FLUSH_EVERY);
    let quadratic: f64 = (1..=flushes)
        .map(|k| snapshot_len as f64 + per_part * (k * FLUSH_EVERY).min(N) as f64)
        .sum();
    eprintln!(
        "{N} parts, flush every {FLUSH_EVERY}: journal wrote {written} bytes in {elapsed:?}; \
         snapshot-per-flush would write ~{quadratic:.0} bytes ({:.0}x more)",
        quadratic / written as f64
    );
    assert!((written as f64) * 100.0 < quadratic);

    let started = Instant::now();
    let loaded = load(&store, &fresh);
    eprintln!("loading {N} journaled parts took {:?}", started.elapsed());
    assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
    assert_eq!(loaded.checkpoint.done.len(), N as usize);
    assert_eq!(loaded.checkpoint, checkpoint("big.bin", N, 0..N));
}

/// A crash at any byte of an append leaves a file `load` accepts, holding exactly the records
/// written in full before that byte: never an error, never part of a record.
#[test]
fn crash_at_every_byte_of_the_journal_loads_the_whole_records_before_it() {
    let dir = tempdir();
    let base = checkpoint("k", 40, [0, 7]);
    let journal: Vec<u64> = vec![3, 1, 39, 7, 12, 5, 3, 20, 21, 22, 30];
    let (store, bytes, snap) = write_journal(dir.path(), &base, &journal, 4);
    let path = store.path(&base.id);
    for cut in snap..=bytes.len() {
        fs::write(&path, &bytes[..cut]).expect("write truncated copy");
        let loaded = load(&store, &base);
        let whole = (cut - snap) / RECORD_LEN;
        let mut want = base.clone();
        want.done
            .extend(journal[..whole].iter().map(|&i| (i, digest(i))));
        assert_eq!(loaded.checkpoint, want, "cut at {cut}");
        let torn = (cut - snap) % RECORD_LEN;
        if torn == 0 {
            assert!(loaded.notes.is_empty(), "cut at {cut}: {:?}", loaded.notes);
        } else {
            assert_eq!(loaded.notes.len(), 1, "cut at {cut}");
            let note = &loaded.notes[0];
            let offset = snap + whole * RECORD_LEN;
            assert!(
                note.contains(&format!(
                    "torn checkpoint tail of {torn} bytes at offset {offset}"
                )),
                "{note}"
            );
        }
    }
    // Cutting into the snapshot itself cannot happen (it is renamed into place whole), and
    // would be refused rather than guessed at: damaged while it starts like a checkpoint, and
    // not a checkpoint at all when empty.
    for cut in [1, snap / 2, snap - 1] {
        fs::write(&path, &bytes[..cut]).expect("write truncated copy");
        assert!(matches!(
            store.load(&base.id),
            Err(CheckpointError::Corrupt { .. })
        ));
    }
    fs::write(&path, b"").expect("empty the file");
    assert!(matches!(
        store.load(&base.id),
        Err(CheckpointError::Foreign { .. })
    ));
}

/// A file that only has a checkpoint's name (a downloaded object called `data.rgcp`, say) is
/// never read as a checkpoint nor deleted; neither is another destination's checkpoint.
#[test]
fn foreign_files_at_the_checkpoint_path_are_reported_and_never_deleted() {
    let dir = tempdir();
    let cp = checkpoint("k", 4, [1]);
    let store = FileCheckpointStore::in_dir(dir.path());
    let path = store.path(&cp.id);
    for content in [&b""[..], b"user data", b"\x89RGCKPX\nnot ours at all"] {
        fs::write(&path, content).expect("write");
        let err = store.load(&cp.id).expect_err("not a checkpoint");
        assert!(
            matches!(err, CheckpointError::Foreign { .. }),
            "{content:?}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("move it away"),
            "{msg}"
        );
        assert!(matches!(
            store.delete(&cp.id),
            Err(CheckpointError::Foreign { .. })
        ));
        assert_eq!(fs::read(&path).expect("still there"), content);
    }
    // Another destination's checkpoint (copied here, say): read, but never deleted.
    let mut other = cp.clone();
    other.id.destination = "/elsewhere/out.bin".into();
    fs::write(&path, codec::encode(&other)).expect("write");
    assert_eq!(
        store
            .load(&cp.id)
            .expect("loads")
            .expect("exists")
            .checkpoint,
        other
    );
    let err = store.delete(&cp.id).expect_err("another destination's");
    assert!(err.to_string().contains("/elsewhere/out.bin"), "{err}");
    assert!(path.exists());
    // This destination's checkpoint, damaged or whole, is removed.
    let mut damaged = codec::encode(&cp);
    damaged[30] ^= 1;
    fs::write(&path, &damaged).expect("write");
    store
        .delete(&cp.id)
        .expect("a damaged checkpoint of ours is deleted");
    assert!(!path.exists());
}

/// Leftovers of a `save` interrupted by a crash are removed with the checkpoint; files that
/// only start with the same name are not.
#[test]
fn only_interrupted_saves_are_cleaned_up_beside_the_checkpoint() {
    let dir = tempdir();
    let cp = checkpoint("k", 4, [1]);
    let store = FileCheckpointStore::in_dir(dir.path());
    store.save(&cp).expect("save");
    let path = store.path(&cp.id);
    let name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let leftover = dir.path().join(format!("{name}.tmp-123-4"));
    let empty_leftover = dir.path().join(format!("{name}.tmp-99-0"));
    let notes = dir.path().join(format!("{name}.tmp-notes"));
    let lookalike = dir.path().join(format!("{name}.tmp-1-2"));
    fs::write(&leftover, &codec::encode(&cp)[..10]).expect("write");
    fs::write(&empty_leftover, b"").expect("write");
    fs::write(&notes, b"mine").expect("write");
    fs::write(&lookalike, b"a user's file with a lookalike name").expect("write");
    store.delete(&cp.id).expect("delete");
    assert!(!leftover.exists() && !empty_leftover.exists());
    assert!(notes.exists() && lookalike.exists());
}

#[test]
fn damaged_record_is_ignored_with_everything_after_it() {
    let dir = tempdir();
    let base = checkpoint("k", 16, [15]);
    let journal = [0, 1, 2, 3, 4, 5];
    let (store, bytes, snap) = write_journal(dir.path(), &base, &journal, 2);
    let path = store.path(&base.id);
    let victim = 3;
    let start = snap + victim * RECORD_LEN;
    for pos in start..start + RECORD_LEN {
        let mut damaged = bytes.clone();
        damaged[pos] ^= 0x10;
        fs::write(&path, &damaged).expect("write");
        let loaded = load(&store, &base);
        assert_eq!(done_keys(&loaded.checkpoint), [0, 1, 2, 15], "byte {pos}");
        assert_eq!(
            loaded.notes,
            [format!(
                "ignored a torn checkpoint tail of {} bytes at offset {start} of {} (record \
                 checksum mismatch); the parts it covered will be downloaded again",
                bytes.len() - start,
                path.display()
            )]
        );
    }
}

#[test]
fn damaged_snapshot_is_corrupt_never_trusted() {
    let dir = tempdir();
    let base = checkpoint("k", 8, [1, 2]);
    let (store, bytes, snap) = write_journal(dir.path(), &base, &[3, 4], 1);
    let path = store.path(&base.id);
    for pos in 0..snap {
        let mut damaged = bytes.clone();
        damaged[pos] ^= 0x80;
        fs::write(&path, &damaged).expect("write");
        // Damage to the magic bytes makes the file indistinguishable from somebody else's:
        // reported as not a checkpoint (and so never overwritten), never trusted either way.
        match store.load(&base.id) {
            Err(CheckpointError::Corrupt { location, .. }) if pos >= codec::MAGIC.len() => {
                assert_eq!(location, path.display().to_string())
            }
            Err(CheckpointError::Foreign { location, .. }) if pos < codec::MAGIC.len() => {
                assert_eq!(location, path.display().to_string())
            }
            other => panic!("byte {pos}: expected Corrupt or Foreign, got {other:?}"),
        }
    }
}

#[test]
fn newer_format_version_is_reported_as_such() {
    let dir = tempdir();
    let base = checkpoint("k", 2, [0]);
    let store = FileCheckpointStore::in_dir(dir.path());
    store.save(&base).expect("save");
    let path = store.path(&base.id);
    let bytes = fs::read(&path).expect("read");
    // What a future build would write: same envelope, version 2, sealed with a valid checksum.
    let mut body = bytes[..bytes.len() - 32].to_vec();
    body[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let sum = *blake3::hash(&body).as_bytes();
    body.extend_from_slice(&sum);
    fs::write(&path, &body).expect("write");
    let err = store.load(&base.id).expect_err("refused");
    assert!(
        matches!(
            err,
            CheckpointError::UnsupportedVersion { found, supported, .. }
                if found == FORMAT_VERSION + 1 && supported == FORMAT_VERSION
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("format version {}", FORMAT_VERSION + 1)),
        "{err}"
    );
}

#[test]
fn leftover_temp_files_of_interrupted_saves_are_ignored_and_cleaned() {
    let dir = tempdir();
    let store = FileCheckpointStore::in_dir(dir.path());
    let base = checkpoint("k", 8, [0]);
    let path = store.path(&base.id);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("UTF-8 name")
        .to_owned();
    let temp = |suffix: &str| dir.path().join(format!("{name}.tmp-{suffix}"));
    // A crash before the first rename: only a temp file exists, half written.
    let newer = checkpoint("k", 8, 0..8);
    let newer_bytes = codec::encode(&newer);
    fs::write(temp("4242-0"), &newer_bytes[..newer_bytes.len() / 2]).expect("write");
    assert!(store.load(&base.id).expect("load").is_none());

    store.save(&base).expect("save");
    store.record(&base.id, 5, digest(5)).expect("record");
    store.flush(&base.id).expect("flush");
    // A crash after writing (even syncing) a complete newer snapshot, before its rename.
    fs::write(temp("4242-1"), &newer_bytes).expect("write");
    let loaded = load(&store, &base);
    assert_eq!(done_keys(&loaded.checkpoint), [0, 5]);
    assert!(loaded.notes.is_empty());

    store.delete(&base.id).expect("delete");
    let left: Vec<PathBuf> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn save_replaces_the_snapshot_and_restarts_the_journal() {
    let dir = tempdir();
    let store = FileCheckpointStore::in_dir(dir.path());
    let first = checkpoint("k", 10, [0]);
    store.save(&first).expect("save");
    store.record(&first.id, 1, digest(1)).expect("record");
    store.flush(&first.id).expect("flush");
    store
        .record(&first.id, 2, digest(2))
        .expect("record, never flushed");
    // Compaction: the engine saves everything it knows as one snapshot.
    let compacted = checkpoint("k", 10, [0, 1, 2]);
    store.save(&compacted).expect("save");
    let path = store.path(&first.id);
    assert_eq!(fs::read(&path).expect("read"), codec::encode(&compacted));
    store
        .flush(&first.id)
        .expect("nothing pending: the old buffer went with its snapshot");
    assert_eq!(
        fs::read(&path).expect("read").len(),
        codec::encode(&compacted).len()
    );
    store.record(&first.id, 9, digest(9)).expect("record");
    store.flush(&first.id).expect("flush");
    assert_eq!(done_keys(&load(&store, &first).checkpoint), [0, 1, 2, 9]);
    let only_files: Vec<_> = fs::read_dir(dir.path()).expect("list").collect();
    assert_eq!(only_files.len(), 1, "no temp file left behind");
}

#[test]
fn beside_store_keeps_one_file_next_to_the_destination() {
    let dir = tempdir();
    let dest = dir.path().join("a.tar.gz");
    let store = FileCheckpointStore::beside(&dest);
    let cp = checkpoint("x/y/z", 3, [1]);
    assert_eq!(store.path(&cp.id), dir.path().join("a.tar.gz.rgcp"));
    assert_eq!(
        CheckpointStore::path(&store, &cp.id),
        Some(dir.path().join("a.tar.gz.rgcp"))
    );
    store.save(&cp).expect("save");
    store.record(&cp.id, 2, digest(2)).expect("record");
    store.flush(&cp.id).expect("flush");
    assert_eq!(done_keys(&load(&store, &cp).checkpoint), [1, 2]);
    // Another download's id maps to the same file: load hands back the stored checkpoint,
    // whose id the engine compares with its own, and record refuses to mix the two.
    let foreign = id("other/key");
    let loaded = store.load(&foreign).expect("load").expect("present");
    assert_eq!(loaded.checkpoint.id, cp.id);
    assert!(matches!(
        store.record(&foreign, 0, digest(0)),
        Err(CheckpointError::Misuse(_))
    ));
    assert!(matches!(
        store.flush(&foreign),
        Err(CheckpointError::Misuse(_))
    ));
}

#[test]
fn in_dir_store_creates_its_directory_and_names_files_safely() {
    let dir = tempdir();
    let nested = dir.path().join("state/checkpoints");
    let store = FileCheckpointStore::in_dir(&nested);
    let with_slash = FileCheckpointStore::in_dir(format!("{}/", nested.display()));
    for key in [
        "../../escape",
        "a/../../etc/passwd",
        "..",
        "",
        "日本/語",
        ".hidden",
    ] {
        let cp = checkpoint(key, 2, [0]);
        let path = store.path(&cp.id);
        assert_eq!(path, with_slash.path(&cp.id));
        assert_eq!(path.parent(), Some(nested.as_path()));
        store.save(&cp).expect("save");
        assert!(path.is_file());
        assert_eq!(load(&store, &cp).checkpoint, cp);
        assert_eq!(store.location(&cp.id), path.display().to_string());
    }
    for entry in fs::read_dir(&nested).expect("list") {
        let name = entry.expect("entry").file_name();
        let name = name.to_str().expect("UTF-8");
        assert!(!name.starts_with('.') && name.ends_with(".rgcp"), "{name}");
    }
    assert_eq!(
        fs::read_dir(dir.path()).expect("list").count(),
        1,
        "nothing escaped"
    );
}

#[test]
fn misuse_is_reported_not_written() {
    let dir = tempdir();
    let store = FileCheckpointStore::in_dir(dir.path());
    let cp = checkpoint("k", 4, []);
    let misuse = |r: Result<(), CheckpointError>| matches!(r, Err(CheckpointError::Misuse(_)));
    assert!(
        misuse(store.record(&cp.id, 0, digest(0))),
        "record before save"
    );
    assert!(misuse(store.flush(&cp.id)), "flush before save");
    // A store that only loaded is not appending yet: the engine saves first.
    FileCheckpointStore::in_dir(dir.path())
        .save(&cp)
        .expect("save by another instance");
    assert!(store.load(&cp.id).expect("load").is_some());
    assert!(
        misuse(store.record(&cp.id, 0, digest(0))),
        "record after load only"
    );
    store.save(&cp).expect("save");
    let err = store
        .record(&cp.id, 4, digest(4))
        .expect_err("part past the end");
    assert!(err.to_string().contains("only 4 parts"), "{err}");
    store.delete(&cp.id).expect("delete");
    assert!(
        misuse(store.record(&cp.id, 0, digest(0))),
        "record after delete"
    );
    assert_eq!(
        store.bytes_written(),
        codec::encode(&cp).len() as u64,
        "nothing but the one snapshot was written"
    );
}

#[test]
fn delete_removes_the_file_and_is_idempotent() {
    let dir = tempdir();
    let store = FileCheckpointStore::in_dir(dir.path());
    let cp = checkpoint("k", 4, [0]);
    store.delete(&cp.id).expect("nothing to delete");
    store.save(&cp).expect("save");
    store.record(&cp.id, 1, digest(1)).expect("record");
    store.delete(&cp.id).expect("delete");
    assert!(!store.path(&cp.id).exists());
    assert!(store.load(&cp.id).expect("load").is_none());
    store.delete(&cp.id).expect("delete again");
}

#[test]
fn unreadable_location_is_an_io_error_naming_the_path() {
    let dir = tempdir();
    let store = FileCheckpointStore::in_dir(dir.path());
    let cp = checkpoint("k", 1, []);
    fs::create_dir(store.path(&cp.id)).expect("a directory where the file should be");
    let err = store.load(&cp.id).expect_err("cannot read a directory");
    assert!(
        matches!(err, CheckpointError::Io { op: "read", .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&store.path(&cp.id).display().to_string())
    );
}

/// Workers record while the engine flushes: nothing is lost or torn.
#[test]
fn concurrent_records_and_flushes_lose_nothing() {
    const N: u64 = 4_000;
    const THREADS: u64 = 4;
    let dir = tempdir();
    let store = Arc::new(FileCheckpointStore::in_dir(dir.path()));
    let cp = checkpoint("k", N, []);
    store.save(&cp).expect("save");
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let store = Arc::clone(&store);
            let id = cp.id.clone();
            s.spawn(move || {
                for i in (t..N).step_by(THREADS as usize) {
                    store.record(&id, i, digest(i)).expect("record");
                    if i % 50 == t {
                        store.flush(&id).expect("flush");
                    }
                }
                store.flush(&id).expect("flush");
            });
        }
    });
    let loaded = load(&*store, &cp);
    assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
    assert_eq!(loaded.checkpoint, checkpoint("k", N, 0..N));
    assert_eq!(
        store.bytes_written(),
        (codec::encode(&cp).len() + N as usize * RECORD_LEN) as u64
    );
}

/// The memory store is a faithful stand-in: the same calls produce the same bytes.
#[test]
fn memory_store_holds_the_same_bytes_as_the_file_store() {
    let dir = tempdir();
    let file = FileCheckpointStore::in_dir(dir.path());
    let memory = MemoryCheckpointStore::new();
    let stores: [&dyn CheckpointStore; 2] = [&file, &memory];
    let cp = checkpoint("k", 30, [0, 1, 2]);
    for store in stores {
        store.save(&cp).expect("save");
        for batch in [&[3u64, 4][..], &[29], &[3, 10, 11, 12]] {
            for &i in batch {
                store.record(&cp.id, i, digest(i)).expect("record");
            }
            store.flush(&cp.id).expect("flush");
        }
        store
            .record(&cp.id, 13, digest(13))
            .expect("record, never flushed");
    }
    let on_disk = fs::read(file.path(&cp.id)).expect("read");
    assert_eq!(memory.raw(&cp.id).expect("raw"), on_disk);
    assert_eq!(memory.bytes_written(), file.bytes_written());
    let want: BTreeMap<_, _> = [0, 1, 2, 3, 4, 10, 11, 12, 29]
        .map(|i| (i, digest(i)))
        .into();
    assert_eq!(load(&file, &cp).checkpoint.done, want);
    assert_eq!(load(&memory, &cp).checkpoint.done, want);
}

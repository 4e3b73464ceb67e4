//! A local file changed while it is being downloaded never yields mixed bytes (issue 18).
//!
//! The change is made from the engine's own progress callback, which runs synchronously
//! between two blocks of a part's body (one job, local files read 1 MiB per block, progress
//! reported after every block): the first block of the chosen part was read before the change,
//! the rest after. Each kind of change — rewritten in place, truncated, appended to, another
//! file renamed over it — is made in the first, a middle and the last part. With
//! `--on-change fail` the download must stop with `Changed` and leave no DEST; with the
//! default `restart` it must finish with exactly the new content.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use backend_object_store::{StoreOptions, from_url};
use resume_core::{Downloader, Error, Event, OnChange};

const MIB: u64 = 1 << 20;
/// Three parts of two blocks each.
const PART: u64 = 2 * MIB;
const SIZE: u64 = 3 * PART;

#[derive(Debug, Clone, Copy)]
enum Change {
    /// `dd conv=notrunc` of other bytes over the whole file.
    RewriteInPlace,
    /// Cut to the middle of the part being read.
    Truncate,
    /// Bytes added at the end; the range being read is untouched.
    Append,
    /// Another file renamed over the path; the open file is untouched.
    RenameOver,
}

impl Change {
    fn apply(self, path: &Path, at: u64) {
        use std::io::Write;
        match self {
            Change::RewriteInPlace => {
                let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                f.write_all(&vec![b'B'; SIZE as usize]).unwrap();
            }
            Change::Truncate => {
                let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                f.set_len(at + MIB / 2).unwrap();
            }
            Change::Append => {
                let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
                f.write_all(b"appended").unwrap();
            }
            Change::RenameOver => {
                let tmp = path.with_extension("incoming");
                std::fs::write(&tmp, vec![b'B'; SIZE as usize]).unwrap();
                std::fs::rename(&tmp, path).unwrap();
            }
        }
    }
}

struct Scene {
    dir: tempfile::TempDir,
    src: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().canonicalize().unwrap().join("obj.bin");
        test_support::write_with_old_mtime(&src, &vec![b'A'; SIZE as usize]);
        Self { dir, src }
    }

    /// Downloads with one job and `--on-change fail`, running `change` on the source when part
    /// `part` is recorded done; returns the `Changed` error's detail (and checks no DEST).
    async fn changed_after_part(
        &self,
        part: u64,
        change: impl Fn(&Path) + Send + Sync + 'static,
    ) -> String {
        let url = url::Url::from_file_path(&self.src).unwrap();
        let (source, key) = from_url(url.as_str(), &StoreOptions::new().no_env()).unwrap();
        let dest = self.dir.path().join("out.bin");
        let src = self.src.clone();
        let result = Downloader::new(source)
            .part_size(PART)
            .concurrency(1)
            .no_checkpoint()
            .on_change(OnChange::Fail)
            .on_progress(move |ev| {
                if let Event::PartDone { part: p, .. } = ev
                    && *p == part
                {
                    change(&src);
                }
            })
            .download(&key, &dest)
            .await;
        assert!(!dest.exists());
        match result {
            Err(Error::Changed { detail, .. }) => detail,
            other => panic!("expected Changed, got {other:?}"),
        }
    }

    /// Downloads with one job, applying `change` when the first block of `part` has been
    /// received (once).
    async fn download(
        &self,
        change: Change,
        part: u64,
        on_change: OnChange,
    ) -> (Result<resume_core::Report, Error>, Vec<String>, PathBuf) {
        let url = url::Url::from_file_path(&self.src).unwrap();
        let (source, key) = from_url(url.as_str(), &StoreOptions::new().no_env()).unwrap();
        let dest = self.dir.path().join(format!("out-{change:?}-{part}.bin"));
        let trigger = part * PART + MIB;
        let src = self.src.clone();
        let fired = Mutex::new(false);
        let restarts = std::sync::Arc::new(Mutex::new(Vec::new()));
        let seen = restarts.clone();
        let result = Downloader::new(source)
            .part_size(PART)
            .concurrency(1)
            .no_checkpoint()
            .on_change(on_change)
            .progress_interval(Duration::ZERO)
            .on_progress(move |ev| match ev {
                Event::Progress { done_bytes, .. } if *done_bytes == trigger => {
                    let mut fired = fired.lock().unwrap();
                    if !*fired {
                        *fired = true;
                        change.apply(&src, trigger);
                    }
                }
                Event::Restarted { reason, .. } => seen.lock().unwrap().push(reason.clone()),
                _ => {}
            })
            .download(&key, &dest)
            .await;
        let restarts = restarts.lock().unwrap().clone();
        (result, restarts, dest)
    }
}

const CHANGES: [Change; 4] = [
    Change::RewriteInPlace,
    Change::Truncate,
    Change::Append,
    Change::RenameOver,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_during_any_part_stops_the_download_with_changed_and_writes_no_dest() {
    for change in CHANGES {
        for part in [0, 1, 2] {
            let scene = Scene::new();
            let (result, _, dest) = scene.download(change, part, OnChange::Fail).await;
            let what = format!("{change:?} during part {part}");
            match result {
                Err(Error::Changed { detail, .. }) => {
                    assert!(
                        detail.contains(&format!("part {part}")),
                        "{what}: detected in another part: {detail}"
                    );
                    assert!(detail.contains("obj.bin"), "{what}: {detail}");
                }
                other => panic!("{what}: expected Changed, got {other:?}"),
            }
            assert!(!dest.exists(), "{what}: DEST was written");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_restart_the_download_ends_with_exactly_the_new_content() {
    for change in CHANGES {
        for part in [0, 2] {
            let scene = Scene::new();
            let (result, restarts, dest) = scene.download(change, part, OnChange::Restart).await;
            let what = format!("{change:?} during part {part}");
            let report = result.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(report.restarts, 1, "{what}: {restarts:?}");
            assert!(
                restarts[0].contains("changed while it was being read"),
                "{what}: {restarts:?}"
            );
            let now = std::fs::read(&scene.src).unwrap();
            let got = std::fs::read(&dest).unwrap();
            assert!(got == now, "{what}: DEST is not the file's current content");
            let mixed = got.contains(&b'A') && got.contains(&b'B');
            assert!(!mixed, "{what}: mixed bytes");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_between_parts_is_caught_when_the_next_part_opens_the_file() {
    let detail = Scene::new()
        .changed_after_part(0, |src| Change::RewriteInPlace.apply(src, 0))
        .await;
    assert!(detail.contains("part 1"), "{detail}");
}

/// A change after the last block was read and before the rename (here: same size, same
/// mtime, other bytes; only the ctime tells) is caught by the engine's last stat before the
/// rename, for every source whose bytes no store checksum covers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_after_the_last_read_is_caught_by_the_stat_before_the_rename() {
    let detail = Scene::new()
        .changed_after_part(2, |src| {
            let before = std::fs::metadata(src).unwrap().modified().unwrap();
            let f = std::fs::OpenOptions::new().write(true).open(src).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&f, b"B", 10).unwrap();
            f.set_modified(before).unwrap();
        })
        .await;
    assert!(detail.contains("just before the final rename"), "{detail}");
}

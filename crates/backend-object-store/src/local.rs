//! Local files (`LocalFileSystem`): an identity that changes with the content, and a body
//! that is read in large blocks and re-checked after its last one.
//!
//! **Change detection.** object_store checks `If-Match` only when a read opens the file, and
//! its etag (inode, mtime in µs, size) cannot see a rewrite that keeps them (`touch -r`, a
//! `cp -p` in place). A file rewritten while a part is being read would then hand the engine
//! bytes of two versions, and local files publish no checksum to catch it afterwards. So a
//! local source pins the file by a [`FileId`] — device, inode, size, mtime and ctime in
//! nanoseconds (a content change always moves the ctime, even when the mtime is put back) —
//! which becomes the object's etag, and every ranged read:
//!
//! 1. opens the file and compares the open file's identity with the pinned one (`Changed`
//!    if it differs: rewritten, truncated, appended to, or another file renamed over it);
//! 2. streams the range;
//! 3. after the last block, compares the identity of the open file (`fstat`: an in-place
//!    write, truncation or append during the read) **and** of the path (`stat`: a rename
//!    over it or a deletion during the read) with the pinned one again, and ends the body with
//!    `Changed` instead of success if either differs. A file that ends early is checked the
//!    same way before it is reported as a short read.
//!
//! Every byte of a part is therefore read between two checks that saw the pinned file, so the
//! engine never records a part whose bytes mix versions. What no client can see: a rewrite
//! that leaves every field equal, i.e. within one tick of the file system's timestamp clock
//! (kernels before 6.13 use a coarse clock, a few ms) of the previous change *and* of the
//! `stat` that pinned it — or a deliberate forgery of the ctime (setting the clock back).
//!
//! **Blocks.** For a local file object_store hands back the open file
//! (`GetResultPayload::File`) and its own `into_stream` reads it 8 KiB per blocking-pool round
//! trip: 131 072 hand-offs per GiB, which made `file://` downloads several times slower than
//! the disk. Reading 1 MiB per round trip costs the same syscalls as `cp` and leaves the
//! engine's buffering unchanged.

use std::fs::{File, Metadata};
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use resume_core::{SourceError, SourceErrorKind};

use crate::error::{Op, map_error};

/// Bytes per blocking read.
const BLOCK: u64 = 1 << 20;

/// What identifies one version of a local file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

/// Marks an etag minted here (never sent to a server, never confused with object_store's
/// `"inode-mtime-size"`).
const TAG_PREFIX: &str = "\"rg-file:";

impl FileId {
    #[cfg(unix)]
    pub(crate) fn of(m: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        }
    }

    #[cfg(not(unix))]
    pub(crate) fn of(m: &Metadata) -> Self {
        let mtime_ns = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        Self {
            dev: 0,
            ino: 0,
            size: m.len(),
            mtime_ns,
            ctime_ns: 0,
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The etag form: `"rg-file:DEV-INO-SIZE-MTIME-CTIME"` (hex, times in ns).
    pub(crate) fn tag(&self) -> String {
        format!(
            "{TAG_PREFIX}{:x}-{:x}-{:x}-{:x}-{:x}\"",
            self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns
        )
    }

    pub(crate) fn parse_tag(tag: &str) -> Option<Self> {
        let body = tag.strip_prefix(TAG_PREFIX)?.strip_suffix('"')?;
        let mut it = body.split('-');
        let mut next = || it.next();
        let id = Self {
            dev: u64::from_str_radix(next()?, 16).ok()?,
            ino: u64::from_str_radix(next()?, 16).ok()?,
            size: u64::from_str_radix(next()?, 16).ok()?,
            mtime_ns: i128::from_str_radix(next()?, 16).ok()?,
            ctime_ns: i128::from_str_radix(next()?, 16).ok()?,
        };
        next().is_none().then_some(id)
    }

    /// What differs from `pinned`, in words.
    fn differences(&self, pinned: &FileId) -> String {
        let mut d = Vec::new();
        if (self.dev, self.ino) != (pinned.dev, pinned.ino) {
            d.push("another file is now at its path (replaced or renamed over)".to_owned());
        }
        if self.size != pinned.size {
            d.push(format!("size {} → {} bytes", pinned.size, self.size));
        }
        if self.mtime_ns != pinned.mtime_ns {
            d.push("modification time changed".to_owned());
        }
        if self.ctime_ns != pinned.ctime_ns && d.is_empty() {
            d.push(
                "status-change time changed (rewritten with its modification time put back, \
                 or its metadata or links changed)"
                    .to_owned(),
            );
        }
        d.join(", ")
    }
}

/// `Changed` for a file that is no longer `pinned`.
pub(crate) fn changed(
    path: &Path,
    key: &str,
    now: Option<&FileId>,
    pinned: &FileId,
) -> SourceError {
    let what = match now {
        Some(now) => now.differences(pinned),
        None => "it was removed".to_owned(),
    };
    SourceError::new(
        SourceErrorKind::Changed,
        format!(
            "local file {} (key {key:?}) changed while it was being read: {what}; bytes read \
             across a change cannot be trusted",
            path.display()
        ),
    )
}

/// The identity of the file now at `path`, `None` if there is none.
fn id_at(path: &Path) -> std::io::Result<Option<FileId>> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(FileId::of(&m))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the open `file` and the file at `path` are both still `pinned`; the error to end
/// the body with otherwise.
fn recheck(file: &File, path: &Path, pinned: &FileId, key: &str) -> Result<(), SourceError> {
    let open = FileId::of(&file.metadata().map_err(|e| fail(e, key))?);
    let at_path = id_at(path).map_err(|e| fail(e, key))?;
    // Another file at the path explains the open file's change too (its ctime moves when it
    // loses its name), so report that first.
    let replaced = at_path
        .as_ref()
        .is_none_or(|p| (p.dev, p.ino) != (pinned.dev, pinned.ino));
    if replaced {
        return Err(changed(path, key, at_path.as_ref(), pinned));
    }
    if open != *pinned {
        return Err(changed(path, key, Some(&open), pinned));
    }
    if at_path.as_ref() != Some(pinned) {
        return Err(changed(path, key, at_path.as_ref(), pinned));
    }
    Ok(())
}

/// The bytes `range` of `file` (opened from `path` and found to be `pinned`), as a stream of
/// blocks of at most [`BLOCK`] bytes, ended by a re-check of the file and the path: a change
/// during the read ends the body with `Changed` after its last block instead of success. A
/// file that ends early (shrunk while being read) is `Changed` too; only a short read of an
/// unchanged file is a `Transient` failure.
pub(crate) fn body(
    file: File,
    path: PathBuf,
    pinned: FileId,
    range: Range<u64>,
    key: &str,
) -> BoxStream<'static, Result<Bytes, SourceError>> {
    let key = key.to_owned();
    let state = State {
        file: Some(file),
        pos: range.start,
        seeked: false,
    };
    futures::stream::unfold(state, move |mut st| {
        let key = key.clone();
        let path = path.clone();
        let end = range.end;
        async move {
            let file = st.file.take()?;
            if st.pos >= end {
                // After the last block: the read is good only if nothing changed meanwhile.
                let check = tokio::task::spawn_blocking(move || {
                    recheck(&file, &path, &pinned, &key).map(|()| file)
                })
                .await;
                return match check {
                    Ok(Ok(_file)) => None,
                    Ok(Err(e)) => Some((Err(e), st)),
                    Err(e) => Some((Err(join_failed(e)), st)),
                };
            }
            let want = (end - st.pos).min(BLOCK);
            let (pos, seeked) = (st.pos, st.seeked);
            let read = tokio::task::spawn_blocking(move || {
                let mut file = file;
                let result = read_block(&mut file, pos, want, seeked);
                let result = match result {
                    // A file that ends early has most likely been truncated or rewritten:
                    // say so rather than leave the engine to retry a short read.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        match recheck(&file, &path, &pinned, &key) {
                            Err(changed) => Err(changed),
                            Ok(()) => Err(fail(e, &key)),
                        }
                    }
                    Err(e) => Err(fail(e, &key)),
                    Ok(block) => Ok(block),
                };
                (file, result)
            })
            .await;
            let (file, result) = match read {
                Ok(done) => done,
                Err(e) => return Some((Err(join_failed(e)), st)),
            };
            st.seeked = true;
            match result {
                Ok(block) => {
                    st.pos += block.len() as u64;
                    st.file = Some(file);
                    Some((Ok(block), st))
                }
                Err(e) => Some((Err(e), st)),
            }
        }
    })
    .boxed()
}

struct State {
    /// `None` once the body has failed (the stream then ends).
    file: Option<File>,
    pos: u64,
    seeked: bool,
}

fn read_block(file: &mut File, pos: u64, want: u64, seeked: bool) -> std::io::Result<Bytes> {
    if !seeked {
        file.seek(SeekFrom::Start(pos))?;
    }
    // `read_to_end` fills the spare capacity without zeroing it first.
    let mut block = Vec::with_capacity(usize::try_from(want).unwrap_or(usize::MAX));
    file.by_ref().take(want).read_to_end(&mut block)?;
    if (block.len() as u64) < want {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "the file ended at byte {} while bytes up to {} were expected; it may be being \
                 rewritten",
                pos + block.len() as u64,
                pos + want
            ),
        ));
    }
    Ok(Bytes::from(block))
}

fn join_failed(e: tokio::task::JoinError) -> SourceError {
    SourceError::transient(format!("a blocking read of a local file failed: {e}"))
}

fn fail(source: std::io::Error, key: &str) -> SourceError {
    let err = object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(source),
    };
    map_error(&err, Op::Body, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    struct Fixture {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    fn file_with(bytes: &[u8]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obj.bin");
        std::fs::write(&path, bytes).unwrap();
        // An old mtime: any later write moves it, however coarse the file system's clock.
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        Fixture { _dir: dir, path }
    }

    impl Fixture {
        fn open(&self) -> (File, FileId) {
            let file = File::open(&self.path).unwrap();
            let id = FileId::of(&file.metadata().unwrap());
            (file, id)
        }
    }

    async fn collect(
        s: &mut BoxStream<'static, Result<Bytes, SourceError>>,
    ) -> (Vec<u8>, Vec<usize>, Option<SourceError>) {
        let (mut all, mut sizes) = (Vec::new(), Vec::new());
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => {
                    sizes.push(b.len());
                    all.extend_from_slice(&b);
                }
                Err(e) => return (all, sizes, Some(e)),
            }
        }
        (all, sizes, None)
    }

    async fn read(f: &Fixture, range: Range<u64>) -> (Vec<u8>, Vec<usize>, Option<SourceError>) {
        let (file, id) = f.open();
        collect(&mut body(file, f.path.clone(), id, range, "k")).await
    }

    #[tokio::test]
    async fn streams_exactly_the_range_in_blocks_of_at_most_one_mib() {
        let data: Vec<u8> = (0..(2 * BLOCK + 12_345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let f = file_with(&data);
        let range = 1_000..(2 * BLOCK + 10_000);
        let (got, sizes, err) = read(&f, range.clone()).await;
        assert!(err.is_none(), "{err:?}");
        assert!(
            got == data[range.start as usize..range.end as usize],
            "wrong bytes"
        );
        assert_eq!(sizes, vec![BLOCK as usize, BLOCK as usize, 9_000]);
    }

    #[tokio::test]
    async fn an_empty_range_is_an_empty_body() {
        let f = file_with(b"abc");
        let (got, sizes, err) = read(&f, 2..2).await;
        assert!(
            got.is_empty() && sizes.is_empty() && err.is_none(),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn an_unchanged_file_shorter_than_the_range_is_a_transient_short_read() {
        let f = file_with(&[9u8; 5_000]);
        let (got, _, err) = read(&f, 1_000..8_000).await;
        assert_eq!(got.len(), 0, "a short block is not delivered");
        let err = err.expect("a short file must fail the body");
        assert_eq!(err.kind, SourceErrorKind::Transient);
        assert!(err.to_string().contains("ended at byte 5000"), "{err}");
    }

    #[test]
    fn tags_round_trip_and_foreign_etags_are_not_tags() {
        let f = file_with(b"abc");
        let (_, id) = f.open();
        assert_eq!(FileId::parse_tag(&id.tag()), Some(id));
        for other in [
            "\"1f-5e0-3\"",
            "",
            "\"rg-file:1-2\"",
            "\"rg-file:1-2-3-4-5-6\"",
        ] {
            assert_eq!(FileId::parse_tag(other), None, "{other}");
        }
    }

    /// Reads the first block, lets `change` act on the file, then reads the rest: the body
    /// must end with `Changed`, never with success.
    async fn change_during_read(change: impl FnOnce(&Path)) -> SourceError {
        let data = vec![b'A'; (3 * BLOCK) as usize];
        let f = file_with(&data);
        let (file, id) = f.open();
        let mut s = body(file, f.path.clone(), id, 0..3 * BLOCK, "k");
        let first = s.next().await.unwrap().expect("the first block");
        assert_eq!(first.len() as u64, BLOCK);
        change(&f.path);
        let (_, _, err) = collect(&mut s).await;
        let err = err.expect("a change during the read must fail the body");
        assert_eq!(err.kind, SourceErrorKind::Changed, "{err}");
        err
    }

    #[tokio::test]
    async fn in_place_rewrite_truncate_append_and_rename_during_a_read_are_changes() {
        // In place, same size (what `dd conv=notrunc` does).
        let e = change_during_read(|p| {
            let mut f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.write_all(&vec![b'B'; BLOCK as usize]).unwrap();
        })
        .await;
        assert!(
            e.to_string().contains("changed while it was being read"),
            "{e}"
        );
        // Truncated below the range: the early end is reported as the change it is.
        let e = change_during_read(|p| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(BLOCK + 10)
                .unwrap();
        })
        .await;
        assert!(e.to_string().contains("size"), "{e}");
        // Appended to: the range is still all there, but the object is not the same.
        change_during_read(|p| {
            let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
            f.write_all(b"more").unwrap();
        })
        .await;
        // Another file renamed over the path: the open file is intact, the object is not.
        let e = change_during_read(|p| {
            let tmp = p.with_extension("new");
            std::fs::write(&tmp, vec![b'B'; (3 * BLOCK) as usize]).unwrap();
            std::fs::rename(&tmp, p).unwrap();
        })
        .await;
        assert!(e.to_string().contains("renamed over"), "{e}");
        // Removed.
        let e = change_during_read(|p| std::fs::remove_file(p).unwrap()).await;
        assert!(e.to_string().contains("removed"), "{e}");
    }

    #[tokio::test]
    async fn a_rewrite_that_puts_the_mtime_back_is_still_a_change() {
        change_during_read(|p| {
            let before = std::fs::metadata(p).unwrap().modified().unwrap();
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            (&f).write_all(b"B").unwrap();
            f.set_modified(before).unwrap();
            assert_eq!(std::fs::metadata(p).unwrap().modified().unwrap(), before);
        })
        .await;
    }
}

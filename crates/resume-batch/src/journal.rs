//! The job journal: what a job started and finished, durable across `kill -9`, append-only.
//!
//! ```text
//! header   magic "\x89RGJOB\n\0" · u32 LE version (3; 2 is read) · u32 LE identity length ·
//!          identity
//!          (UTF-8: source, prefix, DEST, selection, skip rule, mapping version) ·
//!          blake3 of everything before (32 bytes)
//! record*  u32 LE body length · body · tag (16 bytes)
//!          tag = blake3_keyed(derive_key(CONTEXT, header checksum), seq ‖ length ‖ body)[..16]
//!          body = kind u8 · fields:
//!            1 Started   flags u8 (bit 0: the download keeps its own checkpoint) · key ·
//!                        page u64
//!            2 Done      key · size u64 · etag (u8 0/1 · string) · crc64 (u8 0/1 · u64) ·
//!                        page u64
//!            3 Listed    objects u64 · bytes u64 · next token (u8 0/1 · string)
//!            4 Settled   page u64 · objects u64 · bytes u64 · next token (u8 0/1 · string)
//!            5 Failed    key · page u64 (version 3)
//!            6 Dropped   key (version 3)
//!          string = u32 LE length · UTF-8 bytes
//! ```
//!
//! - **Torn tail.** Records are read up to the first one that is incomplete, too long or whose
//!   tag does not verify; the rest is a torn tail from a crash, reported and cut off before
//!   anything is appended. The tag's key comes from the header's checksum and covers the
//!   record's position, so records can be neither moved nor replayed onto another job's
//!   journal.
//! - **Identity.** A journal whose header does not verify, or names another job (another
//!   source, prefix, DEST, selection, skip rule or mapping), is never applied: it is reported
//!   and replaced.
//! - **Settled pages.** `page` numbers the listing's pages from 0 across runs. A page is
//!   *settled* once every object on it is done, up to date, skipped, excluded or failed (an
//!   interrupted object keeps its page, and every later one, unsettled); settled pages are
//!   recorded in order with the listing token after them, so a rerun continues the listing
//!   there instead of listing from the start (the [`Lister`](resume_core::Lister) contract:
//!   tokens stay valid in a new process), and forgets what it loaded about their objects —
//!   except the failed ones: a `Failed` record carries an object's key past its page's
//!   settlement, and every rerun retries it (one stat, then the download) until a `Done`
//!   or a `Dropped` (deleted from the source) ends it. So a rerun after failures costs
//!   O(failed objects) requests beyond the part of the listing no run settled.
//! - **Cost.** One appended record per started and per finished object, plus two per listed
//!   page: O(objects) bytes and writes over a whole job (about 70 bytes + the key twice per
//!   object), never a rewrite. Loading keeps, for the objects of pages not settled, a 16-byte
//!   hash of each key (not the key), the size, a hash of the etag and the page: memory
//!   O(objects in unsettled pages), which a job without failures keeps to the few pages it
//!   had in flight whatever the number of keys.
//! - **fsync policy.** Every record is one `write` as soon as it is known, so a killed
//!   process (`kill -9`) loses nothing it recorded. `fdatasync` runs at most once a second
//!   (group commit) and when the job ends: a power loss forgets at most the last second's
//!   records. That is always safe, because a record only ever *saves* work: an object is
//!   recorded done after the engine has fsynced and renamed its file, so a lost Done record
//!   costs a re-check (or re-download) of that object, never a wrong file.
//! - **One job per journal.** The file is locked (`flock`-style, advisory) while a job runs,
//!   so a second job into the same DEST stops at once.
//!
//! This file is the journal file (header, tags, torn tail, lock, group commit); a record and
//! its body's encoding are in `record.rs`, what the records add up to in `state.rs`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::JobError;

mod record;
mod state;

pub use record::Record;
use record::{decode, encode};
pub use state::{
    DoneEntry, FailedEntry, JobState, KeyHash, SettledListing, StartedEntry, etag_hash, key_hash,
};

const MAGIC: &[u8; 8] = b"\x89RGJOB\n\0";
/// 2: pages in Started/Done, Settled records. 3: Failed and Dropped records (a version-2
/// journal is read as it is, and continued: its records are a subset; a build that reads
/// only version 2 cuts such a journal at the first new record, as a torn tail). A version-1
/// journal is reported and replaced (the skip rules still recognise the files it finished).
const VERSION: u32 = 3;
/// The oldest version read.
const OLDEST_READ: u32 = 2;
const CONTEXT: &str = "resume-get job journal v1 record tag";
const TAG_LEN: usize = 16;
/// Longer record bodies are torn (a key is at most 1 024 bytes on S3 and OSS).
const MAX_BODY: u32 = 64 * 1024;
/// Longest identity accepted in a header.
const MAX_IDENTITY: u32 = 1 << 20;
/// Group commit: at most one fdatasync per this interval while the job runs.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// How the journal was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// None existed: a new job.
    Fresh,
    /// This job's journal: `records` applied; `torn` describes a torn tail that was cut.
    Resumed { records: u64, torn: Option<String> },
    /// A journal that could not be applied (another job's, or damaged), replaced.
    Replaced { reason: String },
}

/// An open journal, locked for this job.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    key: [u8; 32],
    seq: u64,
    last_sync: Instant,
    dirty: bool,
    bytes_written: u64,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> JobError + 'a {
    move |source| JobError::Journal {
        op,
        path: path.to_owned(),
        source,
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path` for the job named `identity`, locks it, and
    /// returns what earlier runs recorded.
    pub fn open(path: &Path, identity: &str) -> Result<(Self, JobState, Opened), JobError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err("open the job journal", path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(JobError::Locked {
                    path: path.to_owned(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err("lock the job journal", path)(e)),
        }
        let existing = file
            .metadata()
            .map_err(io_err("read the job journal", path))?
            .len();
        let parsed = if existing == 0 {
            None
        } else {
            Some(read(&mut file, identity).map_err(io_err("read the job journal", path))?)
        };
        let (state, opened, key, seq, valid_len) = match parsed {
            None => {
                let (key, len) = write_header(&mut file, identity)
                    .map_err(io_err("write the job journal", path))?;
                (JobState::default(), Opened::Fresh, key, 0, len)
            }
            Some(Err(reason)) => {
                let (key, len) = write_header(&mut file, identity)
                    .map_err(io_err("write the job journal", path))?;
                (
                    JobState::default(),
                    Opened::Replaced { reason },
                    key,
                    0,
                    len,
                )
            }
            Some(Ok(read)) => {
                let opened = Opened::Resumed {
                    records: read.state.records,
                    torn: read.torn,
                };
                (read.state, opened, read.key, read.seq, read.valid_len)
            }
        };
        if valid_len < existing || matches!(opened, Opened::Replaced { .. }) {
            file.set_len(valid_len)
                .map_err(io_err("cut the torn tail of the job journal", path))?;
        }
        file.seek(SeekFrom::Start(valid_len))
            .map_err(io_err("open the job journal", path))?;
        if !matches!(opened, Opened::Resumed { .. }) {
            // The header is durable before any download relies on the journal.
            file.sync_all()
                .map_err(io_err("sync the job journal", path))?;
            if let Some(dir) = path.parent() {
                let _ = File::open(dir).and_then(|d| d.sync_all());
            }
        }
        Ok((
            Self {
                file,
                path: path.to_owned(),
                key,
                seq,
                last_sync: Instant::now(),
                dirty: false,
                bytes_written: 0,
            },
            state,
            opened,
        ))
    }

    /// What the journal at `path` records for the job `identity`, without locking or changing
    /// it (for a dry run); `None` if there is none, or it is another job's or damaged.
    pub fn peek(path: &Path, identity: &str) -> Option<JobState> {
        let mut file = File::open(path).ok()?;
        read(&mut file, identity).ok()?.ok().map(|r| r.state)
    }

    /// Appends `record` (one write); syncs when the last sync is [`SYNC_INTERVAL`] old.
    pub fn append(&mut self, record: &Record) -> Result<(), JobError> {
        let body = encode(record);
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        let mut buf = Vec::with_capacity(4 + body.len() + TAG_LEN);
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&body);
        buf.extend_from_slice(&tag(&self.key, self.seq, &body));
        self.file
            .write_all(&buf)
            .map_err(io_err("append to the job journal", &self.path))?;
        self.seq += 1;
        self.bytes_written += buf.len() as u64;
        self.dirty = true;
        if self.last_sync.elapsed() >= SYNC_INTERVAL {
            self.sync()?;
        }
        Ok(())
    }

    /// fdatasync, if anything was written since the last one.
    pub fn sync(&mut self) -> Result<(), JobError> {
        if self.dirty {
            self.file
                .sync_data()
                .map_err(io_err("sync the job journal", &self.path))?;
            self.dirty = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Bytes appended since the journal was opened.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The job is complete: the journal is deleted (the lock goes with the file).
    pub fn remove(self) -> Result<(), JobError> {
        std::fs::remove_file(&self.path).map_err(io_err("remove the job journal", &self.path))?;
        if let Some(dir) = self.path.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

struct ReadJournal {
    state: JobState,
    key: [u8; 32],
    seq: u64,
    valid_len: u64,
    torn: Option<String>,
}

/// Reads a whole journal: `Ok(Err(reason))` when it cannot be applied to `identity`.
fn read(file: &mut File, identity: &str) -> io::Result<Result<ReadJournal, String>> {
    file.seek(SeekFrom::Start(0))?;
    let mut r = BufReader::with_capacity(256 << 10, file);
    let mut head = [0u8; 16];
    if read_full(&mut r, &mut head)? < head.len() || &head[..8] != MAGIC {
        return Ok(Err(
            "it is not a job journal (damaged, or written by something else)".into(),
        ));
    }
    let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
    if !(OLDEST_READ..=VERSION).contains(&version) {
        return Ok(Err(format!(
            "it has format version {version}; this build reads versions {OLDEST_READ} to \
             {VERSION}"
        )));
    }
    let ident_len = u32::from_le_bytes(head[12..16].try_into().expect("4 bytes"));
    if ident_len > MAX_IDENTITY {
        return Ok(Err("its header is damaged".into()));
    }
    let mut ident = vec![0u8; ident_len as usize];
    let mut sum = [0u8; 32];
    if read_full(&mut r, &mut ident)? < ident.len() || read_full(&mut r, &mut sum)? < sum.len() {
        return Ok(Err("its header is incomplete (damaged)".into()));
    }
    let mut h = blake3::Hasher::new();
    h.update(&head);
    h.update(&ident);
    if h.finalize().as_bytes() != &sum {
        return Ok(Err("its header checksum does not match (damaged)".into()));
    }
    if ident != identity.as_bytes() {
        return Ok(Err(format!(
            "it belongs to another job ({}); this job is {}",
            String::from_utf8_lossy(&ident).replace('\n', " "),
            identity.replace('\n', " ")
        )));
    }
    let key = blake3::derive_key(CONTEXT, &sum);
    let mut out = ReadJournal {
        state: JobState::default(),
        key,
        seq: 0,
        valid_len: (16 + ident.len() + 32) as u64,
        torn: None,
    };
    loop {
        let mut len = [0u8; 4];
        let got = read_full(&mut r, &mut len)?;
        if got == 0 {
            break;
        }
        let torn = |what: &str, out: &mut ReadJournal| {
            out.torn = Some(format!(
                "{what} after {} records (a crash while writing); the records before it are used",
                out.seq
            ));
        };
        if got < 4 {
            torn("an incomplete record", &mut out);
            break;
        }
        let n = u32::from_le_bytes(len);
        if n > MAX_BODY {
            torn("a damaged record", &mut out);
            break;
        }
        let mut body = vec![0u8; n as usize];
        let mut t = [0u8; TAG_LEN];
        if read_full(&mut r, &mut body)? < body.len() || read_full(&mut r, &mut t)? < TAG_LEN {
            torn("an incomplete record", &mut out);
            break;
        }
        if tag(&key, out.seq, &body) != t {
            torn("a record that does not verify", &mut out);
            break;
        }
        let Some(record) = decode(&body) else {
            torn("a record that does not decode", &mut out);
            break;
        };
        out.state.apply(record);
        out.seq += 1;
        out.valid_len += (4 + body.len() + TAG_LEN) as u64;
    }
    Ok(Ok(out))
}

/// Reads until `buf` is full or the end: the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn write_header(file: &mut File, identity: &str) -> io::Result<([u8; 32], u64)> {
    let mut buf = Vec::with_capacity(16 + identity.len() + 32);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&VERSION.to_le_bytes());
    let len = u32::try_from(identity.len()).map_err(|_| io::Error::other("identity too long"))?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(identity.as_bytes());
    let sum = *blake3::hash(&buf).as_bytes();
    buf.extend_from_slice(&sum);
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&buf)?;
    Ok((blake3::derive_key(CONTEXT, &sum), buf.len() as u64))
}

fn tag(key: &[u8; 32], seq: u64, body: &[u8]) -> [u8; TAG_LEN] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(&seq.to_le_bytes());
    h.update(&(body.len() as u64).to_le_bytes());
    h.update(body);
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&h.finalize().as_bytes()[..TAG_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "source=mock://b\nprefix=p/\ndest=/d";

    fn done(i: u64) -> Record {
        Record::Done {
            key: format!("p/k{i}"),
            size: i,
            etag: i.is_multiple_of(2).then(|| format!("\"e{i}\"")),
            crc64: i.is_multiple_of(3).then_some(i * 7),
            page: i / 4,
        }
    }

    #[test]
    fn records_round_trip_through_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.rgjob");
        let (mut j, state, opened) = Journal::open(&path, ID).unwrap();
        assert_eq!(opened, Opened::Fresh);
        assert!(state.done.is_empty());
        j.append(&Record::Started {
            key: "p/k1".into(),
            checkpointed: true,
            page: 0,
        })
        .unwrap();
        j.append(&Record::Started {
            key: "p/big".into(),
            checkpointed: true,
            page: 0,
        })
        .unwrap();
        for i in 0..5 {
            j.append(&done(i)).unwrap();
        }
        j.append(&Record::Listed {
            objects: 5,
            bytes: 10,
            next: Some("tok".into()),
        })
        .unwrap();
        drop(j);
        let (_j, state, opened) = Journal::open(&path, ID).unwrap();
        assert_eq!(
            opened,
            Opened::Resumed {
                records: 8,
                torn: None
            }
        );
        assert_eq!(state.done.len(), 5);
        assert_eq!(
            state.done[&key_hash("p/k2")],
            DoneEntry {
                size: 2,
                etag: Some(etag_hash("\"e2\"")),
                crc64: None,
                page: 0,
            }
        );
        // k1 finished after it started; big did not.
        assert_eq!(state.started.len(), 1);
        assert_eq!(
            state.started.get(&key_hash("p/big")),
            Some(&StartedEntry {
                key: "p/big".into(),
                checkpointed: true,
                page: 0
            })
        );
        assert_eq!(state.listed, Some((5, 10)));
    }

    #[test]
    fn a_second_job_on_the_same_journal_is_refused_while_the_first_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.rgjob");
        let (j, _, _) = Journal::open(&path, ID).unwrap();
        let err = Journal::open(&path, ID).unwrap_err();
        assert!(matches!(err, JobError::Locked { .. }), "{err}");
        drop(j);
        Journal::open(&path, ID).unwrap();
    }

    #[test]
    fn another_jobs_or_a_damaged_journal_is_never_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.rgjob");
        let (mut j, _, _) = Journal::open(&path, ID).unwrap();
        j.append(&done(1)).unwrap();
        drop(j);
        let (_, state, opened) = Journal::open(&path, "source=mock://b\nprefix=q/").unwrap();
        assert!(
            matches!(&opened, Opened::Replaced { reason } if reason.contains("another job")),
            "{opened:?}"
        );
        assert!(state.done.is_empty());
        // And the original job does not find its records any more either: replaced.
        let (_, state, _) = Journal::open(&path, ID).unwrap();
        assert!(state.done.is_empty());
        std::fs::write(&path, b"not a journal at all").unwrap();
        let (_, _, opened) = Journal::open(&path, ID).unwrap();
        assert!(matches!(opened, Opened::Replaced { .. }));
    }

    #[test]
    fn journal_io_is_linear_in_objects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.rgjob");
        let (mut j, _, _) = Journal::open(&path, ID).unwrap();
        let n = 20_000u64;
        for i in 0..n {
            j.append(&Record::Started {
                key: format!("p/k{i}"),
                checkpointed: false,
                page: i / 1000,
            })
            .unwrap();
            j.append(&done(i)).unwrap();
        }
        // Each object costs two fixed-size-plus-key records, whatever came before.
        let per_object = j.bytes_written() / n;
        assert!(per_object < 140, "{per_object} bytes per object");
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len < n * 140 + 200, "{len}");
        drop(j);
        let (_, state, _) = Journal::open(&path, ID).unwrap();
        assert_eq!(state.done.len() as u64, n);
        assert!(state.started.is_empty());
    }

    #[test]
    fn settled_pages_are_forgotten_on_load_and_say_where_the_listing_continues() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.rgjob");
        let (mut j, _, _) = Journal::open(&path, ID).unwrap();
        for page in 0..3u64 {
            for i in 0..4 {
                let key = format!("p/{page}-{i}");
                j.append(&Record::Started {
                    key: key.clone(),
                    checkpointed: false,
                    page,
                })
                .unwrap();
                j.append(&Record::Done {
                    key,
                    size: 1,
                    etag: None,
                    crc64: None,
                    page,
                })
                .unwrap();
            }
        }
        j.append(&Record::Started {
            key: "p/big".into(),
            checkpointed: true,
            page: 2,
        })
        .unwrap();
        for (page, next) in [(0, "t1"), (1, "t2")] {
            j.append(&Record::Settled {
                page,
                objects: 4 * (page + 1),
                bytes: 4 * (page + 1),
                next: Some(next.into()),
            })
            .unwrap();
        }
        drop(j);
        let (_, state, _) = Journal::open(&path, ID).unwrap();
        assert_eq!(state.done.len(), 4, "only page 2's objects are kept");
        assert!(state.done.values().all(|d| d.page == 2));
        assert_eq!(state.started.len(), 1);
        assert_eq!(
            state.settled,
            Some(SettledListing {
                page: 1,
                objects: 8,
                bytes: 8,
                next: Some("t2".into())
            })
        );
    }

    #[test]
    fn failed_objects_outlive_their_pages_settlement_until_done_or_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.rgjob");
        let (mut j, _, _) = Journal::open(&path, ID).unwrap();
        for (key, page) in [("p/a", 0), ("p/b", 0), ("p/c", 1)] {
            j.append(&Record::Started {
                key: key.into(),
                checkpointed: key == "p/b",
                page,
            })
            .unwrap();
            j.append(&Record::Failed {
                key: key.into(),
                page,
            })
            .unwrap();
        }
        j.append(&Record::Done {
            key: "p/a".into(),
            size: 1,
            etag: None,
            crc64: None,
            page: 0,
        })
        .unwrap();
        j.append(&Record::Dropped { key: "p/c".into() }).unwrap();
        for page in 0..2 {
            j.append(&Record::Settled {
                page,
                objects: 3,
                bytes: 3,
                next: None,
            })
            .unwrap();
        }
        drop(j);
        let (_, state, _) = Journal::open(&path, ID).unwrap();
        // Only b is still to retry, and what its download left is still known.
        let failed: Vec<&str> = state.failed.values().map(|f| f.key.as_str()).collect();
        assert_eq!(failed, ["p/b"]);
        assert_eq!(state.failed[&key_hash("p/b")].page, 0);
        assert_eq!(state.started.len(), 1);
        assert!(state.started[&key_hash("p/b")].checkpointed);
        assert!(
            state.done.is_empty(),
            "settled pages' done objects are forgotten"
        );
    }

    #[test]
    fn a_version_2_journal_is_read_and_continued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.rgjob");
        // A version-2 header, as the previous build wrote it, and one record.
        let mut head = Vec::new();
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&2u32.to_le_bytes());
        head.extend_from_slice(&(ID.len() as u32).to_le_bytes());
        head.extend_from_slice(ID.as_bytes());
        let sum = *blake3::hash(&head).as_bytes();
        head.extend_from_slice(&sum);
        let key = blake3::derive_key(CONTEXT, &sum);
        let body = encode(&done(4));
        head.extend_from_slice(&(body.len() as u32).to_le_bytes());
        head.extend_from_slice(&body);
        head.extend_from_slice(&tag(&key, 0, &body));
        std::fs::write(&path, &head).unwrap();
        let (mut j, state, opened) = Journal::open(&path, ID).unwrap();
        assert_eq!(
            opened,
            Opened::Resumed {
                records: 1,
                torn: None
            }
        );
        assert_eq!(state.done.len(), 1);
        j.append(&Record::Failed {
            key: "p/x".into(),
            page: 1,
        })
        .unwrap();
        drop(j);
        let (_, state, _) = Journal::open(&path, ID).unwrap();
        assert_eq!(state.failed.len(), 1);
        assert_eq!(state.records, 2);
    }

    /// A million objects, listed 1 000 a page and settled page by page: what a rerun loads
    /// stays at the last unsettled pages' objects, not the million.
    #[test]
    fn a_million_object_journal_loads_only_its_unsettled_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.rgjob");
        let (mut j, _, _) = Journal::open(&path, ID).unwrap();
        let n = 1_000_000u64;
        for i in 0..n {
            let page = i / 1000;
            j.append(&Record::Done {
                key: format!("p/{i:07}"),
                size: 0,
                etag: Some("\"d41d8cd98f00b204e9800998ecf8427e\"".into()),
                crc64: Some(0),
                page,
            })
            .unwrap();
            // Settlement lags two pages behind, as with objects in flight.
            if i % 1000 == 999 && page >= 2 {
                j.append(&Record::Settled {
                    page: page - 2,
                    objects: (page - 1) * 1000,
                    bytes: 0,
                    next: Some(format!("p/{:07}", (page - 1) * 1000 - 1)),
                })
                .unwrap();
            }
        }
        let written = j.bytes_written();
        drop(j);
        let (_, state, _) = Journal::open(&path, ID).unwrap();
        assert_eq!(state.done.len(), 2000);
        let bytes = state.done.capacity()
            * (std::mem::size_of::<KeyHash>() + std::mem::size_of::<DoneEntry>() + 1);
        assert!(
            bytes < 1 << 20,
            "{bytes} bytes loaded for a million objects"
        );
        assert!(
            written / n < 100,
            "{} journal bytes per object",
            written / n
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A crash can stop the journal at any byte, or leave garbage in the last bytes: a
        /// reopen applies exactly the whole records before the damage, and appends after them.
        #[test]
        fn a_torn_tail_at_any_byte_keeps_exactly_the_whole_records_before_it(
            n in 1u64..12, cut_seed in any::<u64>(), flip in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j.rgjob");
            let (mut j, _, _) = Journal::open(&path, ID).unwrap();
            let mut ends = vec![std::fs::metadata(&path).unwrap().len()];
            for i in 0..n {
                j.append(&done(i)).unwrap();
                ends.push(std::fs::metadata(&path).unwrap().len());
            }
            drop(j);
            let full = std::fs::read(&path).unwrap();
            let cut = ends[0] + cut_seed % (full.len() as u64 - ends[0] + 1);
            let mut bytes = full[..cut as usize].to_vec();
            if flip && cut > ends[0] {
                let at = (ends[0] + cut_seed.rotate_left(17) % (cut - ends[0])) as usize;
                bytes[at] ^= 0x40;
            }
            std::fs::write(&path, &bytes).unwrap();
            let damaged_at = if flip && cut > ends[0] {
                (ends[0] + cut_seed.rotate_left(17) % (cut - ends[0])) as u64
            } else {
                u64::MAX
            };
            // Whole, undamaged records.
            let expect = ends[1..]
                .iter()
                .filter(|&&e| e <= cut && e <= damaged_at)
                .count() as u64;
            let (mut j, state, opened) = Journal::open(&path, ID).unwrap();
            prop_assert_eq!(state.done.len() as u64, expect);
            let Opened::Resumed { records, .. } = opened else { panic!("{opened:?}") };
            prop_assert_eq!(records, expect);
            // Appending after a cut tail gives a journal whose every record verifies.
            j.append(&done(99)).unwrap();
            drop(j);
            let (_, state, opened) = Journal::open(&path, ID).unwrap();
            prop_assert_eq!(state.done.len() as u64, expect + 1);
            prop_assert_eq!(opened, Opened::Resumed { records: expect + 1, torn: None });
        }
    }
}

//! Digests that do not combine from parts (MD5, SHA-1, SHA-256, SHA-512, and composites
//! hashed in order) computed while the download runs, two ways:
//!
//! - **Inline**, for an object of one part (every small object of a batch): its bytes arrive
//!   in object order, so they are hashed as the fetch hands them over
//!   ([`InOrderStream::received`]), on the worker that received them: no thread, no
//!   read-back. The result is used only if every byte was handed over exactly once, in
//!   order; anything else (a part started over, a beginning an earlier run saved, a fetch
//!   path that does not call the hook) leaves it unused, and the engine hashes the finished
//!   file once instead.
//! - **Threaded**, for an object of several parts: as soon as a part and every part before it
//!   are done, a thread of its own reads the part back from the temp file (just written, so
//!   from the page cache) and hashes it. When the last part is done, only what arrived out of
//!   order after the watermark is left to hash, instead of the whole file. A thread per object
//!   pays only when the object has parts to overlap: for one part it would wait for the whole
//!   part and then read it all back, which is the pass at the end plus a thread.
//!
//! The state is not saved: a resumed run hashes the parts an earlier run left from the disk
//! (they are read once anyway, to check them) and streams the rest. Any part fetched again
//! after the stream passed it (found damaged on disk) makes the stream's result worthless:
//! the engine then falls back to one in-order pass over the finished file.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use checkpoint::PartLayout;

use crate::error::Error;
use crate::integrity::{Algorithm, CompositeHasher, InOrderHasher, Plan};
use crate::part_file::PartFile;

/// How the engine computes the digests that need the bytes in object order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum InOrderHashing {
    /// While parts complete in order: an object of one part as its bytes arrive; one of
    /// several on a thread of its own, reading each part back while it is still in the page
    /// cache (the default).
    #[default]
    Streamed,
    /// One read of the finished file, after the last part.
    AtEnd,
}

/// What the in-order hashing computed: values for [`Computed`](crate::integrity::Computed).
#[derive(Debug, Default)]
pub(super) struct InOrderValues {
    pub(super) in_order: Vec<(Algorithm, Vec<u8>)>,
    pub(super) composite: Vec<(usize, Vec<u8>)>,
}

impl InOrderValues {
    /// What `hashers` and `composites` computed, having hashed every byte.
    fn of(hashers: Vec<InOrderHasher>, composites: Vec<CompositeHasher>) -> Self {
        Self {
            in_order: hashers.into_iter().map(InOrderHasher::finish).collect(),
            composite: composites
                .into_iter()
                .map(CompositeHasher::finish)
                .collect(),
        }
    }
}

enum Message {
    /// This part's bytes are all written.
    Done(u64),
    /// Every part is done: hash what is left and answer.
    Finish,
}

/// The in-order hashing of one download attempt.
pub(super) struct InOrderStream(Stream);

enum Stream {
    /// One part: hashed from the bytes as they arrive.
    Inline(Mutex<Inline>),
    /// Several parts: hashed on a thread as they complete in order.
    Threaded(Threaded),
}

/// The digests and composites a plan hashes in order, fresh.
fn hashers(plan: &Plan) -> (Vec<InOrderHasher>, Vec<CompositeHasher>) {
    let hashers = plan
        .in_order
        .iter()
        .filter_map(|&a| InOrderHasher::new(a))
        .collect();
    let composites = plan
        .in_order_composites()
        .into_iter()
        .filter_map(|(i, a, sizes)| CompositeHasher::new(i, a, sizes))
        .collect();
    (hashers, composites)
}

impl InOrderStream {
    /// Starts hashing `plan`'s in-order digests of the download laid out as `layout` into
    /// `file`; `done` are the parts already on disk. An object of one part is hashed inline;
    /// one of several on a thread with its own handle on `file`.
    pub(super) fn start(
        file: &PartFile,
        layout: PartLayout,
        plan: &Plan,
        done: impl IntoIterator<Item = u64>,
    ) -> Result<Self, Error> {
        if layout.part_count <= 1 {
            // A part already on disk was not handed over: the result stays unused, and the
            // engine's pass at the end reads it, as the thread would have.
            let range = layout.start..layout.start + layout.len;
            return Ok(Self(Stream::Inline(Mutex::new(Inline::new(range, plan)))));
        }
        Threaded::start(file.reader()?, layout, plan, done).map(|t| Self(Stream::Threaded(t)))
    }

    /// The fetch accepted `bytes` at object offset `offset` and writes them to the temp file.
    /// Every accepted byte must pass here for the inline result to be used.
    pub(super) fn received(&self, offset: u64, bytes: &[u8]) {
        if let Stream::Inline(inline) = &self.0 {
            inline
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .received(offset, bytes);
        }
    }

    /// Part `part` is written: hash it as soon as every part before it is.
    pub(super) fn part_done(&self, part: u64) {
        if let Stream::Threaded(t) = &self.0 {
            t.part_done(part);
        }
    }

    /// Every part is done: the values, or `None` when the stream could not compute them from
    /// what it was handed (the engine then hashes the finished file).
    pub(super) async fn finish(self) -> Result<Option<InOrderValues>, Error> {
        match self.0 {
            Stream::Inline(inline) => Ok(inline
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .finish()),
            Stream::Threaded(t) => t.finish().await.map(Some),
        }
    }
}

/// Inline hashing of one part's bytes, in the order the fetch hands them over.
struct Inline {
    hashers: Vec<InOrderHasher>,
    composites: Vec<CompositeHasher>,
    /// Object offset of the next byte to hash: every byte before it, from the range's start,
    /// was handed over exactly once, in order.
    next: u64,
    end: u64,
    /// A byte was handed over out of order (again, or after a gap): what was hashed may not
    /// be what the file holds, so the result is not used.
    spoiled: bool,
}

impl Inline {
    fn new(range: Range<u64>, plan: &Plan) -> Self {
        let (hashers, composites) = hashers(plan);
        Self {
            hashers,
            composites,
            next: range.start,
            end: range.end,
            spoiled: false,
        }
    }

    fn received(&mut self, offset: u64, bytes: &[u8]) {
        if self.spoiled || bytes.is_empty() {
            return;
        }
        if offset != self.next {
            // A part started over (a malformed response), a beginning saved by an earlier
            // run, or bytes of another worker: the file holds bytes not hashed here.
            self.spoiled = true;
            return;
        }
        for h in &mut self.hashers {
            h.update(bytes);
        }
        for h in &mut self.composites {
            h.update(bytes);
        }
        self.next += bytes.len() as u64;
    }

    fn finish(self) -> Option<InOrderValues> {
        (!self.spoiled && self.next == self.end)
            .then(|| InOrderValues::of(self.hashers, self.composites))
    }
}

/// The hashing thread's handle. Dropping it stops the thread at its next buffer and waits
/// for it: the thread's handle on the temp file shares the download's lock, which must be
/// released when the download returns.
struct Threaded {
    tx: Option<mpsc::Sender<Message>>,
    result: Option<tokio::sync::oneshot::Receiver<Result<InOrderValues, Error>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Bytes read back per call: large enough to amortise the call, small enough to stay in cache.
const READ_BUFFER: usize = 1 << 20;

impl Threaded {
    fn start(
        file: PartFile,
        layout: PartLayout,
        plan: &Plan,
        done: impl IntoIterator<Item = u64>,
    ) -> Result<Self, Error> {
        let (hashers, composites) = hashers(plan);
        let (tx, rx) = mpsc::channel();
        let (answer, result) = tokio::sync::oneshot::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut state = Hashing {
            file,
            layout,
            hashers,
            composites,
            done: vec![false; usize::try_from(layout.part_count).unwrap_or(usize::MAX)],
            next: 0,
            stop: stop.clone(),
            buf: vec![0u8; READ_BUFFER],
        };
        for part in done {
            state.mark(part);
        }
        let thread = std::thread::Builder::new()
            .name("in-order-hash".into())
            .spawn(move || {
                let outcome = state.run(&rx);
                // The receiver is gone when the download stopped: nothing to tell.
                let _ = answer.send(outcome);
            })
            .map_err(|e| Error::Config(format!("cannot start the hashing thread: {e}")))?;
        Ok(Self {
            tx: Some(tx),
            result: Some(result),
            stop,
            thread: Some(thread),
        })
    }

    fn part_done(&self, part: u64) {
        // A thread that ended (an I/O error) reports it in `finish`.
        if let Some(tx) = &self.tx {
            let _ = tx.send(Message::Done(part));
        }
    }

    async fn finish(mut self) -> Result<InOrderValues, Error> {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Message::Finish);
        }
        let Some(result) = self.result.take() else {
            return Err(Error::Config(
                "internal error: in-order hashing finished twice; please report this".into(),
            ));
        };
        result.await.unwrap_or_else(|_| {
            Err(Error::Config(
                "internal error: the in-order hashing thread ended without an answer; please \
                 report this"
                    .into(),
            ))
        })
    }
}

impl Drop for Threaded {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The thread stops at its next buffer (at most one read and hash of a MiB), or at
        // once when waiting for a message and the sender is gone.
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread's side.
struct Hashing {
    file: PartFile,
    layout: PartLayout,
    hashers: Vec<InOrderHasher>,
    composites: Vec<CompositeHasher>,
    done: Vec<bool>,
    /// The first part not hashed yet (the watermark).
    next: u64,
    stop: Arc<AtomicBool>,
    buf: Vec<u8>,
}

/// Why the thread stopped early.
enum Halt {
    Stopped,
    Failed(Error),
}

impl Hashing {
    fn mark(&mut self, part: u64) {
        if let Some(d) = usize::try_from(part)
            .ok()
            .and_then(|i| self.done.get_mut(i))
        {
            *d = true;
        }
    }

    fn run(mut self, rx: &mpsc::Receiver<Message>) -> Result<InOrderValues, Error> {
        let stopped = || Error::Config("in-order hashing stopped".into());
        loop {
            match self.advance() {
                Ok(()) => {}
                Err(Halt::Stopped) => return Err(stopped()),
                Err(Halt::Failed(e)) => return Err(e),
            }
            match rx.recv() {
                Ok(Message::Done(part)) => self.mark(part),
                Ok(Message::Finish) => break,
                // The download stopped.
                Err(_) => return Err(stopped()),
            }
        }
        // Every part is done now, whatever messages were lost to a race.
        self.done.fill(true);
        match self.advance() {
            Ok(()) => {}
            Err(Halt::Stopped) => return Err(stopped()),
            Err(Halt::Failed(e)) => return Err(e),
        }
        Ok(InOrderValues::of(self.hashers, self.composites))
    }

    /// Hashes every done part from the watermark on, in order.
    fn advance(&mut self) -> Result<(), Halt> {
        while self
            .done
            .get(usize::try_from(self.next).unwrap_or(usize::MAX))
            .copied()
            .unwrap_or(false)
        {
            let start = self.layout.part_offset(self.next);
            let end = start + self.layout.part_len(self.next);
            let mut off = start;
            while off < end {
                if self.stop.load(Ordering::Relaxed) {
                    return Err(Halt::Stopped);
                }
                let n = usize::try_from(end - off)
                    .unwrap_or(usize::MAX)
                    .min(self.buf.len());
                self.file
                    .read_exact_at(&mut self.buf[..n], off)
                    .map_err(Halt::Failed)?;
                for h in &mut self.hashers {
                    h.update(&self.buf[..n]);
                }
                for h in &mut self.composites {
                    h.update(&self.buf[..n]);
                }
                off += n as u64;
            }
            self.next += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    use super::*;
    use crate::integrity::{Checksum, CrcSet, Origin};
    use crate::part_file::{PART_SUFFIX, with_suffix};

    /// MD5 and SHA-256 over the whole range, and a SHA-256 composite over `upload` parts.
    fn plan(upload: Vec<u64>) -> Plan {
        let composite = (!upload.is_empty()).then(|| {
            Checksum::composite(
                Algorithm::Sha256,
                vec![0; 32],
                upload,
                Origin::Store("t".into()),
            )
            .expect("a composite")
        });
        Plan {
            composite_in_order: composite.iter().map(|_| 0).collect(),
            checks: composite.into_iter().collect(),
            unverified: String::new(),
            crcs: CrcSet::default(),
            in_order: vec![Algorithm::Md5, Algorithm::Sha256],
            composite_from_parts: Vec::new(),
        }
    }

    /// In-order digests and composites, as compared.
    type Values = (Vec<(Algorithm, Vec<u8>)>, Vec<(usize, Vec<u8>)>);

    /// The values hashed straight over `content`, the reference.
    fn direct(plan: &Plan, content: &[u8]) -> Values {
        let (mut hashers, mut composites) = hashers(plan);
        hashers.iter_mut().for_each(|h| h.update(content));
        composites.iter_mut().for_each(|h| h.update(content));
        (
            hashers.into_iter().map(InOrderHasher::finish).collect(),
            composites
                .into_iter()
                .map(CompositeHasher::finish)
                .collect(),
        )
    }

    fn values(v: InOrderValues) -> Values {
        (v.in_order, v.composite)
    }

    /// A temp file holding `content`, as the download left it.
    fn part_file(dir: &std::path::Path, content: &[u8]) -> PartFile {
        let dest = dir.join("out.bin");
        let f = PartFile::create_locked(&with_suffix(&dest, PART_SUFFIX), &dest)
            .expect("create")
            .expect("not locked");
        f.reset(content.len() as u64).expect("size");
        f.write_all_at(content, 0).expect("write");
        f
    }

    /// The chunk boundaries (object offsets) of `range` cut at `cuts` (any values).
    fn chunks(range: Range<u64>, cuts: &[u64]) -> Vec<Range<u64>> {
        let len = range.end - range.start;
        let mut at: Vec<u64> = cuts.iter().map(|c| c % len.max(1)).collect();
        at.extend([0, len]);
        at.sort_unstable();
        at.dedup();
        at.windows(2)
            .map(|w| range.start + w[0]..range.start + w[1])
            .collect()
    }

    /// One random download: the object's bytes, where the range starts, its part size, the
    /// upload parts of a composite, chunk cuts, the parts already on disk, and the order in
    /// which the others complete.
    #[derive(Debug, Clone)]
    struct Case {
        content: Vec<u8>,
        start: u64,
        part_size: u64,
        upload_cuts: Vec<u64>,
        cuts: Vec<u64>,
        on_disk: Vec<bool>,
        order: Vec<u32>,
    }

    fn case() -> impl Strategy<Value = Case> {
        (0usize..150_000, any::<bool>()).prop_flat_map(|(len, one_part)| {
            let part_size = if one_part {
                (len as u64).max(1)..=(len as u64).max(1) * 2
            } else {
                (len as u64 / 60).max(1)..=(len as u64).max(1)
            };
            (
                proptest::collection::vec(any::<u8>(), len),
                0u64..5_000,
                part_size,
                proptest::collection::vec(any::<u64>(), 0..4),
                proptest::collection::vec(any::<u64>(), 0..40),
                proptest::collection::vec(any::<bool>(), 61),
                proptest::collection::vec(any::<u32>(), 61),
            )
                .prop_map(
                    |(content, start, part_size, upload_cuts, cuts, on_disk, order)| Case {
                        content,
                        start,
                        part_size,
                        upload_cuts,
                        cuts,
                        on_disk,
                        order,
                    },
                )
        })
    }

    /// The inline path (bytes handed over in order, in random chunks) and the threaded path
    /// (parts read back in random completion order, some already on disk) give the digests
    /// hashed straight over the bytes, for random layouts of one part and of many.
    #[test]
    fn inline_and_threaded_hashing_agree_for_random_part_layouts() {
        let mut runner = TestRunner::new_with_rng(
            Config::with_cases(96),
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runner
            .run(&case(), |c| {
                let len = c.content.len() as u64;
                let layout = PartLayout::new(c.start, len, c.part_size).expect("a layout");
                let upload: Vec<u64> = chunks(0..len, &c.upload_cuts)
                    .iter()
                    .map(|r| r.end - r.start)
                    .filter(|&n| n > 0)
                    .collect();
                let plan = plan(upload);
                let expected = direct(&plan, &c.content);
                let range = c.start..c.start + len;

                let mut inline = Inline::new(range.clone(), &plan);
                for r in chunks(range.clone(), &c.cuts) {
                    let at = (r.start - c.start) as usize..(r.end - c.start) as usize;
                    inline.received(r.start, &c.content[at]);
                }
                let got = inline.finish().expect("every byte handed over in order");
                prop_assert_eq!(values(got), expected.clone(), "inline");

                let dir = tempfile::tempdir().expect("tempdir");
                let file = part_file(dir.path(), &c.content);
                let parts = layout.part_count as usize;
                let on_disk: Vec<u64> = (0..parts)
                    .filter(|&p| c.on_disk[p % c.on_disk.len()])
                    .map(|p| p as u64)
                    .collect();
                let mut rest: Vec<u64> =
                    (0..parts as u64).filter(|p| !on_disk.contains(p)).collect();
                rest.sort_by_key(|&p| c.order[p as usize % c.order.len()]);
                let t = Threaded::start(file.reader().expect("reader"), layout, &plan, on_disk)
                    .expect("thread");
                for p in rest {
                    t.part_done(p);
                }
                let got = rt.block_on(t.finish()).expect("threaded values");
                prop_assert_eq!(values(got), expected, "threaded");
                Ok(())
            })
            .unwrap();
    }

    /// Bytes handed over again (a part started over) or after a gap (a beginning an earlier
    /// run saved) leave the inline result unused, never wrong.
    #[test]
    fn inline_hashing_out_of_order_is_not_used() {
        let content: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let plan = plan(Vec::new());
        let again = {
            let mut h = Inline::new(100..10_100, &plan);
            h.received(100, &content[..4_000]);
            h.received(100, &content[..10_000]);
            h
        };
        assert!(again.finish().is_none(), "bytes handed over twice");
        let gap = {
            let mut h = Inline::new(100..10_100, &plan);
            h.received(4_100, &content[4_000..]);
            h
        };
        assert!(gap.finish().is_none(), "a beginning not handed over");
        let short = {
            let mut h = Inline::new(100..10_100, &plan);
            h.received(100, &content[..9_999]);
            h
        };
        assert!(short.finish().is_none(), "a byte never handed over");
    }

    /// An object of one part is hashed inline (no thread); one of several on a thread.
    #[test]
    fn one_part_is_inline_and_several_are_threaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let content = vec![7u8; 1_000];
        let file = part_file(dir.path(), &content);
        let plan = plan(Vec::new());
        let one = InOrderStream::start(&file, PartLayout::new(0, 1_000, 1_000).unwrap(), &plan, [])
            .expect("start");
        assert!(matches!(one.0, Stream::Inline(_)));
        one.received(0, &content);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let got = rt.block_on(one.finish()).expect("finish").expect("values");
        assert_eq!(values(got), direct(&plan, &content));
        let several =
            InOrderStream::start(&file, PartLayout::new(0, 1_000, 400).unwrap(), &plan, [])
                .expect("start");
        assert!(matches!(several.0, Stream::Threaded(_)));
    }
}

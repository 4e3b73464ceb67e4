//! Digests that do not combine from parts (MD5, SHA-1, SHA-256, SHA-512, and composites
//! hashed in order) computed while the download runs: as soon as a part and every part
//! before it are done, a thread of its own reads the part back from the temp file (just
//! written, so from the page cache) and hashes it. When the last part is done, only what
//! arrived out of order after the watermark is left to hash, instead of the whole file.
//!
//! The state is not saved: a resumed run hashes the parts an earlier run left from the disk
//! (they are read once anyway, to check them) and streams the rest. Any part fetched again
//! after the stream passed it (found damaged on disk) makes the stream's result worthless:
//! the engine then falls back to one in-order pass over the finished file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use checkpoint::PartLayout;

use crate::error::Error;
use crate::integrity::{Algorithm, CompositeHasher, InOrderHasher, Plan};
use crate::part_file::PartFile;

/// How the engine computes the digests that need the bytes in object order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum InOrderHashing {
    /// While parts complete in order, on a thread of its own, reading each part back while it
    /// is still in the page cache (the default).
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

enum Message {
    /// This part's bytes are all written.
    Done(u64),
    /// Every part is done: hash what is left and answer.
    Finish,
}

/// The hashing thread's handle. Dropping it stops the thread at its next buffer and waits
/// for it: the thread's handle on the temp file shares the download's lock, which must be
/// released when the download returns.
pub(super) struct InOrderStream {
    tx: Option<mpsc::Sender<Message>>,
    result: Option<tokio::sync::oneshot::Receiver<Result<InOrderValues, Error>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Bytes read back per call: large enough to amortise the call, small enough to stay in cache.
const READ_BUFFER: usize = 1 << 20;

impl InOrderStream {
    /// Starts hashing `plan`'s in-order digests over `file` laid out as `layout`; `done` are
    /// the parts already on disk.
    pub(super) fn start(
        file: PartFile,
        layout: PartLayout,
        plan: &Plan,
        done: impl IntoIterator<Item = u64>,
    ) -> Result<Self, Error> {
        let hashers: Vec<InOrderHasher> = plan
            .in_order
            .iter()
            .filter_map(|&a| InOrderHasher::new(a))
            .collect();
        let composites: Vec<CompositeHasher> = plan
            .in_order_composites()
            .into_iter()
            .filter_map(|(i, a, sizes)| CompositeHasher::new(i, a, sizes))
            .collect();
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

    /// Part `part` is written: hash it as soon as every part before it is.
    pub(super) fn part_done(&self, part: u64) {
        // A thread that ended (an I/O error) reports it in `finish`.
        if let Some(tx) = &self.tx {
            let _ = tx.send(Message::Done(part));
        }
    }

    /// Every part is done: the values, once the parts after the watermark are hashed.
    pub(super) async fn finish(mut self) -> Result<InOrderValues, Error> {
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

impl Drop for InOrderStream {
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
        Ok(InOrderValues {
            in_order: self
                .hashers
                .into_iter()
                .map(InOrderHasher::finish)
                .collect(),
            composite: self
                .composites
                .into_iter()
                .map(CompositeHasher::finish)
                .collect(),
        })
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

//! [`FaultyCheckpointStore`]: a [`CheckpointStore`] wrapper that fails chosen calls.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use checkpoint::{Checkpoint, CheckpointError, CheckpointId, CheckpointStore, Loaded, PartDigest};

/// The operations of [`CheckpointStore`] that can be faulted; each is numbered separately.
///
/// Exists so a plan can say "the 2nd flush" rather than "the 7th call".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreOp {
    /// [`CheckpointStore::load`].
    Load,
    /// [`CheckpointStore::save`].
    Save,
    /// [`CheckpointStore::record`].
    Record,
    /// [`CheckpointStore::flush`].
    Flush,
    /// [`CheckpointStore::delete`].
    Delete,
}

impl StoreOp {
    const ALL: [StoreOp; 5] = [
        StoreOp::Load,
        StoreOp::Save,
        StoreOp::Record,
        StoreOp::Flush,
        StoreOp::Delete,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            StoreOp::Load => "load",
            StoreOp::Save => "save",
            StoreOp::Record => "record",
            StoreOp::Flush => "flush",
            StoreOp::Delete => "delete",
        }
    }
}

/// How one store call fails.
///
/// Exists to provoke each way persisting progress can go wrong, so the engine's handling
/// (stop with a clear error, never claim durability it does not have) can be tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreFault {
    /// Fails with `CheckpointError::Io` (`io::ErrorKind::StorageFull`, "injected") *before*
    /// delegating: the call has no effect at all.
    Fail,
    /// Delegates, then fails with `CheckpointError::Io` anyway: the call took effect (e.g. the
    /// data is durable) but the caller is told it failed, like an error from a final fsync.
    /// If the inner call itself fails, its error is returned.
    FailAfter,
    /// A torn write. This wrapper cannot tear the bytes of a file, so it behaves like
    /// [`StoreFault::Fail`] with the message "injected torn write": none of the call becomes
    /// visible, which is what a torn write must amount to after the store's recovery. Torn
    /// files themselves are tested in the `checkpoint` crate against its file store.
    Tear,
    /// `load` only: reports the stored checkpoint as corrupt (`CheckpointError::Corrupt`)
    /// without reading it. On other operations it behaves like [`StoreFault::Fail`].
    Corrupt,
}

/// Which store calls fail how, by operation and call number.
///
/// Exists so that a failing test replays exactly: numbering counts every call of one
/// operation (0-based, failed calls included), from the wrapper's creation; installing
/// another plan does not reset it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFaultPlan {
    faults: BTreeMap<(StoreOp, u64), StoreFault>,
}

impl StoreFaultPlan {
    /// A plan with no faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes call `n` of `op` fail with `fault` (replacing any earlier entry for it).
    pub fn on(mut self, op: StoreOp, n: u64, fault: StoreFault) -> Self {
        self.faults.insert((op, n), fault);
        self
    }

    /// Shorthand for `on(StoreOp::Save, n, StoreFault::Fail)`.
    pub fn fail_save(self, n: u64) -> Self {
        self.on(StoreOp::Save, n, StoreFault::Fail)
    }

    /// Shorthand for `on(StoreOp::Flush, n, StoreFault::Fail)`.
    pub fn fail_flush(self, n: u64) -> Self {
        self.on(StoreOp::Flush, n, StoreFault::Fail)
    }

    /// Shorthand for `on(StoreOp::Flush, n, StoreFault::Tear)`.
    pub fn tear_flush(self, n: u64) -> Self {
        self.on(StoreOp::Flush, n, StoreFault::Tear)
    }
}

/// One fault the wrapper injected, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFaultLogEntry {
    /// The operation that failed.
    pub op: StoreOp,
    /// Call number of `op`.
    pub n: u64,
    /// How it failed.
    pub fault: StoreFault,
}

#[derive(Debug, Default)]
struct StoreState {
    plan: StoreFaultPlan,
    calls: [u64; 5],
    injected: Vec<StoreFaultLogEntry>,
}

/// Wraps a [`CheckpointStore`] and fails the calls a [`StoreFaultPlan`] names.
///
/// Exists so engine tests can check what happens when progress cannot be persisted: a
/// failed `save` or `flush` must surface as an error (or be retried by policy), never be
/// silently treated as durable. Wrap an `Arc` of the real store to keep a handle to it.
pub struct FaultyCheckpointStore<S> {
    inner: S,
    state: Mutex<StoreState>,
}

impl<S: CheckpointStore> FaultyCheckpointStore<S> {
    /// Wraps `inner` with no faults planned.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            state: Mutex::new(StoreState::default()),
        }
    }

    /// Installs `plan` (see [`FaultyCheckpointStore::set_plan`]).
    pub fn with_plan(self, plan: StoreFaultPlan) -> Self {
        self.set_plan(plan);
        self
    }

    /// Replaces the plan; call numbering continues.
    pub fn set_plan(&self, plan: StoreFaultPlan) {
        self.lock().plan = plan;
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Calls of `op` so far (= the number the next one gets), failed ones included.
    pub fn calls(&self, op: StoreOp) -> u64 {
        self.lock().calls[op.index()]
    }

    /// The faults injected so far, in order.
    pub fn injected(&self) -> Vec<StoreFaultLogEntry> {
        self.lock().injected.clone()
    }

    fn lock(&self) -> MutexGuard<'_, StoreState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a call of `op` and returns the fault planned for it.
    fn begin(&self, op: StoreOp) -> Option<StoreFault> {
        let mut st = self.lock();
        let n = st.calls[op.index()];
        st.calls[op.index()] += 1;
        let fault = st.plan.faults.get(&(op, n)).copied()?;
        st.injected.push(StoreFaultLogEntry { op, n, fault });
        Some(fault)
    }

    fn io_error(&self, op: StoreOp, id: &CheckpointId, message: &str) -> CheckpointError {
        CheckpointError::Io {
            op: op.name(),
            path: self
                .inner
                .path(id)
                .unwrap_or_else(|| PathBuf::from(self.inner.location(id))),
            source: io::Error::new(io::ErrorKind::StorageFull, message.to_owned()),
        }
    }

    /// Runs `call` under the fault planned for this call of `op`.
    fn run<T>(
        &self,
        op: StoreOp,
        id: &CheckpointId,
        call: impl FnOnce() -> Result<T, CheckpointError>,
    ) -> Result<T, CheckpointError> {
        match self.begin(op) {
            None => call(),
            Some(StoreFault::Fail) => Err(self.io_error(op, id, "injected")),
            Some(StoreFault::Tear) => Err(self.io_error(op, id, "injected torn write")),
            Some(StoreFault::Corrupt) if op == StoreOp::Load => Err(CheckpointError::Corrupt {
                location: self.inner.location(id),
                reason: "injected corruption".to_owned(),
            }),
            Some(StoreFault::Corrupt) => Err(self.io_error(op, id, "injected")),
            Some(StoreFault::FailAfter) => {
                call()?;
                Err(self.io_error(op, id, "injected after the call took effect"))
            }
        }
    }
}

impl<S: CheckpointStore> CheckpointStore for FaultyCheckpointStore<S> {
    fn location(&self, id: &CheckpointId) -> String {
        self.inner.location(id)
    }

    fn path(&self, id: &CheckpointId) -> Option<PathBuf> {
        self.inner.path(id)
    }

    fn load(&self, id: &CheckpointId) -> Result<Option<Loaded>, CheckpointError> {
        self.run(StoreOp::Load, id, || self.inner.load(id))
    }

    fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        self.run(StoreOp::Save, &checkpoint.id, || {
            self.inner.save(checkpoint)
        })
    }

    fn record(
        &self,
        id: &CheckpointId,
        index: u64,
        digest: PartDigest,
    ) -> Result<(), CheckpointError> {
        self.run(StoreOp::Record, id, || self.inner.record(id, index, digest))
    }

    fn record_partial(
        &self,
        id: &CheckpointId,
        index: u64,
        partial: checkpoint::PartialPart,
    ) -> Result<(), CheckpointError> {
        // Faulted as a record: it is one.
        self.run(StoreOp::Record, id, || {
            self.inner.record_partial(id, index, partial)
        })
    }

    fn flush(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        self.run(StoreOp::Flush, id, || self.inner.flush(id))
    }

    fn sync(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        // Not faultable (no `StoreOp`), but forwarded: dropping it would fake durability.
        self.inner.sync(id)
    }

    fn delete(&self, id: &CheckpointId) -> Result<(), CheckpointError> {
        self.run(StoreOp::Delete, id, || self.inner.delete(id))
    }
}

impl<S: fmt::Debug> fmt::Debug for FaultyCheckpointStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let calls: Vec<_> = StoreOp::ALL
            .iter()
            .map(|op| (op.name(), st.calls[op.index()]))
            .collect();
        f.debug_struct("FaultyCheckpointStore")
            .field("inner", &self.inner)
            .field("plan", &st.plan)
            .field("calls", &calls)
            .finish()
    }
}

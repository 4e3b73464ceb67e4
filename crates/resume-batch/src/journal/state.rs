//! What a journal's records add up to: the state a rerun loads ([`JobState`]), keyed by a
//! hash of each key so that memory stays small whatever the keys' length.

use std::collections::HashMap;

use super::Record;

/// 16 bytes of BLAKE3 of a key: what the loaded state keeps instead of the key.
pub type KeyHash = u128;

pub fn key_hash(key: &str) -> KeyHash {
    let h = blake3::hash(key.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.as_bytes()[..16]);
    u128::from_le_bytes(b)
}

/// 8 bytes of BLAKE3 of an etag (weak marker and quotes ignored, as the engine compares).
pub fn etag_hash(etag: &str) -> u64 {
    let bare = etag.strip_prefix("W/").unwrap_or(etag).trim_matches('"');
    let h = blake3::hash(bare.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b)
}

/// Where an earlier run left the listing: everything before `next` is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledListing {
    /// The last settled page.
    pub page: u64,
    /// Objects (and their bytes) listed on the settled pages.
    pub objects: u64,
    pub bytes: u64,
    /// Where the listing continues; `None`: it was all settled.
    pub next: Option<String>,
}

/// What a started, unfinished object's record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedEntry {
    /// Kept (few: the objects in flight or failed) so that a rerun can find what the download
    /// left on disk.
    pub key: String,
    /// The download keeps its own checkpoint.
    pub checkpointed: bool,
    pub page: u64,
}

/// A failed object, retried by every rerun until done or dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub key: String,
    /// The page that listed it.
    pub page: u64,
}

/// What a finished object's record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoneEntry {
    pub size: u64,
    pub etag: Option<u64>,
    pub crc64: Option<u64>,
    pub page: u64,
}

/// What earlier runs of this job recorded.
#[derive(Debug, Default, Clone)]
pub struct JobState {
    pub done: HashMap<KeyHash, DoneEntry>,
    /// Objects started and not done since (of pages not settled, or failed).
    pub started: HashMap<KeyHash, StartedEntry>,
    /// Objects that failed and were neither done nor dropped since, whatever their page.
    pub failed: HashMap<KeyHash, FailedEntry>,
    /// The last listing progress recorded: objects, bytes.
    pub listed: Option<(u64, u64)>,
    /// The last settled page, where a rerun continues the listing.
    pub settled: Option<SettledListing>,
    pub records: u64,
}

impl JobState {
    pub(super) fn apply(&mut self, r: Record) {
        self.records += 1;
        match r {
            Record::Started {
                key,
                checkpointed,
                page,
            } => {
                self.started.insert(
                    key_hash(&key),
                    StartedEntry {
                        key,
                        checkpointed,
                        page,
                    },
                );
            }
            Record::Done {
                key,
                size,
                etag,
                crc64,
                page,
            } => {
                let h = key_hash(&key);
                self.started.remove(&h);
                self.failed.remove(&h);
                self.done.insert(
                    h,
                    DoneEntry {
                        size,
                        etag: etag.as_deref().map(etag_hash),
                        crc64,
                        page,
                    },
                );
            }
            Record::Failed { key, page } => {
                self.failed
                    .insert(key_hash(&key), FailedEntry { key, page });
            }
            Record::Dropped { key } => {
                let h = key_hash(&key);
                self.failed.remove(&h);
                self.started.remove(&h);
            }
            Record::Listed { objects, bytes, .. } => self.listed = Some((objects, bytes)),
            Record::Settled {
                page,
                objects,
                bytes,
                next,
            } => {
                // Their objects are never looked at again by this job: forget them, except the
                // failed ones (retried by key; what their downloads left is found by key).
                self.done.retain(|_, d| d.page > page);
                let failed = &self.failed;
                self.started
                    .retain(|h, s| s.page > page || failed.contains_key(h));
                self.settled = Some(SettledListing {
                    page,
                    objects,
                    bytes,
                    next,
                });
            }
        }
    }
}

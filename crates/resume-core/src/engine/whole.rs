//! One request for a listed object that fits one part: the read comes first
//! ([`RangeSource::read_described`](crate::RangeSource::read_described)), and what its
//! response says about the object (etag, version, the store's checksums) stands in for the
//! stat. Its body is then part 0's, fetched by a worker like any other, so retries, hashing,
//! writing and verification are the engine's usual ones.
//!
//! Why the response can be trusted as the object's identity: one response is one version
//! (a single read is atomic), and every byte of the file comes from it or from retries pinned
//! to the etag it carried (`If-Match`, and compared by `check_response`), so the checksums it
//! published are that version's. When the listing gave an etag, the read is pinned to it.

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::{Attempt, Failure, lock};
use crate::error::Error;
use crate::local_state::Found;
use crate::plan::resolve_range;
use crate::source::{ObjectMeta, RangeRead, ReadConditions, SourceError, SourceErrorKind};

/// The response of the first read, waiting for the worker that fetches part 0, and the
/// connection permit it was made under (the worker keeps it instead of asking for another:
/// two permits for one connection could starve a job whose permits are all held so).
pub(super) struct FirstRead {
    pub(super) read: Option<RangeRead>,
    pub(super) permit: Option<OwnedSemaphorePermit>,
}

impl Attempt<'_> {
    /// Whether `listed` is read with one request: the whole object, of a size one part holds,
    /// with nothing saved by an earlier run (whose state the usual path checks first, and a
    /// finished file it recognises needs no request at all).
    pub(super) fn reads_whole_at_once(&self, listed: &ObjectMeta) -> bool {
        let size = listed.size;
        !self.single_stream
            && size > 0
            && resolve_range(self.dl.range, size).is_ok_and(|r| r == (0..size))
            && size <= self.asked_part_size(size)
            && matches!(lock(&self.disk.found).as_ref(), Some(Found::Nothing))
    }

    /// Reads the whole of `listed` and describes it from that response, retrying like a stat.
    /// The object's metadata is the listing's, completed by the response's description (the
    /// etag a listing without etags lacks, the checksums listings do not carry); a source
    /// that cannot describe is stat'ed when the listing has no etag to pin the read.
    pub(super) async fn read_whole(
        &self,
        listed: &ObjectMeta,
    ) -> Result<(ObjectMeta, FirstRead), Failure> {
        let dl = self.dl;
        let range = 0..listed.size;
        let conditions = ReadConditions {
            if_match: listed.etag.clone(),
            version_id: listed.version_id.clone().or_else(|| dl.version_id.clone()),
            if_unmodified_since: listed.last_modified,
        };
        let permit = self.connection_permit().await?;
        let mut attempts = 0u32;
        let described = loop {
            attempts += 1;
            let asked = Instant::now();
            let outcome = tokio::select! {
                biased;
                _ = self.halt.cancelled() => return Err(Failure::Stopped),
                r = tokio::time::timeout(
                    dl.idle_timeout,
                    dl.source.read_described(self.key, range.clone(), &conditions),
                ) => r,
            };
            let err = match outcome {
                Ok(Ok(described)) => {
                    self.tuning.responded(asked.elapsed());
                    break described;
                }
                Ok(Err(e)) => e,
                Err(_) => SourceError::transient(format!(
                    "no response within the idle timeout of {:?}",
                    dl.idle_timeout
                )),
            };
            if err.kind == SourceErrorKind::Changed {
                return Err(Failure::Changed(format!("since it was listed: {err}")));
            }
            if !err.kind.is_retryable() || attempts >= dl.retry.max_attempts {
                return Err(Error::Part {
                    key: self.key.to_owned(),
                    part: 0,
                    range,
                    attempts,
                    source: Box::new(err),
                }
                .into());
            }
            self.backoff(Some(0), attempts, attempts, 0, &err).await?;
        };
        let mut read = Some(described.read);
        let meta = match described.object {
            Some(object) => completed(listed, object),
            None if listed.etag.is_some() => listed.clone(),
            None => {
                // Nothing pinned the read: the stat's etag does, compared with the response's
                // as any read's is. A response without an etag cannot be compared: dropped,
                // part 0 is read again pinned to the stat's etag.
                if read.as_ref().is_some_and(|r| r.etag.is_none()) {
                    read = None;
                }
                self.stat().await?
            }
        };
        Ok((meta, FirstRead { read, permit }))
    }
}

/// The listing's metadata, completed by what a read's response described. The listing's
/// fields stay (its modification time is what the skip rules compare); its checksums, if it
/// had any, are kept rather than mixed with the response's.
fn completed(listed: &ObjectMeta, read: ObjectMeta) -> ObjectMeta {
    let listed_checksums = !listed.checksums.is_empty();
    ObjectMeta {
        size: listed.size,
        etag: listed.etag.clone().or(read.etag),
        last_modified: listed.last_modified.or(read.last_modified),
        version_id: listed.version_id.clone().or(read.version_id),
        checksums: if listed_checksums {
            listed.checksums.clone()
        } else {
            read.checksums
        },
        checksum_note: if listed_checksums {
            listed.checksum_note.clone()
        } else {
            read.checksum_note
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::{Algorithm, Checksum, Origin};

    #[test]
    fn the_listing_is_completed_by_the_response_not_overridden() {
        let crc = |v: u64| Checksum::crc(Algorithm::Crc32, v, Origin::Store("S3".into()));
        let listed = ObjectMeta {
            size: 10,
            last_modified: Some(std::time::UNIX_EPOCH),
            ..ObjectMeta::default()
        };
        let read = ObjectMeta {
            size: 10,
            etag: Some("\"e\"".into()),
            last_modified: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(9)),
            version_id: Some("v".into()),
            checksums: vec![crc(1)],
            checksum_note: None,
        };
        let meta = completed(&listed, read.clone());
        assert_eq!(meta.etag.as_deref(), Some("\"e\""));
        assert_eq!(meta.version_id.as_deref(), Some("v"));
        assert_eq!(meta.last_modified, listed.last_modified);
        assert_eq!(meta.checksums, vec![crc(1)]);
        let listed = ObjectMeta {
            etag: Some("\"l\"".into()),
            checksums: vec![crc(2)],
            ..listed
        };
        let meta = completed(&listed, read);
        assert_eq!(meta.etag.as_deref(), Some("\"l\""));
        assert_eq!(meta.checksums, vec![crc(2)]);
    }
}

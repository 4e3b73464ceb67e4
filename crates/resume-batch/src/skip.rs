//! Skip rules: whether a listed object's local file is already what the job would write,
//! decided from the listing, the journal and one `lstat` — never a request — except
//! [`SkipRule::Checksum`], which reads same-size local files and compares their CRC with the
//! store's ([`compare_checksums`]).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use resume_core::recorded::RecordedObject;
use resume_core::{Algorithm, ObjectMeta, RangeSource, Scope};

use crate::journal::{DoneEntry, etag_hash};

/// When an object whose local file exists is not downloaded again.
///
/// Whatever the rule, an object this job already recorded done (journal: same size and
/// etag as listed, local file of that size) is skipped: rerunning an interrupted job never
/// fetches it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SkipRule {
    /// Skip when the size matches and the file is the listed version: recorded so in the
    /// journal, or (no journal any more: the job completed earlier) in the record the engine
    /// keeps with every file it finishes ([`resume_core::recorded`]: the same object, size
    /// and etag, the file unchanged since), or, where the file system keeps no such record
    /// (no user extended attributes), its modification time is the object's last-modified
    /// time, which the job stamps on every file it writes (residual risk there: an object
    /// rewritten with the same size within the same second, as for `aws s3 sync`). A record
    /// of another etag means the object changed: downloaded. `--overwrite` downloads
    /// regardless.
    #[default]
    Default,
    /// Skip when the local file is not older than the object (`--update`).
    Update,
    /// Skip when the sizes match (`--size-only`).
    SizeOnly,
    /// Download every object again (`--overwrite`), except those this job already finished.
    Overwrite,
    /// Skip when the local file has the size and the CRC the store publishes for the object
    /// (`--checksum`), cheapest first: a file of another size is downloaded without reading
    /// it; the CRC is taken from the listing when it carries one, else from one stat (HEAD)
    /// of the object; the local file is read once to compute the same algorithm (CRC-64/XZ,
    /// OSS's `x-oss-hash-crc64ecma`; CRC-64/NVME; CRC-32C; CRC-32). An object whose store
    /// publishes none of these (or only a composite of parts) is downloaded: nothing could
    /// show the file is the same. The skip reason names the algorithm and where the value
    /// came from.
    Checksum,
}

impl SkipRule {
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Update => "update",
            Self::SizeOnly => "size-only",
            Self::Overwrite => "overwrite",
            Self::Checksum => "checksum",
        }
    }
}

/// What is at the object's local path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub size: u64,
    pub modified: Option<SystemTime>,
    /// What the file records about its object, if it is this object's record and the file
    /// is unchanged since ([`resume_core::recorded::recorded_object`]).
    pub recorded: Option<RecordedObject>,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Download,
    /// Up to date, because of this.
    Skip(&'static str),
    /// Same size: compare the local file's CRC with the store's ([`compare_checksums`]).
    CompareChecksums,
}

/// Whole seconds since the epoch (listings give seconds or milliseconds; file systems vary).
fn secs(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        Err(e) => -i128::from(e.duration().as_secs()) - i128::from(e.duration().subsec_nanos() > 0),
    }
}

pub fn decide(
    rule: SkipRule,
    listed: &ObjectMeta,
    local: Option<&LocalFile>,
    done: Option<&DoneEntry>,
) -> Decision {
    let Some(local) = local else {
        return Decision::Download;
    };
    let recorded = done.is_some_and(|d| {
        d.size == listed.size
            && local.size == listed.size
            && listed
                .etag
                .as_deref()
                .map(etag_hash)
                .is_some_and(|e| d.etag == Some(e))
    });
    if recorded {
        return Decision::Skip("this job downloaded it already (same size and etag)");
    }
    if rule == SkipRule::Default
        && let Some(r) = &local.recorded
        && let (Some(had), Some(listed_etag)) = (&r.etag, &listed.etag)
    {
        return if etag_hash(had) == etag_hash(listed_etag)
            && r.size == listed.size
            && local.size == listed.size
        {
            Decision::Skip("same size and etag (recorded with the file)")
        } else {
            Decision::Download
        };
    }
    let same_time = || matches!((local.modified, listed.last_modified), (Some(a), Some(b)) if secs(a) == secs(b));
    match rule {
        SkipRule::Overwrite => Decision::Download,
        SkipRule::SizeOnly if local.size == listed.size => Decision::Skip("same size"),
        SkipRule::Update => match (local.modified, listed.last_modified) {
            (Some(l), Some(o)) if secs(l) >= secs(o) => {
                Decision::Skip("the local file is not older than the object")
            }
            _ => Decision::Download,
        },
        SkipRule::Default if local.size == listed.size && same_time() => {
            Decision::Skip("same size and modification time")
        }
        SkipRule::Checksum if local.size == listed.size => Decision::CompareChecksums,
        _ => Decision::Download,
    }
}

/// What [`compare_checksums`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compared {
    /// The local file has the store's CRC: up to date, with what was compared.
    Same(String),
    /// It differs, or the store publishes nothing comparable (said why).
    Download(String),
}

/// A whole-object CRC the store published that a local file can be checked against.
fn comparable(meta: &ObjectMeta) -> Option<(Algorithm, u64, String)> {
    // Cheapest first is not a question here (one pass over the file either way): CRC-64/XZ
    // first because OSS publishes it on every object.
    for alg in [
        Algorithm::Crc64Xz,
        Algorithm::Crc64Nvme,
        Algorithm::Crc32c,
        Algorithm::Crc32,
    ] {
        if let Some(c) = meta
            .checksums
            .iter()
            .find(|c| c.algorithm == alg && c.scope == Scope::FullObject)
        {
            let mut be = [0u8; 8];
            let n = c.value.len().min(8);
            be[8 - n..].copy_from_slice(&c.value[c.value.len() - n..]);
            return Some((alg, u64::from_be_bytes(be), c.origin.to_string()));
        }
    }
    None
}

fn local_crc(path: &Path, alg: Algorithm) -> std::io::Result<u64> {
    let which = match alg {
        Algorithm::Crc64Nvme => crc_fast::CrcAlgorithm::Crc64Nvme,
        Algorithm::Crc32c => crc_fast::CrcAlgorithm::Crc32Iscsi,
        Algorithm::Crc32 => crc_fast::CrcAlgorithm::Crc32IsoHdlc,
        _ => crc_fast::CrcAlgorithm::Crc64Xz,
    };
    let mut digest = crc_fast::Digest::new(which);
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut digest)?;
    Ok(digest.finalize())
}

/// `--checksum`: whether the local file at `path` (already known to have the listed size) is
/// the object `key`. Uses the listing's CRC when it has one, else one stat of the object;
/// `Err` when that stat fails (the download then reports the same problem, or finds the
/// object deleted). Returns the metadata to download with (the stat's, when it was made).
pub async fn compare_checksums(
    source: &dyn RangeSource,
    key: &str,
    listed: &ObjectMeta,
    path: &Path,
) -> Result<(Compared, ObjectMeta), resume_core::SourceError> {
    let (meta, from) = match comparable(listed) {
        Some(_) => (listed.clone(), "the listing"),
        None => {
            let stat = source.stat(key, listed.version_id.as_deref()).await?;
            (stat, "a HEAD of the object")
        }
    };
    if meta.size != listed.size {
        return Ok((
            Compared::Download("the object's size changed since the listing".into()),
            meta,
        ));
    }
    let Some((alg, want, origin)) = comparable(&meta) else {
        return Ok((
            Compared::Download(
                "the store publishes no whole-object CRC to compare the local file with".into(),
            ),
            meta,
        ));
    };
    let p = path.to_owned();
    let got = tokio::task::spawn_blocking(move || local_crc(&p, alg))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r);
    Ok(match got {
        Ok(got) if got == want => (
            Compared::Same(format!(
                "same size and {} ({origin}, from {from})",
                alg.name()
            )),
            meta,
        ),
        Ok(_) => (
            Compared::Download(format!("its {} differs from the store's", alg.name())),
            meta,
        ),
        Err(e) => (
            Compared::Download(format!("the local file could not be read ({e})")),
            meta,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn meta(size: u64, etag: Option<&str>, at: u64) -> ObjectMeta {
        ObjectMeta {
            size,
            etag: etag.map(str::to_owned),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(at)),
            version_id: None,
            checksums: Vec::new(),
            checksum_note: None,
        }
    }

    fn local(size: u64, at: u64) -> LocalFile {
        LocalFile {
            size,
            modified: Some(UNIX_EPOCH + Duration::from_millis(at * 1000 + 300)),
            recorded: None,
        }
    }

    #[test]
    fn the_record_kept_with_the_file_decides_by_etag_under_the_default_rule() {
        use Decision::*;
        let m = meta(10, Some("\"e\""), 100);
        let with = |size, etag: &str, at| LocalFile {
            recorded: Some(RecordedObject {
                object: "o".into(),
                size,
                etag: Some(etag.into()),
                version_id: None,
                crc64: 0,
                modified_ns: 0,
            }),
            ..local(size, at)
        };
        // Recorded as the listed etag: skipped, whatever the file's time.
        assert_eq!(
            decide(SkipRule::Default, &m, Some(&with(10, "e", 5)), None),
            Skip("same size and etag (recorded with the file)")
        );
        // Recorded as another etag: the object changed, though size and time agree.
        assert_eq!(
            decide(
                SkipRule::Default,
                &m,
                Some(&with(10, "W/\"old\"", 100)),
                None
            ),
            Download
        );
        // Other rules keep their own promises.
        assert_eq!(
            decide(SkipRule::Overwrite, &m, Some(&with(10, "e", 100)), None),
            Download
        );
        // A listing without an etag: size and time decide, as without a record.
        let no_etag = ObjectMeta {
            etag: None,
            ..m.clone()
        };
        assert!(matches!(
            decide(SkipRule::Default, &no_etag, Some(&with(10, "e", 100)), None),
            Skip("same size and modification time")
        ));
    }

    #[test]
    fn each_rule_skips_only_what_it_promises() {
        use Decision::*;
        let m = meta(10, Some("\"e\""), 100);
        let rec = DoneEntry {
            size: 10,
            etag: Some(etag_hash("e")),
            crc64: None,
            page: 0,
        };
        for rule in [
            SkipRule::Default,
            SkipRule::Update,
            SkipRule::SizeOnly,
            SkipRule::Overwrite,
        ] {
            assert_eq!(
                decide(rule, &m, None, Some(&rec)),
                Download,
                "no local file"
            );
            // Recorded done by this job: skipped under every rule.
            assert!(matches!(
                decide(rule, &m, Some(&local(10, 1)), Some(&rec)),
                Skip(_)
            ));
            // Recorded with another etag (the object changed since): not by the record.
            let old = DoneEntry {
                etag: Some(etag_hash("old")),
                ..rec
            };
            assert_ne!(
                decide(rule, &m, Some(&local(10, 1)), Some(&old)),
                Skip("this job downloaded it already (same size and etag)")
            );
        }
        let d = |rule, l: LocalFile| decide(rule, &m, Some(&l), None);
        assert!(matches!(d(SkipRule::Default, local(10, 100)), Skip(_)));
        assert_eq!(d(SkipRule::Default, local(10, 101)), Download);
        assert_eq!(d(SkipRule::Default, local(9, 100)), Download);
        assert!(matches!(d(SkipRule::SizeOnly, local(10, 5)), Skip(_)));
        assert_eq!(d(SkipRule::SizeOnly, local(11, 100)), Download);
        assert!(matches!(d(SkipRule::Update, local(3, 100)), Skip(_)));
        assert!(matches!(d(SkipRule::Update, local(3, 200)), Skip(_)));
        assert_eq!(d(SkipRule::Update, local(10, 99)), Download);
        assert_eq!(d(SkipRule::Overwrite, local(10, 100)), Download);
        // A listing without times: only the journal or the size can say.
        let no_time = ObjectMeta {
            last_modified: None,
            ..m.clone()
        };
        assert_eq!(
            decide(SkipRule::Default, &no_time, Some(&local(10, 100)), None),
            Download
        );
        assert_eq!(
            decide(SkipRule::Update, &no_time, Some(&local(10, 100)), None),
            Download
        );
    }
}

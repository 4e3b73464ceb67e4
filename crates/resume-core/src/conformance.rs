//! The conformance suite every [`RangeSource`] runs (like object_store's `integration.rs`).
//!
//! A backend's test calls [`run`] with its source and a [`Fixture`] that can write objects
//! into the same bucket, and asserts the returned report is clean. Each check states the part
//! of the contract it proves; a failing check names itself and what it saw.
//!
//! Enabled with the `conformance` feature, for backends' dev-dependencies.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;

use crate::source::{RangeSource, ReadConditions, SourceErrorKind};
use crate::{Downloader, RetryPolicy, crc64};

/// Writes objects into the bucket the source under test reads.
#[async_trait::async_trait]
pub trait Fixture: Send + Sync {
    /// Creates or overwrites `key` with `content`. Overwriting must change the etag (or, for
    /// sources without one, the size or last-modified) as the backend's store would.
    async fn put(&self, key: &str, content: Bytes) -> Result<(), String>;
}

/// What a source under test supports; checks for unsupported features are skipped and named
/// in the report, never silently passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `stat` returns an etag and reads honour `If-Match`.
    pub etag: bool,
    /// `stat` returns the whole-object CRC-64 (OSS).
    pub crc64: bool,
    /// Overwriting an object is visible to the source (false for immutable fixtures).
    pub overwrite: bool,
}

/// Failed checks, and checks skipped because the source lacks a capability.
#[derive(Debug, Default)]
pub struct Report {
    pub failures: Vec<String>,
    pub skipped: Vec<String>,
    pub passed: Vec<String>,
}

impl Report {
    /// Panics with every failure listed, for use at the end of a test.
    pub fn assert_clean(&self) {
        assert!(
            self.failures.is_empty() && !self.passed.is_empty(),
            "conformance failures ({} passed):\n- {}",
            self.passed.len(),
            self.failures.join("\n- ")
        );
    }

    fn check(&mut self, name: &str, result: Result<(), String>) {
        match result {
            Ok(()) => self.passed.push(name.to_string()),
            Err(e) => self.failures.push(format!("{name}: {e}")),
        }
    }
}

/// Deterministic test content.
pub fn content(seed: u8, len: usize) -> Bytes {
    let mut x = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn read_all(
    source: &dyn RangeSource,
    key: &str,
    range: Range<u64>,
    cond: &ReadConditions,
) -> Result<(Range<u64>, Vec<u8>), String> {
    let read = source
        .read_range(key, range.clone(), cond)
        .await
        .map_err(|e| format!("read {range:?}: {e}"))?;
    let declared = read.range.clone();
    let mut body = read.body;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.map_err(|e| format!("body of {range:?}: {e}"))?);
    }
    Ok((declared, out))
}

/// Runs every check against `source`, writing objects under `prefix` through `fixture`.
/// `scratch` is a local directory for the end-to-end download check.
pub async fn run(
    source: Arc<dyn RangeSource>,
    fixture: &dyn Fixture,
    caps: Capabilities,
    prefix: &str,
    scratch: &Path,
) -> Report {
    let mut r = Report::default();
    let engine_source = source.clone();
    let source: &dyn RangeSource = &*source;
    let key = format!("{prefix}conformance/object with spaces+plus/ü.bin");
    let data = content(1, 1_000_003);
    if let Err(e) = fixture.put(&key, data.clone()).await {
        r.failures
            .push(format!("fixture could not write {key}: {e}"));
        return r;
    }

    let meta = match source.stat(&key, None).await {
        Ok(m) => m,
        Err(e) => {
            r.failures
                .push(format!("stat_reports_an_existing_object: {e}"));
            return r;
        }
    };
    r.check(
        "stat_reports_the_exact_size",
        (meta.size == data.len() as u64)
            .then_some(())
            .ok_or_else(|| format!("size {} != {}", meta.size, data.len())),
    );
    if caps.etag {
        r.check(
            "stat_reports_an_etag",
            meta.etag.is_some().then_some(()).ok_or("no etag".into()),
        );
    } else {
        r.skipped.push("stat_reports_an_etag".into());
    }
    if caps.crc64 {
        r.check(
            "stat_reports_the_whole_object_crc64",
            (meta.crc64() == Some(crc64(&data)))
                .then_some(())
                .ok_or_else(|| format!("crc64 {:?} != {}", meta.crc64(), crc64(&data))),
        );
    } else {
        r.skipped.push("stat_reports_the_whole_object_crc64".into());
    }

    let cond = ReadConditions {
        if_match: meta.etag.clone(),
        version_id: meta.version_id.clone(),
        if_unmodified_since: meta.last_modified,
    };
    let n = data.len() as u64;
    for (name, range) in [
        ("read_first_byte", 0..1),
        ("read_last_byte", n - 1..n),
        ("read_middle_range", 4095..600_001),
        ("read_whole_object_as_a_range", 0..n),
    ] {
        let want = &data[range.start as usize..range.end as usize];
        let result =
            read_all(source, &key, range.clone(), &cond)
                .await
                .and_then(|(declared, got)| {
                    if declared != range {
                        Err(format!("declared {declared:?}, asked {range:?}"))
                    } else if got != want {
                        Err(format!("{} bytes differ from the object's", got.len()))
                    } else {
                        Ok(())
                    }
                });
        r.check(name, result);
    }

    let parallel = futures::future::join_all((0..8u64).map(|i| {
        let (s, e) = (i * 125_000, ((i + 1) * 125_000).min(n));
        let (key, cond) = (&key, &cond);
        async move { (s..e, read_all(source, key, s..e, cond).await) }
    }))
    .await;
    let mut problems = Vec::new();
    for (range, res) in parallel {
        match res {
            Ok((_, got)) if got == data[range.start as usize..range.end as usize] => {}
            Ok(_) => problems.push(format!("{range:?}: wrong bytes")),
            Err(e) => problems.push(e),
        }
    }
    r.check(
        "concurrent_reads_return_their_own_ranges",
        problems.is_empty().then_some(()).ok_or(problems.join("; ")),
    );

    let missing = format!("{prefix}conformance/does-not-exist");
    r.check(
        "stat_of_a_missing_key_is_not_found",
        match source.stat(&missing, None).await {
            Err(e) if e.kind == SourceErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("kind {:?}: {e}", e.kind)),
            Ok(m) => Err(format!("got {m:?}")),
        },
    );
    r.check(
        "read_of_a_missing_key_is_not_found",
        match source
            .read_range(&missing, 0..10, &ReadConditions::default())
            .await
        {
            Err(e) if e.kind == SourceErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("kind {:?}: {e}", e.kind)),
            Ok(read) => Err(format!("got a response declaring {:?}", read.range)),
        },
    );
    r.check(
        "read_starting_past_the_end_is_an_error_not_data",
        match read_all(source, &key, n..n + 10, &cond).await {
            Err(_) => Ok(()),
            Ok((declared, got)) => Err(format!("declared {declared:?} with {} bytes", got.len())),
        },
    );

    if caps.etag {
        let wrong = ReadConditions {
            if_match: Some("\"00000000000000000000000000000000\"".into()),
            version_id: None,
            ..Default::default()
        };
        r.check(
            "read_with_a_stale_if_match_is_changed",
            match source.read_range(&key, 0..10, &wrong).await {
                Err(e) if e.kind == SourceErrorKind::Changed => Ok(()),
                Err(e) => Err(format!("kind {:?}: {e}", e.kind)),
                Ok(read) => Err(format!("served {:?} despite If-Match", read.range)),
            },
        );
    }

    let empty_key = format!("{prefix}conformance/empty");
    r.check(
        "zero_byte_object_stats_as_size_zero",
        match fixture.put(&empty_key, Bytes::new()).await {
            Err(e) => Err(format!("fixture: {e}")),
            Ok(()) => match source.stat(&empty_key, None).await {
                Ok(m) if m.size == 0 => Ok(()),
                Ok(m) => Err(format!("size {}", m.size)),
                Err(e) => Err(e.to_string()),
            },
        },
    );

    let dest = scratch.join("conformance-download.bin");
    let downloaded = Downloader::from_arc(engine_source)
        .part_size(77_777)
        .concurrency(4)
        .no_checkpoint()
        .retry(RetryPolicy {
            jitter_seed: Some(1),
            ..RetryPolicy::default()
        })
        .download(&key, &dest)
        .await;
    r.check(
        "engine_downloads_the_exact_bytes",
        match downloaded {
            Ok(rep) if std::fs::read(&dest).is_ok_and(|got| got == data[..]) => {
                if caps.crc64 && !rep.crc64_verified {
                    Err("CRC-64 published but not verified".into())
                } else {
                    Ok(())
                }
            }
            Ok(_) => Err("the file differs from the object".into()),
            Err(e) => Err(e.to_string()),
        },
    );

    if caps.overwrite {
        let newer = content(2, 500_000);
        let result = match fixture.put(&key, newer.clone()).await {
            Err(e) => Err(format!("fixture: {e}")),
            Ok(()) => match source.stat(&key, None).await {
                Err(e) => Err(e.to_string()),
                Ok(m2) if m2.size != newer.len() as u64 => Err(format!("size {}", m2.size)),
                Ok(m2) if caps.etag && m2.etag == meta.etag => {
                    Err("etag did not change on overwrite".into())
                }
                Ok(_) if !caps.etag => Ok(()),
                Ok(_) => match source.read_range(&key, 0..10, &cond).await {
                    Err(e) if e.kind == SourceErrorKind::Changed => Ok(()),
                    Err(e) => Err(format!("read with the old etag: kind {:?}: {e}", e.kind)),
                    Ok(read) => Err(format!("old etag still served {:?}", read.range)),
                },
            },
        };
        r.check("overwrite_is_seen_and_pins_old_reads_out", result);
    } else {
        r.skipped
            .push("overwrite_is_seen_and_pins_old_reads_out".into());
    }
    r
}

pub mod list;

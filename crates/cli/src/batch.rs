//! `resume-get -r SOURCE_PREFIX DEST_DIR`: a whole prefix as one resumable job
//! (`resume_batch::Job`), its output and its exit code.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;

use resume_batch::{
    EntryMode, FilesFrom, Job, JobError, JobEvent, PlanAction, Shard, SkipReason, SkipRule,
    Summary, UrlBook,
};
use resume_core::{
    CancellationToken, Lister, ObjectMeta, OnChange, RangeRead, RangeSource, ReadConditions,
    SourceError, SourceErrorKind,
};
use serde_json::{Value, json};

use crate::args::{BatchOpts, DownloadOpts, OnChangeArg};
use crate::exit;
use crate::output::{Mode, err_line, field, out_line, printable};
use crate::size::format_bytes;
use crate::sources::{self, OpenError};

/// A lister, the source that reads what it lists, and the prefix.
pub type OpenedPrefix = (Arc<dyn Lister>, Arc<dyn RangeSource>, String);

/// Single-object options that mean nothing for a whole prefix.
fn refuse_single_object_options(opts: &DownloadOpts) -> Result<(), String> {
    let refused = [
        (opts.range.is_some(), "--range"),
        (opts.version_id.is_some(), "--version-id"),
        (!opts.checksum.is_empty(), "--checksum"),
        (opts.checksum_file.is_some(), "--checksum-file"),
        (opts.no_checkpoint, "--no-checkpoint"),
    ];
    match refused.iter().find(|(given, _)| *given) {
        Some((_, name)) => Err(format!(
            "{name} names one object and cannot be used with -r (a whole prefix); drop it, or \
             download that object on its own without -r"
        )),
        None => Ok(()),
    }
}

/// What `--update`, `--size-only` and `--overwrite` choose.
fn skip_rule(b: &BatchOpts) -> SkipRule {
    if b.overwrite {
        SkipRule::Overwrite
    } else if b.size_only {
        SkipRule::SizeOnly
    } else if b.update {
        SkipRule::Update
    } else if b.checksum_rule {
        SkipRule::Checksum
    } else {
        SkipRule::Default
    }
}

/// A list's entries (`--files-from`) as a lister and the source that reads them, with what
/// the job must know about them.
struct Opened {
    lister: Arc<dyn Lister>,
    source: Arc<dyn RangeSource>,
    prefix: String,
    /// The list's fingerprint (path, content hash), for the job's identity.
    note: Option<String>,
    urls: bool,
}

fn open_job(
    source_url: Option<&str>,
    opts: &Arc<DownloadOpts>,
    b: &BatchOpts,
) -> Result<Opened, OpenError> {
    let Some(list) = &b.files_from else {
        let Some(url) = source_url else {
            return Err(OpenError {
                message: "SOURCE and DEST are required (see --help)".into(),
                exit_code: exit::USAGE,
            });
        };
        let (lister, source, prefix) = sources::open_prefix(url, opts)?;
        return Ok(Opened {
            lister,
            source,
            prefix,
            note: None,
            urls: false,
        });
    };
    let unreadable = |e: std::io::Error| OpenError {
        message: format!(
            "cannot read the list {}: {e}; give a readable file of keys or URLs, one per line",
            list.display()
        ),
        exit_code: exit::USAGE,
    };
    match source_url {
        Some(url) => {
            let (_, source, prefix) = sources::open_prefix(url, opts)?;
            let lister = FilesFrom::new(
                list,
                EntryMode::Keys {
                    prefix: prefix.clone(),
                },
                &source.identity(),
            )
            .map_err(unreadable)?;
            Ok(Opened {
                note: Some(lister.note().to_owned()),
                lister: Arc::new(lister),
                source,
                prefix,
                urls: false,
            })
        }
        None => {
            let lister = FilesFrom::new(list, EntryMode::Urls, URL_SOURCE).map_err(unreadable)?;
            let source = UrlSource {
                book: lister.url_book(),
                opts: opts.clone(),
                cache: Mutex::new(HashMap::new()),
                http: sources::HttpClients::default(),
            };
            Ok(Opened {
                note: Some(lister.note().to_owned()),
                lister: Arc::new(lister),
                source: Arc::new(source),
                prefix: String::new(),
                urls: true,
            })
        }
    }
}

const URL_SOURCE: &str = "files-from:urls";

/// The source of a list of URLs: each key (a redacted URL) is read from the source its full
/// URL names, opened with the command line's options the first time it is needed.
struct UrlSource {
    book: UrlBook,
    opts: Arc<DownloadOpts>,
    /// Sources opened, by key; cleared when it grows large (a list of many URLs).
    cache: Mutex<HashMap<String, sources::Opened>>,
    /// One HTTP client per origin for every http(s):// entry: a list of many URLs on one
    /// host reuses connections (and TLS sessions) instead of opening one per entry.
    http: sources::HttpClients,
}

impl std::fmt::Debug for UrlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSource").finish_non_exhaustive()
    }
}

impl UrlSource {
    fn resolve(&self, key: &str) -> Result<sources::Opened, SourceError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = cache.get(key) {
            return Ok(hit.clone());
        }
        let url = self.book.url(key).ok_or_else(|| {
            SourceError::new(
                SourceErrorKind::Other,
                format!("{key} is not an entry of the list; please report this"),
            )
        })?;
        let opened = sources::open_sharing(&url, &self.opts, Some(&self.http))
            .map_err(|e| SourceError::new(SourceErrorKind::Misconfigured, e.message))?;
        if cache.len() >= 4096 {
            cache.clear();
        }
        cache.insert(key.to_owned(), opened.clone());
        Ok(opened)
    }
}

#[async_trait::async_trait]
impl RangeSource for UrlSource {
    fn identity(&self) -> String {
        URL_SOURCE.into()
    }
    async fn stat(&self, key: &str, version_id: Option<&str>) -> Result<ObjectMeta, SourceError> {
        let (src, k) = self.resolve(key)?;
        src.stat(&k, version_id).await
    }
    async fn read_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<RangeRead, SourceError> {
        let (src, k) = self.resolve(key)?;
        src.read_range(&k, range, conditions).await
    }
    async fn read_described(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
        conditions: &ReadConditions,
    ) -> Result<resume_core::DescribedRead, SourceError> {
        let (src, k) = self.resolve(key)?;
        src.read_described(&k, range, conditions).await
    }
}

pub async fn run(
    source_url: Option<&str>,
    dest: &Path,
    opts: Arc<DownloadOpts>,
    b: &BatchOpts,
) -> u8 {
    let shared = opts;
    let opts: &DownloadOpts = &shared;
    if let Err(msg) = crate::validate(&opts.transfer).and(refuse_single_object_options(opts)) {
        err_line(format_args!("resume-get: error: {msg}"));
        return exit::USAGE;
    }
    let shown_url = match (source_url, &b.files_from) {
        (Some(u), _) => resume_core::redact::redact_url(u),
        (None, Some(list)) => list.display().to_string(),
        (None, None) => String::new(),
    };
    let Opened {
        lister,
        source,
        prefix,
        note,
        urls,
    } = match open_job(source_url, &shared, b) {
        Ok(x) => x,
        Err(OpenError { message, exit_code }) => {
            err_line(format_args!("resume-get: error: {message}"));
            return exit_code;
        }
    };
    let cancel = CancellationToken::new();
    crate::cancel_on_signals(cancel.clone());
    let template = crate::downloader(source.clone(), &opts.transfer, cancel.clone(), |_| {})
        .verify_on_resume(opts.verify_on_resume)
        .on_change(match opts.on_change {
            OnChangeArg::Restart => OnChange::Restart,
            OnChangeArg::Fail => OnChange::Fail,
        })
        .require_checksum(opts.require_checksum)
        .share_tail(!opts.no_tail_sharing)
        .in_order_hashing(if opts.digests_at_end {
            resume_core::InOrderHashing::AtEnd
        } else {
            resume_core::InOrderHashing::Streamed
        });
    let listed_each = note.is_some();
    let mut job = Job::new(lister, source, prefix.clone(), dest)
        .stat_each(listed_each)
        .url_names(urls)
        .identity_note(note.unwrap_or_default())
        .downloader(template)
        // `auto`: objects up to 8 MiB are one GET, the job has 8 connections; larger objects
        // get an automatic part size (the template's), each within the job's connections.
        .part_size(opts.transfer.part_size.or(resume_core::DEFAULT_PART_SIZE))
        .jobs(opts.transfer.jobs.or(resume_core::DEFAULT_CONCURRENCY))
        .rate_limit(opts.transfer.limit_rate)
        .skip_rule(skip_rule(b))
        .fail_fast(b.fail_fast)
        .dry_run(b.dry_run)
        .cancel_token(cancel);
    for (patterns, include) in [(&b.include, true), (&b.exclude, false)] {
        for p in patterns {
            let next = if include {
                job.include(p)
            } else {
                job.exclude(p)
            };
            job = match next {
                Ok(j) => j,
                Err(e) => {
                    err_line(format_args!(
                        "resume-get: error: --{} {p:?}: {e}",
                        if include { "include" } else { "exclude" }
                    ));
                    return exit::USAGE;
                }
            };
        }
    }
    if let Some(shard) = &b.shard {
        match Shard::parse(shard) {
            Ok(s) => job = job.shard(s),
            Err(e) => {
                err_line(format_args!("resume-get: error: --shard: {e}"));
                return exit::USAGE;
            }
        }
    }
    if let Some(dir) = &opts.checkpoint_dir {
        job = job.state_dir(dir);
    }
    if let Some(f) = &b.failures {
        job = job.failures_file(f);
    }
    let out = Arc::new(BatchOutput::new(
        crate::output_mode(&opts.output),
        b.dry_run,
    ));
    let sink = out.clone();
    job = job.on_event(move |e| sink.handle(e));
    let result = job.run().await;
    out.finish();
    let quiet = matches!(out.mode, Mode::Quiet | Mode::Json);
    match result {
        Ok(s) => {
            if !quiet {
                err_line(summary_line(&s, b.dry_run));
            }
            if s.failed > 0 {
                if let Some(f) = &s.failures_file {
                    err_line(format_args!(
                        "resume-get: {} object(s) failed; their keys and errors are in {} (JSON \
                         lines); run the same command again to retry them (done objects are \
                         not requested again)",
                        s.failed,
                        f.display()
                    ));
                }
                exit::PARTIAL
            } else {
                exit::OK
            }
        }
        Err(e) => {
            let code = match &e {
                JobError::Listing { source, .. } => match source.kind {
                    SourceErrorKind::NotFound => exit::NOT_FOUND,
                    SourceErrorKind::Denied => exit::DENIED,
                    SourceErrorKind::Transient => exit::NETWORK,
                    SourceErrorKind::Misconfigured => exit::USAGE,
                    _ => exit::FAILURE,
                },
                JobError::Config(_) => exit::USAGE,
                JobError::Cancelled { .. } => exit::INTERRUPTED,
                _ => exit::LOCAL_IO,
            };
            if let (Some(s), false) = (e.summary(), quiet) {
                err_line(summary_line(s, b.dry_run));
            }
            let msg = e.to_string();
            let msg = if msg.contains(&shown_url) {
                msg
            } else {
                format!("{shown_url}: {msg}")
            };
            // A listing error may quote a key or a local name: never a control sequence.
            let msg = printable(&msg);
            if code == exit::INTERRUPTED {
                err_line(format_args!("resume-get: interrupted: {msg}"));
            } else {
                err_line(format_args!("resume-get: error: {msg}"));
            }
            code
        }
    }
}

fn summary_line(s: &Summary, dry_run: bool) -> String {
    if dry_run {
        return format!(
            "dry run: {} to download ({}), {} up to date, {} skipped, {} excluded, of {} listed",
            s.done,
            format_bytes(s.bytes),
            s.up_to_date,
            s.skipped,
            s.excluded,
            s.listed
        );
    }
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    format!(
        "{} downloaded, {} up to date, {} skipped, {} failed ({} listed, {} excluded): {} \
         fetched in {:.1} s ({}/s)",
        s.done,
        s.up_to_date,
        s.skipped,
        s.failed,
        s.listed,
        s.excluded,
        format_bytes(s.fetched_bytes),
        s.elapsed.as_secs_f64(),
        format_bytes((s.fetched_bytes as f64 / secs) as u64)
    )
}

/// Job events → output: per-object JSON events, an aggregate bar, plain lines, or nothing.
#[derive(Debug)]
struct BatchOutput {
    mode: Mode,
    dry_run: bool,
    start: Instant,
    bar: Option<ProgressBar>,
    last_line: Mutex<Option<Instant>>,
}

impl BatchOutput {
    fn new(mode: Mode, dry_run: bool) -> Self {
        let bar = match mode {
            Mode::Bar { .. } if !dry_run && std::io::stderr().is_terminal() => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template("{bytes} {bytes_per_sec} {elapsed} objects {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.enable_steady_tick(Duration::from_millis(200));
                Some(bar)
            }
            _ => None,
        };
        Self {
            mode,
            dry_run,
            start: Instant::now(),
            bar,
            last_line: Mutex::new(None),
        }
    }

    /// A human line about an object: control characters a key may hold are escaped.
    fn line(&self, s: impl std::fmt::Display) {
        let s = s.to_string();
        let s = printable(&s);
        match &self.bar {
            Some(bar) => bar.println(s),
            None => err_line(s),
        }
    }

    fn handle(&self, e: &JobEvent) {
        if self.mode == Mode::Json {
            let mut v = job_event_json(e);
            v["t_ms"] = json!(self.start.elapsed().as_millis() as u64);
            out_line(v);
            return;
        }
        if let JobEvent::Planned {
            key,
            size,
            path,
            action,
        } = e
        {
            // The plan is the output of a dry run: on stdout, one line per object.
            let path = path
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|| "-".into());
            let (key, path) = (field(key), field(&path));
            match action {
                PlanAction::Download => out_line(format_args!("download\t{size}\t{key}\t{path}")),
                PlanAction::Skip(r) => {
                    let r = r.to_string();
                    let r = printable(&r);
                    out_line(format_args!("skip\t{size}\t{key}\t{path}\t{r}"))
                }
                _ => {}
            }
            return;
        }
        // Failures and problem skips are told even in quiet mode's absence of progress.
        match e {
            JobEvent::Failed { key, error, .. } => {
                self.line(format_args!("resume-get: failed: {key}: {error}"));
                return;
            }
            JobEvent::Skipped { key, reason, .. }
                if !reason.is_up_to_date() && self.mode != Mode::Quiet =>
            {
                self.line(format_args!("resume-get: skipped {key:?}: {reason}"));
                return;
            }
            JobEvent::JournalNote { note, .. } if self.mode != Mode::Quiet => {
                self.line(format_args!("resume-get: job: {note}"));
                return;
            }
            _ => {}
        }
        if self.mode == Mode::Quiet || self.dry_run {
            return;
        }
        let JobEvent::Progress(t) = e else {
            return;
        };
        let msg = format!(
            "{}/{} done ({} up to date, {} skipped, {} failed), {} listed",
            t.done + t.up_to_date,
            t.listed,
            t.up_to_date,
            t.skipped,
            t.failed,
            format_bytes(t.listed_bytes)
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(t.fetched_bytes);
                bar.set_message(msg);
            }
            None if self.mode == (Mode::Bar { force: true }) => {
                let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_some_and(|l| l.elapsed() < Duration::from_secs(1)) {
                    return;
                }
                *last = Some(Instant::now());
                err_line(format_args!(
                    "{} fetched, objects {msg}",
                    format_bytes(t.fetched_bytes)
                ));
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn reason_json(r: &SkipReason) -> Value {
    let kind = match r {
        SkipReason::UpToDate(_) => "up_to_date",
        SkipReason::Unmappable(_) => "unmappable",
        SkipReason::Clash(_) => "clash",
        SkipReason::Deleted => "deleted",
        _ => "other",
    };
    json!({"reason": kind, "detail": r.to_string()})
}

/// The JSON form of a job event; field names are stable (documented in the README).
pub fn job_event_json(e: &JobEvent) -> Value {
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    match e {
        JobEvent::JournalNote { path, note } => {
            json!({"event": "job_note", "journal": path, "note": note})
        }
        JobEvent::Listed { objects, bytes } => {
            json!({"event": "listed", "objects": objects, "bytes": bytes})
        }
        JobEvent::Planned {
            key,
            size,
            path: p,
            action,
        } => {
            let mut v = json!({"event": "planned", "key": key, "size": size, "path": path(p)});
            match action {
                PlanAction::Download => v["action"] = json!("download"),
                PlanAction::Skip(r) => {
                    v["action"] = json!("skip");
                    v["skip"] = reason_json(r);
                }
                _ => {}
            }
            v
        }
        JobEvent::Started { key, path, size } => {
            json!({"event": "object_started", "key": key, "path": path, "size": size})
        }
        JobEvent::Done {
            key,
            path,
            size,
            fetched_bytes,
            reused_bytes,
            verification,
        } => json!({"event": "object_done", "key": key, "path": path, "size": size,
            "fetched_bytes": fetched_bytes, "reused_bytes": reused_bytes,
            "verified": verification.is_verified(), "verification": verification.to_string(),
            "verified_by": crate::output::verified_by(verification)}),
        JobEvent::Skipped {
            key,
            path: p,
            reason,
        } => {
            let mut v = json!({"event": "object_skipped", "key": key, "path": path(p)});
            let r = reason_json(reason);
            v["reason"] = r["reason"].clone();
            v["detail"] = r["detail"].clone();
            v
        }
        JobEvent::Failed {
            key,
            path,
            kind,
            error,
        } => json!({"event": "object_failed", "key": key, "path": path,
            "kind": format!("{kind:?}"), "exit_code": exit::for_kind(*kind), "error": error}),
        JobEvent::Progress(t) => json!({"event": "job_progress", "listed": t.listed,
            "listed_bytes": t.listed_bytes, "done": t.done, "up_to_date": t.up_to_date,
            "skipped": t.skipped, "failed": t.failed, "fetched_bytes": t.fetched_bytes}),
        JobEvent::Finished(s) => json!({"event": "job_finished", "listed": s.listed,
            "earlier": s.earlier, "excluded": s.excluded, "done": s.done, "up_to_date": s.up_to_date,
            "skipped": s.skipped, "failed": s.failed, "fetched_bytes": s.fetched_bytes,
            "bytes": s.bytes, "elapsed_ms": s.elapsed.as_millis() as u64,
            "failures_file": s.failures_file, "complete": s.complete}),
        _ => json!({"event": "other", "debug": format!("{e:?}")}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_object_options_are_refused_with_the_option_named() {
        use clap::Parser;
        let cli = crate::args::Cli::parse_from([
            "resume-get",
            "-r",
            "--range",
            "0-9",
            "s3://b/p/",
            "out",
        ]);
        let err = refuse_single_object_options(&cli.opts).unwrap_err();
        assert!(
            err.contains("--range") && err.contains("without -r"),
            "{err}"
        );
        let cli = crate::args::Cli::parse_from(["resume-get", "-r", "s3://b/p/", "out"]);
        assert!(refuse_single_object_options(&cli.opts).is_ok());
    }

    #[test]
    fn skip_options_choose_one_rule() {
        use clap::Parser;
        let rule = |args: &[&str]| {
            let mut v = vec!["resume-get", "-r"];
            v.extend_from_slice(args);
            v.extend_from_slice(&["s3://b/p/", "out"]);
            let v = crate::args::batch_checksum_flag(v.into_iter().map(Into::into).collect());
            skip_rule(&crate::args::Cli::parse_from(v).batch)
        };
        assert_eq!(rule(&[]), SkipRule::Default);
        assert_eq!(rule(&["--update"]), SkipRule::Update);
        assert_eq!(rule(&["--size-only"]), SkipRule::SizeOnly);
        assert_eq!(rule(&["--overwrite"]), SkipRule::Overwrite);
        assert_eq!(rule(&["--checksum"]), SkipRule::Checksum);
        // Two rules at once, or a batch option without -r: clap refuses.
        assert!(
            crate::args::Cli::try_parse_from([
                "resume-get",
                "-r",
                "--update",
                "--overwrite",
                "s3://b/p/",
                "o"
            ])
            .is_err()
        );
        assert!(
            crate::args::Cli::try_parse_from(["resume-get", "--shard", "1/2", "s3://b/k", "o"])
                .is_err()
        );
    }

    #[test]
    fn a_bare_checksum_with_r_is_the_skip_rule_and_a_value_stays_a_digest() {
        use crate::args::batch_checksum_flag as f;
        let v = |a: &[&str]| {
            a.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert_eq!(
            f(v(&["rg", "-r", "--checksum", "oss://b/p/", "o"])),
            v(&["rg", "-r", "--checksum-skip-rule", "oss://b/p/", "o"])
        );
        assert_eq!(
            f(v(&["rg", "-r", "o", "--checksum"])),
            v(&["rg", "-r", "o", "--checksum-skip-rule"])
        );
        // A digest value is left alone (and -r then refuses it, naming --checksum).
        let digest = v(&["rg", "-r", "--checksum", "sha256=00", "s3://b/p/", "o"]);
        assert_eq!(f(digest.clone()), digest);
        // Without -r nothing changes.
        let single = v(&["rg", "--checksum", "md5=00", "s3://b/k", "o"]);
        assert_eq!(f(single.clone()), single);
    }

    #[test]
    fn every_job_event_has_a_stable_json_name() {
        let e = JobEvent::Skipped {
            key: "k".into(),
            path: None,
            reason: SkipReason::Deleted,
        };
        let v = job_event_json(&e);
        assert_eq!(v["event"], "object_skipped");
        assert_eq!(v["reason"], "deleted");
        let v = job_event_json(&JobEvent::Listed {
            objects: 3,
            bytes: 9,
        });
        assert_eq!(
            (v["event"].as_str(), v["objects"].as_u64()),
            (Some("listed"), Some(3))
        );
    }
}

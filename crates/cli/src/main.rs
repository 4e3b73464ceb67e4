//! `resume-get`: parallel, verified, resumable downloads from object storage.
#![forbid(unsafe_code)]

mod args;
mod batch;
mod checksum;
mod demo;
mod exit;
mod output;
mod saved;
mod size;
mod sources;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use resume_core::{
    AutoJobs, CancellationToken, CheckpointChoice, Downloader, ErrorKind, OnChange, RetryPolicy,
};

use args::{Auto, Cli, Command, DownloadOpts, OnChangeArg, OutputOpts, TransferOpts};
use output::{Mode, Output};

fn main() -> ExitCode {
    if std::env::args_os().len() <= 1 {
        // A first try without arguments: what to type, not just what is missing.
        use clap::CommandFactory;
        let usage = Cli::command().render_usage();
        output::err_line(format_args!(
            "{usage}\n\n{}\n\nFor all options and the exit codes: resume-get --help",
            args::EXAMPLES
        ));
        return ExitCode::from(exit::USAGE);
    }
    let cli = Cli::parse_from(args::batch_checksum_flag(std::env::args_os().collect()));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::err_line(format_args!(
                "resume-get: cannot start the async runtime: {e}"
            ));
            return ExitCode::from(exit::LOCAL_IO);
        }
    };
    let code = match cli.command {
        Some(Command::Demo(args)) => {
            init_logging(args.output.verbose);
            demo::run(&runtime, args)
        }
        None => {
            init_logging(cli.opts.output.verbose);
            let files_from = cli.batch.files_from.is_some();
            let (source, dest) = match (cli.source, cli.dest) {
                (Some(s), Some(d)) => (Some(s), d),
                (Some(d), None) if files_from => (None, std::path::PathBuf::from(d)),
                _ => {
                    output::err_line(
                        "resume-get: error: SOURCE and DEST are required (see --help)",
                    );
                    return ExitCode::from(exit::USAGE);
                }
            };
            // Run the download as a task on the runtime's workers, beside the tasks of its
            // connections, not on this thread: a body chunk then reaches the download without a
            // cross-thread wake-up (per GiB from nginx, measured: futex calls ~2 700 → ~100,
            // context switches ~8 200 → ~4 500, wall time 3-5 % lower on 2 cores).
            let (opts, batch) = (std::sync::Arc::new(cli.opts), cli.batch);
            let task = runtime.spawn(async move {
                match source {
                    s if batch.recursive => batch::run(s.as_deref(), &dest, opts, &batch).await,
                    Some(s) => download(&s, &dest, &opts).await,
                    None => exit::USAGE,
                }
            });
            match runtime.block_on(task) {
                Ok(code) => code,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => {
                    output::err_line(format_args!(
                        "resume-get: internal error: the download task stopped: {e}"
                    ));
                    exit::LOCAL_IO
                }
            }
        }
    };
    ExitCode::from(code)
}

/// Logs go to stderr; `RUST_LOG` wins when set. Without `-v` there are none: what a person
/// needs to know is told in one-line messages (see `output`), or as JSON events with `--json`.
/// `-v`: this program's notable steps, one line per HTTP request (method, URL redacted,
/// status, request id, time to the answer) and each retry with its cause; `-vv`: the requests'
/// headers (secrets redacted) and this program's debug lines; `-vvv`: everything, the HTTP
/// libraries' internals (connection pool, TLS) included. Other libraries say only warnings
/// below `-vvv`.
fn init_logging(verbose: u8) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_filter(verbose)));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The crates (and tracing targets) of this program, whose lines `-v` and `-vv` show.
const OUR_TARGETS: &[&str] = &[
    "resume_get",
    "resume_cli",
    "resume_core",
    "checkpoint",
    "backend_oss",
    "backend_object_store",
    "backend_http",
];

fn log_filter(verbose: u8) -> String {
    let level = match verbose {
        0 => return "off".into(),
        1 => "info",
        2 => "debug",
        _ => return "trace".into(),
    };
    let mut filter = String::from("warn");
    for target in OUR_TARGETS {
        filter.push_str(&format!(",{target}={level}"));
    }
    filter
}

/// Checks what clap cannot; returns a usage message.
pub(crate) fn validate(opts: &TransferOpts) -> Result<(), String> {
    if opts.part_size == Auto::Fixed(0) {
        return Err("--part-size must be at least 1 byte (e.g. 8MiB), or auto".into());
    }
    if opts.jobs == Auto::Fixed(0) {
        return Err("--jobs must be at least 1, or auto".into());
    }
    if opts.retries == 0 {
        return Err("--retries must be at least 1 (1 = no retry)".into());
    }
    Ok(())
}

/// The engine configured with the transfer settings; `on_event` sees every event.
pub(crate) fn downloader(
    source: Arc<dyn resume_core::RangeSource>,
    opts: &TransferOpts,
    cancel: CancellationToken,
    on_event: impl Fn(&resume_core::Event) + Send + Sync + 'static,
) -> Downloader {
    let dl = Downloader::from_arc(source);
    let dl = match opts.part_size {
        Auto::Auto => dl.auto_part_size(true),
        Auto::Fixed(n) => dl.part_size(n),
    };
    let dl = match opts.jobs {
        Auto::Auto => dl.auto_jobs(Some(AutoJobs::default())),
        Auto::Fixed(n) => dl.concurrency(n),
    };
    dl.retry(RetryPolicy {
        max_attempts: opts.retries,
        ..RetryPolicy::default()
    })
    .idle_timeout(opts.timeout)
    .lowest_speed(opts.lowest_speed())
    // 0 means no limit, as in curl, wget, aria2c and rclone.
    .rate_limit(opts.limit_rate.filter(|&r| r > 0))
    .cancel_token(cancel)
    .on_progress(on_event)
}

/// The rest of the command line's settings: what to download and where progress is kept.
fn configure(mut dl: Downloader, opts: &DownloadOpts) -> Downloader {
    dl = dl
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
        })
        .start_over(opts.start_over);
    if let Some(range) = opts.range {
        dl = dl.range(range);
    }
    if let Some(v) = &opts.version_id {
        dl = dl.version_id(v.clone());
    }
    for c in &opts.checksum {
        dl = dl.expect_checksum(c.clone());
    }
    if opts.no_checkpoint {
        dl = dl.no_checkpoint();
    } else if let Some(dir) = &opts.checkpoint_dir {
        dl = dl.checkpoint_choice(CheckpointChoice::InDir(dir.clone()));
    }
    dl
}

pub(crate) fn output_mode(opts: &OutputOpts) -> Mode {
    if opts.json {
        Mode::Json
    } else if opts.quiet {
        Mode::Quiet
    } else {
        Mode::Bar {
            force: opts.progress,
        }
    }
}

/// Cancels `token` on the first SIGINT or SIGTERM (a second one kills the process the usual
/// way, since the handler is gone).
pub(crate) fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        token.cancel();
    });
}

async fn download(source_url: &str, dest: &Path, opts: &DownloadOpts) -> u8 {
    if let Err(msg) = validate(&opts.transfer) {
        output::err_line(format_args!("resume-get: error: {msg}"));
        return exit::USAGE;
    }
    let shown_url = resume_core::redact::redact_url(source_url);
    let (source, key) = match sources::open(source_url, opts) {
        Ok(s) => s,
        Err(e) => {
            output::err_line(format_args!(
                "resume-get: error: {}",
                naming_source(e.message, &shown_url, "")
            ));
            return e.exit_code;
        }
    };
    let name = sources::file_name(source_url, &key);
    let dest = match resolve_dest(dest, &name) {
        Ok(d) => d,
        Err((msg, code)) => {
            output::err_line(format_args!(
                "resume-get: error: {}",
                naming_source(msg, &shown_url, &key)
            ));
            return code;
        }
    };
    let from_file = match &opts.checksum_file {
        None => None,
        Some(file) => {
            let dest_name = dest
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match checksum::from_sums_file(file, &[&dest_name, &name]) {
                Ok(c) => Some(c),
                Err(msg) => {
                    output::err_line(format_args!("resume-get: error: {msg}"));
                    return exit::USAGE;
                }
            }
        }
    };
    let out = Arc::new(Output::new(output_mode(&opts.output)));
    let cancel = CancellationToken::new();
    cancel_on_signals(cancel.clone());
    let sink = out.clone();
    let dl = downloader(source, &opts.transfer, cancel, move |e| sink.handle(e));
    let mut dl = configure(dl, opts);
    if let Some(c) = from_file {
        dl = dl.expect_checksum(c);
    }
    let result = dl.download(&key, &dest).await;
    out.finish();
    match result {
        Ok(report) => {
            if out.mode() != Mode::Json && out.mode() != Mode::Quiet {
                let line = output::summary(&report);
                output::err_line(sources::with_shown_key(&line, source_url, &key));
            }
            exit::OK
        }
        Err(e) => {
            let code = exit::for_kind(e.kind());
            let msg = naming_source(e.to_string(), &shown_url, &key);
            let mut msg = sources::with_shown_key(&msg, source_url, &key);
            // Say what is on disk to resume from, having looked (never assumed). Not for
            // errors before any transfer could start, nor for another download's files, nor
            // when a file in the way must be moved first (running again would not help).
            let foreign = matches!(
                e,
                resume_core::Error::ForeignFile { .. }
                    | resume_core::Error::Checkpoint(
                        resume_core::checkpoint::CheckpointError::Foreign { .. }
                    )
            );
            if !foreign && !matches!(e.kind(), ErrorKind::Usage | ErrorKind::Locked) {
                let saved = dl.saved_progress(&key, &dest);
                msg.push_str(" — ");
                msg.push_str(&saved::describe(saved.as_ref(), opts.no_checkpoint));
            }
            if code == exit::INTERRUPTED {
                output::err_line(format_args!("resume-get: interrupted: {msg}"));
            } else {
                output::err_line(format_args!("resume-get: error: {msg}"));
            }
            code
        }
    }
}

/// `msg`, prefixed with the source URL unless it already names the source or the key: every
/// error names the object, and some (local I/O, the lock, missing credentials or endpoint)
/// otherwise name only a path or a setting. `source_url` is the redacted URL
/// ([`resume_core::redact::redact_url`]): the one typed may hold a password or a signature.
fn naming_source(msg: String, source_url: &str, key: &str) -> String {
    if msg.contains(source_url) || (!key.is_empty() && msg.contains(key)) {
        msg
    } else {
        format!("{source_url}: {msg}")
    }
}

/// DEST as given, or, when it is an existing directory (or ends with a separator), the
/// key's last segment inside it. The error comes with its exit code: a missing directory is
/// local I/O (7), as for `missing/sub/file`; a key without a file name is usage (2).
fn resolve_dest(dest: &Path, key: &str) -> Result<PathBuf, (String, u8)> {
    let names_dir = dest
        .as_os_str()
        .to_string_lossy()
        .ends_with(std::path::MAIN_SEPARATOR);
    if !(dest.is_dir() || names_dir) {
        return Ok(dest.to_path_buf());
    }
    if names_dir && !dest.is_dir() {
        return Err((
            format!(
                "destination directory {} does not exist; create it first",
                dest.display()
            ),
            exit::LOCAL_IO,
        ));
    }
    let name = key.rsplit('/').find(|s| !s.is_empty()).unwrap_or("");
    if name.is_empty() || name == "." || name == ".." {
        return Err((
            format!(
                "the key {key:?} has no file name to use inside directory {}; give a file path \
                 as DEST",
                dest.display()
            ),
            exit::USAGE,
        ));
    }
    Ok(dest.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_internals_only_at_vvv() {
        assert_eq!(log_filter(0), "off");
        assert!(log_filter(1).starts_with("warn,") && log_filter(1).contains("resume_get=info"));
        assert!(log_filter(2).contains("backend_oss=debug") && !log_filter(2).contains("hyper"));
        assert_eq!(log_filter(3), "trace");
    }

    #[test]
    fn error_messages_name_the_source() {
        let url = "oss://b/data/x.bin";
        assert_eq!(
            naming_source(
                "cannot create /d/out.rgpart: denied".into(),
                url,
                "data/x.bin"
            ),
            "oss://b/data/x.bin: cannot create /d/out.rgpart: denied"
        );
        let named = "part 3 of data/x.bin failed".to_string();
        assert_eq!(naming_source(named.clone(), url, "data/x.bin"), named);
        let named = format!("{url:?} names no object key");
        assert_eq!(naming_source(named.clone(), url, ""), named);
    }

    #[test]
    fn dest_directory_takes_the_keys_file_name() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve_dest(dir.path(), "a/b/c.bin").unwrap(),
            dir.path().join("c.bin")
        );
        assert_eq!(
            resolve_dest(dir.path(), "a/b/dir/").unwrap(),
            dir.path().join("dir")
        );
        assert!(resolve_dest(dir.path(), "a/..").is_err());
        let file = dir.path().join("x.bin");
        assert_eq!(resolve_dest(&file, "a/b/c.bin").unwrap(), file);
        let missing = format!("{}/missing/", dir.path().display());
        let (msg, code) = resolve_dest(Path::new(&missing), "k").unwrap_err();
        assert!(msg.contains("does not exist"), "{msg}");
        assert_eq!(code, exit::LOCAL_IO);
        assert_eq!(resolve_dest(dir.path(), "a/..").unwrap_err().1, exit::USAGE);
    }
}

//! Command-line arguments. Validation that clap cannot express happens in `main.rs`, and
//! every problem is a usage error (exit 2) naming the option.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use resume_core::RangeSpec;

use crate::size::parse_size;

/// Two commands to start from, shown by `resume-get` without arguments and in `--help`.
pub const EXAMPLES: &str = "\
Examples:
  resume-get --endpoint https://oss-cn-hangzhou.aliyuncs.com oss://bucket/data/file.bin ./
  resume-get https://example.com/file.iso file.iso
  resume-get demo        (a self-contained demonstration, nothing to set up)";

#[derive(Debug, Parser)]
#[command(
    name = "resume-get",
    version,
    about = "Parallel, verified, resumable downloads from object storage",
    long_about = "Downloads SOURCE to DEST in ranged parts fetched in parallel, verifies them \
                  end to end, and resumes after any interruption: run the same command again.",
    after_help = format!("{EXAMPLES}\n\n{}", crate::exit::TABLE),
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// What to download: oss://BUCKET/KEY, s3://BUCKET/KEY, gs://BUCKET/KEY,
    /// az://CONTAINER/KEY (account from AZURE_STORAGE_ACCOUNT_NAME), http(s)://HOST/PATH or
    /// file:///PATH.
    #[arg(required = true)]
    pub source: Option<String>,

    /// Where to put it: a file, or an existing directory (then the key's file name is used).
    /// With --files-from and no SOURCE, the only path given is DEST.
    #[arg(required_unless_present = "files_from")]
    pub dest: Option<PathBuf>,

    #[command(flatten)]
    pub opts: DownloadOpts,

    #[command(flatten)]
    pub batch: BatchOpts,
}

/// `-r` and the options of a recursive download (a whole prefix as one job).
#[derive(Debug, Args)]
#[command(next_help_heading = "Recursive downloads (-r)")]
pub struct BatchOpts {
    /// Download every object under SOURCE (a prefix: oss://BUCKET/PREFIX/, s3://, gs://,
    /// az://, file:///DIR/) into the directory DEST, as one job: running the same command
    /// again resumes it, and asks nothing again of an object already done.
    #[arg(short = 'r', long)]
    pub recursive: bool,

    /// Download the objects named in FILE (one per line; blank lines and lines starting with
    /// `#` ignored) into the directory DEST, as one resumable job (implies -r). With SOURCE
    /// (a prefix, e.g. oss://bucket/data/) the lines are keys below it, placed as -r places
    /// them; without, they are full URLs of any scheme (oss://, s3://, gs://, az://, file://,
    /// http(s)://), each placed at DEST/HOST/PATH (the bucket for object stores; query and
    /// fragment dropped; two URLs with one path: the first wins, the others are reported).
    #[arg(long, value_name = "FILE")]
    pub files_from: Option<PathBuf>,

    /// Only keys whose name below the prefix matches this glob (`*` matches across `/`, `?`,
    /// `[a-z]`); repeatable: any of them.
    #[arg(long, value_name = "GLOB", requires = "recursive")]
    pub include: Vec<String>,

    /// No key whose name below the prefix matches this glob; repeatable; wins over
    /// --include.
    #[arg(long, value_name = "GLOB", requires = "recursive")]
    pub exclude: Vec<String>,

    /// Only shard INDEX of COUNT (INDEX from 0, as Kubernetes' JOB_COMPLETION_INDEX): keys
    /// are split by a stable hash, so COUNT processes cover every key exactly once.
    #[arg(long, value_name = "INDEX/COUNT", requires = "recursive")]
    pub shard: Option<String>,

    /// Print the plan (download or skip, size, key, local path; tab-separated on stdout) and
    /// download nothing.
    #[arg(long, requires = "recursive")]
    pub dry_run: bool,

    /// Skip an object whose local file is not older than it (instead of the default: skip
    /// only when size and version match).
    #[arg(long, requires = "recursive", conflicts_with_all = ["size_only", "overwrite"])]
    pub update: bool,

    /// Skip an object whose local file has its size.
    #[arg(long, requires = "recursive", conflicts_with = "overwrite")]
    pub size_only: bool,

    /// Download every object again, even when its local file looks up to date.
    #[arg(long, requires = "recursive")]
    pub overwrite: bool,

    /// Stop at the first object that fails (default: report it and go on; exit 9 at the end).
    #[arg(long, requires = "recursive")]
    pub fail_fast: bool,

    /// `-r --checksum` (no value): skip an object whose local file has the size and the CRC
    /// the store publishes (taken from the listing, else one HEAD; the file is read once).
    /// Spelled `--checksum` on the command line; see `batch_checksum_flag`.
    #[arg(
        long = "checksum-skip-rule",
        hide = true,
        requires = "recursive",
        conflicts_with_all = ["update", "size_only", "overwrite"]
    )]
    pub checksum_rule: bool,

    /// Write the failed objects here (JSON lines: key, path, kind, error) instead of beside
    /// the job's journal (DEST/.resume-get/, or --checkpoint-dir).
    #[arg(long, value_name = "FILE", requires = "recursive")]
    pub failures: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a self-contained demonstration: an in-process OSS emulator with a generated object,
    /// injected faults, a simulated crash and a verified resume.
    Demo(DemoArgs),
}

/// `demo` takes only what it uses: the object's size, where to keep the file, how to
/// transfer and how to report. (Sources, ranges, versions, signatures and checkpoint
/// locations are fixed by the demonstration itself.)
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Size of the generated object (the crash is simulated at 40 % of it).
    #[arg(long, default_value = "256MiB", value_parser = parse_size, allow_hyphen_values = true)]
    pub size: u64,
    /// Keep the downloaded file in this directory instead of a temporary one.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    #[command(flatten)]
    pub transfer: TransferOpts,
    #[command(flatten)]
    pub output: OutputOpts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnChangeArg {
    /// Start over against the new version.
    Restart,
    /// Stop with exit code 5.
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignatureArg {
    V1,
    V4,
}

#[derive(Debug, Args)]
pub struct DownloadOpts {
    #[command(flatten)]
    pub transfer: TransferOpts,

    /// Keep checkpoints in this directory instead of beside DEST (DEST.rgcp).
    #[arg(long, conflicts_with = "no_checkpoint")]
    pub checkpoint_dir: Option<PathBuf>,

    /// Do not keep a checkpoint: an interrupted download starts over.
    #[arg(long)]
    pub no_checkpoint: bool,

    /// Discard this download's saved progress and start from zero. Without it, running the
    /// same command again resumes, with the part size the saved progress was made with (a
    /// different --part-size or --jobs does not make it fetch saved bytes again).
    #[arg(long)]
    pub start_over: bool,

    /// Download only this byte range: A-B (inclusive), A- or -N (the last N bytes).
    #[arg(long, value_parser = parse_range_arg, allow_hyphen_values = true)]
    pub range: Option<RangeSpec>,

    /// Download this version of the object.
    #[arg(long)]
    pub version_id: Option<String>,

    /// On resume, re-hash every part already done and re-fetch only the damaged ones.
    #[arg(long)]
    pub verify_on_resume: bool,

    /// Also verify the file against this digest, ALG=HEX with ALG one of sha256, sha512, sha1,
    /// md5, crc32c, crc32, crc64nvme, crc64xz (any SOURCE; repeatable; with --range, the
    /// digest of the range's bytes). A mismatch exits 6 and leaves DEST as it was. With -r and
    /// no value: the skip rule that compares each same-size local file's CRC with the one the
    /// store publishes (from the listing, else one HEAD), instead of size and time.
    #[arg(long, value_name = "ALG=HEX", value_parser = crate::checksum::parse_checksum_arg)]
    pub checksum: Vec<resume_core::Checksum>,

    /// Verify the file against its entry in this checksum file: `HEX  NAME` lines as
    /// sha256sum/md5sum write them (or BSD `ALG (NAME) = HEX`), the entry whose NAME is
    /// DEST's file name or the key's last segment; the algorithm comes from the file's name
    /// (SHA256SUMS, SHA1SUMS, MD5SUMS) or else the digest's length.
    #[arg(long, value_name = "FILE")]
    pub checksum_file: Option<PathBuf>,

    /// Hash MD5/SHA digests in one read of the finished file instead of while parts
    /// complete (for `cargo xtask bench`, which measures both).
    #[arg(long, hide = true)]
    pub digests_at_end: bool,

    /// Let the last parts finish on the connections that drew them, without helpers taking
    /// over their ends (for `cargo xtask bench`, which measures both).
    #[arg(long, hide = true)]
    pub no_tail_sharing: bool,

    /// Refuse to download, before any byte is fetched (exit 6), when nothing can verify
    /// the file: the store publishes no checksum that applies and none was given.
    #[arg(long)]
    pub require_checksum: bool,

    /// What to do if the object changes during the download.
    #[arg(long, value_enum, default_value_t = OnChangeArg::Restart)]
    pub on_change: OnChangeArg,

    /// OSS endpoint (default: $OSS_ENDPOINT), e.g. https://oss-cn-hangzhou.aliyuncs.com.
    #[arg(long)]
    pub endpoint: Option<String>,

    /// OSS region for V4 signatures (default: $OSS_REGION, else derived from the endpoint);
    /// the OSS emulator and `demo` use cn-hangzhou: `--region cn-hangzhou`.
    #[arg(long)]
    pub region: Option<String>,

    /// OSS signature version.
    #[arg(long, value_enum, default_value_t = SignatureArg::V4)]
    pub signature: SignatureArg,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub output: OutputOpts,
}

/// Options for http(s):// sources, as curl and wget spell them.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Send this header with every request to an http(s):// source, 'Name: value'
    /// (repeatable). Authorization and Cookie headers go only to the URL's own host, never to
    /// another host a redirect leads to.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// Take the user name and password for an http(s):// source's host from ~/.netrc (or
    /// $NETRC) when the URL has none (basic auth).
    #[arg(long)]
    pub netrc: bool,

    /// The User-Agent sent to http(s):// sources (default resume-get/VERSION).
    #[arg(long, value_name = "STRING")]
    pub user_agent: Option<String>,

    /// Trust only the certificate authorities in this PEM file for https:// sources (a
    /// private or self-signed CA), as curl's --cacert.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
}

/// How bytes are moved: shared by downloads and `demo`.
#[derive(Debug, Args)]
pub struct TransferOpts {
    /// Bytes per part, e.g. 8MiB, 512K, 100000, or `auto` (the default): about four parts
    /// per connection the download may use, in whole MiB from 2 MiB to 64 MiB (2 MiB for
    /// 256 MiB, 8 MiB for 1 GiB). K, M, G, T (and KiB, MiB, GiB, TiB) are binary: 1K = 1024
    /// bytes; KB, MB, GB, TB are decimal: 1KB = 1000 bytes.
    #[arg(long, default_value = "auto", value_parser = parse_part_size, allow_hyphen_values = true)]
    pub part_size: Auto<u64>,

    /// Parts downloaded in parallel: a number, or `auto` (the default) — start with 8
    /// connections, double them while the download gets faster, up to 32 (64 while each
    /// doubling still raises the rate by half, as on a lossy link), and halve them when
    /// the server throttles (503 SlowDown, 429, refused connections). For `-r`, the
    /// connections of the whole job (auto: 8).
    #[arg(short = 'j', long, default_value = "auto", value_parser = parse_jobs, allow_hyphen_values = true)]
    pub jobs: Auto<usize>,

    /// Cap the total download rate in bytes per second, e.g. 50MiB (units as for
    /// --part-size); 0 means no limit.
    #[arg(long, value_parser = parse_size, allow_hyphen_values = true)]
    pub limit_rate: Option<u64>,

    /// Lowest speed of a connection, in bytes per second (units as for --part-size, e.g.
    /// 10K): a request slower than this on average over --speed-time is abandoned and the part
    /// retried, from where it stopped, on a new connection; each counts as a failed attempt
    /// (see --retries). Off by default (0), as in curl and aria2c: only a stalled transfer
    /// (--timeout) is abandoned.
    #[arg(long, visible_alias = "lowest-speed-limit", value_name = "RATE", value_parser = parse_size, allow_hyphen_values = true)]
    pub speed_limit: Option<u64>,

    /// How long a connection may stay below --speed-limit before it is abandoned: seconds
    /// (30, 2.5) or a duration (500ms, 2m). Default 30s; given alone, the limit is 1 byte/s
    /// (as in curl).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub speed_time: Option<Duration>,

    /// Consecutive failed attempts per request before giving up.
    #[arg(long, default_value = "10", value_parser = parse_count::<u32>, allow_hyphen_values = true)]
    pub retries: u32,

    /// Give up on a request when no byte arrives for this long: seconds (10, 2.5) or a
    /// duration with a unit (500ms, 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub timeout: Duration,
}

/// What is printed: shared by downloads and `demo`.
#[derive(Debug, Args)]
pub struct OutputOpts {
    /// Print nothing but errors.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,

    /// Print events as newline-delimited JSON on stdout (for scripts).
    #[arg(long)]
    pub json: bool,

    /// Show progress even when stderr is not a terminal (as plain lines).
    #[arg(long, conflicts_with_all = ["quiet", "json"])]
    pub progress: bool,

    /// Logs on stderr (-v info, -vv debug, -vvv trace; RUST_LOG overrides). Without -v there
    /// are no logs, only one-line messages.
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,
}

impl TransferOpts {
    /// The lowest-speed rule the options ask for, if any (curl's rules: a time alone means
    /// 1 byte/s, a limit alone 30 s; a limit of 0 turns it off).
    pub fn lowest_speed(&self) -> Option<resume_core::LowestSpeed> {
        let bytes_per_sec = match (self.speed_limit, self.speed_time) {
            (Some(0), _) | (None, None) => return None,
            (Some(limit), _) => limit,
            (None, Some(_)) => 1,
        };
        Some(resume_core::LowestSpeed {
            bytes_per_sec,
            window: self.speed_time.unwrap_or(Duration::from_secs(30)),
        })
    }
}

fn parse_range_arg(s: &str) -> Result<RangeSpec, String> {
    resume_core::parse_range(s).map_err(|p| p.0)
}

/// A whole number of at least 0 (the minimum is checked with the other settings).
/// A setting the tool may choose (`auto`) or the user fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auto<T> {
    Auto,
    Fixed(T),
}

impl<T: Copy> Auto<T> {
    /// The fixed value, or `default` for `auto`.
    pub fn or(self, default: T) -> T {
        match self {
            Auto::Auto => default,
            Auto::Fixed(v) => v,
        }
    }
}

fn parse_jobs(s: &str) -> Result<Auto<usize>, String> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(Auto::Auto);
    }
    parse_count(s)
        .map(Auto::Fixed)
        .map_err(|e| format!("{e}, or auto"))
}

fn parse_part_size(s: &str) -> Result<Auto<u64>, String> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(Auto::Auto);
    }
    parse_size(s)
        .map(Auto::Fixed)
        .map_err(|e| format!("{e}, or auto"))
}

fn parse_count<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("{s:?} is negative; give a whole number like 8"));
    }
    t.parse()
        .map_err(|_| format!("{s:?} is not a whole number; give one like 8"))
}

/// Seconds (`10`, `2.5`) or a duration with a unit (`500ms`, `30s`, `2m`, `1h`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!(
            "{s:?} is negative; give a duration like 30 (seconds), 500ms or 2m"
        ));
    }
    let d = if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        t.parse::<f64>()
            .ok()
            .filter(|secs| secs.is_finite())
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or_else(|| format!("cannot parse duration {s:?}; use e.g. 30, 500ms, 30s, 2m"))?
    } else {
        humantime::parse_duration(t).map_err(|e| {
            format!("cannot parse duration {s:?} ({e}); use e.g. 30 (seconds), 500ms, 30s, 2m")
        })?
    };
    if d.is_zero() {
        return Err("the timeout must be longer than 0".into());
    }
    Ok(d)
}

/// `--checksum` is two options: `--checksum ALG=HEX` (one download's digest) and, with `-r`,
/// a bare `--checksum` (the skip rule comparing CRCs, as rclone's `--checksum`). clap cannot
/// give one name both shapes, so with `-r`/`--recursive` among the arguments a `--checksum`
/// not followed by an `ALG=HEX` value is passed on as the hidden `--checksum-skip-rule`.
pub fn batch_checksum_flag(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let before_end = |a: &std::ffi::OsString| *a != "--";
    let recursive = args
        .iter()
        .skip(1)
        .take_while(|a| before_end(a))
        .any(|a| a == "-r" || a == "--recursive");
    let files_from =
        args.iter().skip(1).take_while(|a| before_end(a)).any(|a| {
            a == "--files-from" || a.to_str().is_some_and(|a| a.starts_with("--files-from="))
        });
    let mut args = args;
    if files_from && !recursive {
        // --files-from implies -r (so the job's options apply).
        args.insert(1, "-r".into());
    } else if !recursive {
        return args;
    }
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter().peekable();
    let mut rest = false;
    while let Some(a) = it.next() {
        if !rest && a == "--checksum" {
            let value_follows = it
                .peek()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('-') && n.contains('=') && !n.contains("://"));
            if !value_follows {
                out.push("--checksum-skip-rule".into());
                continue;
            }
        }
        rest |= a == "--";
        out.push(a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_seconds_unless_a_unit_says_otherwise() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        for bad in ["-1", "-5s", "0", "0s", "soon", "", "1.2.3"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("-1").unwrap_err().contains("negative"));
    }

    #[test]
    fn lowest_speed_is_off_unless_asked_for_and_speed_time_alone_means_1_byte_per_second() {
        let opts = |args: &[&str]| {
            let mut all = vec!["resume-get", "oss://b/k", "out"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all)
                .unwrap()
                .opts
                .transfer
                .lowest_speed()
        };
        assert_eq!(opts(&[]), None);
        assert_eq!(opts(&["--speed-limit", "0"]), None);
        let s = opts(&["--speed-limit", "10K"]).unwrap();
        assert_eq!(
            (s.bytes_per_sec, s.window),
            (10 << 10, Duration::from_secs(30))
        );
        let s = opts(&["--lowest-speed-limit", "1M", "--speed-time", "500ms"]).unwrap();
        assert_eq!(
            (s.bytes_per_sec, s.window),
            (1 << 20, Duration::from_millis(500))
        );
        let s = opts(&["--speed-time", "5"]).unwrap();
        assert_eq!((s.bytes_per_sec, s.window), (1, Duration::from_secs(5)));
    }

    #[test]
    fn counts_refuse_negatives_plainly() {
        assert_eq!(parse_count::<usize>("8"), Ok(8));
        assert_eq!(parse_count::<u32>("0"), Ok(0));
        assert!(parse_count::<usize>("-1").unwrap_err().contains("negative"));
        assert!(
            parse_count::<u32>("many")
                .unwrap_err()
                .contains("whole number")
        );
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

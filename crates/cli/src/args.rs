//! Command-line arguments. Validation that clap cannot express happens in `main.rs`, and
//! every problem is a usage error (exit 2) naming the option.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use resume_core::RangeSpec;

use crate::size::parse_size;

#[derive(Debug, Parser)]
#[command(
    name = "resume-get",
    version,
    about = "Parallel, verified, resumable downloads from object storage",
    long_about = "Downloads SOURCE to DEST in ranged parts fetched in parallel, verifies them \
                  end to end, and resumes after any interruption: run the same command again.\n\n\
                  SOURCE is oss://BUCKET/KEY, s3://BUCKET/KEY, gs://BUCKET/KEY, \
                  az://ACCOUNT/CONTAINER/KEY, http(s)://HOST/PATH or file:///PATH. DEST is a \
                  file, or a directory to download into under the key's file name.",
    after_help = crate::exit::TABLE,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// What to download (see above).
    #[arg(required = true)]
    pub source: Option<String>,

    /// Where to put it: a file, or an existing directory.
    #[arg(required = true)]
    pub dest: Option<PathBuf>,

    #[command(flatten)]
    pub opts: DownloadOpts,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a self-contained demonstration: an in-process OSS emulator with a generated object,
    /// injected faults, a simulated crash and a verified resume.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Size of the generated object.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    pub size: u64,
    /// Keep the downloaded file in this directory instead of a temporary one.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    #[command(flatten)]
    pub opts: DownloadOpts,
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
    /// Bytes per part (e.g. 8MiB, 512K, 100000).
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub part_size: u64,

    /// Parts downloaded in parallel.
    #[arg(short = 'j', long, default_value_t = 8)]
    pub jobs: usize,

    /// Keep checkpoints in this directory instead of beside DEST (DEST.rgcp).
    #[arg(long, conflicts_with = "no_checkpoint")]
    pub checkpoint_dir: Option<PathBuf>,

    /// Do not keep a checkpoint: an interrupted download starts over.
    #[arg(long)]
    pub no_checkpoint: bool,

    /// Download only this byte range: A-B (inclusive), A- or -N (the last N bytes).
    #[arg(long, value_parser = parse_range_arg, allow_hyphen_values = true)]
    pub range: Option<RangeSpec>,

    /// Download this version of the object.
    #[arg(long)]
    pub version_id: Option<String>,

    /// On resume, re-hash every part already done and re-fetch only the damaged ones.
    #[arg(long)]
    pub verify_on_resume: bool,

    /// What to do if the object changes during the download.
    #[arg(long, value_enum, default_value_t = OnChangeArg::Restart)]
    pub on_change: OnChangeArg,

    /// Cap the total download rate (e.g. 50MiB, meaning per second).
    #[arg(long, value_parser = parse_size)]
    pub limit_rate: Option<u64>,

    /// Consecutive failed attempts per request before giving up.
    #[arg(long, default_value_t = 10)]
    pub retries: u32,

    /// Give up on a request when no byte arrives for this long (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

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

    /// Print nothing but errors.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,

    /// Print events as newline-delimited JSON on stdout (for scripts).
    #[arg(long)]
    pub json: bool,

    /// Show progress even when stderr is not a terminal (as plain lines).
    #[arg(long, conflicts_with_all = ["quiet", "json"])]
    pub progress: bool,

    /// More logs on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,
}

fn parse_range_arg(s: &str) -> Result<RangeSpec, String> {
    resume_core::parse_range(s).map_err(|p| p.0)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("cannot parse duration {s:?} ({e}); use e.g. 30s, 2m, 1h"))?;
    if d.is_zero() {
        return Err("the timeout must be longer than 0".into());
    }
    Ok(d)
}

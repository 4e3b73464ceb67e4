#![forbid(unsafe_code)]
//! `oss-emulator`: a local OSS-compatible server. Prints the bound address (`IP:PORT`) as
//! the first line on stdout, logs to stderr, and runs until SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use oss_emulator::{AccessKey, Emulator, EmulatorConfig, EmulatorError, FaultPlan};

#[derive(Debug, Parser)]
#[command(
    name = "oss-emulator",
    about = "A local OSS-compatible HTTP server with strict signatures and fault injection",
    after_help = "Prints the bound address (e.g. 127.0.0.1:40123) as the first stdout line."
)]
struct Args {
    /// Address to listen on (loopback only); port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory to keep buckets and objects in (created if missing, reloaded at start).
    /// Without it, objects live in memory.
    #[arg(long)]
    root: Option<PathBuf>,
    /// An accepted AccessKey, as ID:SECRET (repeatable).
    #[arg(long = "access-key", value_name = "ID:SECRET")]
    access_keys: Vec<String>,
    /// Accepted STS credentials, as ID:SECRET:TOKEN (repeatable).
    #[arg(long = "sts", value_name = "ID:SECRET:TOKEN")]
    sts: Vec<String>,
    /// A fault plan (JSON, see the crate docs).
    #[arg(long, value_name = "FILE")]
    faults: Option<PathBuf>,
    /// Serve GET/HEAD of objects without credentials (every bucket public-read).
    #[arg(long)]
    anonymous: bool,
    /// Accept every request without checking signatures.
    #[arg(long)]
    no_verify: bool,
    /// The V4 signing region to require ("any" accepts every region).
    #[arg(long, default_value = "cn-hangzhou")]
    region: String,
    /// Create these buckets at start if missing (repeatable).
    #[arg(long = "bucket", value_name = "NAME")]
    buckets: Vec<String>,
    /// Log level on stderr: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
}

fn parse_sts(s: &str) -> Result<AccessKey, EmulatorError> {
    let mut parts = s.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(id), Some(secret), Some(token))
            if !id.is_empty() && !secret.is_empty() && !token.is_empty() =>
        {
            Ok(AccessKey::sts(id, secret, token))
        }
        _ => Err(EmulatorError::InvalidAccessKey(
            s.split(':').next().unwrap_or("").to_string(),
        )),
    }
}

fn config(args: &Args) -> Result<EmulatorConfig, EmulatorError> {
    let mut config = EmulatorConfig::new()
        .listen(args.listen)
        .anonymous_read(args.anonymous)
        .verify_signatures(!args.no_verify)
        .region((args.region != "any").then_some(args.region.as_str()));
    if let Some(root) = &args.root {
        config = config.directory(root);
    }
    for k in &args.access_keys {
        config = config.access_key(AccessKey::parse(k)?);
    }
    for s in &args.sts {
        config = config.access_key(parse_sts(s)?);
    }
    if let Some(path) = &args.faults {
        let text = std::fs::read_to_string(path).map_err(|e| EmulatorError::FaultPlan {
            path: path.clone(),
            message: format!("cannot read it: {e}"),
        })?;
        let plan = FaultPlan::from_json(&text).map_err(|e| EmulatorError::FaultPlan {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config = config.faults(plan);
    }
    Ok(config)
}

fn run(args: Args) -> Result<(), EmulatorError> {
    let emulator = Emulator::start(config(&args)?)?;
    for b in &args.buckets {
        match emulator.create_bucket(b) {
            Ok(()) | Err(EmulatorError::BucketExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", emulator.addr());
        let _ = out.flush();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(EmulatorError::Runtime)?;
    rt.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).map_err(EmulatorError::Runtime)?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        Ok::<(), EmulatorError>(())
    })?;
    tracing::info!("shutting down");
    emulator.shutdown();
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(args.log_level)
        .with_ansi(false)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oss-emulator: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `resume-get demo`: the whole story in one command, needing nothing but the binary.
//!
//! An OSS emulator starts in-process on 127.0.0.1:0 with strict signature checks and a
//! generated object; a fault plan makes the network misbehave (a burst of 503 SlowDown,
//! connection resets mid-body, short bodies); the download is killed partway as a crash
//! would (its future dropped — no graceful shutdown, nothing flushed on the way out); the
//! same download then resumes from its checkpoint, and the result is verified against the
//! object's CRC-64 (by the engine) and its BLAKE3 (computed here while generating it).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use backend_oss::Client;
use oss_emulator::{AccessKey, Emulator, EmulatorConfig, Fault, FaultPlan, FaultRule};
use resume_core::{CancellationToken, Event, Report};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

use crate::args::DemoArgs;
use crate::exit;
use crate::output::Output;
use crate::size::format_bytes;

const BUCKET: &str = "demo";
const KEY: &str = "datasets/demo-object.bin";
const ACCESS_KEY_ID: &str = "demo-access-key";

/// Deterministic object content, hashed as it is produced.
struct Generator {
    state: u64,
    remaining: u64,
    hasher: blake3::Hasher,
}

impl Read for Generator {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX))
            & !7;
        let n = if n == 0 {
            buf.len().min(self.remaining as usize)
        } else {
            n
        };
        for chunk in buf[..n].chunks_mut(8) {
            // xorshift64*: fast, and the content is incompressible like real data.
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let v = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        self.hasher.update(&buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// A secret that exists only for this run (the emulator checks signatures with it).
fn session_secret() -> String {
    let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    blake3::hash(seed.as_bytes()).to_hex()[..40].to_string()
}

fn say(line: impl AsRef<str>) {
    println!("{}", line.as_ref());
}

pub fn run(rt: &Runtime, args: DemoArgs) -> u8 {
    if let Err(msg) = crate::validate(&args.opts) {
        eprintln!("resume-get: error: {msg}");
        return exit::USAGE;
    }
    match demo(rt, &args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("resume-get demo: error: {msg}");
            exit::LOCAL_IO
        }
    }
}

fn demo(rt: &Runtime, args: &DemoArgs) -> Result<u8, String> {
    let opts = &args.opts;
    let work = tempfile::Builder::new()
        .prefix("resume-get-demo-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let out_dir: PathBuf = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            dir.clone()
        }
        None => work.path().join("download"),
    };
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let dest = out_dir.join("demo-object.bin");
    for stale in [
        dest.clone(),
        resume_core::with_suffix(&dest, ".rgcp"),
        resume_core::with_suffix(&dest, resume_core::PART_SUFFIX),
    ] {
        let _ = std::fs::remove_file(stale);
    }

    // 1. A local OSS with strict signatures and a generated object.
    let secret = session_secret();
    let emulator = Emulator::start(
        EmulatorConfig::new()
            .directory(work.path().join("oss"))
            .access_key(AccessKey::new(ACCESS_KEY_ID, secret.clone())),
    )
    .map_err(|e| format!("cannot start the OSS emulator: {e}"))?;
    emulator
        .create_bucket(BUCKET)
        .map_err(|e| format!("cannot create the demo bucket: {e}"))?;
    let t = Instant::now();
    let mut generator = Generator {
        state: 0x9E37_79B9_7F4A_7C15,
        remaining: args.size,
        hasher: blake3::Hasher::new(),
    };
    let info = emulator
        .put_object_from_reader(BUCKET, KEY, &mut generator)
        .map_err(|e| format!("cannot store the demo object: {e}"))?;
    let expected_blake3 = generator.hasher.finalize();
    say(format!(
        "1. OSS emulator on {} (V4 signatures checked); oss://{BUCKET}/{KEY}: {} generated in {:.1} s, CRC-64 {}",
        emulator.endpoint(),
        format_bytes(info.size),
        t.elapsed().as_secs_f64(),
        info.crc64
    ));

    // 2. A misbehaving network.
    emulator.set_fault_plan(
        FaultPlan::new(7)
            .rule(
                FaultRule::always(Fault::slow_down())
                    .method("GET")
                    .from_request(3)
                    .times(5),
            )
            .rule(
                FaultRule::always(Fault::ResetAfterBytes { bytes: 96 << 10 })
                    .method("GET")
                    .probability(0.05)
                    .times(8),
            )
            .rule(
                FaultRule::always(Fault::ShortBody { bytes: 160 << 10 })
                    .method("GET")
                    .probability(0.04)
                    .times(6),
            ),
    );
    say(
        "2. faults injected: a burst of 5 × 503 SlowDown, connection resets mid-body, short bodies",
    );

    let client = Client::builder()
        .endpoint(emulator.endpoint())
        .region("cn-hangzhou")
        .credentials(ACCESS_KEY_ID, secret)
        .read_timeout(Some(opts.timeout))
        .build()
        .map_err(|e| format!("cannot configure the OSS client: {e}"))?;
    let bucket: Arc<dyn resume_core::RangeSource> =
        Arc::new(client.bucket(BUCKET).map_err(|e| e.to_string())?);
    let out = Arc::new(Output::new(crate::output_mode(opts)));
    let cancel = CancellationToken::new();
    rt.block_on(async { crate::cancel_on_signals(cancel.clone()) });

    // 3. Crash at 40 %: the download future is dropped, like `kill -9`.
    let crash_at = args.size * 2 / 5;
    let crash = Arc::new(Notify::new());
    let crashed = Arc::new(AtomicBool::new(false));
    let retries_before_crash = Arc::new(AtomicU64::new(0));
    let first = {
        let (out, crash, crashed) = (out.clone(), crash.clone(), crashed.clone());
        let retries = retries_before_crash.clone();
        crate::downloader(bucket.clone(), opts, cancel.clone(), move |e: &Event| {
            out.handle(e);
            if matches!(e, Event::Retry { .. }) {
                retries.fetch_add(1, Ordering::Relaxed);
            }
            if let Event::Progress { done_bytes, .. } = e
                && *done_bytes >= crash_at
                && !crashed.swap(true, Ordering::SeqCst)
            {
                crash.notify_one();
            }
        })
    };
    let t = Instant::now();
    let outcome = rt.block_on(async {
        tokio::select! {
            r = first.download(KEY, &dest) => Some(r),
            _ = crash.notified() => None,
        }
    });
    out.finish();
    match outcome {
        None => say(format!(
            "3. crash after {:.1} s with ≥ {} on disk: the process state is gone, {} and {} remain",
            t.elapsed().as_secs_f64(),
            format_bytes(crash_at),
            file_name(&resume_core::with_suffix(&dest, resume_core::PART_SUFFIX)),
            file_name(&resume_core::with_suffix(&dest, ".rgcp")),
        )),
        Some(Ok(_)) => {
            say("3. the download finished before the simulated crash (object too small)")
        }
        Some(Err(e)) => return Ok(fail(&e)),
    }

    // 4. Resume: the same download again.
    let second = {
        let out = out.clone();
        crate::downloader(bucket, opts, cancel, move |e: &Event| out.handle(e))
    };
    let result = rt.block_on(second.download(KEY, &dest));
    out.finish();
    let report = match result {
        Ok(r) => r,
        Err(e) => return Ok(fail(&e)),
    };
    say(format!(
        "4. resumed: {} of {} parts reused from the checkpoint ({}), {} fetched in {:.1} s ({}/s); \
         retries survived: {} before the crash, {} after",
        report.parts_reused,
        report.parts,
        format_bytes(report.reused_bytes),
        format_bytes(report.fetched_bytes),
        report.elapsed.as_secs_f64(),
        format_bytes(rate(&report)),
        retries_before_crash.load(Ordering::Relaxed),
        report.retries
    ));

    // 5. Verification, independently of the engine.
    let actual = hash_file(&dest).map_err(|e| format!("cannot read {}: {e}", dest.display()))?;
    let blake_ok = actual == expected_blake3;
    let crc_ok = report.crc64_verified && report.crc64 == info.crc64;
    say(format!(
        "5. verified: CRC-64 {} ({}), BLAKE3 {} ({})",
        report.crc64,
        if crc_ok {
            "matches the object"
        } else {
            "MISMATCH"
        },
        &actual.to_hex()[..16],
        if blake_ok {
            "matches the generated content"
        } else {
            "MISMATCH"
        }
    ));
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for f in emulator.fault_log() {
        *kinds.entry(fault_name(&f.fault)).or_default() += 1;
    }
    let faults: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} × {k}")).collect();
    say(format!(
        "   faults the server injected: {}",
        if faults.is_empty() {
            "none".into()
        } else {
            faults.join(", ")
        }
    ));
    drop(emulator);
    if args.keep.is_some() {
        say(format!("   the file is at {}", dest.display()));
    }
    if blake_ok && crc_ok {
        say("demo complete: every byte correct after faults and a crash");
        Ok(exit::OK)
    } else {
        eprintln!("resume-get demo: the downloaded file does not match the object");
        Ok(exit::INTEGRITY)
    }
}

fn fail(e: &resume_core::Error) -> u8 {
    eprintln!("resume-get demo: error: {e}");
    exit::for_kind(e.kind())
}

fn rate(r: &Report) -> u64 {
    (r.fetched_bytes as f64 / r.elapsed.as_secs_f64().max(1e-9)) as u64
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn fault_name(f: &Fault) -> String {
    match f {
        Fault::Error { status, code, .. } => format!("{status} {code}"),
        Fault::ResetAfterBytes { .. }
        | Fault::ResetBeforeResponse
        | Fault::ResetAtOffset { .. } => "connection reset".into(),
        Fault::ShortBody { .. } => "short body".into(),
        other => format!("{other:?}"),
    }
}

fn hash_file(path: &Path) -> std::io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buf[..n]);
    }
}

//! `resume-get demo`: the whole story in one command, needing nothing but the binary.
//!
//! An OSS emulator starts in-process on 127.0.0.1:0 with strict signature checks and a
//! generated object; a fault plan makes the network misbehave (a burst of 503 SlowDown,
//! connection resets mid-body, short bodies); the download is killed partway as a crash
//! would (its future dropped — no graceful shutdown, nothing flushed on the way out); the
//! same download then resumes from its checkpoint, and the result is verified against the
//! object's CRC-64 (by the engine) and its BLAKE3 (computed here while generating it).
//! Then a batch job (`-r`): a prefix of a few hundred objects listed page by page, the job
//! dropped partway like a crash, resumed, every file compared with its object, and the
//! emulator's request log showing that no object finished before the interruption was asked
//! for again.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use backend_oss::{Client, SignatureVersion};
use oss_emulator::{AccessKey, Emulator, EmulatorConfig, Fault, FaultPlan, FaultRule};
use resume_core::{CancellationToken, Event, Report};
use serde_json::json;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

use crate::args::DemoArgs;
use crate::exit;
use crate::output::{self, Mode, Output};
use crate::size::format_bytes;

const BUCKET: &str = "demo";
const KEY: &str = "datasets/demo-object.bin";
const ACCESS_KEY_ID: &str = "demo-access-key";
const BATCH_PREFIX: &str = "datasets/batch/";
/// Objects in the batch step, listed 100 a page.
const BATCH_OBJECTS: usize = 300;
/// The batch job is dropped once this many objects are done.
const BATCH_INTERRUPT_AFTER: u64 = 120;

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

/// Where the story goes: plain lines on stdout, `{"event":"demo",…}` objects among the
/// download's JSON events with `--json`, nowhere with `--quiet`.
struct Story {
    mode: Mode,
}

impl Story {
    /// A numbered step, or (`None`) a detail of the step before.
    fn say(&self, step: Option<u32>, text: impl AsRef<str>) {
        match step {
            Some(n) => self.line(Some(n), &format!("{n}. "), text.as_ref()),
            None => self.line(None, "   ", text.as_ref()),
        }
    }

    /// The conclusion, unindented.
    fn conclude(&self, text: &str) {
        self.line(None, "", text);
    }

    fn line(&self, step: Option<u32>, prefix: &str, text: &str) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Json => output::out_line(json!({"event": "demo", "step": step, "text": text})),
            Mode::Bar { .. } => output::out_line(format_args!("{prefix}{text}")),
        }
    }
}

pub fn run(rt: &Runtime, args: DemoArgs) -> u8 {
    if let Err(msg) = crate::validate(&args.transfer) {
        output::err_line(format_args!("resume-get demo: error: {msg}"));
        return exit::USAGE;
    }
    if args.size == 0 {
        output::err_line("resume-get demo: error: --size must be at least 1 byte (e.g. 64MiB)");
        return exit::USAGE;
    }
    match demo(rt, &args) {
        Ok(code) => code,
        Err(msg) => {
            output::err_line(format_args!("resume-get demo: error: {msg}"));
            exit::LOCAL_IO
        }
    }
}

fn demo(rt: &Runtime, args: &DemoArgs) -> Result<u8, String> {
    let transfer = &args.transfer;
    let story = Story {
        mode: crate::output_mode(&args.output),
    };
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
    let part_file = resume_core::with_suffix(&dest, resume_core::PART_SUFFIX);
    let checkpoint = resume_core::with_suffix(&dest, ".rgcp");
    for stale in [&dest, &checkpoint, &part_file] {
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
    story.say(
        Some(1),
        format!(
            "OSS emulator on {} (every request's V4 signature checked); oss://{BUCKET}/{KEY}: {} \
             generated in {:.1} s, CRC-64 {}",
            emulator.endpoint(),
            format_bytes(info.size),
            t.elapsed().as_secs_f64(),
            info.crc64
        ),
    );

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
    story.say(
        Some(2),
        "faults planned on the server: a burst of 5 × 503 SlowDown, and at random (seeded) \
         connection resets mid-body and short bodies",
    );

    let client = Client::builder()
        .endpoint(emulator.endpoint())
        .region("cn-hangzhou")
        .signature_version(SignatureVersion::V4)
        .credentials(ACCESS_KEY_ID, secret)
        .read_timeout(Some(transfer.timeout))
        .build()
        .map_err(|e| format!("cannot configure the OSS client: {e}"))?;
    let oss_bucket = client.bucket(BUCKET).map_err(|e| e.to_string())?;
    let bucket: Arc<dyn resume_core::RangeSource> = Arc::new(oss_bucket.clone());
    let out = Arc::new(Output::new(story.mode));
    let cancel = CancellationToken::new();
    rt.block_on(async { crate::cancel_on_signals(cancel.clone()) });

    // 3. Crash once 40 % of the bytes are in parts recorded done: the download future is
    // dropped, like `kill -9`.
    let crash_at = args.size * 2 / 5;
    let size = args.size;
    let crash = Arc::new(Notify::new());
    let crashed = Arc::new(AtomicBool::new(false));
    let recorded = Arc::new(AtomicU64::new(0));
    let retries_before_crash = Arc::new(AtomicU64::new(0));
    let first = {
        let (out, crash, crashed) = (out.clone(), crash.clone(), crashed.clone());
        let (retries, recorded) = (retries_before_crash.clone(), recorded.clone());
        crate::downloader(
            bucket.clone(),
            transfer,
            cancel.clone(),
            move |e: &Event| {
                out.handle(e);
                match e {
                    Event::Retry { .. } => {
                        retries.fetch_add(1, Ordering::Relaxed);
                    }
                    Event::PartDone { range, .. } => {
                        let done = recorded.fetch_add(range.end - range.start, Ordering::SeqCst)
                            + (range.end - range.start);
                        // Mid-flight only: once every part is recorded the download is
                        // finishing (checks, rename), not crashing with work left.
                        if done >= crash_at && done < size && !crashed.swap(true, Ordering::SeqCst)
                        {
                            crash.notify_one();
                        }
                    }
                    _ => {}
                }
            },
        )
    };
    let t = Instant::now();
    let outcome = rt.block_on(async {
        tokio::select! {
            biased;
            _ = crash.notified() => None,
            r = first.download(KEY, &dest) => Some(r),
        }
    });
    out.finish();
    let resumed = outcome.is_none();
    let report = match outcome {
        None => {
            // Only what is really there: the files are looked at, not assumed.
            let left: Vec<String> = [&part_file, &checkpoint]
                .into_iter()
                .filter(|p| p.exists())
                .map(|p| file_name(p))
                .collect();
            story.say(
                Some(3),
                format!(
                    "simulated crash after {:.1} s, with {} in parts recorded done: the \
                     download is dropped mid-flight, nothing flushed on the way out; left on \
                     disk: {}",
                    t.elapsed().as_secs_f64(),
                    format_bytes(recorded.load(Ordering::SeqCst)),
                    if left.is_empty() {
                        "nothing".to_owned()
                    } else {
                        left.join(" and ")
                    }
                ),
            );

            // 4. Resume: the same download again.
            let second = {
                let out = out.clone();
                crate::downloader(bucket, transfer, cancel, move |e: &Event| out.handle(e))
            };
            let result = rt.block_on(second.download(KEY, &dest));
            out.finish();
            let report = match result {
                Ok(r) => r,
                Err(e) => return Ok(fail(&e)),
            };
            story.say(
                Some(4),
                format!(
                    "resumed: {} of {} parts reused from the checkpoint ({}), {} fetched in {:.1} \
                     s ({}/s); retries: {} before the crash, {} after",
                    report.parts_reused,
                    report.parts,
                    format_bytes(report.reused_bytes),
                    format_bytes(report.fetched_bytes),
                    report.elapsed.as_secs_f64(),
                    format_bytes(rate(&report)),
                    retries_before_crash.load(Ordering::Relaxed),
                    report.retries
                ),
            );
            report
        }
        Some(Ok(report)) => {
            story.say(
                Some(3),
                format!(
                    "the download finished in {:.1} s, before the simulated crash at 40 %: \
                     nothing to resume (a larger --size, or a smaller --part-size, shows the crash \
                     and the resume)",
                    t.elapsed().as_secs_f64()
                ),
            );
            report
        }
        Some(Err(e)) => return Ok(fail(&e)),
    };

    // 5. Verification, independently of the engine.
    let actual = hash_file(&dest).map_err(|e| format!("cannot read {}: {e}", dest.display()))?;
    let blake_ok = actual == expected_blake3;
    let crc_ok = report.crc64_verified && report.crc64 == info.crc64;
    story.say(
        Some(5),
        format!(
            "verified: CRC-64 {} ({}), BLAKE3 {} ({})",
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
        ),
    );
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for f in emulator.fault_log() {
        *kinds.entry(fault_name(&f.fault)).or_default() += 1;
    }
    let injected: usize = kinds.values().sum();
    let faults: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} × {k}")).collect();
    story.say(
        None,
        format!(
            "faults the server injected: {}",
            if faults.is_empty() {
                "none".into()
            } else {
                faults.join(", ")
            }
        ),
    );
    if args.keep.is_some() {
        story.say(None, format!("the file is at {}", dest.display()));
    }

    // 6–8. A batch job over a prefix, interrupted and resumed.
    emulator.clear_fault_plan();
    let batch = batch_story(
        rt,
        &story,
        &emulator,
        &oss_bucket,
        transfer,
        &work.path().join("batch"),
    )?;
    drop(emulator);
    if blake_ok && crc_ok && batch.ok {
        let mut survived = Vec::new();
        if injected > 0 {
            survived.push(format!(
                "{injected} injected fault{}",
                if injected == 1 { "" } else { "s" }
            ));
        }
        if resumed {
            survived.push("a crash and a resume".to_owned());
        }
        survived.push(format!(
            "a batch job of {} objects {}",
            BATCH_OBJECTS,
            if batch.interrupted {
                "interrupted and resumed"
            } else {
                "downloaded"
            }
        ));
        story.conclude(&if survived.is_empty() {
            "demo complete: every byte correct".to_owned()
        } else {
            format!("demo complete: every byte correct after {}", {
                let last = survived.pop().unwrap_or_default();
                if survived.is_empty() {
                    last
                } else {
                    format!("{}, and {last}", survived.join(", "))
                }
            })
        });
        Ok(exit::OK)
    } else if !(blake_ok && crc_ok) {
        output::err_line("resume-get demo: the downloaded file does not match the object");
        Ok(exit::INTEGRITY)
    } else {
        output::err_line(
            "resume-get demo: the batch job did not end as it should (see steps 7 and 8: a \
             file differs, a file is left over, or an object done before the interruption was \
             requested again); please report this",
        );
        Ok(exit::INTEGRITY)
    }
}

/// How the batch step went.
struct BatchOutcome {
    /// Every file matches its object, and no object done before the interruption was asked
    /// for again.
    ok: bool,
    interrupted: bool,
}

/// Steps 6–8: a prefix of [`BATCH_OBJECTS`] objects (1 byte to 64 KiB, three of 1 MiB in
/// several parts) as one job, dropped once [`BATCH_INTERRUPT_AFTER`] objects are done, then
/// resumed; every claim is read back from the files and the emulator's request log.
fn batch_story(
    rt: &Runtime,
    story: &Story,
    emulator: &Emulator,
    bucket: &backend_oss::Bucket,
    transfer: &crate::args::TransferOpts,
    dir: &Path,
) -> Result<BatchOutcome, String> {
    let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut state = 0x0123_4567_89AB_CDEFu64;
    for i in 0..BATCH_OBJECTS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = if i % 100 == 7 {
            1 << 20
        } else {
            1 + (state % (64 << 10)) as usize
        };
        let mut g = Generator {
            state: state | 1,
            remaining: size as u64,
            hasher: blake3::Hasher::new(),
        };
        let mut bytes = Vec::with_capacity(size);
        g.read_to_end(&mut bytes)
            .map_err(|e| format!("cannot generate a batch object: {e}"))?;
        let rel = format!("part-{:02}/obj-{i:04}.bin", i % 7);
        emulator
            .put_object(BUCKET, &format!("{BATCH_PREFIX}{rel}"), &bytes)
            .map_err(|e| format!("cannot store a batch object: {e}"))?;
        want.insert(rel, bytes);
    }
    let total: u64 = want.values().map(|b| b.len() as u64).sum();
    story.say(
        Some(6),
        format!(
            "a batch job (resume-get -r oss://{BUCKET}/{BATCH_PREFIX} DIR): {} objects, {} in \
             all, listed 100 a page; it is dropped like a crash once {BATCH_INTERRUPT_AFTER} \
             objects are done",
            want.len(),
            format_bytes(total)
        ),
    );
    let lister: Arc<dyn resume_core::Lister> = Arc::new(bucket.lister().with_page_size(100));
    let source: Arc<dyn resume_core::RangeSource> = Arc::new(bucket.clone());
    let part_size = transfer
        .part_size
        .or(resume_core::DEFAULT_PART_SIZE)
        .min(256 << 10);
    let job = |events: Option<Arc<Notify>>| {
        let done = Arc::new(AtomicU64::new(0));
        let mut job = resume_batch::Job::new(lister.clone(), source.clone(), BATCH_PREFIX, dir)
            .part_size(part_size)
            .jobs(transfer.jobs.or(resume_core::DEFAULT_CONCURRENCY))
            .rate_limit(transfer.limit_rate);
        if let Some(notify) = events {
            job = job.on_event(move |e| {
                if let resume_batch::JobEvent::Done { .. } = e
                    && done.fetch_add(1, Ordering::SeqCst) + 1 == BATCH_INTERRUPT_AFTER
                {
                    notify.notify_one();
                }
            });
        }
        job
    };
    let before = emulator.request_count();
    let interrupt = Arc::new(Notify::new());
    let first = job(Some(interrupt.clone()));
    let outcome = rt.block_on(async {
        tokio::select! {
            biased;
            _ = interrupt.notified() => None,
            r = first.run() => Some(r),
        }
    });
    let interrupted = outcome.is_none();
    if let Some(Err(e)) = outcome {
        return Err(format!("the batch job failed: {e}"));
    }
    // What is complete on disk at the interruption (looked at, not assumed).
    let complete: Vec<String> = want
        .iter()
        .filter(|(rel, bytes)| std::fs::read(dir.join(rel)).is_ok_and(|b| &b == *bytes))
        .map(|(rel, _)| rel.clone())
        .collect();
    let at_interrupt = emulator.request_count();
    let summary = if interrupted {
        story.say(
            Some(7),
            format!(
                "interrupted with {} objects complete on disk; the same job again resumes it:",
                complete.len()
            ),
        );
        match rt.block_on(job(None).run()) {
            Ok(s) => s,
            Err(e) => return Err(format!("the resumed batch job failed: {e}")),
        }
    } else {
        story.say(
            Some(7),
            "the job finished before the interruption: nothing to resume",
        );
        match rt.block_on(job(None).run()) {
            Ok(s) => s,
            Err(e) => return Err(format!("the batch job's rerun failed: {e}")),
        }
    };
    let log = emulator.request_log();
    let asked_again = log
        .iter()
        .filter(|r| r.number > at_interrupt)
        .filter_map(|r| r.key.as_deref())
        .filter_map(|k| k.strip_prefix(BATCH_PREFIX))
        .filter(|k| complete.binary_search_by(|c| c.as_str().cmp(k)).is_ok())
        .count();
    let list_pages = log
        .iter()
        .filter(|r| r.number > before && r.key.is_none())
        .count();
    story.say(
        None,
        format!(
            "{} downloaded, {} already done{}, {} failed; {} listing requests in both runs; \
             requests for objects complete before the interruption: {asked_again}",
            summary.done,
            summary.up_to_date + summary.earlier,
            if summary.earlier > 0 {
                format!(
                    " ({} on listing pages settled before the interruption, not listed again)",
                    summary.earlier
                )
            } else {
                String::new()
            },
            summary.failed,
            list_pages
        ),
    );
    let mismatched: Vec<&String> = want
        .iter()
        .filter(|(rel, bytes)| std::fs::read(dir.join(rel)).map_or(true, |b| &b != *bytes))
        .map(|(rel, _)| rel)
        .collect();
    let present = want.keys().filter(|rel| dir.join(rel).is_file()).count();
    let leftovers = count_files(dir) - present;
    story.say(
        Some(8),
        format!(
            "verified: {} of {} files identical to their objects, {} other files left in the \
             directory (temp files, checkpoints, job journal)",
            want.len() - mismatched.len(),
            want.len(),
            leftovers
        ),
    );
    Ok(BatchOutcome {
        ok: mismatched.is_empty() && asked_again == 0 && leftovers == 0 && summary.failed == 0,
        interrupted,
    })
}

/// Regular files below `dir`, at any depth.
fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

fn fail(e: &resume_core::Error) -> u8 {
    crate::output::err_line(format_args!("resume-get demo: error: {e}"));
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

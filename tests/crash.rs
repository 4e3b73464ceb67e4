//! Crash at any instant: `resume-get` killed with SIGKILL (and interrupted with SIGINT /
//! SIGTERM) at seeded moments while it downloads a 64 MiB object from the emulator, then run
//! again with the same command line until it succeeds.
//!
//! Every run uses its own access key id (same secret; the checkpoint identity never includes
//! credentials, so the resume is unaffected), which lets the emulator's request log attribute
//! each GET to the run that sent it, even one the server only finished handling after the
//! kill. From that log, the bytes a killed run may have received are at most the lengths of
//! the ranges it asked for; the bytes it kept are what the next run reports as
//! `started.reused_bytes`. Their difference, the bytes fetched again after the kill, must be
//! at most `jobs × part size` (the parts in flight) plus the ranges of retried requests.
//!
//! With 64 MiB parts (progress below the part, issue 15): SIGKILL at seeded moments, then the
//! same command; from the emulator's log, which counts the body bytes it handed to each
//! connection, the bytes sent to a killed run and sent again to a later one are at most
//! `jobs × (1 MiB + transport slack)`, and the runs' own progress shows at most `jobs × 1 MiB`
//! received and not kept (the parts' owners and, once the tail is shared, the helpers together:
//! `resume-core/src/engine/share.rs`). SIGINT/SIGTERM: the next run reuses every byte the
//! interrupted run reported saved, which is every byte it received except helpers' bytes past
//! a gap (at most 1 MiB per connection not owning a part, only while the tail is shared).
//!
//! `RESUME_SOAK_KILLS` sets the number of SIGKILLs (default 20; `cargo xtask soak` runs 200).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e_tests::support::*;

const KEY: &str = "crash/big.bin";
const SIZE: usize = 64 << 20;
const SECS_PER_DOWNLOAD: u64 = 2;
/// Bound on one run (a throttled full download takes about `SECS_PER_DOWNLOAD`).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

fn kills_wanted() -> usize {
    match std::env::var("RESUME_SOAK_KILLS") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("RESUME_SOAK_KILLS={v:?} is not a number")),
        Err(_) => 20,
    }
}

#[derive(Debug, Clone, Copy)]
struct Config {
    part_size: u64,
    jobs: u64,
    checkpoint_dir: bool,
}

impl Config {
    /// Bytes per second per connection, so a whole download takes about
    /// `SECS_PER_DOWNLOAD` (the emulator throttles each connection; one per job).
    fn throttle(&self) -> u64 {
        (SIZE as u64 / SECS_PER_DOWNLOAD / self.jobs).max(64 << 10)
    }

    fn bound(&self) -> u64 {
        self.jobs * self.part_size
    }
}

const CONFIGS: [Config; 4] = [
    Config {
        part_size: 1 << 20,
        jobs: 4,
        checkpoint_dir: false,
    },
    Config {
        part_size: 256 << 10,
        jobs: 8,
        checkpoint_dir: true,
    },
    // Not a divisor of the size: the last part is short.
    Config {
        part_size: (3 << 20) + 7,
        jobs: 2,
        checkpoint_dir: false,
    },
    Config {
        part_size: 64 << 10,
        jobs: 16,
        checkpoint_dir: true,
    },
];

/// A server with the 64 MiB object on disk and one access key id per run.
fn crash_server(max_runs: usize) -> (Server, Vec<u8>) {
    let root = tempfile::tempdir().expect("emulator storage");
    let mut config = emulator_config().directory(root.path());
    for run in 0..max_runs {
        config = config.access_key(AccessKey::new(run_key(run), SK));
    }
    let server = Server::with_config(config, Some(root));
    let content = data(0xC0FFEE, SIZE);
    server.put(KEY, &content);
    (server, content)
}

fn run_key(run: usize) -> String {
    format!("crash-run-{run}")
}

/// One download destination (and checkpoint directory) for a configuration.
struct Target {
    dir: tempfile::TempDir,
    cp_dir: Option<PathBuf>,
    dest: PathBuf,
}

impl Target {
    fn new(cfg: &Config) -> Self {
        let dir = tempfile::tempdir().expect("download directory");
        let cp_dir = cfg.checkpoint_dir.then(|| {
            let d = dir.path().join("checkpoints");
            std::fs::create_dir(&d).expect("create checkpoint dir");
            d
        });
        let dest = dir.path().join("big.bin");
        Self { dir, cp_dir, dest }
    }

    fn command(&self, server: &Server, cfg: &Config, run: usize) -> Get {
        let mut g = server
            .get(KEY, &self.dest)
            .args([
                "--part-size".to_string(),
                cfg.part_size.to_string(),
                "--jobs".to_string(),
                cfg.jobs.to_string(),
            ])
            .env("OSS_ACCESS_KEY_ID", &run_key(run))
            .timeout(RUN_TIMEOUT);
        if let Some(d) = &self.cp_dir {
            g = g.arg("--checkpoint-dir").arg(d);
        }
        g
    }

    fn checkpoint(&self) -> PathBuf {
        match &self.cp_dir {
            Some(d) => d.clone(),
            None => rgcp(&self.dest),
        }
    }

    /// Leftovers after a success: none.
    fn assert_clean(&self) {
        let mut names = listing(self.dir.path());
        names.remove("big.bin");
        if self.cp_dir.is_some() {
            names.remove("checkpoints");
            let cps = listing(self.cp_dir.as_deref().unwrap_or(Path::new(".")));
            assert!(cps.is_empty(), "checkpoint dir not emptied: {cps:?}");
        }
        assert!(names.is_empty(), "leftovers after success: {names:?}");
    }
}

/// When to kill a run.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// Once `progress` reports this many bytes beyond those reused.
    Bytes(u64),
    /// Right after the nth `part_done` of the run.
    PartsDone(u64),
    /// Right after `started` (the checkpoint was just written; requests are going out).
    Started,
    /// This long after the process was spawned (anywhere: start-up, metadata, checkpoint
    /// load, transfer).
    Millis(u64),
}

fn pick_moment(rng: &mut Rng, cfg: &Config, kills_per_round: u64) -> Moment {
    let mean_step = SIZE as u64 / (kills_per_round + 1);
    match rng.below(10) {
        0..=5 => Moment::Bytes(rng.below(2 * mean_step)),
        6 | 7 => Moment::PartsDone(1 + rng.below(2 * cfg.jobs)),
        8 => Moment::Started,
        _ => Moment::Millis(rng.below(1 + SECS_PER_DOWNLOAD * 1000 / 4)),
    }
}

/// What one run did.
#[derive(Debug)]
struct RunLog {
    run: usize,
    config: usize,
    killed: bool,
    moment: Option<Moment>,
    /// `started.reused_bytes`, if it got that far.
    reused: Option<u64>,
    /// Of a completed run.
    fetched: Option<u64>,
    /// The last `progress.done_bytes` the run printed (bytes it had received, at least).
    last_done: Option<u64>,
    /// Killed after the atomic rename: DEST was already the complete file.
    committed: bool,
}

/// Runs `cmd` and kills it at `moment`; returns whether it was killed (false: it finished
/// first, successfully).
fn run_and_kill(cmd: &Get, moment: Moment) -> (bool, Option<u64>, Outcome) {
    let mut p = cmd.spawn();
    let mut reused = None;
    let fire = match moment {
        // Anywhere: start-up, metadata, checkpoint load, transfer.
        Moment::Millis(ms) => p.pump_until(Instant::now() + Duration::from_millis(ms)),
        _ => match p.wait_event("started", RUN_TIMEOUT) {
            None => false,
            Some(s) => {
                let base = num(&s, "reused_bytes");
                reused = Some(base);
                match moment {
                    Moment::Started => true,
                    Moment::Bytes(x) => p
                        .wait_for(RUN_TIMEOUT, |e| {
                            e["event"] == "progress" && num(e, "done_bytes") >= base + x
                        })
                        .is_some(),
                    Moment::PartsDone(n) => {
                        let mut seen = 0;
                        p.wait_for(RUN_TIMEOUT, |e| {
                            seen += u64::from(e["event"] == "part_done");
                            seen >= n
                        })
                        .is_some()
                    }
                    Moment::Millis(_) => unreachable!(),
                }
            }
        },
    };
    if fire {
        p.kill();
    }
    let out = p.finish();
    if reused.is_none() {
        reused = out.event("started").map(|s| num(s, "reused_bytes"));
    }
    match out.code() {
        None => (true, reused, out),
        Some(0) => (false, reused, out),
        Some(c) => panic!(
            "run exited with {c} instead of being killed or succeeding\n{}",
            out.stderr
        ),
    }
}

#[test]
fn sigkill_at_seeded_moments_then_rerun_until_done_is_byte_identical_and_refetches_at_most_the_parts_in_flight()
 {
    let kills = kills_wanted();
    assert!(kills >= 1, "RESUME_SOAK_KILLS must be at least 1");
    // Runs = kills + rounds, and each configuration has at most 2 × its kills + 2 rounds.
    let max_runs = 3 * kills + 3 * CONFIGS.len() + 16;
    let (server, content) = crash_server(max_runs);
    let expected_hash = blake3::hash(&content);
    drop(content);
    let mut rng = Rng::new(0x5EED_0007);
    let t0 = Instant::now();

    let mut runs: Vec<RunLog> = Vec::new();
    let mut kills_done = 0usize;
    for (ci, cfg) in CONFIGS.iter().enumerate() {
        // Spread the kills over the configurations.
        let share = kills / CONFIGS.len() + usize::from(ci < kills % CONFIGS.len());
        server.set_faults(
            FaultPlan::new(ci as u64).rule(
                FaultRule::always(Fault::Throttle {
                    bytes_per_second: cfg.throttle(),
                })
                .method("GET"),
            ),
        );
        let mut left = share;
        let mut rounds = 0;
        while left > 0 || rounds == 0 {
            rounds += 1;
            assert!(rounds <= 2 * share + 2, "config {ci}: too many rounds");
            let target = Target::new(cfg);
            // One round: from nothing to a verified file.
            loop {
                let run = runs.len();
                assert!(run < max_runs, "more runs than access keys ({max_runs})");
                let cmd = target.command(&server, cfg, run);
                let moment = (left > 0).then(|| pick_moment(&mut rng, cfg, share as u64));
                let (killed, reused, out) = match moment {
                    Some(m) => run_and_kill(&cmd, m),
                    None => {
                        let out = cmd.run();
                        out.expect_ok();
                        let r = out.event("started").map(|s| num(s, "reused_bytes"));
                        (false, r, out)
                    }
                };
                let fetched = (!killed).then(|| out.num("completed", "fetched_bytes"));
                let last_done = out
                    .events_named("progress")
                    .last()
                    .map(|e| num(e, "done_bytes"));
                runs.push(RunLog {
                    run,
                    config: ci,
                    killed,
                    moment,
                    reused,
                    fetched,
                    last_done,
                    committed: killed && target.dest.exists(),
                });
                if killed {
                    left -= 1;
                    kills_done += 1;
                    if target.dest.exists() {
                        // Killed after the rename (before the checkpoint was deleted or the
                        // process exited): DEST is only ever the complete, verified file. (A
                        // checkpoint left behind is discarded by the next run, as the temp
                        // file is gone: see corrupt_state.rs.) This round is over.
                        assert!(reused.is_some(), "DEST appeared before `started`");
                        let got = blake3::hash(&std::fs::read(&target.dest).expect("read DEST"));
                        assert_eq!(got, expected_hash, "DEST after a kill past the rename");
                        assert!(
                            !rgpart(&target.dest).exists(),
                            "temp file beside a new DEST"
                        );
                        break;
                    }
                    if reused.is_some() {
                        assert!(
                            target.checkpoint().exists()
                                && (target.cp_dir.is_none()
                                    || !listing(&target.checkpoint()).is_empty()),
                            "no checkpoint after a kill past `started`"
                        );
                    }
                    continue;
                }
                let done = out.completed();
                assert_eq!(num(done, "end") - num(done, "start"), SIZE as u64);
                assert_eq!(done["crc64_verified"], true, "{done}");
                let got = blake3::hash(&std::fs::read(&target.dest).expect("read DEST"));
                assert_eq!(
                    got, expected_hash,
                    "config {ci}: the resumed file differs from the object"
                );
                target.assert_clean();
                break;
            }
        }
    }
    assert!(
        kills_done >= kills,
        "only {kills_done} of {kills} kills happened"
    );

    // Attribute every GET to its run and check the re-fetch bound after each kill.
    let log = server.emu.request_log();
    let mut by_run: BTreeMap<usize, Vec<std::ops::Range<u64>>> = BTreeMap::new();
    for r in log
        .iter()
        .filter(|r| r.method == "GET" && r.key.as_deref() == Some(KEY))
    {
        let id = r.access_key_id.as_deref().unwrap_or("");
        let run: usize = id
            .strip_prefix("crash-run-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("GET with unexpected key id {id:?}"));
        by_run.entry(run).or_default().push(range_of(r));
    }
    let mut worst: Vec<(u64, u64)> = vec![(0, 0); CONFIGS.len()]; // (max waste, bound)
    let mut total_waste = 0u64;
    // What the killed runs reported receiving (a lower bound of what they received) beyond
    // what they kept: a lower bound of the bytes really fetched again.
    let mut seen_waste: Vec<u64> = Vec::new();
    let mut moments = [0usize; 4];
    let committed = runs.iter().filter(|r| r.committed).count();
    for (i, r) in runs.iter().enumerate() {
        let cfg = &CONFIGS[r.config];
        let ranges = by_run.get(&r.run).cloned().unwrap_or_default();
        let asked: u64 = ranges.iter().map(|x| x.end - x.start).sum();
        // A second request for the same part in one run is a retry.
        let mut first_per_part = BTreeMap::new();
        let mut retried = 0u64;
        for x in &ranges {
            let part = x.start / cfg.part_size;
            if first_per_part.insert(part, ()).is_some() {
                retried += x.end - x.start;
            }
        }
        let Some(before) = r.reused else {
            // Killed before `started`: no part request is sent before it.
            assert_eq!(asked, 0, "run {} sent GETs before `started`", r.run);
            continue;
        };
        let kept = if r.committed {
            // Everything it asked for is in DEST.
            SIZE as u64 - before
        } else if r.killed {
            // The next run that got as far as `started` (the round ends with a success, so
            // there is one) shows what this run left on disk.
            let next = runs[i + 1..]
                .iter()
                .find(|n| n.reused.is_some())
                .expect("a killed run is followed by a run that starts");
            assert_eq!(next.config, r.config);
            let after = next.reused.unwrap_or(0);
            assert!(
                after >= before,
                "run {}: durable progress went backwards ({before} -> {after})",
                r.run
            );
            after - before
        } else {
            let fetched = r.fetched.unwrap_or(0);
            assert_eq!(
                fetched + before,
                SIZE as u64,
                "run {}: fetched + reused must be the object's size",
                r.run
            );
            fetched
        };
        let waste = asked.saturating_sub(kept);
        assert!(
            waste <= cfg.bound() + retried,
            "run {} (config {}, {:?}): asked for {asked} bytes, kept {kept}: {waste} bytes \
             re-fetched, more than jobs × part size = {} (+ {retried} in retried requests)",
            r.run,
            r.config,
            r.moment,
            cfg.bound()
        );
        if r.killed {
            total_waste += waste;
            if let Some(done) = r.last_done {
                seen_waste.push(done.saturating_sub(before).saturating_sub(kept));
            }
            moments[match r.moment {
                Some(Moment::Bytes(_)) => 0,
                Some(Moment::PartsDone(_)) => 1,
                Some(Moment::Started) => 2,
                _ => 3,
            }] += 1;
            let w = &mut worst[r.config];
            w.0 = w.0.max(waste);
            w.1 = cfg.bound();
        }
    }
    seen_waste.sort_unstable();
    eprintln!(
        "crash: {kills_done} SIGKILLs over {} runs in {:.1?} (moments: {} at a byte count, {} \
         after a part_done, {} right after started, {} at a time from spawn); re-fetched after \
         the kills: at most {total_waste} bytes in total by the server's log (whole ranges of \
         the parts in flight), at least {} by the runs' own progress (median per kill {}, max \
         {}); {committed} kill(s) landed after the rename (DEST complete)",
        runs.len(),
        t0.elapsed(),
        moments[0],
        moments[1],
        moments[2],
        moments[3],
        seen_waste.iter().sum::<u64>(),
        seen_waste.get(seen_waste.len() / 2).copied().unwrap_or(0),
        seen_waste.last().copied().unwrap_or(0),
    );
    for (ci, (w, b)) in worst.iter().enumerate() {
        let c = &CONFIGS[ci];
        eprintln!(
            "crash:   config {ci} (part {} B, {} jobs, checkpoint {}): after a kill, at most \
             {w} B asked for and not kept (server's log), bound jobs × part size = {b} B \
             ({:.0}%)",
            c.part_size,
            c.jobs,
            if c.checkpoint_dir {
                "in dir"
            } else {
                "beside DEST"
            },
            if *b == 0 {
                0.0
            } else {
                *w as f64 * 100.0 / *b as f64
            }
        );
    }
}

/// Parts reported done (`part_done`), by index: `[start, end)`.
type DoneParts = BTreeMap<u64, std::ops::Range<u64>>;

fn part_dones(out: &Outcome) -> Vec<(u64, std::ops::Range<u64>)> {
    out.events_named("part_done")
        .into_iter()
        .map(|e| (num(e, "part"), num(e, "start")..num(e, "end")))
        .collect()
}

#[test]
fn sigint_and_sigterm_exit_130_and_the_resume_never_requests_a_part_reported_done_again() {
    const INTERRUPTS: usize = 6;
    let cfg = Config {
        part_size: 512 << 10,
        jobs: 4,
        checkpoint_dir: false,
    };
    let (server, content) = crash_server(4 * INTERRUPTS + 8);
    server.set_faults(
        FaultPlan::new(1).rule(
            FaultRule::always(Fault::Throttle {
                bytes_per_second: cfg.throttle(),
            })
            .method("GET"),
        ),
    );
    let mut rng = Rng::new(0x1A7E_2217);
    let mut interrupts = 0;
    let mut run = 0usize;
    let mut slowest_exit = Duration::ZERO;
    // Per round: the parts reported done so far and the runs of the round.
    while interrupts < INTERRUPTS {
        let target = Target::new(&cfg);
        let mut done = DoneParts::new();
        // The last `progress.done_bytes` of the previous (interrupted) run of the round.
        let mut last_done: Option<u64> = None;
        let mut round_runs: Vec<(usize, DoneParts)> = Vec::new();
        loop {
            assert!(run < 4 * INTERRUPTS + 8, "too many runs");
            let cmd = target.command(&server, &cfg, run);
            let interrupt = interrupts < INTERRUPTS;
            let mut p = cmd.spawn();
            let started = p
                .wait_event("started", RUN_TIMEOUT)
                .unwrap_or_else(|| panic!("run {run} ended before `started`"));
            let done_bytes: u64 = done.values().map(|r| r.end - r.start).sum();
            // Every part reported done is reused, and so is every byte of the parts that were
            // in flight: at least the interrupted run's last progress (said once more after its
            // workers stopped; a signal during the final checks, with every part done, leaves
            // an earlier, lower one).
            let reused = num(&started, "reused_bytes");
            assert!(
                reused >= last_done.unwrap_or(done_bytes),
                "run {run}: reused {reused}, the interrupted run had received {last_done:?}"
            );
            assert!(
                reused >= done_bytes,
                "run {run}: reused {reused} < {done_bytes}"
            );
            assert_eq!(num(&started, "parts_reused"), done.len() as u64);
            let mut signalled = None;
            if interrupt {
                let x = rng.below(2 * SIZE as u64 / (INTERRUPTS as u64 + 1));
                let reached = p
                    .wait_for(RUN_TIMEOUT, |e| {
                        e["event"] == "progress" && num(e, "done_bytes") >= done_bytes + x
                    })
                    .is_some();
                if reached {
                    // The last interruption is a SIGTERM (what a service manager sends).
                    if interrupts + 1 == INTERRUPTS {
                        p.terminate();
                    } else {
                        p.interrupt();
                    }
                    signalled = Some(Instant::now());
                }
            }
            let out = p.finish();
            last_done = out
                .events_named("progress")
                .last()
                .map(|e| num(e, "done_bytes"));
            let new_parts = part_dones(&out);
            for (part, range) in &new_parts {
                assert!(
                    done.insert(*part, range.clone()).is_none(),
                    "run {run}: part {part} was reported done twice"
                );
            }
            round_runs.push((run, done.clone()));
            run += 1;
            if let Some(at) = signalled
                && out.code() != Some(0)
            {
                slowest_exit = slowest_exit.max(at.elapsed());
                out.expect_code(EXIT_INTERRUPTED)
                    .expect_stderr(&["interrupted", "run the same"]);
                assert!(
                    at.elapsed() < Duration::from_secs(15),
                    "exit took {:?} after the signal",
                    at.elapsed()
                );
                assert!(!target.dest.exists(), "DEST exists after an interruption");
                // State is kept exactly when there is progress to resume from.
                let kept = !done.is_empty();
                assert_eq!(
                    (rgcp(&target.dest).exists(), rgpart(&target.dest).exists()),
                    (kept, kept),
                    "checkpoint and temp file after an interruption with {} parts done",
                    done.len()
                );
                interrupts += 1;
                continue;
            }
            out.expect_ok();
            assert_eq!(
                out.num("completed", "fetched_bytes"),
                SIZE as u64 - out.num("started", "reused_bytes"),
                "the final run fetches exactly what no earlier run received"
            );
            assert_file_is(&target.dest, &content, "resumed after interruptions");
            target.assert_clean();
            break;
        }
        // No GET of a later run touches a part an earlier run reported done.
        let log = server.emu.request_log();
        let mut prior = DoneParts::new();
        for (r, done_after) in &round_runs {
            for g in log
                .iter()
                .filter(|g| g.method == "GET" && g.access_key_id.as_deref() == Some(&run_key(*r)))
            {
                let want = range_of(g);
                for (part, range) in &prior {
                    assert!(
                        want.end <= range.start || want.start >= range.end,
                        "run {r} requested {want:?}, overlapping part {part} ({range:?}) that \
                         an earlier run reported done"
                    );
                }
            }
            prior = done_after.clone();
        }
    }
    eprintln!(
        "crash: {interrupts} SIGINT/SIGTERM over {run} runs; slowest exit after the signal \
         {slowest_exit:.1?}; no part reported done was requested again"
    );
}

// ---------------------------------------------------------------------------------------------
// Progress below the part (issue 15, part 2): 64 MiB parts.

const SUB_KEY: &str = "crash/sub.bin";
/// Three parts of 64 MiB, the last one 32 MiB.
const SUB_SIZE: usize = 160 << 20;
const SUB_PART: u64 = 64 << 20;
const SUB_JOBS: u64 = 3;
/// Per connection: a part of 64 MiB takes 4 s, a whole download about 4.5 s.
const SUB_THROTTLE: u64 = 16 << 20;
/// What the design loses per part in flight at a `kill -9`: two progress steps (see
/// `resume_core::PROGRESS_STEP`: a worker waits for its previous record before it submits the
/// next, so everything up to its second-to-last submission is recorded).
const DESIGN_LOSS_PER_JOB: u64 = 2 * resume_core::PROGRESS_STEP;
/// What the transport holds per connection at the moment of a kill or an interruption: bytes
/// the emulator handed to its connection (counted as sent in its log) that the worker had not
/// yet taken: hyper's buffers on both sides and the two sockets' queues. Not the design's: the
/// runs' own progress checks the design's 1 MiB without it. The emulator sends 64 KiB frames
/// paced by its throttle and a client that keeps up leaves a few frames in flight (1.7 MB
/// over 3 connections measured on a quiet machine), but a client descheduled on 2 loaded
/// cores lets them queue in the socket buffers (over 1 MiB per connection seen with the other
/// crash tests running): 4 MiB, a quarter second at the throttled rate.
const TRANSPORT_SLACK_PER_JOB: u64 = 4 << 20;

fn sub_server(max_runs: usize) -> (Server, Vec<u8>) {
    let root = tempfile::tempdir().expect("emulator storage");
    let mut config = emulator_config().directory(root.path());
    for run in 0..max_runs {
        config = config.access_key(AccessKey::new(run_key(run), SK));
    }
    let server = Server::with_config(config, Some(root));
    let content = data(0x5AB_9A27, SUB_SIZE);
    server.put(SUB_KEY, &content);
    server.set_faults(
        FaultPlan::new(3).rule(
            FaultRule::always(Fault::Throttle {
                bytes_per_second: SUB_THROTTLE,
            })
            .method("GET"),
        ),
    );
    (server, content)
}

fn sub_command(server: &Server, dest: &Path, run: usize) -> Get {
    server
        .get(SUB_KEY, dest)
        .args([
            "--part-size".to_string(),
            SUB_PART.to_string(),
            "--jobs".to_string(),
            SUB_JOBS.to_string(),
        ])
        .env("OSS_ACCESS_KEY_ID", &run_key(run))
        .timeout(RUN_TIMEOUT)
}

/// The object bytes each run's GETs were sent (from the emulator's log: the range asked for,
/// cut at the bytes the emulator handed to the connection), by run.
fn sent_by_run(server: &Server) -> BTreeMap<usize, Vec<std::ops::Range<u64>>> {
    let mut by_run: BTreeMap<usize, Vec<std::ops::Range<u64>>> = BTreeMap::new();
    for r in server
        .emu
        .request_log()
        .iter()
        .filter(|r| r.method == "GET" && r.key.as_deref() == Some(SUB_KEY))
    {
        let id = r.access_key_id.as_deref().unwrap_or("");
        let run: usize = id
            .strip_prefix("crash-run-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("GET with unexpected key id {id:?}"));
        let asked = range_of(r);
        assert!(
            r.body_bytes <= asked.end - asked.start,
            "request {} sent {} bytes of a {}-byte range",
            r.number,
            r.body_bytes,
            asked.end - asked.start
        );
        by_run
            .entry(run)
            .or_default()
            .push(asked.start..asked.start + r.body_bytes);
    }
    by_run
}

/// Bytes of `a` that are also in `b` (ranges of either may overlap among themselves).
fn overlap(a: &[std::ops::Range<u64>], b: &[std::ops::Range<u64>]) -> u64 {
    let merge = |v: &[std::ops::Range<u64>]| {
        let mut v: Vec<_> = v.iter().filter(|r| r.start < r.end).cloned().collect();
        v.sort_by_key(|r| r.start);
        let mut out: Vec<std::ops::Range<u64>> = Vec::new();
        for r in v {
            match out.last_mut() {
                Some(l) if r.start <= l.end => l.end = l.end.max(r.end),
                _ => out.push(r),
            }
        }
        out
    };
    let (a, b) = (merge(a), merge(b));
    let mut n = 0;
    for x in &a {
        for y in &b {
            n += x.end.min(y.end).saturating_sub(x.start.max(y.start));
        }
    }
    n
}

#[test]
fn overlap_counts_shared_bytes_once() {
    assert_eq!(overlap(&[0..10, 5..15], &[12..20, 0..1]), 4);
    assert_eq!(overlap(&[0..10, 30..31], &[10..20, 40..41]), 0);
    assert_eq!(overlap(&[3..3, 50..50], &[0..10, 40..60]), 0);
}

/// What one run of a sub-part test did.
#[derive(Debug)]
struct SubRun {
    run: usize,
    /// `started.reused_bytes`.
    reused: u64,
    /// The last `progress.done_bytes` it printed.
    last_done: u64,
    parts_done: usize,
    outcome: &'static str,
}

#[test]
fn sigkill_with_64_mib_parts_refetches_at_most_one_mib_per_job() {
    const KILLS: usize = 6;
    let (server, content) = sub_server(KILLS + 4);
    let dir = tempfile::tempdir().expect("download directory");
    let dest = dir.path().join("sub.bin");
    let mut rng = Rng::new(0x5EED_0015);
    let mut runs: Vec<SubRun> = Vec::new();
    let step = SUB_SIZE as u64 / (KILLS as u64 + 2);
    for run in 0..=KILLS {
        let cmd = sub_command(&server, &dest, run);
        if run == KILLS {
            let out = cmd.run();
            out.expect_ok();
            let reused = out.num("started", "reused_bytes");
            assert_eq!(
                out.num("completed", "fetched_bytes") + reused,
                SUB_SIZE as u64,
                "the last run fetches exactly what is not saved"
            );
            runs.push(SubRun {
                run,
                reused,
                last_done: SUB_SIZE as u64,
                parts_done: out.events_named("part_done").len(),
                outcome: "completed",
            });
            break;
        }
        let mut p = cmd.spawn();
        let started = p
            .wait_event("started", RUN_TIMEOUT)
            .unwrap_or_else(|| panic!("run {run} ended before `started`"));
        let reused = num(&started, "reused_bytes");
        // Anywhere in the next stretch, mostly well inside a part: 64 MiB parts finish
        // rarely, so nearly every kill lands with every part in flight.
        let x = step / 4 + rng.below(step);
        let reached = p
            .wait_for(RUN_TIMEOUT, |e| {
                e["event"] == "progress" && num(e, "done_bytes") >= reused + x
            })
            .is_some();
        assert!(reached, "run {run} ended before {x} more bytes");
        p.kill();
        let out = p.finish();
        assert_eq!(out.code(), None, "run {run} was not killed\n{}", out.stderr);
        runs.push(SubRun {
            run,
            reused,
            last_done: out
                .events_named("progress")
                .last()
                .map_or(reused, |e| num(e, "done_bytes")),
            parts_done: out.events_named("part_done").len(),
            outcome: "killed",
        });
    }
    assert_file_is(&dest, &content, "resumed after kills with 64 MiB parts");
    assert!(
        !rgcp(&dest).exists() && !rgpart(&dest).exists(),
        "leftovers after success"
    );

    let sent = sent_by_run(&server);
    let bound = SUB_JOBS * (DESIGN_LOSS_PER_JOB + TRANSPORT_SLACK_PER_JOB);
    let mut worst_server = 0u64;
    let mut worst_client = 0u64;
    let mut kept_without_a_part = 0;
    for (i, r) in runs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.outcome == "killed")
    {
        let next = &runs[i + 1];
        assert!(
            next.reused >= r.reused,
            "run {}: saved progress went backwards ({} -> {})",
            r.run,
            r.reused,
            next.reused
        );
        // Client side, the design alone: what the run said it had received (at least) and the
        // next run found saved.
        let lost_seen = r.last_done.saturating_sub(next.reused);
        assert!(
            lost_seen <= SUB_JOBS * DESIGN_LOSS_PER_JOB,
            "run {}: reported {} bytes received, the next run reused {}: {lost_seen} lost, more \
             than jobs × 1 MiB",
            r.run,
            r.last_done,
            next.reused
        );
        // Server side: bytes sent to this run and sent again to a later one.
        let mine = sent.get(&r.run).cloned().unwrap_or_default();
        let later: Vec<_> = sent
            .range(r.run + 1..)
            .flat_map(|(_, v)| v.iter().cloned())
            .collect();
        let again = overlap(&mine, &later);
        assert!(
            again <= bound,
            "run {}: {again} bytes sent to it were sent again later; bound jobs × (1 MiB + \
             transport slack) = {bound}",
            r.run
        );
        worst_server = worst_server.max(again);
        worst_client = worst_client.max(lost_seen);
        if r.parts_done == 0 && next.reused > r.reused {
            kept_without_a_part += 1;
        }
    }
    assert!(
        kept_without_a_part >= KILLS / 2,
        "kills that finished no part should still keep what they received: {runs:?}"
    );
    eprintln!(
        "crash: {KILLS} SIGKILLs with {SUB_JOBS} jobs × 64 MiB parts; at most {worst_server} \
         bytes sent again after a kill (emulator's log; bound {bound}), at most {worst_client} \
         received and not kept (the runs' own progress; bound {}); {kept_without_a_part} kills \
         finished no part and still kept their bytes",
        SUB_JOBS * DESIGN_LOSS_PER_JOB
    );
}

#[test]
fn sigint_and_sigterm_with_64_mib_parts_keep_every_byte_received() {
    const INTERRUPTS: usize = 4;
    let (server, content) = sub_server(INTERRUPTS + 4);
    let dir = tempfile::tempdir().expect("download directory");
    let dest = dir.path().join("sub.bin");
    let mut rng = Rng::new(0x1A7E_0015);
    let mut runs: Vec<SubRun> = Vec::new();
    let step = SUB_SIZE as u64 / (INTERRUPTS as u64 + 2);
    for run in 0..=INTERRUPTS {
        let cmd = sub_command(&server, &dest, run);
        let mut p = cmd.spawn();
        let started = p
            .wait_event("started", RUN_TIMEOUT)
            .unwrap_or_else(|| panic!("run {run} ended before `started`"));
        let reused = num(&started, "reused_bytes");
        if let Some(prev) = runs.last() {
            // Every byte the interrupted run received is saved: its last word on progress
            // (said once more after its workers stopped) is what this run reuses, at least (a
            // signal during the final checks, every part done, leaves an earlier one).
            assert!(
                reused >= prev.last_done,
                "run {run}: reused {reused}, the interrupted run had received {}",
                prev.last_done
            );
        }
        if run == INTERRUPTS {
            let out = p.finish();
            out.expect_ok();
            assert_eq!(
                out.num("completed", "fetched_bytes"),
                SUB_SIZE as u64 - reused,
                "the last run fetches exactly what is not saved"
            );
            break;
        }
        let x = step / 4 + rng.below(step);
        let reached = p
            .wait_for(RUN_TIMEOUT, |e| {
                e["event"] == "progress" && num(e, "done_bytes") >= reused + x
            })
            .is_some();
        assert!(reached, "run {run} ended before {x} more bytes");
        if run + 1 == INTERRUPTS {
            p.terminate();
        } else {
            p.interrupt();
        }
        let out = p.finish();
        out.expect_code(EXIT_INTERRUPTED).expect_stderr(&[
            "interrupted",
            "saved:",
            "run the same command",
        ]);
        let last_done = out
            .events_named("progress")
            .last()
            .map_or(reused, |e| num(e, "done_bytes"));
        let parts_done = out.events_named("part_done").len();
        if parts_done == 0 {
            // Nothing finished, yet the message counts the parts in flight honestly.
            assert!(
                out.stderr.contains("and the beginning"),
                "run {run}: {}",
                out.stderr
            );
        }
        runs.push(SubRun {
            run,
            reused,
            last_done,
            parts_done,
            outcome: "interrupted",
        });
    }
    assert_file_is(
        &dest,
        &content,
        "resumed after interruptions with 64 MiB parts",
    );
    // Server side: what an interrupted run was sent and a later run asked for again is what
    // the transport held when the signal came (the owners keep every byte they took), and
    // once the last part is claimed the helpers' bytes past a gap (`share.rs`: at most 1 MiB
    // per connection not owning a part; the run's saved count above leaves them out).
    let sent = sent_by_run(&server);
    let mut worst = 0;
    for r in &runs {
        let mine = sent.get(&r.run).cloned().unwrap_or_default();
        let later: Vec<_> = sent
            .range(r.run + 1..)
            .flat_map(|(_, v)| v.iter().cloned())
            .collect();
        let again = overlap(&mine, &later);
        assert!(
            again <= SUB_JOBS * TRANSPORT_SLACK_PER_JOB + (SUB_JOBS - 1) * DESIGN_LOSS_PER_JOB,
            "run {}: {again} bytes sent to it were sent again later",
            r.run
        );
        worst = worst.max(again);
    }
    eprintln!(
        "crash: {INTERRUPTS} SIGINT/SIGTERM with {SUB_JOBS} jobs × 64 MiB parts: every byte \
         received was reused by the next run; at most {worst} bytes the transport held were \
         sent again"
    );
}

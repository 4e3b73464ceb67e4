//! `resume-get -r` at scale against the OSS emulator: 10 000 small objects and a few large
//! ones (several parts each), the job killed with SIGKILL at 20 seeded moments and resumed
//! each time; every request the emulator answered is counted per key.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use oss_emulator::{Fault, FaultPlan, FaultRule};

use crate::common::*;
use crate::recursive::{assert_same_tree, local_tree};

const PREFIX: &str = "p/";
const SMALL: usize = 10_000;
const LARGE: usize = 3;
/// `p/f00996` is the last key of the first listing page (the three large keys sort first),
/// `p/f00996/b` the first of the second: a key that is a file and a prefix at once, split
/// across a page boundary.
const FILE_AND_PREFIX: &str = "p/f00996";

/// xorshift64, seeded.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Stores the objects (in-process, no HTTP) and returns relative path → bytes of what the
/// job must write.
fn seed_bucket(oss: &Oss) -> BTreeMap<String, Vec<u8>> {
    let mut want = BTreeMap::new();
    let mut rng = Rng(0x5eed_0000_0010_0000);
    for i in 0..LARGE {
        let rel = format!("big/l{i}.bin");
        let size = 1024 * 1024 + (rng.next() % (512 * 1024)) as usize;
        want.insert(
            rel.clone(),
            oss.put(&format!("{PREFIX}{rel}"), size, 1000 + i as u64),
        );
    }
    for i in 0..SMALL {
        let rel = format!("f{i:05}");
        // 0 to 1 KiB; every 97th object is empty.
        let size = if i % 97 == 0 {
            0
        } else {
            (rng.next() % 1024) as usize
        };
        want.insert(
            rel.clone(),
            oss.put(&format!("{PREFIX}{rel}"), size, i as u64),
        );
    }
    // Listed after `p/f00996` (a file): its path needs `f00996` as a directory, so it is
    // reported as a clash and never replaces the file.
    oss.put(&format!("{FILE_AND_PREFIX}/b"), 10, 7);
    want
}

fn object_gets_by_key(oss: &Oss, after: u64) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for r in oss.emu.request_log() {
        if r.number > after
            && let Some(k) = &r.key
        {
            *out.entry(k.clone()).or_insert(0) += 1;
        }
    }
    out
}

fn list_requests(oss: &Oss, after: u64) -> Vec<oss_emulator::RequestRecord> {
    oss.emu
        .request_log()
        .into_iter()
        .filter(|r| {
            r.number > after && r.key.is_none() && r.query_keys.iter().any(|q| q == "list-type")
        })
        .collect()
}

/// A directory on tmpfs when there is one: every object's file is fsynced before its rename,
/// and 10 000 fsyncs on a shared CI disk would dominate the test's time.
fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

fn last_request(oss: &Oss) -> u64 {
    oss.emu.request_count()
}

#[test]
fn ten_thousand_objects_killed_at_20_seeded_moments_resume_without_asking_twice() {
    let oss = Oss::start();
    let want = seed_bucket(&oss);
    // The large objects are throttled per connection, so their parts are in flight across
    // several of the kills; small objects are served at full speed.
    let mut plan = FaultPlan::new(3);
    for i in 0..LARGE {
        plan = plan.rule(FaultRule::on(
            "GET",
            &format!("{PREFIX}big/l{i}.bin"),
            Fault::Throttle {
                bytes_per_second: 256 * 1024,
            },
        ));
    }
    oss.emu.set_fault_plan(plan);
    let dir = scratch_dir();
    let dest = dir.path().join("out");
    let cmd = || {
        let mut c = oss.cmd();
        c.args(["-r", "--json", "--part-size", "128KiB", "-j", "8"])
            .arg(oss.url(PREFIX))
            .arg(&dest);
        c
    };
    let kills: u64 = std::env::var("RESUME_BATCH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut rng = Rng(0x6b11_6b11);
    // (request number at the kill, objects complete on disk then)
    let mut checkpoints: Vec<(u64, BTreeSet<String>)> = Vec::new();
    for k in 0..kills {
        let mut running = Running::spawn(&mut cmd(), &format!("run {k}"));
        // A seeded moment: after 1 to 600 finished objects of this run (the first runs also
        // kill inside the listing of later pages and inside large objects' parts).
        let after = 1 + rng.next() % 600;
        for _ in 0..after {
            running.wait_for_line(RUN_TIMEOUT, |l| l.contains("\"object_done\""));
        }
        running.signal("-KILL");
        let killed = running.finish(RUN_TIMEOUT);
        assert_eq!(killed.code, None, "run {k}: killed by the signal");
        let at = last_request(&oss);
        let complete: BTreeSet<String> = local_tree(&dest)
            .into_iter()
            .filter(|(rel, bytes)| want.get(rel) == Some(bytes))
            .map(|(rel, _)| rel)
            .collect();
        checkpoints.push((at, complete));
    }
    let last = run(&mut cmd(), "the final rerun");
    last.expect_code(0);
    let fin = last.event("job_finished");
    assert_eq!(u(&fin["failed"]), 0);
    assert_eq!(fin["complete"], true);
    assert_eq!(u(&fin["listed"]), (SMALL + LARGE + 1) as u64);
    // Byte-identical; no temp file, checkpoint, journal or state directory left.
    assert_same_tree(&local_tree(&dest), &want, "after 20 kills and a rerun");
    assert!(!dest.join(".resume-get").exists());
    // No object complete on disk at a kill was requested by any later run.
    for (i, (at, complete)) in checkpoints.iter().enumerate() {
        let later = object_gets_by_key(&oss, *at);
        let again: Vec<_> = complete
            .iter()
            .filter(|rel| later.contains_key(&format!("{PREFIX}{rel}")))
            .take(10)
            .collect();
        assert!(
            again.is_empty(),
            "complete at kill {i} ({} objects), requested again later: {again:?}",
            complete.len()
        );
    }
    assert!(
        checkpoints.last().unwrap().1.len() < want.len(),
        "the last kill came before the end (the final rerun had work left)"
    );
    // Pagination: the first run listed more than one page of at most 1 000 keys.
    assert!(list_requests(&oss, 0).len() > SMALL / 1000);
    // A rerun of the completed job: the listing, and not one object request.
    let before = last_request(&oss);
    let again = run(&mut cmd(), "rerun of the completed job");
    again.expect_code(0);
    assert_eq!(
        u(&again.event("job_finished")["up_to_date"]),
        (SMALL + LARGE) as u64
    );
    // The file-and-prefix key: the file is written, the key below it reported, never written.
    let clash: Vec<_> = again
        .events()
        .into_iter()
        .filter(|e| e["event"] == "object_skipped" && e["key"] == format!("{FILE_AND_PREFIX}/b"))
        .collect();
    assert_eq!(clash.len(), 1, "{clash:?}");
    assert_eq!(clash[0]["reason"], "clash");
    let asked = object_gets_by_key(&oss, before);
    assert!(
        asked.is_empty(),
        "object requests: {:?}",
        asked.keys().take(5).collect::<Vec<_>>()
    );
    assert_eq!(
        list_requests(&oss, before).len(),
        (SMALL + LARGE + 1).div_ceil(1000)
    );
    assert_same_tree(&local_tree(&dest), &want, "after the rerun");
}

#[test]
fn a_rerun_continues_the_listing_from_the_token_the_journal_kept() {
    let oss = Oss::start();
    let mut want = BTreeMap::new();
    for i in 0..3000u64 {
        let rel = format!("k{i:04}");
        want.insert(
            rel.clone(),
            oss.put(&format!("{PREFIX}{rel}"), (i % 300) as usize, i),
        );
    }
    let dir = scratch_dir();
    let dest = dir.path().join("out");
    let cmd = || {
        let mut c = oss.cmd();
        c.args(["-r", "--json", "-j", "8"])
            .arg(oss.url(PREFIX))
            .arg(&dest);
        c
    };
    let mut running = Running::spawn(&mut cmd(), "first run");
    for _ in 0..2500 {
        running.wait_for_line(RUN_TIMEOUT, |l| l.contains("\"object_done\""));
    }
    running.signal("-KILL");
    assert_eq!(running.finish(RUN_TIMEOUT).code, None);
    let full = list_requests(&oss, 0);
    assert_eq!(full.len(), 3, "1 000 keys a page");
    let before = last_request(&oss);
    let rerun = run(&mut cmd(), "rerun");
    rerun.expect_code(0);
    // The first page (at least) was settled before the kill: the rerun's listing starts
    // with a continuation token and asks for fewer pages than the whole listing.
    let again = list_requests(&oss, before);
    assert!(!again.is_empty() && again.len() < 3, "{again:?}");
    assert!(
        again[0]
            .query_keys
            .iter()
            .any(|q| q == "continuation-token"),
        "{:?}",
        again[0]
    );
    let fin = rerun.event("job_finished");
    assert_eq!(u(&fin["listed"]), 3000);
    assert!(u(&fin["earlier"]) >= 1000, "{fin}");
    assert_same_tree(&local_tree(&dest), &want, "after the rerun");
}

/// Memory does not grow with the number of keys: a job over 1 000 000 zero-byte objects
/// (1 000 listing pages; one key in 1 000 selected and downloaded, the rest go through the
/// selection and settle) stays under 64 MiB of peak RSS, measured from /proc.
#[test]
fn a_million_key_job_stays_under_64_mib_of_peak_rss() {
    let oss = Oss::start();
    const N: usize = 1_000_000;
    for i in 0..N {
        oss.emu
            .put_object(BUCKET, &format!("m/{i:07}"), [])
            .expect("put");
    }
    let dir = scratch_dir();
    let dest = dir.path().join("out");
    let running = Running::spawn(
        oss.cmd()
            .args(["-r", "--quiet", "--include", "*999", "-j", "8"])
            .arg(oss.url("m/"))
            .arg(&dest),
        "a million keys",
    );
    // Sample the peak until the exit (a zombie has no VmHWM line: the loop ends there).
    let out = {
        let pid = running.pid();
        let mut peak = 0;
        for _ in 0..1_000_000 {
            // VmHWM only grows: the last reading before the exit is the peak.
            let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    let kib: u64 = s
                        .lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))?
                        .trim()
                        .strip_suffix("kB")?
                        .trim()
                        .parse()
                        .ok()?;
                    Some(kib * 1024)
                });
            match hwm {
                Some(b) => peak = peak.max(b),
                None => break,
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = running.finish(RUN_TIMEOUT);
        (out, peak)
    };
    let (out, peak) = out;
    out.expect_code(0);
    let files = local_tree(&dest);
    assert_eq!(files.len(), N / 1000, "one key in 1 000 downloaded");
    assert!(peak > 0);
    eprintln!(
        "peak RSS {:.1} MiB for {N} keys listed",
        peak as f64 / (1 << 20) as f64
    );
    assert!(peak < 64 << 20, "peak RSS {peak} bytes for {N} keys");
}

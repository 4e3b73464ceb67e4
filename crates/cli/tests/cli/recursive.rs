//! `resume-get -r`: usage errors before any request, and (once a lister is wired for the
//! scheme) whole-prefix jobs end to end.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::*;

fn expect_refused(args: &[&str], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let what = args.join(" ");
    let out = run(bare_cmd().args(args).arg(&dest), &what);
    out.expect_code(2).stderr_has(needles);
    assert!(!dest.exists(), "{what}: nothing may be created");
}

#[test]
fn single_object_options_and_bad_batch_options_are_usage_errors_before_any_request() {
    for (args, needles) in [
        (
            &["-r", "--range", "0-9", "s3://b/p/"][..],
            &["--range", "cannot be used with -r"][..],
        ),
        (
            &["-r", "--version-id", "v1", "s3://b/p/"],
            &["--version-id", "cannot be used with -r"],
        ),
        (
            &["-r", "--no-checkpoint", "s3://b/p/"],
            &["--no-checkpoint", "cannot be used with -r"],
        ),
        (
            &["-r", "--jobs", "0", "s3://b/p/"],
            &["--jobs must be at least 1"],
        ),
        (&["--shard", "1/2", "s3://b/k"], &["--recursive"]),
        (&["--include", "*.csv", "s3://b/k"], &["--recursive"]),
        (
            &["-r", "--update", "--overwrite", "s3://b/p/"],
            &["--update", "--overwrite"],
        ),
        (
            &["-r", "https://example.invalid/dir/"],
            &["an HTTP server cannot list"],
        ),
        (&["-r", "ftp://h/p/"], &["unsupported source scheme"]),
    ] {
        expect_refused(args, needles);
    }
}

#[test]
fn a_folder_url_without_r_points_to_r() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        bare_cmd().arg("file:///tmp/some-folder/").arg(dir.path()),
        "folder without -r",
    );
    out.expect_code(2)
        .stderr_has(&["names a folder", "with -r"]);
}

// ---------------------------------------------------------------------------------------
// Whole jobs from file:// (the object_store lister walks the directory).

/// A source tree: `small` files of 0–4 KiB in a few directories and `large` files of
/// 384–768 KiB (several 64 KiB parts each).
fn source_tree(root: &Path, seed: u64, small: usize, large: usize) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut state = seed | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..small {
        let rel = format!("d{}/f{i:03}.bin", i % 4);
        files.insert(rel, data((next() % 4096) as usize, seed + i as u64));
    }
    for i in 0..large {
        let rel = format!("big/l{i}.bin");
        files.insert(
            rel,
            data(
                384 * 1024 + (next() % (384 * 1024)) as usize,
                (seed ^ 77) + i as u64,
            ),
        );
    }
    for (rel, bytes) in &files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    files
}

/// Every file below `dir`, relative path → bytes (the job's state directory included, so a
/// leftover journal or temp file shows).
pub(crate) fn local_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `got == want`, naming the paths that differ (not dumping their bytes).
pub(crate) fn assert_same_tree(
    got: &BTreeMap<String, Vec<u8>>,
    want: &BTreeMap<String, Vec<u8>>,
    what: &str,
) {
    let differ: Vec<String> = got
        .keys()
        .chain(want.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .map(|k| {
            let len = |m: &BTreeMap<String, Vec<u8>>| m.get(k).map(Vec::len);
            format!("{k} (got {:?} bytes, want {:?})", len(got), len(want))
        })
        .collect();
    assert!(differ.is_empty(), "{what}: trees differ at {differ:?}");
}

fn file_url(dir: &Path) -> String {
    format!("file://{}/", dir.display())
}

/// Keys (relative paths) of the objects a run started.
fn started(out: &Outcome) -> BTreeSet<String> {
    out.events()
        .into_iter()
        .filter(|e| e["event"] == "object_started")
        .map(|e| {
            let key = e["key"].as_str().unwrap().to_owned();
            key.rsplit_once("/src/")
                .map(|(_, k)| k.to_owned())
                .unwrap_or(key)
        })
        .collect()
}

#[test]
fn a_local_tree_is_copied_byte_identical_and_a_rerun_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let want = source_tree(&src, 1, 40, 2);
    let dest = dir.path().join("out");
    let args = ["-r", "--json", "--part-size", "64KiB", "-j", "4"];
    let out = run(bare_cmd().args(args).arg(file_url(&src)).arg(&dest), "-r");
    out.expect_code(0);
    assert_same_tree(
        &local_tree(&dest),
        &want,
        "byte-identical, nothing else left",
    );
    let fin = out.event("job_finished");
    assert_eq!((u(&fin["done"]), u(&fin["failed"])), (42, 0));
    assert_eq!(started(&out).len(), 42);
    let again = run(
        bare_cmd().args(args).arg(file_url(&src)).arg(&dest),
        "rerun",
    );
    again.expect_code(0);
    assert!(started(&again).is_empty(), "{}", again.stdout);
    assert_eq!(u(&again.event("job_finished")["up_to_date"]), 42);
    // The plan of a dry run, tab-separated on stdout.
    let plan = run(
        bare_cmd()
            .args(["-r", "--dry-run", "--overwrite"])
            .arg(file_url(&src))
            .arg(&dest),
        "dry run",
    );
    plan.expect_code(0);
    assert_eq!(plan.lines.len(), 42);
    assert!(plan.lines.iter().all(|l| l.text.starts_with("download\t")));
}

#[test]
fn kill_9_at_seeded_moments_then_a_rerun_ends_byte_identical_and_restarts_no_done_object() {
    let kills: u64 = std::env::var("RESUME_BATCH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    for seed in 0..kills {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let want = source_tree(&src, 100 + seed, 60, 3);
        let dest = dir.path().join("out");
        let cmd = |rate: &str| {
            let mut c = bare_cmd();
            // The killed run is slowed (the rate limit caps the whole job, ~1.8 s for the tree),
            // so large objects are in flight, part by part, when the kill lands, even when a
            // loaded machine reads the events late; the rerun is not.
            c.args(["-r", "--json", "--part-size", "64KiB", "-j", "4"])
                .args(["--limit-rate", rate])
                .arg(file_url(&src))
                .arg(&dest);
            c
        };
        // Kill after a seeded number of finished objects.
        let after = 1 + (seed * 7) % 50;
        let mut running = Running::spawn(&mut cmd("1MiB"), &format!("seed {seed}"));
        for _ in 0..after {
            running.wait_for_line(RUN_TIMEOUT, |l| l.contains("\"object_done\""));
        }
        running.signal("-KILL");
        let killed = running.finish(RUN_TIMEOUT);
        assert_eq!(
            killed.code, None,
            "seed {seed}: killed by the signal, not finished before it"
        );
        // What is complete on disk now must not be started again.
        let complete: BTreeSet<String> = local_tree(&dest)
            .into_iter()
            .filter(|(k, v)| want.get(k) == Some(v))
            .map(|(k, _)| k)
            .collect();
        assert!(complete.len() as u64 >= after, "seed {seed}");
        // A kill between a large object's rename and its checkpoint's removal leaves both: the
        // rerun hands that object to the engine, which recognises its finished file and only
        // removes the checkpoint. Any other complete object is not even started.
        let checkpoint_left: BTreeSet<String> = complete
            .iter()
            .filter(|k| dest.join(format!("{k}.rgcp")).exists())
            .cloned()
            .collect();
        let rerun = run(&mut cmd("0"), &format!("seed {seed} rerun"));
        rerun.expect_code(0);
        let again: Vec<_> = started(&rerun)
            .intersection(&complete)
            .filter(|k| !checkpoint_left.contains(*k))
            .cloned()
            .collect();
        assert!(
            again.is_empty(),
            "seed {seed}: done objects started again: {again:?}"
        );
        let fetched: Vec<String> = rerun
            .events()
            .into_iter()
            .filter(|e| e["event"] == "object_done" && u(&e["fetched_bytes"]) > 0)
            .filter_map(|e| {
                let key = e["key"].as_str()?;
                Some(key.rsplit_once("/src/").map_or(key, |(_, k)| k).to_owned())
            })
            .filter(|k| complete.contains(k))
            .collect();
        assert!(
            fetched.is_empty(),
            "seed {seed}: bytes of complete objects fetched again: {fetched:?}"
        );
        assert_same_tree(
            &local_tree(&dest),
            &want,
            &format!("seed {seed}: byte-identical, no temp file, checkpoint or journal left"),
        );
    }
}

#[test]
fn exit_9_lists_the_failed_objects_and_the_rerun_fetches_only_them() {
    // Local files publish no checksum, so --require-checksum fails every object (before
    // any byte is read): per-object failures, the job goes on to the end.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let want = source_tree(&src, 9, 5, 0);
    let dest = dir.path().join("out");
    let failures = dir.path().join("failed.jsonl");
    let out = run(
        bare_cmd()
            .args(["-r", "--require-checksum", "--failures"])
            .arg(&failures)
            .arg(file_url(&src))
            .arg(&dest),
        "-r --require-checksum",
    );
    out.expect_code(9).stderr_has(&[
        "5 object(s) failed",
        "JSON lines",
        "failed.jsonl",
        "0 downloaded",
    ]);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&failures)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().all(|l| l["kind"] == "Integrity"));
    let out = run(bare_cmd().arg("-r").arg(file_url(&src)).arg(&dest), "rerun");
    out.expect_code(0);
    assert_same_tree(&local_tree(&dest), &want, "after the rerun");
}

#[test]
fn an_oss_prefix_with_one_object_denied_exits_9_and_the_rerun_asks_only_for_it() {
    let oss = Oss::start();
    let names = ["a.bin", "b.bin", "c.bin", "d/e.bin"];
    let want: Vec<Vec<u8>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| oss.put(&format!("p/{n}"), 3000 + i * 100, i as u64))
        .collect();
    oss.put("q/other.bin", 10, 9);
    oss.deny_nth_get("p/c.bin", 1);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let out = run(
        oss.cmd().args(["-r", &oss.url("p/")]).arg(&dest),
        "-r with one object denied",
    );
    out.expect_code(9)
        .stderr_has(&["p/c.bin", "1 object(s) failed", "JSON lines"]);
    for (n, bytes) in names.iter().zip(&want) {
        if *n != "c.bin" {
            assert_file(&dest.join(n), bytes, n);
        }
    }
    assert!(!dest.join("c.bin").exists() && !dest.join("other.bin").exists());
    let before: Vec<usize> = names
        .iter()
        .map(|n| oss.get_ranges(&format!("p/{n}")).len())
        .collect();
    let out = run(oss.cmd().args(["-r", &oss.url("p/")]).arg(&dest), "rerun");
    out.expect_code(0);
    assert_file(&dest.join("c.bin"), &want[2], "c.bin");
    for (i, n) in names.iter().enumerate() {
        let asked = oss.get_ranges(&format!("p/{n}")).len() - before[i];
        assert_eq!(asked, usize::from(*n == "c.bin"), "{n}: GETs in the rerun");
    }
}

#[test]
fn keys_with_tabs_newlines_and_escape_sequences_keep_the_plan_one_line_per_object() {
    // Keys are whatever a bucket holds: a tab or newline must not add columns or lines to the
    // plan, and no escape sequence from a key may reach the terminal.
    let oss = Oss::start();
    let names = [
        "tab\there",
        "line\nbreak",
        "d\u{1b}[2J/title\u{1b}]0;owned\u{7}",
        "back\\slash",
        "plain.txt",
        "fold\u{1b}[31m/",
    ];
    let want: Vec<Vec<u8>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| oss.put(&format!("p/{n}"), 100 + i, i as u64))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let plan = run(
        oss.cmd()
            .args(["-r", "--dry-run", &oss.url("p/")])
            .arg(&dest),
        "dry run",
    );
    plan.expect_code(0);
    assert_eq!(plan.lines.len(), names.len(), "{}", plan.stdout);
    for l in &plan.lines {
        let cols: Vec<&str> = l.text.split('\t').collect();
        let want_cols = if cols[0] == "skip" { 5 } else { 4 };
        assert_eq!(cols.len(), want_cols, "one object per line: {:?}", l.text);
        assert!(
            cols.iter().all(|c| !c.chars().any(char::is_control)),
            "{:?}",
            l.text
        );
    }
    let shown: Vec<&str> = plan
        .lines
        .iter()
        .map(|l| l.text.split('\t').nth(2).unwrap())
        .collect();
    for expected in [
        "p/plain.txt",
        r#""p/tab\there""#,
        r#""p/line\nbreak""#,
        r#""p/back\\slash""#,
    ] {
        assert!(shown.contains(&expected), "{expected} in {shown:?}");
    }
    let out = run(oss.cmd().args(["-r", &oss.url("p/")]).arg(&dest), "-r");
    out.expect_code(0);
    for text in [&plan.stderr, &out.stderr] {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "no control character on stderr: {text:?}"
        );
    }
    // Each object is written under its own name (Linux takes every byte but NUL and '/').
    for (n, bytes) in names.iter().zip(&want).take(5) {
        assert_file(&dest.join(n), bytes, n);
    }
    out.stderr_has(&["skipped", "folder marker"]);
}

#[test]
fn a_local_name_no_key_can_hold_fails_the_listing_without_a_control_sequence_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("d\u{1b}[2J")).unwrap();
    std::fs::write(src.join("d\u{1b}[2J/x"), b"x").unwrap();
    let out = run(
        bare_cmd()
            .arg("-r")
            .arg(file_url(&src))
            .arg(dir.path().join("out")),
        "-r over a name with ESC",
    );
    out.expect_code(1)
        .stderr_has(&["control character", "rename it"]);
    assert!(
        !out.stderr.chars().any(|c| c.is_control() && c != '\n'),
        "{:?}",
        out.stderr
    );
}

#[test]
fn checksum_rule_compares_the_crc64_of_a_head_and_fetches_only_what_differs() {
    let oss = Oss::start();
    let names = ["a.bin", "b.bin", "c.bin"];
    let want: Vec<Vec<u8>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| oss.put(&format!("p/{n}"), 5000 + i, 40 + i as u64))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    run(oss.cmd().args(["-r", &oss.url("p/")]).arg(&dest), "first").expect_code(0);
    // a.bin: same size, other bytes; b.bin: same bytes, another time (the default rule would
    // fetch it again; the checksum rule does not).
    let mut changed = want[0].clone();
    changed[10] ^= 1;
    std::fs::write(dest.join("a.bin"), &changed).unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(dest.join("b.bin"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    drop(f);
    let before = oss.emu.request_count();
    let out = run(
        oss.cmd()
            .args(["-r", "--checksum", "--json", &oss.url("p/")])
            .arg(&dest),
        "-r --checksum",
    );
    out.expect_code(0);
    let log: Vec<_> = oss
        .emu
        .request_log()
        .into_iter()
        .filter(|r| r.number > before && r.key.is_some())
        .map(|r| (r.method, r.key.unwrap()))
        .collect();
    let gets: Vec<_> = log.iter().filter(|(m, _)| m == "GET").collect();
    let heads: Vec<_> = log.iter().filter(|(m, _)| m == "HEAD").collect();
    assert_eq!(gets.len(), 1, "{log:?}");
    assert_eq!(gets[0].1, "p/a.bin");
    // The listing has no CRC: one HEAD per same-size file, the CRC-64 it publishes compared.
    assert_eq!(heads.len(), 3, "{log:?}");
    let skipped: Vec<_> = out
        .events()
        .into_iter()
        .filter(|e| e["event"] == "object_skipped")
        .collect();
    assert_eq!(skipped.len(), 2);
    for e in &skipped {
        let d = e["detail"].as_str().unwrap();
        assert!(d.contains("CRC-64/XZ") && d.contains("HEAD"), "{d}");
    }
    for (n, bytes) in names.iter().zip(&want) {
        assert_file(&dest.join(n), bytes, n);
    }
}

#[test]
fn files_from_urls_of_two_schemes_and_keys_below_a_prefix_resume_without_asking_twice() {
    let oss = Oss::start();
    let a = oss.put("p/a.bin", 4000, 61);
    let b = oss.put("p/sub/b.bin", 70_000, 62);
    let dir = tempfile::tempdir().unwrap();
    let local_src = dir.path().join("src");
    std::fs::create_dir_all(&local_src).unwrap();
    let c = data(3000, 63);
    std::fs::write(local_src.join("c.bin"), &c).unwrap();
    // URLs: any scheme, comments and blank lines ignored; a second URL with the same local
    // path is reported, never written over the first.
    let list = dir.path().join("urls.txt");
    std::fs::write(
        &list,
        format!(
            "# what to fetch\n\n{}\n  {}  \nfile://{}/c.bin\n{}\n",
            oss.url("p/a.bin"),
            oss.url("p/sub/b.bin"),
            local_src.display(),
            oss.url("p/a.bin"),
        ),
    )
    .unwrap();
    let dest = dir.path().join("out");
    let cmd = || {
        let mut c = oss.cmd();
        c.args(["--json", "--part-size", "16KiB", "--files-from"])
            .arg(&list)
            .arg(&dest);
        c
    };
    let out = run(&mut cmd(), "--files-from urls");
    out.expect_code(0);
    let fin = out.event("job_finished");
    assert_eq!((u(&fin["done"]), u(&fin["skipped"])), (3, 1), "{fin}");
    assert_file(&dest.join(BUCKET).join("p/a.bin"), &a, "a");
    assert_file(&dest.join(BUCKET).join("p/sub/b.bin"), &b, "b");
    let rel = local_src.strip_prefix("/").unwrap().join("c.bin");
    assert_file(&dest.join(rel), &c, "c");
    assert!(!dest.join(".resume-get").exists());
    // Keys below a prefix, placed as -r places them; killed after the first object, the
    // rerun asks nothing of it.
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, "a.bin\n# b is large\nsub/b.bin\n").unwrap();
    let dest2 = dir.path().join("out2");
    oss.throttle_gets(64 * 1024);
    let kcmd = || {
        let mut c = oss.cmd();
        c.args(["--json", "--part-size", "16KiB", "-j", "1", "--files-from"])
            .arg(&keys)
            .arg(oss.url("p/"))
            .arg(&dest2);
        c
    };
    let mut running = Running::spawn(&mut kcmd(), "--files-from keys");
    running.wait_for_line(RUN_TIMEOUT, |l| l.contains("\"object_done\""));
    running.signal("-KILL");
    assert_eq!(running.finish(RUN_TIMEOUT).code, None);
    assert_file(&dest2.join("a.bin"), &a, "a before the rerun");
    let before = oss.emu.request_count();
    oss.emu.clear_fault_plan();
    let rerun = run(&mut kcmd(), "--files-from keys, rerun");
    rerun.expect_code(0);
    let asked: Vec<String> = oss
        .emu
        .request_log()
        .into_iter()
        .filter(|r| r.number > before)
        .filter_map(|r| r.key)
        .collect();
    assert!(!asked.iter().any(|k| k == "p/a.bin"), "{asked:?}");
    assert_file(&dest2.join("sub/b.bin"), &b, "b");
}

/// `-r oss://`: a listed object of one part is one GET (no HEAD: size and etag come from the
/// listing) and is verified by the whole-object CRC-64 OSS sends on that GET, so a byte
/// flipped on the way fails that object as an integrity error (exit 9) naming CRC-64/XZ and
/// both values, the file already there untouched, and the other objects are done.
#[test]
fn an_oss_prefix_costs_one_get_per_one_part_object_and_a_flipped_byte_fails_it() {
    use std::sync::{Arc, Mutex};
    use test_support::relay::{Action, Relay};
    const PRECIOUS: &[u8] = b"an older copy the user keeps";
    let crc64 = |v: &[u8]| crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Xz, v).to_string();
    let oss = Oss::start();
    let objects: Vec<(String, Vec<u8>)> = (0..6u64)
        .map(|i| {
            let name = format!("o{i}.bin");
            let bytes = oss.put(&format!("p/{name}"), 5_000 + 777 * i as usize, 700 + i);
            (name, bytes)
        })
        .collect();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let relay = Relay::start(oss.emu.addr(), move |head| {
        let line = head
            .lowercase()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        log.lock().unwrap().push(line.clone());
        if line.starts_with("get ") && line.contains("/p/o3.bin") {
            Action::FlipBodyByte(100)
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("o3.bin"), PRECIOUS).unwrap();
    let mut cmd = bare_cmd();
    cmd.env("OSS_ACCESS_KEY_ID", KEY_ID)
        .env("OSS_ACCESS_KEY_SECRET", SECRET)
        .args([
            "--endpoint",
            &relay.url(),
            "--region",
            "cn-hangzhou",
            "--json",
        ])
        .args(["-r", &oss.url("p/")])
        .arg(&dest);
    let out = run(&mut cmd, "oss prefix through a byte-flipping relay");
    out.expect_code(9);
    assert_one_request_each(
        &dest,
        &objects,
        ("o3.bin", PRECIOUS),
        &seen.lock().unwrap(),
        |name| format!("/p/{name}"),
        |line| line.starts_with("get "),
        "oss prefix",
    );
    // Each object done says what verified it.
    let done: Vec<_> = out
        .events()
        .into_iter()
        .filter(|e| e["event"] == "object_done")
        .collect();
    assert_eq!(done.len(), objects.len() - 1, "{}", out.stdout);
    for e in &done {
        assert_eq!(e["verified"], true, "{e}");
        assert_eq!(
            e["verification"], "verified: CRC-64/XZ full-object (OSS)",
            "{e}"
        );
        assert_eq!(e["verified_by"][0]["algorithm"], "CRC-64/XZ", "{e}");
    }
    let failed = out.event("object_failed");
    assert_eq!(failed["key"], "p/o3.bin", "{failed}");
    assert_eq!(failed["kind"], "Integrity", "{failed}");
    let o3 = &objects[3].1;
    let mut flipped = o3.clone();
    flipped[100] ^= 0x01;
    let error = failed["error"].as_str().unwrap();
    for needle in ["CRC-64/XZ", &crc64(o3), &crc64(&flipped)] {
        assert!(error.contains(needle), "{needle} in {error}");
    }
}

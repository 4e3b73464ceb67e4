//! Issue 19, "the CLI as a newcomer meets it": no logs without `-v`, no panic on a closed
//! pipe, an honest `demo`, curl-like option values, folders refused, usage without arguments,
//! messages without noise.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oss_emulator::{Fault, FaultPlan, FaultRule};
use test_support::ChildGuard;

use crate::common::*;

/// Tracing's format: a level word between spaces, or a module path.
fn assert_no_log_lines(stderr: &str, what: &str) {
    for marker in [
        " WARN ",
        " INFO ",
        " DEBUG ",
        " ERROR ",
        "resume_core::",
        "backend_oss::",
    ] {
        assert!(
            !stderr.contains(marker),
            "{what}: a log line without -v ({marker:?}):\n{stderr}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Item 2: without -v, one-line messages and never tracing output.

#[test]
fn without_v_an_automatic_restart_and_a_discarded_checkpoint_are_one_line_each() {
    let oss = Oss::start();
    let key = "changes.bin";
    oss.put(key, 1 << 20, 90);
    // The object is replaced after the first GET: the engine starts over by itself.
    oss.emu.set_fault_plan(
        FaultPlan::new(3)
            .rule(FaultRule::on("GET", key, Fault::ChangeObject { size: None }).nth(1)),
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let args = ["--part-size", "128KiB", "--jobs", "1"];
    let out = run(oss.cmd().args(args).arg(oss.url(key)).arg(&dest), "restart");
    out.expect_code(0);
    assert_no_log_lines(&out.stderr, "restart");
    let restart_lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("changed during the download"))
        .collect();
    assert_eq!(restart_lines.len(), 1, "{}", out.stderr);
    assert!(restart_lines[0].contains("starting over"), "{}", out.stderr);
    // The tool restarts by itself: advice to start again would be wrong.
    assert!(
        !out.stderr.contains("start the download again"),
        "{}",
        out.stderr
    );
    assert_file(&dest, &oss.emu.get_object(BUCKET, key).unwrap(), "restart");

    // Saved progress of an object that has changed since: not used, and said so in one line.
    let key = "stale.bin";
    oss.put(key, 1 << 20, 91);
    oss.deny_nth_get(key, 3);
    let dest = dir.path().join("stale.bin");
    run(oss.cmd().args(args).arg(oss.url(key)).arg(&dest), "stopped").expect_code(4);
    assert!(dir.path().join("stale.bin.rgcp").exists());
    oss.emu.clear_fault_plan();
    let new = oss.put(key, 1 << 20, 92);
    let out = run(oss.cmd().args(args).arg(oss.url(key)).arg(&dest), "stale");
    out.expect_code(0);
    assert_no_log_lines(&out.stderr, "stale checkpoint");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "a note, the summary and what verified the file:\n{}",
        out.stderr
    );
    assert_eq!(lines[2], "verified: CRC-64/XZ + MD5 full-object (OSS)");
    assert!(
        lines[0].starts_with("resume-get: not resuming, starting from the beginning: "),
        "{}",
        out.stderr
    );
    assert!(
        lines[1].starts_with("downloaded stale.bin"),
        "{}",
        out.stderr
    );
    assert_file(&dest, &new, "stale");

    // -v still turns the logs on.
    let out = run(
        oss.cmd()
            .arg("-v")
            .arg(oss.url(key))
            .arg(dir.path().join("v.bin")),
        "-v",
    );
    out.expect_code(0);
    assert!(
        out.stderr.contains(" INFO "),
        "-v shows logs:\n{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------------
// Item 3: a closed stdout or stderr never panics nor changes the outcome.

/// Spawns `cmd` with `reader` (`stdout` or `stderr`) piped, reads its first line, closes the
/// pipe (as `| head -1` does), lets the download run to its end (`release`), and returns the
/// exit code and the first line. The other stream goes to /dev/null.
fn close_after_first_line(
    cmd: &mut Command,
    from_stdout: bool,
    release: impl FnOnce(),
    what: &str,
) -> (Option<i32>, String) {
    if from_stdout {
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    } else {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    }
    let mut guard = ChildGuard::spawn(cmd, what);
    let child = guard.child_mut();
    let pipe: Box<dyn Read + Send> = if from_stdout {
        Box::new(child.stdout.take().unwrap())
    } else {
        Box::new(child.stderr.take().unwrap())
    };
    let mut first = String::new();
    BufReader::new(pipe)
        .read_line(&mut first)
        .expect("read the first line");
    // The reader is dropped here: the pipe is closed, later writes fail with EPIPE.
    release();
    (wait(&mut guard, what), first)
}

fn wait(guard: &mut ChildGuard, what: &str) -> Option<i32> {
    let deadline = Instant::now() + RUN_TIMEOUT;
    for _ in 0..1_000_000 {
        if let Some(status) = guard.child_mut().try_wait().expect("wait") {
            return status.code();
        }
        assert!(Instant::now() < deadline, "{what} did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("{what} did not exit");
}

/// A download held back by a slow throttle until `release` lifts it, so the output after
/// the first line is surely written to a closed pipe.
fn held_back(oss: &Oss, key: &str, seed: u64) -> Vec<u8> {
    let bytes = oss.put(key, 1 << 20, seed);
    oss.throttle_gets(64 << 10);
    bytes
}

#[test]
fn a_closed_pipe_never_panics_nor_changes_the_exit_code() {
    let oss = Oss::start();
    let dir = tempfile::tempdir().unwrap();
    for (flags, from_stdout) in [
        (&["--progress"][..], false),
        (&["--json"][..], true),
        (&["--json", "-vv"][..], true),
    ] {
        let what = flags.join(" ");
        let key = format!("pipe-{}.bin", flags.len() * 10 + usize::from(from_stdout));
        let bytes = held_back(&oss, &key, 93);
        let dest = dir.path().join(&key);
        let mut cmd = oss.cmd();
        cmd.args(flags)
            .args(["--part-size", "128KiB"])
            .arg(oss.url(&key))
            .arg(&dest);
        let (code, first) =
            close_after_first_line(&mut cmd, from_stdout, || oss.emu.clear_fault_plan(), &what);
        assert_eq!(code, Some(0), "{what}: exit code (first line {first:?})");
        assert_file(&dest, &bytes, &what);
        assert_eq!(
            listing(dir.path())
                .iter()
                .filter(|n| n.contains(".rg"))
                .count(),
            0
        );
    }

    // Plain mode: stderr closed before anything is written; success and failure keep their
    // codes.
    let bytes = oss.put("plain.bin", 300_000, 94);
    for (url, expected) in [(oss.url("plain.bin"), 0), (oss.url("absent.bin"), 3)] {
        let dest = dir.path().join("plain.bin");
        let mut cmd = oss.cmd();
        cmd.arg(&url)
            .arg(&dest)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut guard = ChildGuard::spawn(&mut cmd, &url);
        drop(guard.child_mut().stderr.take());
        assert_eq!(wait(&mut guard, &url), Some(expected), "{url}");
    }
    assert_file(&dir.path().join("plain.bin"), &bytes, "plain");
}

#[test]
fn demo_json_into_a_closed_pipe_finishes_and_leaves_only_the_file() {
    let keep = tempfile::tempdir().unwrap();
    let mut cmd = bare_cmd();
    cmd.args([
        "demo",
        "--size",
        "4MiB",
        "--part-size",
        "128KiB",
        "--json",
        "--keep",
    ])
    .arg(keep.path());
    let (code, first) = close_after_first_line(&mut cmd, true, || {}, "demo --json | head -1");
    assert_eq!(code, Some(0), "first line {first:?}");
    let event: serde_json::Value = serde_json::from_str(&first).expect("a JSON first line");
    assert_eq!(event["event"], "demo");
    assert_eq!(listing(keep.path()), names(&["demo-object.bin"]));
    assert_eq!(
        std::fs::metadata(keep.path().join("demo-object.bin"))
            .unwrap()
            .len(),
        4 << 20
    );
}

// ---------------------------------------------------------------------------------------
// Item 4: demo takes only what it uses and says only what is true.

#[test]
fn demo_refuses_options_it_cannot_honour() {
    for args in [
        &["--range", "0-99"][..],
        &["--signature", "v1"],
        &["--endpoint", "http://127.0.0.1:1"],
        &["--region", "us-west-1"],
        &["--no-checkpoint"],
        &["--checkpoint-dir", "/tmp"],
        &["--version-id", "v1"],
        &["--on-change", "fail"],
        &["--verify-on-resume"],
    ] {
        let what = format!("demo {}", args.join(" "));
        let out = run(
            bare_cmd().arg("demo").args(args).args(["--size", "1"]),
            &what,
        );
        out.expect_code(2)
            .stderr_has(&["unexpected argument", args[0]]);
        assert_eq!(out.stdout, "", "{what}");
    }
}

#[test]
fn demo_tells_the_truth_when_the_object_is_done_before_the_crash() {
    let out = run(
        bare_cmd().args(["demo", "--size", "100KiB"]),
        "demo --size 100KiB",
    );
    out.expect_code(0);
    assert!(
        out.stdout.contains("finished") && out.stdout.contains("before the simulated crash"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("4. resumed"), "{}", out.stdout);
    let last = out.stdout.lines().last().unwrap();
    assert!(last.contains("demo complete: every byte correct"), "{last}");
    assert!(!last.contains("crash"), "no crash happened: {last}");
}

#[test]
fn demo_json_is_only_json_and_the_crash_story_is_backed_by_the_files() {
    let out = run(
        bare_cmd().args(["demo", "--size", "4MiB", "--part-size", "128KiB", "--json"]),
        "demo --json",
    );
    out.expect_code(0);
    let events = out.events(); // panics on a line that is not JSON
    let texts: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "demo")
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect();
    let steps: Vec<u64> = events.iter().filter_map(|e| e["step"].as_u64()).collect();
    assert_eq!(steps, [1, 2, 3, 4, 5, 6, 7, 8], "{texts:#?}");
    // The batch step: interrupted, resumed, every file checked, and the request log shows
    // nothing complete at the interruption asked for again.
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("interrupted with ") && t.contains("objects complete on disk")),
        "{texts:#?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.ends_with("requests for objects complete before the interruption: 0")),
        "{texts:#?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with(
            "verified: 300 of 300 files identical to their objects, 0 other files left"
        )),
        "{texts:#?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("simulated crash")
            && t.contains("demo-object.bin.rgpart and demo-object.bin.rgcp")),
        "{texts:#?}"
    );
    assert!(
        texts.last().unwrap().contains("a crash and a resume")
            && texts
                .last()
                .unwrap()
                .contains("a batch job of 300 objects interrupted and resumed"),
        "{texts:#?}"
    );
    assert_eq!(
        events.iter().filter(|e| e["event"] == "completed").count(),
        1,
        "only the resumed download completes"
    );
}

// ---------------------------------------------------------------------------------------
// Item 6: option values as curl and wget users write them.

#[test]
fn limit_rate_0_is_unlimited_timeout_is_seconds_and_negatives_are_plain_errors() {
    let oss = Oss::start();
    let bytes = oss.put("k.bin", 300_000, 95);
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--limit-rate", "0"][..],
        &["--timeout", "10"],
        &["--timeout", "10s"],
        &["--timeout", "500ms"],
        &["--timeout", "1m"],
    ] {
        let dest = dir.path().join("out.bin");
        let what = args.join(" ");
        run(oss.cmd().args(args).arg(oss.url("k.bin")).arg(&dest), &what).expect_code(0);
        assert_file(&dest, &bytes, &what);
    }
    for option in [
        "--jobs",
        "--retries",
        "--part-size",
        "--limit-rate",
        "--timeout",
    ] {
        let what = format!("{option} -1");
        let out = run(
            oss.cmd()
                .args([option, "-1"])
                .arg(oss.url("k.bin"))
                .arg(dir.path().join("neg.bin")),
            &what,
        );
        out.expect_code(2).stderr_has(&[option, "negative"]);
        assert!(
            !out.stderr.contains("-- -1"),
            "{what}: clap's tip:\n{}",
            out.stderr
        );
    }
    let help = run(bare_cmd().arg("--help"), "--help");
    help.expect_code(0);
    for needle in [
        "1K = 1024 bytes",
        "1KB = 1000 bytes",
        "0 means no limit",
        "seconds",
    ] {
        assert!(help.stdout.contains(needle), "--help lacks {needle:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Item 11: a key ending in / is a folder, not an object.

#[test]
fn a_folder_key_is_refused_before_any_request() {
    let oss = Oss::start();
    oss.put("data/", 0, 96); // the folder marker a console creates
    oss.put("data/x.bin", 100, 97);
    let dir = tempfile::tempdir().unwrap();
    for url in [oss.url("data/"), "file:///tmp/".to_owned()] {
        let out = run(oss.cmd().arg(&url).arg(dir.path()), &url);
        out.expect_code(2).stderr_has(&[
            &url,
            "names a folder, not an object",
            "nothing to download",
            "-r",
        ]);
        assert!(listing(dir.path()).is_empty(), "{url}: a file was written");
    }
    assert_eq!(oss.emu.request_count(), 0, "refused before any request");
}

// ---------------------------------------------------------------------------------------
// Item 12: help for a first try.

#[test]
fn no_arguments_shows_usage_and_examples_and_help_has_no_dangling_reference() {
    let out = run(&mut bare_cmd(), "no arguments");
    out.expect_code(2)
        .stderr_has(&["Usage: resume-get", "Examples:", "--help"]);
    let examples = out
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("resume-get ") && l.contains("://"))
        .count();
    assert!(examples >= 2, "{}", out.stderr);

    for flag in ["-h", "--help"] {
        let help = run(bare_cmd().arg(flag), flag);
        help.expect_code(0);
        assert!(
            !help.stdout.contains("see above"),
            "{flag}:\n{}",
            help.stdout
        );
        for needle in [
            "oss://BUCKET/KEY",
            "file:///PATH",
            "Examples:",
            "Exit codes:",
        ] {
            assert!(help.stdout.contains(needle), "{flag} lacks {needle:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Item 14: messages without noise.

/// An HTTP server on loopback that answers 404 to every request, on its own thread.
fn http_404() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    format!("http://{addr}")
}

fn assert_no_noise(stderr: &str, what: &str) {
    for noise in ["attempt(s)", "request(s)", "after 1 "] {
        assert!(!stderr.contains(noise), "{what}: {noise:?} in\n{stderr}");
    }
    // object_store's request timings ("… in 1.139061ms - …").
    let timing = stderr.split(" in ").skip(1).any(|rest| {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(0);
        digits > 0
            && ["ms", "µs", "ns", "s "]
                .iter()
                .any(|u| rest[digits..].starts_with(u))
    });
    assert!(!timing, "{what}: a timing in\n{stderr}");
}

#[test]
fn not_found_messages_fit_the_source_and_say_things_once() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");

    let url = format!("{}/missing.bin", http_404());
    let out = run(bare_cmd().arg(&url).arg(&dest), "http 404");
    out.expect_code(3)
        .stderr_has(&["missing.bin", "check the URL"]);
    assert!(
        !out.stderr.contains("bucket") && !out.stderr.contains("version"),
        "{}",
        out.stderr
    );
    assert_no_noise(&out.stderr, "http 404");

    let missing = dir.path().join("nope.bin");
    let url = format!("file://{}", missing.display());
    let out = run(bare_cmd().arg(&url).arg(&dest), "file missing");
    out.expect_code(3)
        .stderr_has(&[&format!("of {}:", missing.display()), "check the path"]);
    assert!(
        !out.stderr.contains("bucket") && !out.stderr.contains("version"),
        "{}",
        out.stderr
    );
    assert_no_noise(&out.stderr, "file missing");

    let src = dir.path().join("src.bin");
    std::fs::write(&src, data(50_000, 98)).unwrap();
    let out = run(
        bare_cmd()
            .arg(format!("file://{}", src.display()))
            .arg(&dest),
        "file ok",
    );
    out.expect_code(0)
        .stderr_has(&[&format!("downloaded {} to", src.display())]);

    // OSS: the backend's precise advice, and not the engine's generic one after it.
    let oss = Oss::start();
    let out = run(oss.cmd().arg(oss.url("absent.bin")).arg(&dest), "oss 404");
    out.expect_code(3)
        .stderr_has(&["absent.bin", "NoSuchKey", "check the key"]);
    assert_eq!(out.stderr.matches("check the").count(), 1, "{}", out.stderr);
    assert_no_noise(&out.stderr, "oss 404");
}

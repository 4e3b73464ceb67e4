//! What a person or a log file sees: `--quiet`, no bar without a terminal, `--progress`
//! lines, `-v` logs that never show the secret, and the demo.

use crate::common::*;

/// Terminal control codes a progress bar would write: ESC sequences and carriage returns.
fn assert_no_control_codes(text: &str, what: &str) {
    assert!(
        !text.contains('\x1b') && !text.contains('\r'),
        "{what}: control codes in output:\n{text:?}"
    );
}

#[test]
fn quiet_prints_nothing_on_success() {
    let oss = Oss::start();
    let bytes = oss.put("q.bin", 300_000, 60);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let out = run(
        oss.cmd().arg("--quiet").arg(oss.url("q.bin")).arg(&dest),
        "--quiet",
    );
    out.expect_code(0);
    assert_eq!(out.stdout, "", "--quiet stdout");
    assert_eq!(out.stderr, "", "--quiet stderr");
    assert_file(&dest, &bytes, "--quiet");
}

/// stderr is a pipe here, as in a script or CI log: no bar, just the summary line.
#[test]
fn without_a_terminal_only_the_summary_goes_to_stderr() {
    let oss = Oss::start();
    oss.put("plain.bin", 2 << 20, 61);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let out = run(
        oss.cmd()
            .args(["--part-size", "256KiB"])
            .arg(oss.url("plain.bin"))
            .arg(&dest),
        "no terminal",
    );
    out.expect_code(0);
    assert_eq!(out.stdout, "");
    assert_no_control_codes(&out.stderr, "no terminal");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert_eq!(
        lines[1], "verified: CRC-64/XZ + MD5 full-object (OSS)",
        "the last line says what verified the file"
    );
    for needle in ["downloaded plain.bin to", "out.bin", "2.0 MiB", "retries"] {
        assert!(
            lines[0].contains(needle),
            "{needle:?} not in {:?}",
            lines[0]
        );
    }
}

#[test]
fn progress_prints_plain_lines_on_stderr() {
    let oss = Oss::start();
    oss.put("progress.bin", 3 << 20, 62);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    // About 1.5 s at 2 MiB/s: progress lines come at most once a second.
    let out = run(
        oss.cmd()
            .args([
                "--progress",
                "--limit-rate",
                "2MiB",
                "--part-size",
                "512KiB",
            ])
            .arg(oss.url("progress.bin"))
            .arg(&dest),
        "--progress",
    );
    out.expect_code(0);
    assert_eq!(out.stdout, "");
    assert_no_control_codes(&out.stderr, "--progress");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines[0].starts_with("started: 3.0 MiB to download"),
        "{}",
        out.stderr
    );
    let progress: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(" / 3.0 MiB (") && l.contains("%), parts ") && l.contains("retries"))
        .collect();
    assert!(!progress.is_empty(), "no progress line:\n{}", out.stderr);
    assert!(
        lines[lines.len() - 2].starts_with("downloaded progress.bin"),
        "{}",
        out.stderr
    );
    assert!(
        lines.last().unwrap().starts_with("verified: CRC-64/XZ"),
        "{}",
        out.stderr
    );
}

#[test]
fn verbose_logs_show_debug_and_never_the_secret() {
    let oss = Oss::start();
    oss.put("v.bin", 300_000, 63);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let runv = |flag: Option<&str>| {
        let mut cmd = oss.cmd();
        cmd.args(flag).arg(oss.url("v.bin")).arg(&dest);
        run(&mut cmd, flag.unwrap_or("no -v"))
    };

    let quiet = runv(None);
    quiet.expect_code(0);
    assert!(
        !quiet.stderr.contains("DEBUG") && !quiet.stderr.contains(" INFO "),
        "{}",
        quiet.stderr
    );

    let vv = runv(Some("-vv"));
    vv.expect_code(0);
    assert!(
        vv.stderr.contains("DEBUG"),
        "-vv shows debug logs:\n{}",
        vv.stderr
    );
    assert!(!vv.stderr.contains("TRACE"), "{}", vv.stderr);

    let vvv = runv(Some("-vvv"));
    vvv.expect_code(0);
    for out in [&quiet, &vv, &vvv] {
        assert!(
            !out.stderr.contains(SECRET) && !out.stdout.contains(SECRET),
            "{}: the secret was printed",
            out.what
        );
    }

    // RUST_LOG wins over -v.
    let mut cmd = oss.cmd();
    cmd.env("RUST_LOG", "off")
        .arg("-vv")
        .arg(oss.url("v.bin"))
        .arg(&dest);
    let off = run(&mut cmd, "RUST_LOG=off -vv");
    off.expect_code(0);
    assert!(!off.stderr.contains("DEBUG"), "{}", off.stderr);
}

#[test]
fn demo_runs_out_of_the_box_and_tells_its_story() {
    let out = run(
        bare_cmd().args(["demo", "--size", "8MiB", "--part-size", "512KiB"]),
        "demo --size 8MiB --part-size 512KiB",
    );
    out.expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let mut at = 0;
    for step in ["1. ", "2. ", "3. ", "4. ", "5. "] {
        let i = lines[at..]
            .iter()
            .position(|l| l.starts_with(step))
            .unwrap_or_else(|| panic!("step {step:?} missing or out of order:\n{}", out.stdout));
        at += i + 1;
    }
    assert!(
        lines.iter().any(|l| l.starts_with("demo complete")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("resumed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("after") && out.stdout.contains("a crash and a resume"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("MISMATCH"), "{}", out.stdout);
}

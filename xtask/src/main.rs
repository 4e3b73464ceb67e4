//! Project automation: `cargo xtask ci` is the one command CI and developers run.
//!
//! Plain std on purpose: xtask must build fast on a clean machine and never be the reason CI
//! is red.

mod bench;
mod soak;

use std::env;
use std::process::{Command, ExitCode};
use std::time::Instant;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci      format check, clippy (-D warnings), all tests (nextest if installed), doc tests
  test    all tests and doc tests only
  bench   benchmarks vs curl, aria2c, cp, the OSS SDKs; writes BENCHMARKS.md (--quick: 64 MiB)
  soak    the end-to-end crash test with 200 SIGKILLs (release; --kills N, --debug)
  help    this text

environment:
  PROPTEST_CASES   raise the number of property-test cases (CI uses each test's default)";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("test") => test(),
        Some("bench") => bench::run(&args[1..]),
        Some("soak") => soak::run(&args[1..]),
        Some("help" | "-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => {
            eprintln!("unknown xtask command {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(step) => {
            eprintln!("xtask: step failed: {step}");
            ExitCode::FAILURE
        }
    }
}

fn ci() -> Result<(), String> {
    let t = Instant::now();
    run("format", cargo(&["fmt", "--all", "--", "--check"]))?;
    run(
        "clippy",
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    test()?;
    // The benchmark harness on 64 MiB objects, so it never rots: every scenario runs every
    // contender; figures are reported, not asserted. The dev binaries test() just built keep
    // it to about a minute (`cargo xtask bench --quick` alone uses a release build).
    let t_bench = Instant::now();
    bench::run(&["--quick".into(), "--profile".into(), "dev".into()])
        .map_err(|e| format!("bench --quick: {e}"))?;
    eprintln!("xtask: == bench --quick: ok in {:.1?}", t_bench.elapsed());
    eprintln!("xtask ci: all steps passed in {:.0?}", t.elapsed());
    Ok(())
}

fn test() -> Result<(), String> {
    // The end-to-end tests (tests/) run the resume-get and oss-emulator binaries, and the WAN
    // lab's netlab-delayd (test-support), which cargo does not build for another package's
    // tests: build them first, in the tests' profile.
    run(
        "binaries for the end-to-end tests",
        cargo(&[
            "build",
            "-p",
            "resume-cli",
            "-p",
            "oss-emulator",
            "-p",
            "test-support",
        ]),
    )?;
    if has_nextest() {
        run(
            "tests (nextest)",
            cargo(&["nextest", "run", "--workspace", "--no-fail-fast"]),
        )?;
    } else {
        run("tests", cargo(&["test", "--workspace", "--no-fail-fast"]))?;
    }
    run("doc tests", cargo(&["test", "--workspace", "--doc"]))
}

fn cargo(args: &[&str]) -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args(args);
    c
}

fn has_nextest() -> bool {
    cargo(&["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(step: &str, mut cmd: Command) -> Result<(), String> {
    eprintln!("xtask: == {step}: {cmd:?}");
    let t = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: cannot start {cmd:?}: {e}"))?;
    eprintln!("xtask: == {step}: {status} in {:.1?}", t.elapsed());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} ({status})"))
    }
}

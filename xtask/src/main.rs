//! Project automation: `cargo xtask ci` is the one command CI and developers run.
//!
//! Plain std on purpose: xtask must build fast on a clean machine and never be the reason CI
//! is red.

use std::env;
use std::process::{Command, ExitCode};
use std::time::Instant;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci      format check, clippy (-D warnings), all tests (nextest if installed), doc tests
  test    all tests and doc tests only
  help    this text

environment:
  PROPTEST_CASES   raise the number of property-test cases (CI uses each test's default)";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("test") => test(),
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
    eprintln!("xtask ci: all steps passed in {:.0?}", t.elapsed());
    Ok(())
}

fn test() -> Result<(), String> {
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

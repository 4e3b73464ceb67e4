//! `cargo xtask soak`: the end-to-end crash test (`tests/crash.rs`) with many more SIGKILLs
//! than CI runs: `resume-get` killed at 200 seeded moments while downloading a 64 MiB object,
//! resumed each time, checked byte for byte and for the re-fetch bound after every kill.

use crate::{cargo, run as run_step};

const SOAK_USAGE: &str = "\
usage: cargo xtask soak [--kills N] [--debug]

  --kills N   SIGKILLs in total (default 200; CI runs 20)
  --debug     build and test in the debug profile instead of release";

const TEST: &str = "sigkill_at_seeded_moments_then_rerun_until_done_is_byte_identical_and_refetches_at_most_the_parts_in_flight";

pub fn run(args: &[String]) -> Result<(), String> {
    let mut kills: u32 = 200;
    let mut release = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kills" => {
                kills = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--kills needs a positive number\n\n{SOAK_USAGE}"))?;
            }
            "--debug" => release = false,
            "-h" | "--help" => {
                println!("{SOAK_USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown soak option {other:?}\n\n{SOAK_USAGE}")),
        }
    }
    let profile: &[&str] = if release { &["--release"] } else { &[] };

    let mut build = vec!["build", "-p", "resume-cli", "-p", "oss-emulator"];
    build.extend_from_slice(profile);
    run_step("soak: build the binaries", cargo(&build))?;

    let mut test = vec!["test", "-p", "e2e-tests", "--test", "crash"];
    test.extend_from_slice(profile);
    test.extend_from_slice(&["--", "--exact", TEST, "--nocapture"]);
    let mut cmd = cargo(&test);
    cmd.env("RESUME_SOAK_KILLS", kills.to_string());
    run_step(&format!("soak: {kills} SIGKILLs"), cmd)
}

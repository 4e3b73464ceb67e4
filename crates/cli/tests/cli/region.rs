//! V4 signatures need a region; a local emulator's endpoint does not name one, so the error
//! and `--help` say which region the emulator and the demo use.

use crate::common::*;

/// `resume-get` with credentials, V4 (the default) and `endpoint`, but no region.
fn without_region(endpoint: &str, dest: &std::path::Path) -> Outcome {
    run(
        bare_cmd()
            .env("OSS_ACCESS_KEY_ID", KEY_ID)
            .env("OSS_ACCESS_KEY_SECRET", SECRET)
            .args(["--endpoint", endpoint])
            .arg(format!("oss://{BUCKET}/k.bin"))
            .arg(dest),
        endpoint,
    )
}

#[test]
fn v4_against_a_loopback_or_ip_endpoint_without_a_region_names_the_emulators_region() {
    // Nothing listens on these: the settings are refused before any connection.
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    for endpoint in [
        "http://127.0.0.1:9",
        "http://localhost:9",
        "http://[::1]:9",
        "http://192.0.2.7:9",
    ] {
        without_region(endpoint, &dest).expect_code(2).stderr_has(&[
            "V4 signing needs a region",
            "local or IP address",
            "--region cn-hangzhou",
            "OSS_REGION=cn-hangzhou",
        ]);
    }
    // A named custom endpoint gets the plain message: its region is not the emulator's.
    let out = without_region("https://oss.example.invalid", &dest);
    out.expect_code(2)
        .stderr_has(&["V4 signing needs a region", "set it explicitly or use V1"]);
    assert!(
        !out.stderr.contains("--region cn-hangzhou"),
        "{}",
        out.stderr
    );
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn the_same_command_with_the_region_works_against_the_emulator() {
    let oss = Oss::start();
    let bytes = oss.put("k.bin", 10_000, 70);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let endpoint = oss.emu.endpoint();
    without_region(&endpoint, &dest)
        .expect_code(2)
        .stderr_has(&["--region cn-hangzhou"]);
    let out = run(
        bare_cmd()
            .env("OSS_ACCESS_KEY_ID", KEY_ID)
            .env("OSS_ACCESS_KEY_SECRET", SECRET)
            .args(["--endpoint", &endpoint, "--region", "cn-hangzhou"])
            .arg(format!("oss://{BUCKET}/k.bin"))
            .arg(&dest),
        "with the suggested region",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "with the suggested region");
}

#[test]
fn help_for_region_names_the_emulators_region() {
    for flag in ["--help", "-h"] {
        let out = run(bare_cmd().arg(flag), flag);
        out.expect_code(0);
        let (_, region) = out
            .stdout
            .split_once("--region <REGION>")
            .unwrap_or_else(|| panic!("{flag} lists no --region:\n{}", out.stdout));
        // The entry ends where the next option starts.
        let entry: String = region
            .lines()
            .take_while(|l| !l.trim_start().starts_with('-'))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            entry.contains("emulator") && entry.contains("--region cn-hangzhou"),
            "{flag}: --region entry: {entry}"
        );
    }
}

//! The official Alibaba Cloud Python SDKs against the emulator, signature checking on.
//!
//! The virtualenv comes from PyPI through `test_support::python_with` (created once under
//! `target/test-venv`, then reused). Without PyPI this test fails loudly; it never skips.
//! The scripts live in `tests/python/` and compare every byte they read with what they wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oss_emulator::{AccessKey, AuthMethod, Emulator, EmulatorConfig};

/// Exact versions verified against the emulator.
const OSS2: &str = "oss2==2.19.1";
const OSS_V2: &str = "alibabacloud-oss-v2==1.4.1";

const AK: &str = "interop-ak";
const SK: &str = "interop-secret-d41d8cd9";
const STS_AK: &str = "STS.interop";
const STS_SK: &str = "interop-sts-secret-0b1c";
const STS_TOKEN: &str = "CAIS+interop/token==";

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("python")
        .join(name)
}

/// Runs a script against a fresh emulator; returns the emulator for log assertions.
fn run_script(name: &str) -> Emulator {
    let python = test_support::python_with(&[OSS2, OSS_V2]);
    let emu = Emulator::start(
        EmulatorConfig::new()
            .access_key(AccessKey::new(AK, SK))
            .access_key(AccessKey::sts(STS_AK, STS_SK, STS_TOKEN)),
    )
    .expect("start the emulator");
    let work = tempfile::tempdir().unwrap();
    let out_path = work.path().join("stdout.txt");
    let err_path = work.path().join("stderr.txt");
    let mut child = Command::new(&python)
        .arg(script(name))
        .env("OSS_EMU_ENDPOINT", emu.endpoint())
        .env("OSS_EMU_AK", AK)
        .env("OSS_EMU_SK", SK)
        .env("OSS_EMU_STS_AK", STS_AK)
        .env("OSS_EMU_STS_SK", STS_SK)
        .env("OSS_EMU_STS_TOKEN", STS_TOKEN)
        .env("OSS_EMU_WORKDIR", work.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("OSS_ACCESS_KEY_ID")
        .env_remove("OSS_ACCESS_KEY_SECRET")
        .env_remove("OSS_SESSION_TOKEN")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} with {}: {e}", name, python.display()));
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} did not finish within {SCRIPT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.success(),
        "{name} failed ({status}):\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    eprintln!("{out}");
    emu
}

fn assert_signed_and_refused(emu: &Emulator, methods: &[AuthMethod]) {
    let log = emu.request_log();
    for m in methods {
        assert!(
            log.iter()
                .any(|r| r.auth == *m && r.status.is_some_and(|s| s < 300)),
            "no successful {m:?} request in the log"
        );
    }
    assert!(
        log.iter()
            .any(|r| r.error_code.as_deref() == Some("SignatureDoesNotMatch")),
        "the wrong secret was not refused"
    );
    assert!(
        log.iter()
            .any(|r| r.access_key_id.as_deref() == Some(STS_AK) && r.status == Some(200)),
        "no request with STS credentials succeeded"
    );
    assert!(
        !log.iter()
            .any(|r| r.auth == AuthMethod::Anonymous && r.status.is_some_and(|s| s < 300)),
        "an unsigned request succeeded"
    );
}

#[test]
fn oss2_v1_and_v4_work_byte_for_byte() {
    let emu = run_script("oss2_interop.py");
    assert_signed_and_refused(
        &emu,
        &[
            AuthMethod::V1Header,
            AuthMethod::V1Query,
            AuthMethod::V4Header,
            AuthMethod::V4Query,
        ],
    );
    // resumable_download fetched in parts.
    let ranged = emu
        .request_log()
        .iter()
        .filter(|r| r.method == "GET" && r.range.is_some() && r.status == Some(206))
        .count();
    assert!(ranged >= 10, "only {ranged} ranged GETs");
}

#[test]
fn alibabacloud_oss_v2_works_byte_for_byte_including_its_downloader() {
    let emu = run_script("oss_v2_interop.py");
    assert_signed_and_refused(
        &emu,
        &[
            AuthMethod::V4Header,
            AuthMethod::V4Query,
            AuthMethod::V1Header,
        ],
    );
    let log = emu.request_log();
    assert!(
        log.iter()
            .any(|r| r.status == Some(416) && r.error_code.as_deref() == Some("InvalidRange")),
        "the standard-range 416 was not exercised"
    );
}

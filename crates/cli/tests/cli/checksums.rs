//! What verified the file: the store's checksums (the emulator's CRC-64),
//! digests given with `--checksum` / `--checksum-file` against a plain web server (nginx,
//! which publishes none), `--require-checksum`, and mismatches (exit 6, DEST untouched).

use std::path::{Path, PathBuf};

use md5::Digest as _;
use test_support::ChildGuard;

use crate::common::*;

const PRECIOUS: &[u8] = b"an older copy the user keeps";

/// nginx serving `root` on 127.0.0.1 (Debian's nginx-light; missing nginx fails the test).
struct Nginx {
    base: String,
    root: PathBuf,
    _dir: tempfile::TempDir,
    _guard: ChildGuard,
}

impl Nginx {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let (addr, guard) =
            test_support::start_nginx(dir.path(), "", &format!("        root {};", root.display()))
                .unwrap_or_else(|e| panic!("{e}. These tests need nginx and do not skip."));
        Self {
            base: format!("http://{addr}"),
            root,
            _dir: dir,
            _guard: guard,
        }
    }

    fn put(&self, name: &str, size: usize, seed: u64) -> (String, Vec<u8>) {
        let bytes = data(size, seed);
        std::fs::write(self.root.join(name), &bytes).unwrap();
        (format!("{}/{name}", self.base), bytes)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> String {
    hex(&sha2::Sha256::digest(data))
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or("")
}

/// DEST with older content in a fresh directory.
fn existing_dest() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big.bin");
    std::fs::write(&dest, PRECIOUS).unwrap();
    (dir, dest)
}

fn assert_untouched(dir: &Path, dest: &Path, what: &str) {
    assert_file(dest, PRECIOUS, what);
    assert_eq!(listing(dir), names(&["big.bin"]), "{what}");
}

#[test]
fn oss_downloads_are_verified_by_the_crc64_the_emulator_publishes_and_given_digests() {
    let oss = Oss::start();
    let bytes = oss.put("both.bin", 700_000, 81);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let md5 = hex(&md5::Md5::digest(&bytes));
    let out = run(
        oss.cmd()
            .args(["--json", "--part-size", "100KiB"])
            .args(["--checksum", &format!("md5={md5}")])
            .arg(oss.url("both.bin"))
            .arg(&dest),
        "oss",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "oss");
    let done = out.event("completed");
    assert_eq!(done["verified"], true, "{done}");
    // The emulator's CRC-64 and Content-MD5 are checked, and the given MD5.
    assert_eq!(
        done["verification"],
        "verified: CRC-64/XZ + MD5 full-object (OSS), MD5 (--checksum)"
    );
    let by = done["verified_by"].as_array().expect("an array");
    assert_eq!(by.len(), 3, "{done}");
    assert_eq!(by[0]["origin"], "OSS");
    assert_eq!(by[0]["scope"], "full-object");
    assert_eq!(by[1]["algorithm"], "MD5");
    assert_eq!(by[1]["origin"], "OSS");
    assert_eq!(by[1]["value"], md5);
    assert_eq!(by[2]["algorithm"], "MD5");
    assert_eq!(by[2]["origin"], "--checksum");
    assert_eq!(by[2]["value"], md5);
}

#[test]
fn http_downloads_verify_against_checksum_and_checksum_file_or_say_they_are_not_verified() {
    let nginx = Nginx::start();
    let (url, bytes) = nginx.put("big.bin", 1_500_000, 82);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big.bin");
    let get = |extra: &[&str], what: &str| {
        run(
            bare_cmd()
                .args(["--part-size", "256KiB"])
                .args(extra)
                .arg(&url)
                .arg(&dest),
            what,
        )
    };

    let out = get(&[], "nothing to verify with");
    out.expect_code(0);
    assert_eq!(
        last_line(&out.stderr),
        "not verified: the store publishes no checksum for this object"
    );

    let arg = format!("sha256={}", sha256(&bytes).to_uppercase());
    let out = get(&["--checksum", &arg], "--checksum");
    out.expect_code(0);
    assert_file(&dest, &bytes, "--checksum");
    assert_eq!(last_line(&out.stderr), "verified: SHA-256 (--checksum)");

    // The usual SHA256SUMS: found by DEST's file name; another entry is ignored.
    let sums = dir.path().join("SHA256SUMS");
    std::fs::write(
        &sums,
        format!("{}  other.iso\n{} *big.bin\n", sha256(b"x"), sha256(&bytes)),
    )
    .unwrap();
    let out = get(&["--checksum-file", sums.to_str().unwrap()], "SHA256SUMS");
    out.expect_code(0);
    assert_eq!(last_line(&out.stderr), "verified: SHA-256 (SHA256SUMS)");

    // MD5 by the digest's length, with a CRC-32C given too.
    let md5sums = dir.path().join("sums.txt");
    std::fs::write(
        &md5sums,
        format!("{}  big.bin\n", hex(&md5::Md5::digest(&bytes))),
    )
    .unwrap();
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &bytes);
    let crc_arg = format!("crc32c={crc:08x}");
    let out = get(
        &[
            "--json",
            "--checksum-file",
            md5sums.to_str().unwrap(),
            "--checksum",
            &crc_arg,
        ],
        "md5 and crc32c",
    );
    out.expect_code(0);
    assert_eq!(
        out.event("completed")["verification"],
        "verified: CRC-32C (--checksum), MD5 (sums.txt)"
    );
}

#[test]
fn a_wrong_checksum_exits_6_names_both_values_and_leaves_dest_untouched() {
    let nginx = Nginx::start();
    let (url, bytes) = nginx.put("big.bin", 900_000, 83);
    let right = sha256(&bytes);
    let mut wrong_bytes = bytes.clone();
    wrong_bytes[123_456] ^= 1;
    let wrong = sha256(&wrong_bytes);
    for how in ["--checksum", "--checksum-file"] {
        let (dir, dest) = existing_dest();
        let sums_dir = tempfile::tempdir().unwrap();
        let mut cmd = bare_cmd();
        cmd.args(["--part-size", "128KiB"]);
        if how == "--checksum" {
            cmd.args(["--checksum", &format!("sha256={wrong}")]);
        } else {
            // Outside DEST's directory, so the listing below sees only DEST.
            let sums = sums_dir.path().join("SHA256SUMS");
            std::fs::write(&sums, format!("{wrong}  big.bin\n")).unwrap();
            cmd.arg("--checksum-file").arg(&sums);
        }
        let out = run(cmd.arg(&url).arg(&dest), how);
        out.expect_code(6)
            .stderr_has(&["failed verification", "SHA-256", &right, &wrong]);
        assert_untouched(dir.path(), &dest, how);
    }
}

#[test]
fn require_checksum_refuses_before_fetching_when_nothing_can_verify() {
    let nginx = Nginx::start();
    let (url, bytes) = nginx.put("big.bin", 300_000, 84);
    let (dir, dest) = existing_dest();
    let out = run(
        bare_cmd().arg("--require-checksum").arg(&url).arg(&dest),
        "--require-checksum without a checksum",
    );
    out.expect_code(6).stderr_has(&[
        "cannot be verified",
        "the store publishes no checksum for this object",
        "--checksum",
    ]);
    assert_untouched(dir.path(), &dest, "--require-checksum");

    // With a digest to check, it downloads.
    let arg = format!("sha256={}", sha256(&bytes));
    let out = run(
        bare_cmd()
            .args(["--require-checksum", "--checksum", &arg])
            .arg(&url)
            .arg(&dest),
        "--require-checksum with --checksum",
    );
    out.expect_code(0);
    assert_file(&dest, &bytes, "--require-checksum with --checksum");
}

#[test]
fn bad_checksum_arguments_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x");
    for (args, needle) in [
        (
            vec!["--checksum", "sha384=00"],
            "unknown checksum algorithm",
        ),
        (vec!["--checksum", "md5=abc"], "not hexadecimal"),
        (vec!["--checksum", "sha256"], "ALGORITHM=HEX"),
        (
            vec!["--checksum-file", "/nonexistent/SHA256SUMS"],
            "cannot read --checksum-file",
        ),
    ] {
        let out = run(
            bare_cmd()
                .args(&args)
                .arg("http://127.0.0.1:9/x")
                .arg(&dest),
            needle,
        );
        out.expect_code(2).stderr_has(&[needle]);
        assert!(listing(dir.path()).is_empty(), "{args:?}");
    }
}

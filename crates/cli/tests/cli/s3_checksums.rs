//! `s3://` downloads through the binary, verified by the checksums moto (PyPI `moto[server]`,
//! with `crc32c` and `awscrt`) publishes for objects boto3 uploaded: the last line says what
//! verified the file; a byte flipped in flight by a proxy in front of moto is exit 6 naming the
//! algorithm and both values, DEST untouched; a run denied partway resumes and is verified.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use md5::Digest as _;
use test_support::relay::{Action, Relay};
use test_support::{ChildGuard, free_port, python_with, wait_for_port};

use crate::common::{assert_file, assert_one_request_each, bare_cmd, data, listing, names, run};

const PACKAGES: [&str; 3] = ["moto[server]==5.2.5", "crc32c==2.9.post0", "awscrt==0.38.0"];
const PART: usize = 64 << 10;
const SIZE: usize = 3 * PART + 4_321;
const PRECIOUS: &[u8] = b"precious older content";

const UPLOADER: &str = r#"
import sys, boto3
from botocore.config import Config
endpoint, bucket, key, path, mode, alg = sys.argv[1:7]
config = Config(request_checksum_calculation="when_required")
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing", config=config)
if mode == "bucket":
    s3.create_bucket(Bucket=bucket)
    sys.exit(0)
data = open(path, "rb").read()
if mode == "put" and alg == "none":
    s3.put_object(Bucket=bucket, Key=key, Body=data)
elif mode == "put":
    s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm=alg)
else:
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=alg,
                                    ChecksumType="COMPOSITE")["UploadId"]
    parts = []
    for n, off in enumerate(range(0, len(data), 64 * 1024), start=1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n,
                           Body=data[off:off + 64 * 1024], ChecksumAlgorithm=alg)
        parts.append({"PartNumber": n, "ETag": r["ETag"], "Checksum" + alg: r["Checksum" + alg]})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                 MultipartUpload={"Parts": parts})
"#;

struct Moto {
    addr: SocketAddr,
    python: std::path::PathBuf,
    _guard: ChildGuard,
}

impl Moto {
    fn start() -> Self {
        let python = python_with(&PACKAGES);
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(&python);
        cmd.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .env("S3_UPLOAD_PART_MIN_SIZE", "1024")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        let guard = ChildGuard::spawn(&mut cmd, "moto_server");
        wait_for_port(addr, Duration::from_secs(60), "moto_server");
        Self {
            addr,
            python,
            _guard: guard,
        }
    }

    fn boto(&self, args: &[&str], body: Option<&[u8]>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("body");
        std::fs::write(&path, body.unwrap_or_default()).unwrap();
        let out = Command::new(&self.python)
            .arg("-c")
            .arg(UPLOADER)
            .arg(format!("http://{}", self.addr))
            .args(&args[..2])
            .arg(&path)
            .args(&args[2..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "boto3 {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A relay in front of moto: flips the 101st byte of the body of every ranged GET for bytes
/// from 0 (`flip`), and answers 403 to ranged GETs after the first `deny_after` (changeable
/// while it runs).
struct Proxy {
    relay: Relay,
    deny_after: Arc<AtomicU64>,
}

impl Proxy {
    fn start(upstream: SocketAddr, flip: bool, deny_after: u64) -> Self {
        let gets = AtomicU64::new(0);
        let deny = Arc::new(AtomicU64::new(deny_after));
        let limit = deny.clone();
        let relay = Relay::start(upstream, move |head| {
            if !head.is_ranged_get() {
                return Action::Forward;
            }
            if gets.fetch_add(1, Ordering::SeqCst) >= limit.load(Ordering::SeqCst) {
                Action::forbidden()
            } else if flip
                && head
                    .header("range")
                    .is_some_and(|r| r.starts_with("bytes=0-"))
            {
                Action::FlipBodyByte(100)
            } else {
                Action::Forward
            }
        });
        Self {
            relay,
            deny_after: deny,
        }
    }
}

fn s3_cmd(endpoint: SocketAddr) -> Command {
    let mut cmd = bare_cmd();
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env(
            "AWS_METADATA_ENDPOINT",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .args(["--endpoint", &format!("http://{endpoint}")])
        .args(["--region", "us-east-1", "--part-size", "50000", "--json"]);
    cmd
}

fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

fn crc32c(v: &[u8]) -> String {
    format!(
        "{:08x}",
        crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, v)
    )
}

/// CRC-32 composite over 64 KiB parts, as S3 computes it.
fn crc32_composite(v: &[u8]) -> String {
    let mut raw = Vec::new();
    for part in v.chunks(PART) {
        let c = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, part) as u32;
        raw.extend(c.to_be_bytes());
    }
    format!(
        "{:08x}",
        crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, &raw)
    )
}

fn flipped(v: &[u8]) -> Vec<u8> {
    let mut bad = v.to_vec();
    bad[100] ^= 0x01;
    bad
}

#[test]
fn s3_downloads_are_verified_and_a_byte_flipped_in_flight_exits_6_naming_both_values() {
    let moto = Moto::start();
    moto.boto(&["sums", "-", "bucket", "-"], None);
    let full = data(SIZE, 301);
    let composite = data(SIZE, 302);
    let plain = data(SIZE, 303);
    moto.boto(&["sums", "full.bin", "put", "CRC32C"], Some(&full));
    moto.boto(&["sums", "mpu.bin", "multipart", "CRC32"], Some(&composite));
    // Uploaded without any checksum header: its ETag is its MD5.
    moto.boto(&["sums", "plain.bin", "put", "none"], Some(&plain));
    let cases: [(&str, &[u8], &str, String, String); 3] = [
        (
            "full.bin",
            &full,
            "verified: CRC-32C full-object (S3)",
            crc32c(&full),
            crc32c(&flipped(&full)),
        ),
        (
            "mpu.bin",
            &composite,
            "verified: CRC-32 composite of 4 parts (S3)",
            crc32_composite(&composite),
            crc32_composite(&flipped(&composite)),
        ),
        (
            "plain.bin",
            &plain,
            "verified: MD5 full-object (S3 ETag)",
            hex(&md5::Md5::digest(&plain)),
            hex(&md5::Md5::digest(flipped(&plain))),
        ),
    ];
    for (key, bytes, line, right, wrong) in cases {
        let what = key;
        // Straight from moto: verified, and the last line says by what.
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        let out = run(
            s3_cmd(moto.addr).arg(format!("s3://sums/{key}")).arg(&dest),
            what,
        );
        out.expect_code(0);
        assert_file(&dest, bytes, what);
        let done = out.event("completed");
        assert_eq!(done["verification"], line, "{what}: {done}");
        assert_eq!(done["verified"], true, "{what}");

        // A byte flipped in flight: exit 6, the algorithm and both values, DEST untouched.
        let dest = dir.path().join("precious.bin");
        std::fs::write(&dest, PRECIOUS).unwrap();
        let proxy = Proxy::start(moto.addr, true, u64::MAX);
        let out = run(
            s3_cmd(proxy.relay.addr())
                .arg(format!("s3://sums/{key}"))
                .arg(&dest),
            what,
        );
        let algorithm = line
            .trim_start_matches("verified: ")
            .split(' ')
            .next()
            .unwrap();
        out.expect_code(6)
            .stderr_has(&[algorithm, "the store (S3", &right, &wrong]);
        assert_file(&dest, PRECIOUS, what);

        // Denied after two parts: exit 4 with the progress kept; the rerun (same endpoint, so
        // the same download) resumes it and is verified the same way.
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("resumed.bin");
        let proxy = Proxy::start(moto.addr, false, 2);
        let out = run(
            s3_cmd(proxy.relay.addr())
                .args(["--jobs", "1"])
                .arg(format!("s3://sums/{key}"))
                .arg(&dest),
            what,
        );
        out.expect_code(4);
        assert_eq!(
            listing(dir.path()),
            names(&["resumed.bin.rgcp", "resumed.bin.rgpart"]),
            "{what}"
        );
        proxy.deny_after.store(u64::MAX, Ordering::SeqCst);
        let out = run(
            s3_cmd(proxy.relay.addr())
                .arg(format!("s3://sums/{key}"))
                .arg(&dest),
            what,
        );
        out.expect_code(0);
        assert_file(&dest, bytes, what);
        let done = out.event("completed");
        assert_eq!(done["verification"], line, "{what}: {done}");
        assert!(
            done["parts_reused"].as_u64().unwrap_or_default() >= 2,
            "{what}: {done}"
        );
        assert_eq!(listing(dir.path()), names(&["resumed.bin"]), "{what}");
    }
}

/// Issue 13: the requests object_store cannot make (the checksum-mode HEAD, GetObjectAttributes,
/// `HEAD ?partNumber=`) are in the `-v` request log like every other request, each one line,
/// their headers at `-vv` with the signature redacted.
#[test]
fn checksum_requests_are_in_the_request_log_with_secrets_redacted() {
    const KEY_SECRET: &str = "S3-secret-for-the-log-7e1d90";
    let moto = Moto::start();
    moto.boto(&["logged", "-", "bucket", "-"], None);
    let composite = data(SIZE, 304);
    moto.boto(
        &["logged", "mpu.bin", "multipart", "CRC32"],
        Some(&composite),
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("mpu.bin");
    let out = run(
        s3_cmd(moto.addr)
            .env("AWS_SECRET_ACCESS_KEY", KEY_SECRET)
            .arg("-vv")
            .arg("s3://logged/mpu.bin")
            .arg(&dest),
        "s3 -vv",
    );
    out.expect_code(0);
    assert_file(&dest, &composite, "s3 -vv");
    assert_eq!(
        out.event("completed")["verification"],
        "verified: CRC-32 composite of 4 parts (S3)"
    );
    let object = format!("http://{}/logged/mpu.bin", moto.addr);
    let requests: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("resume_get::request:") && l.contains(" INFO "))
        .collect();
    let count = |prefix: &str| {
        requests
            .iter()
            .filter(|l| {
                l.contains(&format!("{prefix} 200 ")) || l.ends_with(&format!("{prefix} 200"))
            })
            .count()
    };
    // object_store's HEAD and the checksum-mode HEAD, both signed, both logged.
    assert_eq!(count(&format!("HEAD {object}")), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("> x-amz-checksum-mode: ENABLED"),
        "{}",
        out.stderr
    );
    // The composite's part sizes: GetObjectAttributes, or (moto) one HEAD per upload part.
    let attributes = count(&format!("GET {object}?attributes"));
    let part_heads = requests
        .iter()
        .filter(|l| l.contains(&format!("HEAD {object}?partNumber=")) && l.contains(" 200 "))
        .count();
    assert!(
        (attributes, part_heads) == (1, 0) || part_heads == 4,
        "part sizes:\n{}",
        out.stderr
    );
    if attributes == 1 {
        assert!(
            out.stderr
                .contains("> x-amz-object-attributes: Checksum,ObjectParts"),
            "{}",
            out.stderr
        );
    }
    let ranged = requests
        .iter()
        .filter(|l| l.contains(&format!("GET {object} 206")))
        .count();
    assert_eq!(
        ranged as u64,
        out.event("completed")["parts"].as_u64().unwrap(),
        "{}",
        out.stderr
    );
    assert_eq!(
        requests.len(),
        2 + attributes + part_heads + ranged,
        "one line per request:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("> authorization: <redacted>"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(KEY_SECRET) && !out.stdout.contains(KEY_SECRET),
        "{}",
        out.stderr
    );
}

/// Issue 12: `-r s3://` costs ONE request per one-part object — its GET with
/// `x-amz-checksum-mode: ENABLED`, whose answer gives the etag and the checksum that verifies
/// the file — with a listing that has ETags (moto's) and one that has none (as `s3s-fs`'s,
/// the ETags removed by a relay), where it cost a HEAD, a checksum-mode HEAD and the GET. A
/// byte flipped in one object's GET fails that object as an integrity error (exit 9) naming
/// CRC-32C, its file untouched, and the others are done.
#[test]
fn a_prefix_costs_one_checksum_mode_get_per_one_part_object_and_a_flipped_byte_fails_it() {
    use std::sync::Mutex;
    let moto = Moto::start();
    moto.boto(&["batch", "-", "bucket", "-"], None);
    let objects: Vec<(String, Vec<u8>)> = (0..6u64)
        .map(|i| (format!("o{i}.bin"), data(5_000 + 777 * i as usize, 400 + i)))
        .collect();
    for (name, bytes) in &objects {
        moto.boto(
            &["batch", &format!("p/{name}"), "put", "CRC32C"],
            Some(bytes),
        );
    }
    for strip_etags in [false, true] {
        let what = if strip_etags { "no etags" } else { "etags" };
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        let relay = Relay::start(moto.addr, move |head| {
            let lower = head.lowercase();
            let line = lower.lines().next().unwrap_or_default().to_owned();
            let mode = head.header("x-amz-checksum-mode").unwrap_or("-").to_owned();
            log.lock().unwrap().push(format!("{line} mode={mode}"));
            if line.contains("list-type=2") && strip_etags {
                Action::RemoveElements("ETag".into())
            } else if line.starts_with("get /batch/p/o3.bin ") {
                Action::FlipBodyByte(100)
            } else {
                Action::Forward
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dest.join("o3.bin"), PRECIOUS).unwrap();
        let out = run(
            s3_cmd(relay.addr())
                .args(["-r", "s3://batch/p/"])
                .arg(&dest),
            what,
        );
        out.expect_code(9);
        let seen: Vec<String> = seen.lock().unwrap().clone();
        assert_one_request_each(
            &dest,
            &objects,
            ("o3.bin", PRECIOUS),
            &seen,
            |name| format!("/batch/p/{name} "),
            |line| line.starts_with("get ") && line.ends_with("mode=enabled"),
            what,
        );
        let failed = out.event("object_failed");
        assert_eq!(failed["key"], "p/o3.bin", "{what}: {failed}");
        assert_eq!(failed["kind"], "Integrity", "{what}: {failed}");
        let o3 = &objects[3].1;
        let error = failed["error"].as_str().unwrap();
        for needle in ["CRC-32C", &crc32c(o3), &crc32c(&flipped(o3))] {
            assert!(error.contains(needle), "{what}: {needle} in {error}");
        }
    }
}

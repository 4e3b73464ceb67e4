//! The `oss-emulator` binary as a process: address on the first line, persistence of a
//! directory root, fault plan files, secret-free trace logs, and bounded memory while a
//! 256 MiB object is uploaded and served from disk.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use common::*;
use oss_emulator::Emulator;
use test_support::{ChildGuard, wait_for_port};

const BIN: &str = env!("CARGO_BIN_EXE_oss-emulator");
const MIB: usize = 1024 * 1024;

/// Starts the binary with `args`, returns the guard and the address it printed first.
fn spawn(args: &[&str], stderr: Option<&Path>) -> (ChildGuard, SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    match stderr {
        Some(p) => cmd.stderr(std::fs::File::create(p).unwrap()),
        None => cmd.stderr(Stdio::null()),
    };
    let (guard, line) =
        ChildGuard::spawn_reading_first_line(&mut cmd, "oss-emulator", Duration::from_secs(30));
    let addr: SocketAddr = line
        .parse()
        .unwrap_or_else(|e| panic!("first line {line:?} is not an address: {e}"));
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    wait_for_port(addr, Duration::from_secs(10), "oss-emulator");
    (guard, addr)
}

/// A stand-in `Emulator` is not available for a child process; build URLs by address.
fn endpoint_url(addr: SocketAddr, bucket: &str, key: Option<&str>) -> String {
    let mut u = format!("http://{addr}/{bucket}/");
    if let Some(k) = key {
        u.push_str(&backend_oss::encode::encode_path(k));
    }
    u
}

async fn signed(
    c: &reqwest::Client,
    addr: SocketAddr,
    method: &str,
    bucket: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<reqwest::Body>,
) -> reqwest::Response {
    let h = pairs(headers);
    let req = backend_oss::SignableRequest::new(method, Some(bucket), key).headers(&h);
    let s = v4()
        .sign_headers(&creds(), &req, SystemTime::now())
        .unwrap();
    let mut rb = c.request(method.parse().unwrap(), endpoint_url(addr, bucket, key));
    for (k, v) in h.iter().chain(s.into_vec().iter()) {
        rb = rb.header(k.as_str(), v.as_str());
    }
    if let Some(b) = body {
        rb = rb.body(b);
    }
    rb.send().await.expect("request to the emulator binary")
}

fn key_arg() -> String {
    format!("{AK}:{SK}")
}

#[tokio::test]
async fn prints_its_address_first_and_keeps_objects_in_its_root() {
    let root = tempfile::tempdir().unwrap();
    let root_s = root.path().to_str().unwrap();
    let ka = key_arg();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--root",
        root_s,
        "--access-key",
        &ka,
        "--bucket",
        "kept",
    ];
    let c = client();
    {
        let (_guard, addr) = spawn(&args, None);
        let r = signed(
            &c,
            addr,
            "PUT",
            "kept",
            Some("a/b.txt"),
            &[],
            Some("persisted".into()),
        )
        .await;
        assert_eq!(r.status(), 200);
        // Anonymous access is off by default.
        let r = c
            .get(endpoint_url(addr, "kept", Some("a/b.txt")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
    // A new process on the same root serves what the first one stored.
    let (_guard, addr) = spawn(&args, None);
    let r = signed(
        &c,
        addr,
        "GET",
        "kept",
        Some("a/b.txt"),
        &[("range", "bytes=2-5")],
        None,
    )
    .await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), &b"rsis"[..]);
    // And the library reads the same directory layout.
    drop(_guard);
    let emu = Emulator::start(config().directory(root.path())).unwrap();
    assert_eq!(emu.get_object("kept", "a/b.txt").unwrap(), b"persisted");
}

#[tokio::test]
async fn anonymous_flag_serves_plain_http_clients() {
    let ka = key_arg();
    let (_guard, addr) = spawn(
        &["--access-key", &ka, "--anonymous", "--bucket", "pub"],
        None,
    );
    let c = client();
    let r = signed(
        &c,
        addr,
        "PUT",
        "pub",
        Some("f.bin"),
        &[],
        Some(vec![7u8; 1000].into()),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = c
        .get(endpoint_url(addr, "pub", Some("f.bin")))
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), vec![7u8; 10]);
}

#[tokio::test]
async fn curl_downloads_ranges_anonymously() {
    let curl = test_support::find_program("curl").expect("curl is part of the machine image");
    let ka = key_arg();
    let (_guard, addr) = spawn(
        &["--access-key", &ka, "--anonymous", "--bucket", "pub"],
        None,
    );
    let c = client();
    let data = bytes(21, 300_000);
    let r = signed(
        &c,
        addr,
        "PUT",
        "pub",
        Some("dir/c url.bin"),
        &[],
        Some(data.clone().into()),
    )
    .await;
    assert_eq!(r.status(), 200);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("part");
    let url = endpoint_url(addr, "pub", Some("dir/c url.bin"));
    let status = Command::new(&curl)
        .args([
            "--silent",
            "--show-error",
            "--fail",
            "--compressed",
            "--range",
            "1000-250999",
            "--output",
        ])
        .arg(&out)
        .arg(&url)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "curl failed: {status}");
    same_bytes(&std::fs::read(&out).unwrap(), &data[1000..251_000]);
}

#[tokio::test]
async fn loads_a_fault_plan_file() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("faults.json");
    std::fs::write(
        &plan,
        r#"{"seed": 1, "rules": [
            {"match": {"method": "GET", "nth": 1}, "fault": {"kind": "error", "status": 503, "code": "SlowDown"}},
            {"match": {"method": "GET", "nth": 2}, "fault": {"kind": "short_body", "bytes": 10}}
        ]}"#,
    )
    .unwrap();
    let ka = key_arg();
    let (_guard, addr) = spawn(
        &[
            "--access-key",
            &ka,
            "--faults",
            plan.to_str().unwrap(),
            "--bucket",
            "fff",
        ],
        None,
    );
    let c = client();
    signed(
        &c,
        addr,
        "PUT",
        "fff",
        Some("k"),
        &[],
        Some(vec![1u8; 5000].into()),
    )
    .await;
    let (status, code, _) =
        error_of(signed(&c, addr, "GET", "fff", Some("k"), &[], None).await).await;
    assert_eq!((status, code.as_deref()), (503, Some("SlowDown")));
    let r = signed(&c, addr, "GET", "fff", Some("k"), &[], None).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "a short body is an error");
    let r = signed(&c, addr, "GET", "fff", Some("k"), &[], None).await;
    assert_eq!(r.bytes().await.unwrap().len(), 5000);

    // A bad plan is refused with a message naming the file.
    std::fs::write(&plan, r#"{"rules": [{"fault": {"kind": "explode"}}]}"#).unwrap();
    let out = Command::new(BIN)
        .args(["--access-key", &ka, "--faults", plan.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("faults.json") && err.contains("explode"),
        "{err}"
    );
}

#[tokio::test]
async fn trace_logs_of_the_binary_never_contain_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let ka = key_arg();
    let sts = format!("{STS_AK}:{STS_SK}:{STS_TOKEN}");
    let (guard, addr) = spawn(
        &[
            "--access-key",
            &ka,
            "--sts",
            &sts,
            "--log-level",
            "trace",
            "--bucket",
            "sss",
        ],
        Some(&log),
    );
    let c = client();
    signed(&c, addr, "PUT", "sss", Some("k"), &[], Some("x".into())).await;
    for cr in [
        creds(),
        sts_creds(),
        backend_oss::Credentials::new(AK, "wrong"),
    ] {
        for signer in [v1(), v4()] {
            let req = backend_oss::SignableRequest::new("GET", Some("sss"), Some("k"));
            let s = signer.sign_headers(&cr, &req, SystemTime::now()).unwrap();
            let mut rb = c.get(endpoint_url(addr, "sss", Some("k")));
            for (k, v) in s.iter() {
                rb = rb.header(k, v);
            }
            rb.send().await.unwrap();
            let q = signer
                .presign(&cr, &req, SystemTime::now(), Duration::from_secs(60))
                .unwrap();
            c.get(format!(
                "{}?{}",
                endpoint_url(addr, "sss", Some("k")),
                q.to_query_string()
            ))
            .send()
            .await
            .unwrap();
        }
    }
    drop(guard);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("TRACE") && text.contains("request_id"),
        "{text}"
    );
    for secret in [SK, STS_SK, STS_TOKEN] {
        assert!(!text.contains(secret), "{secret:?} is in the binary's logs");
    }
}

/// Peak resident memory of a process (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmHWM value");
    kb * 1024
}

fn chunk(i: usize) -> Bytes {
    // Cheap, position-dependent content (so a misplaced chunk changes the CRC).
    let mut v = vec![(i % 251) as u8; MIB];
    v[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Bytes::from(v)
}

/// Reads a response to the end, returning its length and CRC-64.
async fn drain(mut r: reqwest::Response) -> (u64, u64) {
    let (mut len, mut crc) = (0u64, 0u64);
    while let Some(c) = r.chunk().await.expect("body") {
        crc = resume_core::crc64_combine(crc, resume_core::crc64(&c), c.len() as u64);
        len += c.len() as u64;
    }
    (len, crc)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_256_mib_object_is_uploaded_and_served_from_disk_with_bounded_memory() {
    const CHUNKS: usize = 256;
    let root = tempfile::tempdir().unwrap();
    let ka = key_arg();
    let (guard, addr) = spawn(
        &[
            "--root",
            root.path().to_str().unwrap(),
            "--access-key",
            &ka,
            "--bucket",
            "big",
            "--log-level",
            "warn",
        ],
        None,
    );
    let pid = guard.id();
    let c = client();
    // Warm up every code path once (PUT, GET, ranged GET) with a small object.
    signed(
        &c,
        addr,
        "PUT",
        "big",
        Some("small"),
        &[],
        Some(vec![1u8; 300_000].into()),
    )
    .await;
    drain(signed(&c, addr, "GET", "big", Some("small"), &[], None).await).await;
    drain(
        signed(
            &c,
            addr,
            "GET",
            "big",
            Some("small"),
            &[("range", "bytes=10-")],
            None,
        )
        .await,
    )
    .await;
    let baseline = peak_rss(pid);

    let crcs: Vec<u64> = (0..CHUNKS).map(|i| resume_core::crc64(&chunk(i))).collect();
    let crc_of = |from: usize, to: usize| {
        crcs[from..to].iter().fold(0u64, |acc, c| {
            resume_core::crc64_combine(acc, *c, MIB as u64)
        })
    };
    let whole_crc = crc_of(0, CHUNKS);
    let size = (CHUNKS * MIB) as u64;

    let t = Instant::now();
    let stream = futures::stream::iter((0..CHUNKS).map(|i| Ok::<_, std::io::Error>(chunk(i))));
    let r = signed(
        &c,
        addr,
        "PUT",
        "big",
        Some("huge.bin"),
        &[("content-length", &size.to_string())],
        Some(reqwest::Body::wrap_stream(stream)),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-oss-hash-crc64ecma"),
        Some(whole_crc.to_string())
    );
    let put_time = t.elapsed();

    let t = Instant::now();
    for part in 0..4 {
        let (a, b) = (part * 64, part * 64 + 64);
        let range = format!("bytes={}-{}", a * MIB, b * MIB - 1);
        let r = signed(
            &c,
            addr,
            "GET",
            "big",
            Some("huge.bin"),
            &[("range", &range)],
            None,
        )
        .await;
        assert_eq!(r.status(), 206);
        assert_eq!(
            header(&r, "x-oss-hash-crc64ecma"),
            Some(whole_crc.to_string())
        );
        assert_eq!(drain(r).await, ((64 * MIB) as u64, crc_of(a, b)), "{range}");
    }
    let r = signed(&c, addr, "GET", "big", Some("huge.bin"), &[], None).await;
    assert_eq!(drain(r).await, (size, whole_crc));
    let get_time = t.elapsed();

    let peak = peak_rss(pid);
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "256 MiB: PUT {put_time:?}, 4 ranged GETs + 1 whole GET {get_time:?}; peak RSS {} MiB (baseline {} MiB, growth {} KiB)",
        peak / MIB as u64,
        baseline / MIB as u64,
        growth / 1024
    );
    assert!(
        growth < 16 * MIB as u64,
        "serving a 256 MiB object grew the server's peak RSS by {} KiB",
        growth / 1024
    );
}

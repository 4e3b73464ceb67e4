//! Every fault kind, observed from the client side, and the fault / request logs.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use oss_emulator::{Emulator, Fault, FaultPlan, FaultRule};

const KEY: &str = "big.bin";
const SIZE: usize = 200_000;

/// An emulator serving `bkt/big.bin` (SIZE bytes) to anonymous clients too.
fn emulator(plan: FaultPlan) -> (Emulator, Vec<u8>) {
    let emu = Emulator::start(config().anonymous_read(true).faults(plan)).unwrap();
    emu.create_bucket("bkt").unwrap();
    let data = bytes(9, SIZE);
    emu.put_object("bkt", KEY, &data).unwrap();
    (emu, data)
}

/// How a raw HTTP/1.1 exchange ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Clean close (FIN).
    Eof,
    Error(ErrorKind),
}

/// Sends a raw GET and reads until the server closes: (status line, headers, body, end).
fn raw_get(emu: &Emulator, path: &str, extra: &str) -> (String, String, Vec<u8>, End) {
    let mut s = TcpStream::connect(emu.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{extra}\r\n",
        emu.addr()
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let end = loop {
        match s.read(&mut chunk) {
            Ok(0) => break End::Eof,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => break End::Error(e.kind()),
        }
    };
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head.lines().next().unwrap_or("").to_string();
    (status, head, buf[split..].to_vec(), end)
}

async fn read_all(resp: reqwest::Response) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut resp = resp;
    let mut got = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => return (got, None),
            Err(e) => return (got, Some(e)),
        }
    }
}

#[tokio::test]
async fn reset_before_response_is_a_connection_error() {
    let (emu, _) =
        emulator(FaultPlan::new(1).rule(FaultRule::on_request(1, Fault::ResetBeforeResponse)));
    let c = client();
    let err = try_get(&emu, &c, "bkt", KEY)
        .await
        .expect_err("the connection is reset");
    assert!(
        err.is_request() || err.is_connect() || err.is_body(),
        "{err:?}"
    );
    // The next request is served.
    assert_eq!(get(&emu, &c, "bkt", KEY, &[]).await.status(), 200);
    let faults = emu.fault_log();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].request, 1);
    assert_eq!(faults[0].fault, Fault::ResetBeforeResponse);
    let log = emu.request_log();
    assert_eq!(log[0].status, None);
    assert_eq!(log[0].request_id, faults[0].request_id);
    assert_eq!(log[0].faults, vec!["reset_before_response"]);

    // On the wire: nothing at all, then a reset.
    emu.set_fault_plan(FaultPlan::new(1).rule(FaultRule::always(Fault::ResetBeforeResponse)));
    let (status, _, body, end) = raw_get(&emu, "/bkt/big.bin", "");
    assert_eq!((status.as_str(), body.len()), ("", 0));
    assert_eq!(end, End::Error(ErrorKind::ConnectionReset));
}

#[tokio::test]
async fn reset_after_k_bytes_delivers_k_bytes_then_a_reset() {
    let k = 1000u64;
    let (emu, data) = emulator(
        FaultPlan::new(1)
            .rule(FaultRule::on("GET", KEY, Fault::ResetAfterBytes { bytes: k }).nth(1)),
    );
    let (status, head, body, end) = raw_get(&emu, "/bkt/big.bin", "");
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {SIZE}")),
        "{head}"
    );
    assert_eq!(
        body.len() as u64,
        k,
        "exactly k body bytes arrive before the reset"
    );
    same_bytes(&body[..], &data[..k as usize]);
    assert_eq!(end, End::Error(ErrorKind::ConnectionReset));

    // Through an HTTP client: the body ends in an error, never silently short.
    emu.set_fault_plan(FaultPlan::new(1).rule(FaultRule::on(
        "GET",
        KEY,
        Fault::ResetAfterBytes { bytes: 50_000 },
    )));
    let c = client();
    let r = get(&emu, &c, "bkt", KEY, &[("range", "bytes=1000-")]).await;
    assert_eq!(r.status(), 206);
    let (got, err) = read_all(r).await;
    assert!(err.is_some(), "a cut body must be an error");
    assert!(got.len() <= 50_000);
    same_bytes(&got[..], &data[1000..1000 + got.len()]);
    let ev = emu.fault_log();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1].fault, Fault::ResetAfterBytes { bytes: 50_000 });
}

#[tokio::test]
async fn reset_at_an_object_offset_cuts_only_reads_that_cross_it() {
    let off = 150_000u64;
    let (emu, data) = emulator(FaultPlan::new(1).rule(FaultRule::on(
        "GET",
        KEY,
        Fault::ResetAtOffset { offset: off },
    )));
    let (_, _, body, end) = raw_get(&emu, "/bkt/big.bin", "Range: bytes=100000-\r\n");
    assert_eq!(body.len() as u64, off - 100_000);
    same_bytes(&body[..], &data[100_000..off as usize]);
    assert_eq!(end, End::Error(ErrorKind::ConnectionReset));
    // A range that does not reach the offset is served whole.
    let (status, _, body, end) = raw_get(&emu, "/bkt/big.bin", "Range: bytes=0-99999\r\n");
    assert!(status.contains(" 206 "));
    same_bytes(&body[..], &data[..100_000]);
    assert_eq!(end, End::Eof);
    // Resuming at the offset succeeds.
    let (_, _, body, end) = raw_get(&emu, "/bkt/big.bin", &format!("Range: bytes={off}-\r\n"));
    same_bytes(&body[..], &data[off as usize..]);
    assert_eq!(end, End::Eof);
}

#[tokio::test]
async fn short_body_then_a_clean_close() {
    let k = 777u64;
    let (emu, data) =
        emulator(FaultPlan::new(1).rule(FaultRule::on("GET", KEY, Fault::ShortBody { bytes: k })));
    let (status, head, body, end) = raw_get(&emu, "/bkt/big.bin", "");
    assert!(status.contains(" 200 "));
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {SIZE}"))
    );
    same_bytes(&body[..], &data[..k as usize]);
    assert_eq!(end, End::Eof, "a short body ends with FIN, not RST");
    let c = client();
    let (got, err) = read_all(get(&emu, &c, "bkt", KEY, &[]).await).await;
    assert_eq!(got.len() as u64, k);
    assert!(
        err.is_some(),
        "a short body must be an error for the client"
    );
}

#[tokio::test]
async fn error_faults_answer_503_slow_down_and_500_internal_error() {
    let plan = FaultPlan::new(1)
        .rule(FaultRule::on_request(1, Fault::slow_down()))
        .rule(FaultRule::on_request(2, Fault::internal_error()))
        .rule(FaultRule::on_request(3, Fault::slow_down()).method("HEAD"));
    let (emu, data) = emulator(plan);
    let c = client();
    let r = get(&emu, &c, "bkt", KEY, &[]).await;
    let id1 = header(&r, "x-oss-request-id").unwrap();
    let (status, code, _) = error_of(r).await;
    assert_eq!((status, code.as_deref()), (503, Some("SlowDown")));
    let (status, code, _) = error_of(get(&emu, &c, "bkt", KEY, &[]).await).await;
    assert_eq!((status, code.as_deref()), (500, Some("InternalError")));
    let r = signed_request(&emu, &c, "HEAD", "bkt", Some(KEY), &[], &[], None).await;
    assert_eq!(r.status(), 503);
    let r = get(&emu, &c, "bkt", KEY, &[]).await;
    same_bytes(&r.bytes().await.unwrap(), &data);
    let ev = emu.fault_log();
    assert_eq!(
        ev.iter().map(|e| e.request).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(ev[0].request_id, id1);
    assert_eq!(ev[0].key.as_deref(), Some(KEY));
    assert_eq!(emu.request_log()[0].error_code.as_deref(), Some("SlowDown"));
}

#[tokio::test]
async fn delay_first_byte_delays_the_answer() {
    let (emu, _) = emulator(
        FaultPlan::new(1)
            .rule(FaultRule::on("GET", KEY, Fault::DelayFirstByte { millis: 300 }).times(1)),
    );
    let c = client();
    let t = Instant::now();
    let r = get(&emu, &c, "bkt", KEY, &[("range", "bytes=0-0")]).await;
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(r.status(), 206);
    assert_eq!(emu.fault_log().len(), 1);
}

#[tokio::test]
async fn throttle_limits_a_connections_bandwidth() {
    let rate = 400_000u64; // bytes per second
    let (emu, data) = emulator(FaultPlan::new(1).rule(FaultRule::on(
        "GET",
        KEY,
        Fault::Throttle {
            bytes_per_second: rate,
        },
    )));
    let c = client();
    let t = Instant::now();
    let r = get(&emu, &c, "bkt", KEY, &[]).await;
    let body = r.bytes().await.unwrap();
    let elapsed = t.elapsed();
    same_bytes(&body, &data);
    // 200 000 bytes at 400 000 B/s: at least 0.5 s (minus one pacing step of 0.1 s).
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert_eq!(
        emu.fault_log()[0].fault,
        Fault::Throttle {
            bytes_per_second: rate
        }
    );
}

#[tokio::test]
async fn ignore_range_answers_200_with_the_whole_object() {
    let (emu, data) =
        emulator(FaultPlan::new(1).rule(FaultRule::on("GET", KEY, Fault::IgnoreRange).nth(2)));
    let c = client();
    let h = [
        ("range", "bytes=10-19"),
        ("x-oss-range-behavior", "standard"),
    ];
    let r = get(&emu, &c, "bkt", KEY, &h).await;
    assert_eq!(r.status(), 206);
    let r = get(&emu, &c, "bkt", KEY, &h).await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-range").is_none());
    same_bytes(&r.bytes().await.unwrap(), &data);
    assert_eq!(get(&emu, &c, "bkt", KEY, &h).await.status(), 206);
}

#[tokio::test]
async fn change_object_after_request_m_gives_a_new_etag_and_new_bytes() {
    let (emu, data) = emulator(
        FaultPlan::new(5)
            .rule(FaultRule::on("GET", KEY, Fault::ChangeObject { size: None }).nth(2)),
    );
    let c = client();
    let old_etag = emu.head_object("bkt", KEY).unwrap().etag;
    let pinned = [("if-match", old_etag.as_str()), ("range", "bytes=0-99")];
    // Request m = the 2nd GET: still served from the old version.
    for _ in 0..2 {
        let r = get(&emu, &c, "bkt", KEY, &pinned).await;
        assert_eq!(r.status(), 206);
        assert_eq!(header(&r, "etag").as_deref(), Some(old_etag.as_str()));
        same_bytes(&r.bytes().await.unwrap(), &data[..100]);
    }
    // Afterwards the object is different: a pinned read fails, a fresh one sees new bytes.
    let (status, code, _) = error_of(get(&emu, &c, "bkt", KEY, &pinned).await).await;
    assert_eq!((status, code.as_deref()), (412, Some("PreconditionFailed")));
    let r = get(&emu, &c, "bkt", KEY, &[]).await;
    let new_etag = header(&r, "etag").unwrap();
    assert_ne!(new_etag, old_etag);
    let new = r.bytes().await.unwrap();
    assert_eq!(new.len(), data.len());
    assert!(
        new.iter().zip(&data).all(|(a, b)| a != b),
        "every byte changed"
    );
    assert_eq!(
        header(
            &get(&emu, &c, "bkt", KEY, &[]).await,
            "x-oss-hash-crc64ecma"
        ),
        Some(resume_core::crc64(&new).to_string())
    );
    assert_eq!(emu.fault_log().len(), 1);
    assert_eq!(emu.fault_log()[0].request, 2);
}

#[tokio::test]
async fn probability_rules_are_reproducible_from_the_seed() {
    let plan = |seed| {
        FaultPlan::new(seed).rule(
            FaultRule::always(Fault::slow_down())
                .method("GET")
                .probability(0.4),
        )
    };
    let run = |seed| async move {
        let (emu, _) = emulator(plan(seed));
        let c = client();
        let mut statuses = Vec::new();
        for _ in 0..24 {
            statuses.push(
                get(&emu, &c, "bkt", KEY, &[("range", "bytes=0-0")])
                    .await
                    .status()
                    .as_u16(),
            );
        }
        let faulted: Vec<u64> = emu.fault_log().iter().map(|e| e.request).collect();
        (statuses, faulted)
    };
    let (a, fa) = run(11).await;
    let (b, fb) = run(11).await;
    let (c2, _) = run(12).await;
    assert_eq!(a, b);
    assert_eq!(fa, fb);
    assert_ne!(a, c2);
    assert!(a.contains(&503) && a.contains(&206));
}

#[tokio::test]
async fn plans_change_at_runtime_and_the_json_form_works() {
    let (emu, _) = emulator(FaultPlan::default());
    let c = client();
    assert_eq!(get(&emu, &c, "bkt", KEY, &[]).await.status(), 200);
    let json = r#"{"seed": 3, "rules": [
        {"match": {"method": "GET", "key": "big.bin", "nth": 1}, "fault": {"kind": "error", "status": 503, "code": "SlowDown"}},
        {"match": {"from_request": 3}, "fault": {"kind": "error", "status": 500, "code": "InternalError", "message": "boom"}, "times": 1}
    ]}"#;
    emu.set_fault_plan(FaultPlan::from_json(json).unwrap());
    assert_eq!(get(&emu, &c, "bkt", KEY, &[]).await.status(), 503); // request 2
    let (status, _, xml) = error_of(get(&emu, &c, "bkt", KEY, &[]).await).await; // request 3
    assert_eq!(status, 500);
    assert!(xml.contains("<Message>boom</Message>"), "{xml}");
    assert_eq!(get(&emu, &c, "bkt", KEY, &[]).await.status(), 200);
    emu.clear_fault_plan();
    assert_eq!(emu.request_count(), 4);
    assert_eq!(emu.fault_log().len(), 2);
}

/// Bodies of objects stored in a directory are read ahead 1 MiB per blocking call and sent in
/// smaller frames: exact across block boundaries, when cut short, and when throttled into
/// frames that do not divide a block.
#[tokio::test]
async fn file_backed_bodies_are_exact_across_read_ahead_blocks_cuts_and_throttling() {
    const BIG: usize = (5 << 20) / 2 + 12_345; // 2.5 MiB and a bit: three read-ahead blocks
    let root = tempfile::tempdir().unwrap();
    let cut = (1 << 20) + 4_321;
    let plan = FaultPlan::new(1)
        .rule(FaultRule::on("GET", KEY, Fault::ShortBody { bytes: cut }).nth(3))
        .rule(
            FaultRule::on(
                "GET",
                KEY,
                Fault::Throttle {
                    // 60 000-byte frames: a block is not a whole number of them.
                    bytes_per_second: 600_000,
                },
            )
            .nth(4),
        );
    let emu = Emulator::start(
        config()
            .directory(root.path())
            .anonymous_read(true)
            .faults(plan),
    )
    .unwrap();
    emu.create_bucket("bkt").unwrap();
    let data = bytes(21, BIG);
    emu.put_object("bkt", KEY, &data).unwrap();
    let c = client();

    let whole = get(&emu, &c, "bkt", KEY, &[]).await.bytes().await.unwrap();
    same_bytes(&whole, &data);

    let range_is_exact = async |a: usize, b: usize| {
        let range = format!("bytes={a}-{b}");
        let r = get(&emu, &c, "bkt", KEY, &[("range", &range)]).await;
        assert_eq!(r.status(), 206, "{range}");
        same_bytes(&r.bytes().await.unwrap(), &data[a..=b]);
    };
    range_is_exact(1_000_001, 2_200_000).await;

    let (got, err) = read_all(get(&emu, &c, "bkt", KEY, &[]).await).await;
    assert!(err.is_some(), "a cut body is an error for the client");
    same_bytes(&got, &data[..cut as usize]);

    range_is_exact(77, 77 + 1_100_000).await;
    assert_eq!(emu.fault_log().len(), 2, "both faults fired");
}

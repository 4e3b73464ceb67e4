//! `MockSource` through the `RangeSource` API: objects, versions, every fault kind, random
//! plans, determinism and crash triggers.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use backend_mock::{
    Fault, FaultPlan, FaultRates, MockObject, MockSource, RequestLogEntry, pseudo_random_bytes,
};
use bytes::Bytes;
use futures::StreamExt;
use proptest::prelude::*;
use resume_core::{RangeRead, RangeSource, ReadConditions, SourceError, SourceErrorKind};

/// A read, drained: the declared header, the chunks, and the error that ended the body.
#[derive(Debug)]
struct Drained {
    range: Range<u64>,
    total_size: Option<u64>,
    etag: Option<String>,
    chunks: Vec<Bytes>,
    error: Option<SourceError>,
}

impl Drained {
    fn bytes(&self) -> Vec<u8> {
        self.chunks.concat()
    }
}

async fn drain(read: RangeRead) -> Drained {
    let RangeRead {
        range,
        total_size,
        etag,
        mut body,
    } = read;
    let mut chunks = Vec::new();
    let mut error = None;
    while let Some(item) = body.next().await {
        match item {
            Ok(c) => chunks.push(c),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Drained {
        range,
        total_size,
        etag,
        chunks,
        error,
    }
}

async fn read(src: &MockSource, key: &str, range: Range<u64>) -> Result<Drained, SourceError> {
    let read = src
        .read_range(key, range, &ReadConditions::default())
        .await?;
    Ok(drain(read).await)
}

fn if_match(etag: &Option<String>) -> ReadConditions {
    ReadConditions {
        if_match: etag.clone(),
        version_id: None,
        ..Default::default()
    }
}

fn source_with(len: usize) -> (MockSource, Bytes) {
    let src = MockSource::new("t").with_chunk_size(100);
    let data = pseudo_random_bytes(99, len);
    src.put("k", data.clone());
    (src, data)
}

#[tokio::test]
async fn identity_and_stat_report_the_object() {
    let src = MockSource::new("bucket-1");
    assert_eq!(src.identity(), "mock://bucket-1");
    let meta = src.put_object("a/b", MockObject::new(vec![1u8; 10]).with_crc64(0xABCD));
    let stat = src.stat("a/b", None).await.unwrap();
    assert_eq!(stat, meta);
    assert_eq!(stat.size, 10);
    assert_eq!(stat.crc64(), Some(0xABCD));
    assert_eq!(stat.version_id, None);
    let etag = stat.etag.unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34,
        "{etag}"
    );
    assert!(stat.last_modified.is_some());
    assert_eq!(src.stat_requests(), 1);
    assert_eq!(src.read_requests(), 0);
}

#[tokio::test]
async fn etags_are_deterministic_and_change_with_every_put() {
    let a = MockSource::new("x");
    let b = MockSource::new("y");
    let m1 = a.put("k", "same");
    assert_eq!(b.put("k", "same"), m1);
    let m2 = a.put("k", "same");
    assert_ne!(m1.etag, m2.etag, "a new generation gets a new etag");
    assert_ne!(m1.last_modified, m2.last_modified);
}

#[tokio::test]
async fn crc64_fn_covers_later_versions() {
    fn fake_crc(b: &[u8]) -> u64 {
        b.len() as u64 * 7
    }
    let src = MockSource::new("t").with_crc64_fn(fake_crc);
    assert_eq!(src.put("k", vec![0u8; 3]).crc64(), Some(21));
    src.set_fault_plan(FaultPlan::new().change_object_after(0));
    read(&src, "k", 0..1).await.unwrap();
    assert_eq!(src.meta("k").unwrap().crc64(), Some(21));
    assert_eq!(
        src.put_object("k", MockObject::new(vec![0u8; 3]).with_crc64(5))
            .crc64(),
        Some(5)
    );
}

#[tokio::test]
async fn reads_stream_exact_slices_in_chunks() {
    let (src, data) = source_with(1000);
    let d = read(&src, "k", 150..1000).await.unwrap();
    assert_eq!(d.range, 150..1000);
    assert_eq!(d.total_size, Some(1000));
    assert_eq!(d.etag, src.meta("k").unwrap().etag);
    assert!(d.error.is_none());
    assert_eq!(d.bytes(), &data[150..1000]);
    assert_eq!(d.chunks.len(), 9);
    assert!(d.chunks.iter().all(|c| c.len() <= 100));
    assert_eq!(src.bytes_served(), 850);
    assert_eq!(src.log()[0].bytes_served, 850);
}

#[tokio::test]
async fn bodies_share_the_stored_bytes() {
    let (src, data) = source_with(1000);
    let d = read(&src, "k", 0..1000).await.unwrap();
    // Zero-copy: every chunk points into the stored buffer.
    let base = data.as_ptr() as usize;
    for c in &d.chunks {
        let p = c.as_ptr() as usize;
        assert!(p >= base && p + c.len() <= base + data.len());
    }
}

proptest! {
    #[test]
    fn any_chunk_size_and_range_yields_the_slice(
        chunk in 1usize..=4096,
        len in 1usize..20_000,
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let src = MockSource::new("p").with_chunk_size(chunk);
            let data = pseudo_random_bytes(len as u64, len);
            src.put("k", data.clone());
            let (x, y) = (a % len as u64, b % len as u64);
            let range = x.min(y)..x.max(y) + 1;
            let d = read(&src, "k", range.clone()).await.unwrap();
            prop_assert_eq!(&d.bytes()[..], &data[range.start as usize..range.end as usize]);
            prop_assert!(d.chunks.iter().all(|c| !c.is_empty() && c.len() <= chunk));
            prop_assert_eq!(src.bytes_served(), range.end - range.start);
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn bad_ranges_are_416_and_missing_keys_404() {
    let (src, _) = source_with(100);
    for range in [50..101, 100..101, 200..300, 10..10] {
        let e = read(&src, "k", range.clone()).await.unwrap_err();
        assert_eq!(e.kind, SourceErrorKind::InvalidRange, "{range:?}");
        assert_eq!(e.status, Some(416));
        assert_eq!(e.code.as_deref(), Some("InvalidRange"));
    }
    let e = read(&src, "nope", 0..1).await.unwrap_err();
    assert_eq!(
        (e.kind, e.status, e.code.as_deref()),
        (SourceErrorKind::NotFound, Some(404), Some("NoSuchKey"))
    );
    let e = src.stat("nope", None).await.unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::NotFound);
    assert!(e.request_id.is_some());
    assert!(src.remove("k"));
    assert_eq!(
        read(&src, "k", 0..1).await.unwrap_err().kind,
        SourceErrorKind::NotFound
    );
    let log = src.log();
    assert_eq!(log.len(), 6);
    assert!(log.iter().all(|e| e.error.is_some() && e.bytes_served == 0));
}

#[tokio::test]
async fn if_match_mismatch_is_412_changed() {
    let (src, data) = source_with(100);
    let etag = src.meta("k").unwrap().etag;
    let ok = drain(src.read_range("k", 0..100, &if_match(&etag)).await.unwrap()).await;
    assert_eq!(ok.bytes(), &data[..]);
    let wrong = Some("\"other\"".to_owned());
    let e = src
        .read_range("k", 0..100, &if_match(&wrong))
        .await
        .unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::Changed);
    assert_eq!(e.status, Some(412));
    assert_eq!(e.code.as_deref(), Some("PreconditionFailed"));
    assert_eq!(src.log()[1].if_match, wrong);
    assert_eq!(src.log()[1].error, Some(SourceErrorKind::Changed));
}

#[tokio::test]
async fn change_object_makes_if_match_fail_and_keeps_both_versions() {
    let (src, old) = source_with(500);
    let etag = src.meta("k").unwrap().etag;
    src.set_fault_plan(FaultPlan::new().change_object_after(1));
    let first = drain(src.read_range("k", 0..250, &if_match(&etag)).await.unwrap()).await;
    assert_eq!(first.bytes(), &old[..250]);
    let e = src
        .read_range("k", 250..500, &if_match(&etag))
        .await
        .unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::Changed);
    assert_eq!(src.log()[1].fault, Some(Fault::ChangeObject));

    let history = src.history("k");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].content, old);
    let new = &history[1].content;
    assert_eq!(new.len(), old.len());
    assert!(
        old.iter().zip(new.iter()).all(|(a, b)| a != b),
        "every byte differs"
    );
    assert_ne!(history[0].meta.etag, history[1].meta.etag);
    assert!(history[1].generation > history[0].generation);
    assert_eq!(src.content("k").unwrap(), new);

    // Without If-Match the new version is served.
    assert_eq!(read(&src, "k", 0..500).await.unwrap().bytes(), &new[..]);
}

#[tokio::test]
async fn change_object_is_deterministic() {
    let run = || async {
        let (src, _) = source_with(300);
        src.set_fault_plan(FaultPlan::new().change_object_after(0));
        read(&src, "k", 0..1).await.unwrap();
        src.history("k")
    };
    assert_eq!(run().await, run().await);
}

#[tokio::test]
async fn replace_object_installs_the_given_content() {
    let (src, _) = source_with(300);
    src.set_fault_plan(FaultPlan::new().on_request(0, Fault::ReplaceObject(Bytes::from("tiny"))));
    let d = read(&src, "k", 0..4).await.unwrap();
    assert_eq!(d.bytes(), b"tiny");
    assert_eq!(d.total_size, Some(4));
}

#[tokio::test]
async fn versions_are_readable_by_id() {
    let src = MockSource::new("v").with_versioning(true);
    let m1 = src.put("k", "first version");
    let m2 = src.put("k", "second");
    assert_eq!(m1.version_id.as_deref(), Some("v1"));
    assert_eq!(m2.version_id.as_deref(), Some("v2"));
    assert_eq!(src.stat("k", None).await.unwrap(), m2);
    assert_eq!(src.stat("k", Some("v1")).await.unwrap(), m1);

    let cond = ReadConditions {
        if_match: m1.etag.clone(),
        version_id: Some("v1".into()),
        ..Default::default()
    };
    let d = drain(src.read_range("k", 0..5, &cond).await.unwrap()).await;
    assert_eq!(d.bytes(), b"first");
    assert_eq!(d.etag, m1.etag);
    assert_eq!(d.total_size, Some(13));

    // If-Match is checked against the requested version.
    let cond = ReadConditions {
        if_match: m2.etag.clone(),
        version_id: Some("v1".into()),
        ..Default::default()
    };
    let e = src.read_range("k", 0..5, &cond).await.unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::Changed);

    let e = src.stat("k", Some("v9")).await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_deref()),
        (SourceErrorKind::NotFound, Some("NoSuchVersion"))
    );

    // Old versions survive removal of the current one.
    assert!(src.remove("k"));
    assert!(src.stat("k", None).await.is_err());
    assert_eq!(src.stat("k", Some("v2")).await.unwrap(), m2);
}

#[tokio::test]
async fn without_versioning_version_ids_are_not_found() {
    let src = MockSource::new("nv");
    let m = src.put("k", "abc");
    assert_eq!(m.version_id, None);
    let cond = ReadConditions {
        if_match: None,
        version_id: Some("v1".into()),
        ..Default::default()
    };
    let e = src.read_range("k", 0..1, &cond).await.unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::NotFound);
    assert_eq!(src.log()[0].version_id.as_deref(), Some("v1"));
}

#[tokio::test]
async fn status_and_reset_fail_before_the_body() {
    let (src, _) = source_with(100);
    src.set_fault_plan(
        FaultPlan::new()
            .on_request(0, Fault::http(503))
            .on_request(1, Fault::Status(SourceErrorKind::Transient, 500))
            .on_request(2, Fault::http(403))
            .on_request(3, Fault::http(404))
            .on_request(4, Fault::http(429))
            .on_request(5, Fault::http(408))
            .on_request(6, Fault::Reset),
    );
    let expect = [
        (SourceErrorKind::Transient, Some(503), Some("SlowDown")),
        (SourceErrorKind::Transient, Some(500), Some("InternalError")),
        (SourceErrorKind::Denied, Some(403), Some("AccessDenied")),
        (SourceErrorKind::NotFound, Some(404), Some("NoSuchKey")),
        (
            SourceErrorKind::Transient,
            Some(429),
            Some("TooManyRequests"),
        ),
        (
            SourceErrorKind::Transient,
            Some(408),
            Some("RequestTimeout"),
        ),
        (SourceErrorKind::Transient, None, None),
    ];
    for (n, want) in expect.iter().enumerate() {
        let e = read(&src, "k", 0..100).await.unwrap_err();
        assert_eq!((e.kind, e.status, e.code.as_deref()), *want, "request {n}");
        assert_eq!(e.request_id.as_deref(), Some(format!("mock-r{n}").as_str()));
    }
    assert!(
        read(&src, "k", 0..100).await.is_ok(),
        "request 7 has no fault"
    );
    assert_eq!(src.faults_injected(), 7);
    assert_eq!(src.bytes_served(), 100);
}

#[tokio::test]
async fn reset_message_mentions_connection_reset() {
    let (src, _) = source_with(10);
    src.set_fault_plan(FaultPlan::new().on_request(0, Fault::Reset));
    let e = read(&src, "k", 0..10).await.unwrap_err();
    assert!(e.to_string().contains("connection reset"), "{e}");
}

#[tokio::test]
async fn reset_after_yields_k_bytes_then_a_transient_error() {
    let (src, data) = source_with(1000);
    src.set_fault_plan(FaultPlan::new().on_request(0, Fault::ResetAfter(250)));
    let d = read(&src, "k", 100..900).await.unwrap();
    assert_eq!(d.range, 100..900);
    assert_eq!(d.bytes(), &data[100..350]);
    let e = d.error.expect("body ends with an error");
    assert_eq!(e.kind, SourceErrorKind::Transient);
    assert_eq!(src.log()[0].bytes_served, 250);
    assert_eq!(src.bytes_served(), 250);
}

#[tokio::test]
async fn short_body_yields_k_bytes_then_ends_ok() {
    let (src, data) = source_with(1000);
    src.set_fault_plan(
        FaultPlan::new()
            .on_request(0, Fault::ShortBody(333))
            .on_request(1, Fault::ShortBody(0))
            .on_request(2, Fault::ShortBody(5000)),
    );
    let d = read(&src, "k", 0..1000).await.unwrap();
    assert_eq!(d.range, 0..1000, "the declared range is honest");
    assert!(d.error.is_none());
    assert_eq!(d.bytes(), &data[..333]);
    let d = read(&src, "k", 0..1000).await.unwrap();
    assert!(d.chunks.is_empty() && d.error.is_none());
    // k is clamped to the range's length.
    assert_eq!(read(&src, "k", 0..10).await.unwrap().bytes(), &data[..10]);
}

#[tokio::test]
async fn wrong_range_declares_and_serves_a_shifted_range() {
    let (src, data) = source_with(1000);
    src.set_fault_plan(
        FaultPlan::new()
            .on_request(0, Fault::WrongRange)
            .on_request(1, Fault::WrongRange)
            .on_request(2, Fault::WrongRange),
    );
    let d = read(&src, "k", 100..200).await.unwrap();
    assert_eq!(d.range, 101..201);
    assert_eq!(d.bytes(), &data[101..201]);
    let d = read(&src, "k", 900..1000).await.unwrap();
    assert_eq!(d.range, 899..999);
    assert_eq!(d.bytes(), &data[899..999]);
    let d = read(&src, "k", 0..1000).await.unwrap();
    assert_eq!(d.range, 1..1000);
    assert_eq!(d.bytes(), &data[1..]);
}

#[tokio::test]
async fn ignore_range_declares_and_serves_the_whole_object() {
    let (src, data) = source_with(1000);
    src.set_fault_plan(FaultPlan::new().on_request(0, Fault::IgnoreRange));
    let d = read(&src, "k", 300..400).await.unwrap();
    assert_eq!(d.range, 0..1000);
    assert_eq!(d.total_size, Some(1000));
    assert_eq!(d.bytes(), &data[..]);
}

#[tokio::test]
async fn wrong_etag_declares_another_etag() {
    let (src, data) = source_with(100);
    let etag = src.meta("k").unwrap().etag;
    src.set_fault_plan(FaultPlan::new().on_request(0, Fault::WrongEtag));
    let d = drain(src.read_range("k", 0..100, &if_match(&etag)).await.unwrap()).await;
    assert!(d.etag.is_some());
    assert_ne!(d.etag, etag);
    assert_eq!(d.bytes(), &data[..]);
}

#[tokio::test]
async fn extra_bytes_continue_past_the_range_cyclically() {
    let (src, data) = source_with(1000);
    src.set_fault_plan(
        FaultPlan::new()
            .on_request(0, Fault::ExtraBytes(7))
            .on_request(1, Fault::ExtraBytes(2500)),
    );
    let d = read(&src, "k", 10..20).await.unwrap();
    assert_eq!(d.range, 10..20);
    assert_eq!(d.bytes(), &data[10..27]);
    let d = read(&src, "k", 990..1000).await.unwrap();
    let mut want = data[990..].to_vec();
    while want.len() < 10 + 2500 {
        want.extend_from_slice(&data[..(10 + 2500 - want.len()).min(1000)]);
    }
    assert_eq!(d.bytes(), want);
    assert_eq!(src.bytes_served(), 17 + 2510);
}

#[tokio::test(start_paused = true)]
async fn delay_sleeps_on_the_tokio_clock() {
    let (src, data) = source_with(100);
    src.set_fault_plan(FaultPlan::new().on_request(0, Fault::Delay(Duration::from_secs(30))));
    let t0 = tokio::time::Instant::now();
    let d = read(&src, "k", 0..100).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(30));
    assert_eq!(d.bytes(), &data[..]);
    let t1 = tokio::time::Instant::now();
    read(&src, "k", 0..100).await.unwrap();
    assert_eq!(t1.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn stall_yields_some_bytes_then_pends_forever() {
    let (src, data) = source_with(1000);
    src.set_fault_plan(FaultPlan::new().on_request(0, Fault::Stall(150)));
    let mut body = src
        .read_range("k", 0..1000, &ReadConditions::default())
        .await
        .unwrap()
        .body;
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(60), body.next()).await {
            Ok(Some(Ok(c))) => got.extend_from_slice(&c),
            Ok(other) => panic!(
                "stalled body ended: {:?}",
                other.map(|r| r.map(|c| c.len()))
            ),
            Err(_elapsed) => break,
        }
    }
    assert_eq!(got, &data[..150]);
    assert_eq!(src.bytes_served(), 150);
}

#[tokio::test]
async fn stat_faults_apply_to_stat_only() {
    let (src, _) = source_with(100);
    let meta = src.meta("k").unwrap();
    src.set_fault_plan(
        FaultPlan::new()
            .on_stat(0, Fault::http(500))
            .on_stat(1, Fault::WrongEtag)
            .on_stat(2, Fault::ChangeObject)
            .on_stat(3, Fault::ShortBody(1)),
    );
    assert_eq!(src.stat("k", None).await.unwrap_err().status, Some(500));
    let wrong = src.stat("k", None).await.unwrap();
    assert_ne!(wrong.etag, meta.etag);
    assert_eq!(wrong.size, meta.size);
    let changed = src.stat("k", None).await.unwrap();
    assert_ne!(changed.etag, meta.etag);
    assert_eq!(changed, src.meta("k").unwrap());
    assert_eq!(src.stat("k", None).await.unwrap(), changed, "ignored fault");
    let log = src.stat_log();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0].error, Some(SourceErrorKind::Transient));
    assert_eq!(log[3].fault, Some(Fault::ShortBody(1)));
    // Reads are unaffected by stat faults.
    assert!(read(&src, "k", 0..100).await.unwrap().error.is_none());
    assert_eq!(src.log()[0].fault, None);
}

/// A simple retrying reader: the engine in miniature, for the random-plan tests.
async fn fetch_with_retries(src: &MockSource, key: &str, len: u64, part: u64) -> Vec<u8> {
    let etag = src.meta(key).unwrap().etag;
    let mut out = Vec::new();
    let mut start = 0;
    let mut attempts = 0;
    while start < len {
        attempts += 1;
        assert!(attempts < 10_000, "no progress");
        let end = (start + part).min(len);
        let cond = if_match(&etag);
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            let r = src.read_range(key, start..end, &cond).await?;
            if r.range != (start..end) || r.etag != etag || r.total_size != Some(len) {
                return Err(SourceError::transient("bad response"));
            }
            let mut body = r.body;
            let mut buf = Vec::new();
            while let Some(c) = body.next().await {
                buf.extend_from_slice(&c?);
            }
            Ok(buf)
        });
        match read.await {
            Ok(Ok(buf)) if buf.len() as u64 == end - start => {
                out.extend_from_slice(&buf);
                start = end;
            }
            _ => {}
        }
    }
    out
}

async fn random_run(seed: u64, rates: FaultRates) -> (Vec<RequestLogEntry>, Vec<u8>, Bytes) {
    let src = MockSource::new("r")
        .with_chunk_size(64)
        .with_fault_plan(FaultPlan::random(seed, rates));
    let data = pseudo_random_bytes(seed, 10_000);
    src.put("k", data.clone());
    let got = fetch_with_retries(&src, "k", 10_000, 1_000).await;
    (src.log(), got, data)
}

fn noisy() -> FaultRates {
    FaultRates {
        transient_status: 0.05,
        reset: 0.05,
        reset_after: 0.05,
        short_body: 0.05,
        wrong_range: 0.05,
        ignore_range: 0.05,
        wrong_etag: 0.05,
        extra_bytes: 0.05,
        delay: 0.05,
        stall: 0.05,
        max_delay: Duration::from_secs(2),
        ..FaultRates::default()
    }
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_requests_same_log() {
    let (log_a, got_a, data) = random_run(1234, noisy()).await;
    let (log_b, got_b, _) = random_run(1234, noisy()).await;
    assert_eq!(got_a, &data[..]);
    assert_eq!(got_b, &data[..]);
    assert_eq!(log_a, log_b);
    assert!(log_a.iter().filter(|e| e.fault.is_some()).count() >= 3);
    let (log_c, got_c, data_c) = random_run(4321, noisy()).await;
    assert_eq!(got_c, &data_c[..]);
    assert_ne!(log_a, log_c);
}

#[tokio::test(start_paused = true)]
async fn random_plans_cover_every_kind() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let (log, got, data) = random_run(seed, noisy()).await;
        assert_eq!(got, &data[..]);
        for e in log {
            if let Some(f) = e.fault {
                let name = format!("{f:?}");
                seen.insert(name.split('(').next().unwrap().to_owned());
            }
        }
    }
    for kind in [
        "Status",
        "Reset",
        "ResetAfter",
        "ShortBody",
        "WrongRange",
        "IgnoreRange",
        "WrongEtag",
        "ExtraBytes",
        "Delay",
        "Stall",
    ] {
        assert!(seen.contains(kind), "{kind} never drawn: {seen:?}");
    }
}

#[tokio::test]
async fn max_faults_bounds_random_faults() {
    let rates = FaultRates {
        reset: 1.0,
        max_faults: 5,
        ..FaultRates::default()
    };
    let (src, _) = source_with(100);
    src.set_fault_plan(FaultPlan::random(9, rates.clone()).on_request(7, Fault::http(500)));
    let mut failures = 0;
    for _ in 0..20 {
        if read(&src, "k", 0..100).await.is_err() {
            failures += 1;
        }
    }
    // 5 random resets, plus the explicit fault, which is not limited.
    assert_eq!(failures, 6);
    let log = src.log();
    assert!(log[..5].iter().all(|e| e.fault == Some(Fault::Reset)));
    assert_eq!(log[7].fault, Some(Fault::http(500)));
    assert_eq!(src.faults_injected(), 6);
    // A new plan gets a new budget.
    src.set_fault_plan(FaultPlan::random(9, rates));
    assert!(read(&src, "k", 0..100).await.is_err());
}

#[tokio::test]
async fn explicit_faults_override_random_ones() {
    let rates = FaultRates {
        reset: 1.0,
        ..FaultRates::default()
    };
    let (src, _) = source_with(100);
    src.set_fault_plan(FaultPlan::random(1, rates).on_request(1, Fault::WrongEtag));
    assert!(read(&src, "k", 0..100).await.is_err());
    assert!(read(&src, "k", 0..100).await.is_ok());
    assert_eq!(src.log()[1].fault, Some(Fault::WrongEtag));
}

#[tokio::test(start_paused = true)]
async fn crash_trigger_fires_at_the_exact_byte_count() {
    let (src, data) = source_with(10_000);
    let trigger = src.crash_trigger_after_bytes(4_321);
    assert!(!trigger.has_fired());
    let download = fetch_with_retries(&src, "k", 10_000, 1_000);
    tokio::select! {
        _ = download => panic!("download finished before the crash point"),
        () = trigger.fired() => {}
    }
    assert!(trigger.has_fired());
    assert_eq!(
        src.bytes_served(),
        4_321,
        "no byte served past the crash point"
    );
    // After the crash, a resumed download is served normally (trigger still alive).
    let got = fetch_with_retries(&src, "k", 10_000, 1_000).await;
    assert_eq!(got, &data[..]);
    drop(trigger);
}

#[tokio::test(start_paused = true)]
async fn crash_trigger_works_with_concurrent_bodies() {
    let src = MockSource::new("c").with_chunk_size(7);
    src.put("k", pseudo_random_bytes(5, 4_000));
    let trigger = src.crash_trigger_after_bytes(1_000);
    let source: Arc<dyn RangeSource> = Arc::new(src.clone());
    let workers = futures::future::join_all((0..4u64).map(|i| {
        let source = Arc::clone(&source);
        async move {
            let r = source
                .read_range("k", i * 1000..(i + 1) * 1000, &ReadConditions::default())
                .await
                .unwrap();
            drain(r).await.bytes().len()
        }
    }));
    tokio::select! {
        biased;
        () = trigger.fired() => {}
        _ = workers => panic!("finished before the crash"),
    }
    assert_eq!(src.bytes_served(), 1_000);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_trigger_releases_frozen_bodies() {
    let (src, data) = source_with(1_000);
    let trigger = src.crash_trigger_after_bytes(10);
    let mut body = src
        .read_range("k", 0..1_000, &ReadConditions::default())
        .await
        .unwrap()
        .body;
    assert_eq!(body.next().await.unwrap().unwrap(), &data[..10]);
    // Frozen until observed or dropped.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), body.next())
            .await
            .is_err()
    );
    drop(trigger);
    let rest = drain_stream(&mut body).await;
    assert_eq!(rest, &data[10..]);
}

async fn drain_stream(body: &mut resume_core::ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(c) = body.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn an_unreached_trigger_never_fires() {
    let (src, data) = source_with(1_000);
    let trigger = src.crash_trigger_after_bytes(5_000);
    let got = tokio::select! {
        got = fetch_with_retries(&src, "k", 1_000, 300) => got,
        () = trigger.fired() => panic!("fired early"),
    };
    assert_eq!(got, &data[..]);
    assert!(!trigger.has_fired());
    assert_eq!(trigger.threshold(), 5_000);
}

#[test]
fn mock_source_is_a_shareable_range_source() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<MockSource>();
    assert_send_sync::<backend_mock::CrashTrigger>();
    let src = MockSource::new("d");
    let debug = format!("{src:?}");
    assert!(
        debug.contains("MockSource") && debug.contains("\"d\""),
        "{debug}"
    );
}

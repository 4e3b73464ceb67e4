//! The seed's call shape end to end: `bucket.download_file(key, path, part_size, &[options])`
//! against the in-test HTTP server, through the engine.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backend_oss::DownloadOption::{
    Checkpoint, CheckpointDir, Header, NormalizedRange, Range, RequestPayer, Retry, Routines,
    TrafficLimit, VersionId,
};
use backend_oss::{Bucket, Client, DownloadOption};
use bytes::Bytes;
use resume_core::{ErrorKind, Event, RetryPolicy};
use support::{Recorded, Reply, TestServer, object_bytes, serve_object};

const BUCKET: &str = "test-bucket";
const SK: &str = "sk-download";
const ETAG: &str = "\"D0D0D0D0D0D0D0D0D0D0D0D0D0D0D0D0\"";
const MIB: usize = 1 << 20;
const PART: u64 = 256 * 1024;

fn bucket_for(server: &TestServer) -> Bucket {
    Client::builder()
        .endpoint(server.endpoint())
        .region("cn-hangzhou")
        .sts_credentials("ak", SK, "token")
        .read_timeout(Some(Duration::from_secs(5)))
        .build()
        .unwrap()
        .bucket(BUCKET)
        .unwrap()
}

fn fast_retries() -> DownloadOption<'static> {
    Retry(RetryPolicy {
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        jitter_seed: Some(7),
        ..RetryPolicy::default()
    })
}

fn rgcp(path: &Path) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".rgcp");
    s.into()
}

#[tokio::test]
async fn download_file_survives_503s_resets_and_cut_bodies_and_writes_exact_bytes() {
    let data = object_bytes(3 * MIB);
    let served = data.clone();
    // The first request for each part start fails in turn: 503, dropped connection, body cut
    // half-way, or success. The HEAD fails once with a 503 too.
    let seen: Mutex<HashMap<(String, u64), u32>> = Mutex::new(HashMap::new());
    let server = TestServer::start(move |r: &Recorded| {
        let first = r.range().map_or(u64::MAX, |(a, _)| a);
        let n = {
            let mut seen = seen.lock().unwrap();
            let n = seen.entry((r.method.clone(), first)).or_insert(0);
            *n += 1;
            *n
        };
        if n > 1 {
            return serve_object(r, &served, ETAG, &[]);
        }
        if r.method == "HEAD" {
            return Reply::oss_error(503, "ServiceUnavailable", "RID-HEAD-503");
        }
        match (first / PART) % 4 {
            1 => Reply::oss_error(503, "ServiceUnavailable", "RID-503"),
            2 => Reply::Drop,
            3 => match serve_object(r, &served, ETAG, &[]) {
                Reply::Full {
                    status,
                    mut headers,
                    body,
                } => {
                    headers.push(("content-length".into(), body.len().to_string()));
                    Reply::Cut {
                        status,
                        headers,
                        sent: body.slice(..body.len() / 2),
                    }
                }
                other => other,
            },
            _ => serve_object(r, &served, ETAG, &[]),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("object.bin");
    let report = bucket_for(&server)
        .download_file(
            "big/object.bin",
            &dest,
            PART,
            &[Routines(4), Checkpoint(true, ""), fast_retries()],
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), &data[..], "exact bytes");
    assert!(report.crc64_verified, "CRC-64 checked against the server's");
    // 1 HEAD + 9 parts (3 of each kind of fault among 12 parts).
    assert!(report.retries >= 9, "{report:?}");
    assert!(!rgcp(&dest).exists(), "checkpoint removed on success");

    let requests = server.requests();
    for r in &requests {
        r.verify_signature(BUCKET, SK).unwrap();
        if r.method == "GET" {
            assert_eq!(r.header("if-match"), Some(ETAG), "every GET is pinned");
            assert_eq!(r.header("x-oss-range-behavior"), Some("standard"));
        }
    }
    // A cut body is resumed where it broke, not fetched again from its part's start.
    let resumed = requests
        .iter()
        .filter_map(Recorded::range)
        .filter(|(a, _)| a % PART == PART / 2)
        .count();
    assert_eq!(resumed, 3, "three cut parts resumed mid-part");
}

/// A server that answers 403 to every GET at or past `fail_from` while `failing` is set.
async fn interruptible_server(data: Bytes, fail_from: u64, failing: Arc<AtomicBool>) -> TestServer {
    TestServer::start(move |r| {
        let past = r.range().is_some_and(|(a, _)| a >= fail_from);
        if failing.load(Ordering::SeqCst) && past {
            Reply::oss_error(403, "AccessDenied", "RID-403")
        } else {
            serve_object(r, &data, ETAG, &[])
        }
    })
    .await
}

#[tokio::test]
async fn checkpoint_true_with_empty_path_keeps_a_checkpoint_beside_the_file_and_resumes() {
    let data = object_bytes(3 * MIB);
    let failing = Arc::new(AtomicBool::new(true));
    let server = interruptible_server(data.clone(), MIB as u64, failing.clone()).await;
    let bucket = bucket_for(&server);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("LocalFile");
    let options = [Routines(1), Checkpoint(true, ""), fast_retries()];

    let err = bucket
        .download_file("my-object", &dest, PART, &options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    assert!(err.to_string().contains("RID-403"), "{err}");
    assert!(!dest.exists(), "nothing at DEST until complete");
    assert!(
        rgcp(&dest).exists(),
        "Checkpoint(true, \"\") is never silently disabled"
    );

    failing.store(false, Ordering::SeqCst);
    server.clear();
    let report = bucket
        .download_file("my-object", &dest, PART, &options)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), &data[..]);
    assert_eq!(
        report.reused_bytes, MIB as u64,
        "the first MiB came from the checkpoint"
    );
    assert!(
        server
            .requests()
            .iter()
            .filter_map(Recorded::range)
            .all(|(a, _)| a >= MIB as u64),
        "done parts are not fetched again"
    );
    assert!(!rgcp(&dest).exists());
}

#[tokio::test]
async fn checkpoint_dir_explicit_checkpoint_file_and_disabled_checkpoints() {
    let data = object_bytes(MIB);
    let failing = Arc::new(AtomicBool::new(true));
    let server = interruptible_server(data, PART, failing).await;
    let bucket = bucket_for(&server);
    let dir = tempfile::tempdir().unwrap();
    let cp_dir = dir.path().join("checkpoints");
    let cp_file = dir.path().join("mine.rgcp");
    let cp_other = dir.path().join("mine.cp");
    let dest = dir.path().join("f");
    let fail = |options: Vec<DownloadOption<'static>>| {
        let bucket = bucket.clone();
        let dest = dest.clone();
        async move {
            let mut options = options;
            options.push(fast_retries());
            let err = bucket
                .download_file("k", &dest, PART, &options)
                .await
                .unwrap_err();
            // The temp file stays claimed by the checkpoint just written; a run with its
            // checkpoint elsewhere would (rightly) refuse it, so start each case afresh.
            let _ = std::fs::remove_file(resume_core::with_suffix(&dest, resume_core::PART_SUFFIX));
            err
        }
    };
    let to_str = |p: &Path| -> &'static str { Box::leak(p.to_str().unwrap().into()) };

    fail(vec![CheckpointDir(true, to_str(&cp_dir))]).await;
    let files: Vec<_> = std::fs::read_dir(&cp_dir).unwrap().collect();
    assert_eq!(files.len(), 1);
    let name = files[0].as_ref().unwrap().file_name();
    let name = name.to_str().unwrap();
    assert!(name.starts_with("k-") && name.ends_with(".rgcp"), "{name}");
    assert!(!rgcp(&dest).exists());

    fail(vec![Checkpoint(true, to_str(&cp_file))]).await;
    assert!(
        cp_file.exists(),
        "the checkpoint file is exactly the path given"
    );

    fail(vec![Checkpoint(true, to_str(&cp_other))]).await;
    assert!(cp_other.exists(), "any file name is used exactly as given");
    assert!(!rgcp(&cp_other).exists());

    fail(vec![Checkpoint(false, "")]).await;
    fail(vec![CheckpointDir(false, "")]).await;
    assert!(
        !rgcp(&dest).exists(),
        "disabled: no checkpoint beside the file"
    );
}

#[tokio::test]
async fn range_version_payer_traffic_limit_headers_and_progress_reach_the_download() {
    let data = object_bytes(10_000);
    let served = data.clone();
    let server = TestServer::start(move |r| {
        if r.query_value("versionId").as_deref() != Some("v7") {
            return Reply::oss_error(404, "NoSuchVersion", "RID-404");
        }
        let extra = vec![("x-oss-version-id".to_string(), "v7".to_string())];
        serve_object(r, &served, ETAG, &extra)
    })
    .await;
    let bucket = bucket_for(&server);
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let progress = DownloadOption::progress(move |e: &Event| sink.lock().unwrap().push(e.clone()));

    let dest = dir.path().join("tail");
    let report = bucket
        .download_file(
            "k",
            &dest,
            300,
            &[
                NormalizedRange("-1000"),
                VersionId("v7"),
                RequestPayer,
                TrafficLimit(1_000_000),
                Header("x-oss-meta-x", "y"),
                Routines(3),
                progress,
            ],
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), &data[9000..]);
    assert_eq!(report.range, 9000..10_000);
    for r in server.requests() {
        assert_eq!(r.query_value("versionId").as_deref(), Some("v7"));
        assert_eq!(r.header("x-oss-request-payer"), Some("requester"));
        assert_eq!(r.header("x-oss-traffic-limit"), Some("1000000"));
        assert_eq!(r.header("x-oss-meta-x"), Some("y"));
        r.verify_signature(BUCKET, SK).unwrap();
    }
    {
        let events = events.lock().unwrap();
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Started {
                total_bytes: 1000,
                ..
            }
        )));
        assert!(events.iter().any(|e| matches!(e, Event::Completed(_))));
    }

    let dest = dir.path().join("middle");
    bucket
        .download_file("k", &dest, 4096, &[Range(100, 199), VersionId("v7")])
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), &data[100..200]);
}

#[tokio::test]
async fn invalid_options_are_usage_errors_and_send_nothing() {
    let server = TestServer::start(|_| Reply::status(500)).await;
    let bucket = bucket_for(&server);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let cases: Vec<Vec<DownloadOption<'static>>> = vec![
        vec![TrafficLimit(1)],
        vec![TrafficLimit(838_860_801)],
        vec![Range(5, 3)],
        vec![NormalizedRange("lots")],
        vec![Header("Authorization", "x")],
        vec![Header("x-oss-security-token", "x")],
        vec![VersionId("")],
        vec![Routines(0)],
    ];
    for options in cases {
        let err = bucket
            .download_file("k", &dest, PART, &options)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage, "{options:?}: {err}");
    }
    let err = bucket.download_file("k", &dest, 0, &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "part size 0: {err}");
    assert!(server.requests().is_empty());
}

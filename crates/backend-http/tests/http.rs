//! backend-http against real servers on 127.0.0.1: the shared conformance suite against nginx
//! (with and without etags), and the behaviours real servers show only sometimes — refused
//! HEAD, weak etags, redirects, published digests, signatures checked verbatim — against the
//! in-test origin (`test_support::origin`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backend_http::{HttpOptions, HttpSource};
use bytes::Bytes;
use resume_core::conformance::{self, Capabilities, Fixture};
use resume_core::{Downloader, ErrorKind, RangeSource, ReadConditions, SourceErrorKind};
use test_support::origin::{Object, Origin, Route};

/// Writes files under the directory nginx serves (temp file + rename).
struct DirFixture(PathBuf);

#[async_trait::async_trait]
impl Fixture for DirFixture {
    async fn put(&self, key: &str, content: Bytes) -> Result<(), String> {
        let path = self.0.join(key);
        let dir = path.parent().ok_or("key without a parent")?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let tmp = dir.join(".incoming");
        std::fs::write(&tmp, &content).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())
    }
}

fn open(url: &str) -> (Arc<HttpSource>, String) {
    let (s, k) = backend_http::open(url, &HttpOptions::new()).expect("open the URL");
    (Arc::new(s), k)
}

fn content(seed: u8, len: usize) -> Vec<u8> {
    conformance::content(seed, len).to_vec()
}

fn old_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_600_000_000)
}

async fn download(
    source: Arc<HttpSource>,
    key: &str,
    dest: &Path,
    part: u64,
) -> resume_core::Report {
    Downloader::from_arc(source)
        .part_size(part)
        .concurrency(4)
        .download(key, dest)
        .await
        .unwrap_or_else(|e| panic!("download {key}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_passes_the_conformance_suite_with_and_without_etags() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let server = format!(
        "        root {};\n        location /noetag/ {{ etag off; }}",
        root.display()
    );
    let (addr, _guard) = test_support::start_nginx(dir.path(), "    keepalive_timeout 0;", &server)
        .unwrap_or_else(|e| panic!("{e}. These tests need nginx and do not skip."));
    let (source, _) = open(&format!("http://{addr}/any"));
    let fixture = DirFixture(root);
    let scratch = tempfile::tempdir().unwrap();
    for (prefix, etag) in [("etag/", true), ("noetag/", false)] {
        let report = conformance::run(
            source.clone(),
            &fixture,
            Capabilities {
                etag,
                crc64: false,
                overwrite: true,
            },
            prefix,
            scratch.path(),
        )
        .await;
        println!(
            "{prefix}: {} passed, skipped {:?}",
            report.passed.len(),
            report.skipped
        );
        report.assert_clean();
    }
    assert_eq!(source.identity(), format!("http://{addr}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_head_is_replaced_by_the_first_get_whose_bytes_are_kept() {
    let origin = Origin::start();
    let body = content(1, 300_000);
    for code in [403u16, 405, 501] {
        let path = format!("/h{code}.bin");
        origin.route(
            &path,
            Route::Object(Object {
                body: body.clone(),
                etag: Some("\"e1\"".into()),
                last_modified: Some(old_time()),
                refuse_head: Some(code),
                ..Object::default()
            }),
        );
        let (source, key) = open(&origin.url(&path));
        let meta = source.stat(&key, None).await.unwrap();
        assert_eq!((meta.size, meta.etag.as_deref()), (300_000, Some("\"e1\"")));
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        // One part: the GET that learned the size delivers it.
        let report = download(source.clone(), &key, &dest, 1 << 20).await;
        assert_eq!(std::fs::read(&dest).unwrap(), body);
        assert_eq!(report.fetched_bytes, 300_000);
    }
    let gets: Vec<_> = origin
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.header("range").unwrap_or("none").to_owned())
        .collect();
    // Per object: the test's stat, the download's stat and its check before the rename
    // (nothing verified the bytes) each GET bytes=0-; the download's one part is served from
    // the second. Never a GET of the part itself.
    assert_eq!(gets, vec!["bytes=0-"; 9], "{gets:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_etags_are_never_sent_in_if_match_and_last_modified_pins_the_object() {
    let origin = Origin::start();
    let body = content(2, 500_000);
    origin.route(
        "/weak.bin",
        Route::Object(Object {
            body: body.clone(),
            etag: Some("W/\"7a120-5f\"".into()),
            last_modified: Some(old_time()),
            ..Object::default()
        }),
    );
    let (source, key) = open(&origin.url("/weak.bin"));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let report = download(source.clone(), &key, &dest, 100_000).await;
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(report.object.etag.as_deref(), Some("\"7a120-5f\""));
    let gets: Vec<_> = origin
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(gets.len(), 5);
    for g in &gets {
        assert_eq!(g.header("if-match"), None, "{g:?}");
        assert_eq!(
            g.header("if-unmodified-since"),
            Some(httpdate::fmt_http_date(old_time()).as_str())
        );
        assert_eq!(g.header("accept-encoding"), Some("identity"));
    }
    // A response with another Last-Modified is another version.
    let pinned = ReadConditions {
        if_match: Some("\"7a120-5f\"".into()),
        if_unmodified_since: Some(old_time()),
        ..Default::default()
    };
    origin.update("/weak.bin", |o| {
        o.last_modified = Some(old_time() - Duration::from_secs(10));
    });
    let err = source.read_range(&key, 0..10, &pinned).await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Changed, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_parts_go_to_the_target_and_an_expired_target_is_resolved_again() {
    let origin = Origin::start();
    let other = Origin::start();
    let body = content(3, 400_000);
    let object = Object {
        body: body.clone(),
        etag: Some("\"r1\"".into()),
        ..Object::default()
    };
    other.route("/cdn/a.bin", Route::Object(object.clone()));
    other.route("/cdn/b.bin", Route::Object(object));
    origin.route(
        "/start.bin",
        Route::Redirect {
            status: 302,
            location: "/hop.bin".into(),
        },
    );
    origin.route(
        "/hop.bin",
        Route::Redirect {
            status: 307,
            location: other.url("/cdn/a.bin"),
        },
    );
    let url = origin
        .url("/start.bin")
        .replace("http://", "http://alice:pw-9x@");
    let options = HttpOptions::new()
        .header_line("Cookie: session=c00k1e")
        .unwrap()
        .header_line("X-Trace: t1")
        .unwrap();
    let (source, key) = backend_http::open(&url, &options).unwrap();
    let source = Arc::new(source);
    assert_eq!(key, "start.bin");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    download(source.clone(), &key, &dest, 100_000).await;
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    // The start URL is resolved once (HEAD); the parts go straight to the target.
    let at_origin = origin.requests();
    assert_eq!(at_origin.len(), 2, "{at_origin:?}");
    for r in &at_origin {
        assert!(
            r.header("authorization")
                .is_some_and(|a| a.starts_with("Basic "))
        );
        assert_eq!(r.header("cookie"), Some("session=c00k1e"));
    }
    let at_cdn = other.requests();
    // HEAD, four parts, the HEAD before the rename (nothing verified the bytes).
    assert_eq!(at_cdn.len(), 1 + 4 + 1, "{at_cdn:?}");
    for r in &at_cdn {
        assert_eq!(
            r.header("authorization"),
            None,
            "credentials crossed hosts: {r:?}"
        );
        assert_eq!(r.header("cookie"), None, "cookies crossed hosts: {r:?}");
        assert_eq!(r.header("x-trace"), Some("t1"));
    }
    // The target expires; the start URL now leads elsewhere: resolved again.
    other.route("/cdn/a.bin", Route::Gone(403));
    origin.route(
        "/hop.bin",
        Route::Redirect {
            status: 301,
            location: other.url("/cdn/b.bin"),
        },
    );
    std::fs::remove_file(&dest).unwrap();
    download(source, &key, &dest, 100_000).await;
    assert_eq!(std::fs::read(&dest).unwrap(), body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_loop_stops_after_ten_hops() {
    let origin = Origin::start();
    origin.route(
        "/loop",
        Route::Redirect {
            status: 302,
            location: "/loop".into(),
        },
    );
    let (source, key) = open(&origin.url("/loop"));
    let err = source.stat(&key, None).await.unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Other);
    assert!(err.to_string().contains("more than 10 redirects"), "{err}");
    assert_eq!(origin.requests().len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_queries_are_sent_verbatim_and_expiry_is_explained() {
    let origin = Origin::start();
    let body = content(4, 200_000);
    let query = "OSSAccessKeyId=AK&Expires=4102444800&Signature=a%2Bb%2Fc%3D&x=%7E1+2";
    origin.route(
        "/dir/a%20b.bin",
        Route::Object(Object {
            body: body.clone(),
            etag: Some("\"p1\"".into()),
            require_query: Some(query.into()),
            refuse_head: Some(403),
            ..Object::default()
        }),
    );
    let (source, key) = open(&origin.url(&format!("/dir/a%20b.bin?{query}")));
    assert_eq!(key, "dir/a%20b.bin?x=%7E1+2");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    download(source, &key, &dest, 64 * 1024).await;
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    for r in origin.requests() {
        assert_eq!(r.target, format!("/dir/a%20b.bin?{query}"));
    }

    // An expired one: the refusal says so, and what to do.
    origin.route(
        "/old.bin",
        Route::Object(Object {
            body,
            expired: true,
            ..Object::default()
        }),
    );
    let (source, key) = open(
        &origin.url("/old.bin?X-Amz-Date=20240101T000000Z&X-Amz-Expires=60&X-Amz-Signature=SIG-9f"),
    );
    let err = Downloader::from_arc(source)
        .download(&key, &dir.path().join("old"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied);
    let m = err.to_string();
    assert!(
        m.contains("presigned URL expired at Mon, 01 Jan 2024 00:01:00 GMT"),
        "{m}"
    );
    assert!(m.contains("newly signed URL"), "{m}");
    assert!(!m.contains("SIG-9f"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repr_digest_and_content_md5_verify_the_download() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let origin = Origin::start();
    let body = content(5, 250_000);
    let sha = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&body));
    let sha512 = base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(&body));
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
    let object = |repr: String, md5: String| {
        Route::Object(Object {
            body: body.clone(),
            etag: Some("\"d1\"".into()),
            headers: vec![("repr-digest".into(), repr), ("content-md5".into(), md5)],
            ..Object::default()
        })
    };
    origin.route(
        "/ok.bin",
        object(format!("sha-512=:{sha512}:, sha-256=:{sha}:"), md5.clone()),
    );
    let (source, key) = open(&origin.url("/ok.bin"));
    let dir = tempfile::tempdir().unwrap();
    let report = download(source, &key, &dir.path().join("ok"), 100_000).await;
    // Three published digests: only the strongest is computed, and named (issue 13).
    assert_eq!(
        report.verification.to_string(),
        "verified: SHA-512 full-object (HTTP Repr-Digest)"
    );

    // The legacy Content-MD5 alone verifies too.
    origin.route("/md5.bin", object(String::new(), md5.clone()));
    let (source, key) = open(&origin.url("/md5.bin"));
    let report = download(source, &key, &dir.path().join("md5"), 100_000).await;
    let text = report.verification.to_string();
    assert!(
        text.contains("MD5") && text.contains("HTTP Content-MD5"),
        "{text}"
    );

    // SHA-512 alone is enough; a wrong one fails naming it.
    let mut bad512 = sha2::Sha512::digest(&body).to_vec();
    bad512[63] ^= 0x80;
    let bad512 = base64::engine::general_purpose::STANDARD.encode(bad512);
    origin.route(
        "/only512.bin",
        object(format!("sha-512=:{sha512}:"), String::new()),
    );
    origin.route(
        "/bad512.bin",
        object(format!("sha-512=:{bad512}:"), String::new()),
    );
    let (source, key) = open(&origin.url("/only512.bin"));
    let report = download(source, &key, &dir.path().join("only512"), 100_000).await;
    assert!(
        report.verification.to_string().contains("SHA-512"),
        "{:?}",
        report.verification
    );
    let (source, key) = open(&origin.url("/bad512.bin"));
    let err = Downloader::from_arc(source)
        .download(&key, &dir.path().join("bad512"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(err.to_string().contains("SHA-512"), "{err}");

    // A digest that disagrees with the bytes: an integrity failure, DEST not written.
    let wrong = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
    origin.route("/bad.bin", object(format!("sha-256=:{wrong}:"), md5));
    let (source, key) = open(&origin.url("/bad.bin"));
    let dest = dir.path().join("bad");
    let err = Downloader::from_arc(source)
        .part_size(100_000)
        .download(&key, &dest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(err.to_string().contains("SHA-256"), "{err}");
    assert!(!dest.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coded_body_is_an_error_never_data() {
    let origin = Origin::start();
    origin.route(
        "/gz",
        Route::Object(Object {
            body: content(6, 1000),
            headers: vec![("content-encoding".into(), "gzip".into())],
            ..Object::default()
        }),
    );
    let (source, key) = open(&origin.url("/gz"));
    let err = source
        .read_range(&key, 0..10, &ReadConditions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, SourceErrorKind::Other);
    assert!(err.to_string().contains("Content-Encoding gzip"), "{err}");
}

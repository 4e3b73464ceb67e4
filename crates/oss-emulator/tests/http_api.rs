//! HTTP-level tests of the OSS API subset: buckets, objects, ranges, conditionals, headers,
//! errors, versions, addressing, and signature acceptance / rejection.

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backend_oss::Credentials;
use common::*;
use oss_emulator::{AccessKey, AuthMethod, BucketOptions, Emulator, EmulatorConfig, Versioning};

fn md5_upper_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn seeded(emu: &Emulator, bucket: &str, key: &str, data: &[u8]) {
    match emu.create_bucket(bucket) {
        Ok(()) | Err(oss_emulator::EmulatorError::BucketExists(_)) => {}
        Err(e) => panic!("{e}"),
    }
    emu.put_object(bucket, key, data).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Buckets and objects

#[tokio::test]
async fn bucket_create_head_info_and_conflict() {
    let emu = start();
    let c = client();
    let r = signed_request(&emu, &c, "PUT", "made-here", None, &[], &[], None).await;
    assert_eq!(r.status(), 200);
    let (status, code, _) =
        error_of(signed_request(&emu, &c, "PUT", "made-here", None, &[], &[], None).await).await;
    assert_eq!(
        (status, code.as_deref()),
        (409, Some("BucketAlreadyExists"))
    );

    let r = signed_request(&emu, &c, "HEAD", "made-here", None, &[], &[], None).await;
    assert_eq!(r.status(), 200);
    let r = signed_request(&emu, &c, "HEAD", "not-there", None, &[], &[], None).await;
    assert_eq!(r.status(), 404);
    // HEAD answers carry the error document base64-encoded in x-oss-err.
    let err = backend_oss::ErrorBody::from_x_oss_err(&header(&r, "x-oss-err").unwrap());
    assert_eq!(err.code.as_deref(), Some("NoSuchBucket"));
    assert_eq!(err.request_id, header(&r, "x-oss-request-id"));

    let r = signed_request(
        &emu,
        &c,
        "GET",
        "made-here",
        None,
        &[("bucketInfo", "")],
        &[],
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let xml = r.text().await.unwrap();
    assert!(xml.contains("<Name>made-here</Name>"), "{xml}");

    let (status, code, _) =
        error_of(signed_request(&emu, &c, "PUT", "Bad_Name", None, &[], &[], None).await).await;
    assert_eq!((status, code.as_deref()), (400, Some("InvalidBucketName")));
}

#[tokio::test]
async fn put_get_head_carry_oss_headers() {
    let emu = start();
    let c = client();
    emu.create_bucket("bkt").unwrap();
    let data = bytes(1, 100_000);
    let key = "a dir/obj+1 é.bin";
    let r = signed_request(
        &emu,
        &c,
        "PUT",
        "bkt",
        Some(key),
        &[],
        &[
            ("content-type", "image/jpeg"),
            ("x-oss-meta-owner", "alice"),
        ],
        Some(data.clone()),
    )
    .await;
    assert_eq!(r.status(), 200);
    let etag = format!("\"{}\"", md5_upper_hex(&data));
    assert_eq!(header(&r, "etag").as_deref(), Some(etag.as_str()));
    let crc = resume_core::crc64(&data).to_string();
    assert_eq!(
        header(&r, "x-oss-hash-crc64ecma").as_deref(),
        Some(crc.as_str())
    );

    for method in ["GET", "HEAD"] {
        let r = signed_request(&emu, &c, method, "bkt", Some(key), &[], &[], None).await;
        assert_eq!(r.status(), 200, "{method}");
        assert_eq!(header(&r, "etag").as_deref(), Some(etag.as_str()));
        assert_eq!(header(&r, "content-length").as_deref(), Some("100000"));
        assert_eq!(header(&r, "accept-ranges").as_deref(), Some("bytes"));
        assert_eq!(header(&r, "x-oss-object-type").as_deref(), Some("Normal"));
        assert_eq!(
            header(&r, "x-oss-hash-crc64ecma").as_deref(),
            Some(crc.as_str())
        );
        assert_eq!(header(&r, "content-type").as_deref(), Some("image/jpeg"));
        assert_eq!(header(&r, "x-oss-meta-owner").as_deref(), Some("alice"));
        assert!(header(&r, "content-md5").is_some());
        assert!(
            header(&r, "x-oss-version-id").is_none(),
            "unversioned bucket"
        );
        let id = header(&r, "x-oss-request-id").unwrap();
        assert_eq!(id.len(), 24);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
        );
        let lm = header(&r, "last-modified").unwrap();
        let t = httpdate::parse_http_date(&lm).expect("RFC 1123 Last-Modified");
        assert!(SystemTime::now().duration_since(t).unwrap() < Duration::from_secs(60));
        assert!(lm.ends_with(" GMT"));
        let body = r.bytes().await.unwrap();
        if method == "GET" {
            same_bytes(&body[..], &data[..]);
        } else {
            assert!(body.is_empty());
        }
    }
    same_bytes(&emu.get_object("bkt", key).unwrap(), &data);
}

#[tokio::test]
async fn wrong_content_md5_is_rejected_and_nothing_is_stored() {
    let emu = start();
    let c = client();
    emu.create_bucket("bkt").unwrap();
    let r = signed_request(
        &emu,
        &c,
        "PUT",
        "bkt",
        Some("k"),
        &[],
        &[("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")], // MD5 of ""
        Some(b"not empty".to_vec()),
    )
    .await;
    let (status, code, _) = error_of(r).await;
    assert_eq!((status, code.as_deref()), (400, Some("InvalidDigest")));
    assert!(emu.head_object("bkt", "k").is_err());
}

#[tokio::test]
async fn errors_are_oss_xml_documents_with_the_request_id() {
    let emu = start();
    let c = client();
    emu.create_bucket("bkt").unwrap();
    let r = get(&emu, &c, "bkt", "missing/key", &[]).await;
    let id = header(&r, "x-oss-request-id").unwrap();
    assert_eq!(
        header(&r, "content-type").as_deref(),
        Some("application/xml")
    );
    assert!(header(&r, "x-oss-ec").is_some());
    let (status, _, xml) = error_of(r).await;
    assert_eq!(status, 404);
    let body = backend_oss::ErrorBody::parse(xml.as_bytes());
    assert_eq!(body.code.as_deref(), Some("NoSuchKey"));
    assert_eq!(
        body.message.as_deref(),
        Some("The specified key does not exist.")
    );
    assert_eq!(body.request_id.as_deref(), Some(id.as_str()));
    assert_eq!(body.host_id.as_deref(), Some("127.0.0.1"));
    assert!(body.ec.is_some());
    assert!(xml.contains("<Key>missing/key</Key>"), "{xml}");

    let (status, code, _) = error_of(get(&emu, &c, "no-bucket", "k", &[]).await).await;
    assert_eq!((status, code.as_deref()), (404, Some("NoSuchBucket")));
}

#[tokio::test]
async fn delete_removes_the_object() {
    let emu = start();
    let c = client();
    seeded(&emu, "bkt", "k", b"data");
    let r = signed_request(&emu, &c, "DELETE", "bkt", Some("k"), &[], &[], None).await;
    assert_eq!(r.status(), 204);
    let (status, code, _) = error_of(get(&emu, &c, "bkt", "k", &[]).await).await;
    assert_eq!((status, code.as_deref()), (404, Some("NoSuchKey")));
}

#[tokio::test]
async fn accept_encoding_gzip_is_never_honoured() {
    let emu = start();
    let c = client();
    let text = "hello, compressible world! ".repeat(200).into_bytes();
    seeded(&emu, "bkt", "t.txt", &text);
    for method in ["GET", "HEAD"] {
        let r = signed_request(
            &emu,
            &c,
            method,
            "bkt",
            Some("t.txt"),
            &[],
            &[("accept-encoding", "gzip, deflate, br")],
            None,
        )
        .await;
        assert_eq!(r.status(), 200);
        assert!(header(&r, "content-encoding").is_none());
        assert_eq!(header(&r, "content-length"), Some(text.len().to_string()));
        assert!(header(&r, "etag").is_some());
        if method == "GET" {
            assert_eq!(r.bytes().await.unwrap(), text);
        }
    }
}

#[tokio::test]
async fn virtual_hosted_and_path_style_address_the_same_object() {
    let emu = start();
    let c = client();
    seeded(&emu, "vbucket", "dir/x y.bin", b"virtual!");
    let s = sign_headers(
        &emu,
        &v4(),
        &creds(),
        "GET",
        "vbucket",
        Some("dir/x y.bin"),
        &[],
        &[],
        SystemTime::now(),
    );
    // Same signature, virtual-hosted URL: connect to 127.0.0.1, Host names the bucket.
    let vurl = format!("{}/dir/x%20y.bin", emu.endpoint());
    let mut rb = c.get(&vurl).header("host", emu.virtual_host("vbucket"));
    for (k, v) in &s.headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    let r = rb.send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), &b"virtual!"[..]);
    let r = send(&c, "GET", &s, None).await;
    assert_eq!(r.bytes().await.unwrap(), &b"virtual!"[..]);
    let log = emu.request_log();
    assert!(log.iter().all(|r| r.bucket.as_deref() == Some("vbucket")));
}

// ---------------------------------------------------------------------------------------------
// Ranges

/// (Range header, standard behaviour?, Some((first, last)) for 206 or None for 200 whole).
type RangeCase = (&'static str, bool, Option<(usize, usize)>);

#[tokio::test]
async fn ranges_follow_oss_rules_in_legacy_and_standard_mode() {
    let emu = start();
    let c = client();
    let data = bytes(2, 1000);
    seeded(&emu, "bkt", "r", &data);
    let crc = resume_core::crc64(&data).to_string();
    // (Range, standard?, expected: Some((start, end)) = 206, None = 200 whole)
    let cases: &[RangeCase] = &[
        ("bytes=0-499", false, Some((0, 499))),
        ("bytes=500-999", false, Some((500, 999))),
        ("bytes=-500", false, Some((500, 999))),
        ("bytes=500-", false, Some((500, 999))),
        ("bytes=0-", false, Some((0, 999))),
        ("bytes=999-999", false, Some((999, 999))),
        ("bytes=0-99,200-299", false, Some((0, 99))),
        ("byte=0-499", false, None),
        ("bytes=0-1000", false, None),
        ("bytes=1000-2000", false, None),
        ("bytes=1000-", false, None),
        ("bytes=-2000", false, None),
        ("bytes=10-1", false, None),
        ("bytes=0-499", true, Some((0, 499))),
        ("bytes=500-2000", true, Some((500, 999))),
        ("bytes=-2000", true, Some((0, 999))),
        ("bytes=-1", true, Some((999, 999))),
        ("bytes=10-1", true, None),
    ];
    for &(range, standard, expect) in cases {
        let mut h = vec![("range", range)];
        if standard {
            h.push(("x-oss-range-behavior", "standard"));
        }
        let r = get(&emu, &c, "bkt", "r", &h).await;
        let what = format!("{range} standard={standard}");
        assert_eq!(
            header(&r, "x-oss-hash-crc64ecma").as_deref(),
            Some(crc.as_str()),
            "{what}"
        );
        match expect {
            Some((a, b)) => {
                assert_eq!(r.status(), 206, "{what}");
                assert_eq!(
                    header(&r, "content-range"),
                    Some(format!("bytes {a}-{b}/1000")),
                    "{what}"
                );
                assert_eq!(header(&r, "content-length"), Some((b - a + 1).to_string()));
                same_bytes(&r.bytes().await.unwrap(), &data[a..=b]);
            }
            None => {
                assert_eq!(r.status(), 200, "{what}");
                assert!(header(&r, "content-range").is_none(), "{what}");
                same_bytes(&r.bytes().await.unwrap(), &data[..]);
            }
        }
    }
    for range in ["bytes=1000-2000", "bytes=1000-", "bytes=-0"] {
        let r = get(
            &emu,
            &c,
            "bkt",
            "r",
            &[("range", range), ("x-oss-range-behavior", "standard")],
        )
        .await;
        assert_eq!(header(&r, "content-range").as_deref(), Some("bytes */1000"));
        let (status, code, _) = error_of(r).await;
        assert_eq!(
            (status, code.as_deref()),
            (416, Some("InvalidRange")),
            "{range}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Conditionals

#[tokio::test]
async fn conditionals_on_get_and_head() {
    let emu = start();
    let c = client();
    let data = bytes(3, 4096);
    seeded(&emu, "bkt", "c", &data);
    let etag = emu.head_object("bkt", "c").unwrap().etag;
    let lm = httpdate::fmt_http_date(emu.head_object("bkt", "c").unwrap().last_modified);
    let past = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_000_000_000));
    let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
    let lower = etag.to_ascii_lowercase();
    let cases: Vec<(&str, &str, u16)> = vec![
        ("if-match", etag.as_str(), 200),
        ("if-match", lower.as_str(), 200),
        ("if-match", "\"0123\"", 412),
        ("if-match", "*", 200),
        ("if-unmodified-since", future.as_str(), 200),
        ("if-unmodified-since", lm.as_str(), 200),
        ("if-unmodified-since", past.as_str(), 412),
        ("if-none-match", etag.as_str(), 304),
        ("if-none-match", "\"0123\"", 200),
        ("if-modified-since", lm.as_str(), 304),
        ("if-modified-since", future.as_str(), 304),
        ("if-modified-since", past.as_str(), 200),
    ];
    for method in ["GET", "HEAD"] {
        for (name, value, want) in &cases {
            let r = signed_request(
                &emu,
                &c,
                method,
                "bkt",
                Some("c"),
                &[],
                &[(name, value)],
                None,
            )
            .await;
            let what = format!("{method} {name}: {value}");
            assert_eq!(r.status().as_u16(), *want, "{what}");
            match want {
                304 => {
                    assert_eq!(header(&r, "etag").as_deref(), Some(etag.as_str()), "{what}");
                    assert!(r.bytes().await.unwrap().is_empty());
                }
                412 if method == "GET" => {
                    let (_, code, xml) = error_of(r).await;
                    assert_eq!(code.as_deref(), Some("PreconditionFailed"), "{what}");
                    assert!(xml.contains("<Condition>"), "{xml}");
                }
                412 => {
                    let err =
                        backend_oss::ErrorBody::from_x_oss_err(&header(&r, "x-oss-err").unwrap());
                    assert_eq!(err.code.as_deref(), Some("PreconditionFailed"));
                }
                _ => {}
            }
        }
    }
    // If-Match applies together with a range, as a downloader sends it.
    let r = get(
        &emu,
        &c,
        "bkt",
        "c",
        &[("if-match", &etag), ("range", "bytes=10-19")],
    )
    .await;
    assert_eq!(r.status(), 206);
    same_bytes(&r.bytes().await.unwrap(), &data[10..20]);
    // If-Match wins over If-Unmodified-Since; If-None-Match wins over If-Modified-Since.
    let r = get(
        &emu,
        &c,
        "bkt",
        "c",
        &[("if-match", &etag), ("if-unmodified-since", &past)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = get(
        &emu,
        &c,
        "bkt",
        "c",
        &[("if-none-match", "\"x\""), ("if-modified-since", &future)],
    )
    .await;
    assert_eq!(r.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// Versions

#[tokio::test]
async fn versions_are_retained_and_addressable() {
    let emu = start();
    let c = client();
    emu.create_bucket("ver").unwrap();
    let body = "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    let r = signed_request(
        &emu,
        &c,
        "PUT",
        "ver",
        None,
        &[("versioning", "")],
        &[],
        Some(body.into()),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = signed_request(
        &emu,
        &c,
        "GET",
        "ver",
        None,
        &[("versioning", "")],
        &[],
        None,
    )
    .await;
    assert!(r.text().await.unwrap().contains("<Status>Enabled</Status>"));

    let put = |data: &'static [u8]| {
        let (emu, c) = (&emu, &c);
        async move {
            let r = signed_request(
                emu,
                c,
                "PUT",
                "ver",
                Some("k"),
                &[],
                &[],
                Some(data.to_vec()),
            )
            .await;
            assert_eq!(r.status(), 200);
            (
                header(&r, "x-oss-version-id").expect("version id"),
                header(&r, "etag").unwrap(),
            )
        }
    };
    let (v1, e1) = put(b"first").await;
    let (v2, e2) = put(b"second!").await;
    assert_ne!(v1, v2);
    assert_ne!(e1, e2);

    let r = get(&emu, &c, "ver", "k", &[]).await;
    assert_eq!(header(&r, "x-oss-version-id").as_deref(), Some(v2.as_str()));
    assert_eq!(r.bytes().await.unwrap(), &b"second!"[..]);
    for method in ["GET", "HEAD"] {
        let r = signed_request(
            &emu,
            &c,
            method,
            "ver",
            Some("k"),
            &[("versionId", &v1)],
            &[],
            None,
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-oss-version-id").as_deref(), Some(v1.as_str()));
        assert_eq!(header(&r, "etag").as_deref(), Some(e1.as_str()));
        assert_eq!(header(&r, "content-length").as_deref(), Some("5"));
        if method == "GET" {
            assert_eq!(r.bytes().await.unwrap(), &b"first"[..]);
        }
    }
    // A ranged read of the old version, pinned by its etag.
    let r = signed_request(
        &emu,
        &c,
        "GET",
        "ver",
        Some("k"),
        &[("versionId", &v1)],
        &[("range", "bytes=1-3"), ("if-match", &e1)],
        None,
    )
    .await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), &b"irs"[..]);

    let r = signed_request(
        &emu,
        &c,
        "GET",
        "ver",
        Some("k"),
        &[("versionId", "CAEQnope")],
        &[],
        None,
    )
    .await;
    let (status, code, _) = error_of(r).await;
    assert_eq!((status, code.as_deref()), (404, Some("NoSuchVersion")));

    // Deleting adds a delete marker; older versions stay readable.
    let r = signed_request(&emu, &c, "DELETE", "ver", Some("k"), &[], &[], None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "x-oss-delete-marker").as_deref(), Some("true"));
    let r = get(&emu, &c, "ver", "k", &[]).await;
    assert_eq!(header(&r, "x-oss-delete-marker").as_deref(), Some("true"));
    assert_eq!(error_of(r).await.1.as_deref(), Some("NoSuchKey"));
    assert_eq!(emu.get_object_version("ver", "k", &v1).unwrap(), b"first");
    assert_eq!(emu.object_versions("ver", "k").len(), 3);
}

#[test]
fn versioning_through_the_library_api() {
    let emu = start();
    emu.create_bucket_with(
        "libver",
        BucketOptions {
            versioning: Versioning::Enabled,
            public_read: false,
        },
    )
    .unwrap();
    let a = emu.put_object("libver", "k", b"a").unwrap();
    let b = emu.put_object("libver", "k", b"b").unwrap();
    assert!(a.version_id.is_some() && a.version_id != b.version_id);
    assert_eq!(
        emu.get_object_version("libver", "k", a.version_id.as_deref().unwrap())
            .unwrap(),
        b"a"
    );
    emu.create_bucket("plain").unwrap();
    emu.put_object("plain", "k", b"a").unwrap();
    let p = emu.put_object("plain", "k", b"b").unwrap();
    assert_eq!(p.version_id, None);
    assert_eq!(emu.object_versions("plain", "k").len(), 1);
    emu.set_versioning("plain", Versioning::Enabled).unwrap();
    emu.put_object("plain", "k", b"c").unwrap();
    assert_eq!(emu.object_versions("plain", "k").len(), 2);
    assert_eq!(emu.get_object_version("plain", "k", "null").unwrap(), b"b");
}

// ---------------------------------------------------------------------------------------------
// Signatures

#[tokio::test]
async fn v1_and_v4_header_signatures_are_accepted() {
    let emu = start();
    let c = client();
    emu.create_bucket("sig").unwrap();
    for (signer, method) in [(v1(), AuthMethod::V1Header), (v4(), AuthMethod::V4Header)] {
        emu.clear_logs();
        let key = format!("{:?}/obj+é ~*.bin", signer.version());
        let data = bytes(4, 3000);
        let now = SystemTime::now();
        let headers = [("content-type", "text/plain"), ("x-oss-meta-k", "v")];
        let s = sign_headers(
            &emu,
            &signer,
            &creds(),
            "PUT",
            "sig",
            Some(&key),
            &[],
            &headers,
            now,
        );
        assert_eq!(send(&c, "PUT", &s, Some(data.clone())).await.status(), 200);
        let s = sign_headers(
            &emu,
            &signer,
            &creds(),
            "GET",
            "sig",
            Some(&key),
            &[],
            &[("range", "bytes=0-9")],
            now,
        );
        let r = send(&c, "GET", &s, None).await;
        assert_eq!(r.status(), 206);
        same_bytes(&r.bytes().await.unwrap(), &data[..10]);
        let s = sign_headers(
            &emu,
            &signer,
            &creds(),
            "HEAD",
            "sig",
            Some(&key),
            &[],
            &[],
            now,
        );
        assert_eq!(send(&c, "HEAD", &s, None).await.status(), 200);
        let s = sign_headers(
            &emu,
            &signer,
            &creds(),
            "GET",
            "sig",
            None,
            &[("bucketInfo", "")],
            &[],
            now,
        );
        assert_eq!(send(&c, "GET", &s, None).await.status(), 200);
        let log = emu.request_log();
        assert_eq!(log.len(), 4);
        assert!(
            log.iter()
                .all(|r| r.auth == method && r.access_key_id.as_deref() == Some(AK))
        );
    }
}

#[tokio::test]
async fn presigned_v1_and_v4_urls_are_accepted() {
    let emu = start();
    let c = client();
    emu.create_bucket_with(
        "pre",
        BucketOptions {
            versioning: Versioning::Enabled,
            public_read: false,
        },
    )
    .unwrap();
    let old = emu.put_object("pre", "key+123 x", b"old").unwrap();
    emu.put_object("pre", "key+123 x", b"new").unwrap();
    let vid = old.version_id.unwrap();
    for (signer, method) in [(v1(), AuthMethod::V1Query), (v4(), AuthMethod::V4Query)] {
        emu.clear_logs();
        let url = presign(
            &emu,
            &signer,
            &creds(),
            "GET",
            "pre",
            "key+123 x",
            &[],
            SystemTime::now(),
            Duration::from_secs(300),
        );
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.bytes().await.unwrap(), &b"new"[..]);
        let url = presign(
            &emu,
            &signer,
            &creds(),
            "GET",
            "pre",
            "key+123 x",
            &[("versionId", &vid)],
            SystemTime::now(),
            Duration::from_secs(300),
        );
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.bytes().await.unwrap(), &b"old"[..]);
        assert!(emu.request_log().iter().all(|r| r.auth == method));
    }
}

#[tokio::test]
async fn sts_tokens_are_accepted_in_every_form_and_required() {
    let emu = start();
    let c = client();
    seeded(&emu, "sts", "k", b"sts data");
    let now = SystemTime::now();
    for signer in [v1(), v4()] {
        let s = sign_headers(
            &emu,
            &signer,
            &sts_creds(),
            "GET",
            "sts",
            Some("k"),
            &[],
            &[],
            now,
        );
        let r = send(&c, "GET", &s, None).await;
        assert_eq!(r.status(), 200, "{:?} header", signer.version());
        let url = presign(
            &emu,
            &signer,
            &sts_creds(),
            "GET",
            "sts",
            "k",
            &[],
            now,
            Duration::from_secs(60),
        );
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{:?} presigned", signer.version());
        assert_eq!(r.bytes().await.unwrap(), &b"sts data"[..]);

        // The STS key without its token, or with another token, is refused.
        let no_token = Credentials::new(STS_AK, STS_SK);
        let s = sign_headers(
            &emu,
            &signer,
            &no_token,
            "GET",
            "sts",
            Some("k"),
            &[],
            &[],
            now,
        );
        let (status, code, xml) = error_of(send(&c, "GET", &s, None).await).await;
        assert_eq!(
            (status, code.as_deref()),
            (403, Some("InvalidAccessKeyId")),
            "{xml}"
        );
        assert!(xml.contains("security token"), "{xml}");
        let wrong = Credentials::new(STS_AK, STS_SK).with_security_token("other-token");
        let url = presign(
            &emu,
            &signer,
            &wrong,
            "GET",
            "sts",
            "k",
            &[],
            now,
            Duration::from_secs(60),
        );
        let (status, code, _) = error_of(c.get(&url).send().await.unwrap()).await;
        assert_eq!((status, code.as_deref()), (403, Some("InvalidAccessKeyId")));
    }
}

#[tokio::test]
async fn expired_sts_credentials_are_refused() {
    let past = SystemTime::now() - Duration::from_secs(10);
    let emu = Emulator::start(
        EmulatorConfig::new()
            .access_key(AccessKey::sts("old", "old-secret", "tok").expiring_at(past)),
    )
    .unwrap();
    emu.create_bucket("b-x").unwrap();
    let c = client();
    let creds = Credentials::new("old", "old-secret").with_security_token("tok");
    let s = sign_headers(
        &emu,
        &v4(),
        &creds,
        "HEAD",
        "b-x",
        None,
        &[],
        &[],
        SystemTime::now(),
    );
    let r = send(&c, "HEAD", &s, None).await;
    assert_eq!(r.status(), 403);
    let err = backend_oss::ErrorBody::from_x_oss_err(&header(&r, "x-oss-err").unwrap());
    assert_eq!(err.code.as_deref(), Some("SecurityTokenExpired"));
}

#[tokio::test]
async fn wrong_secret_gives_signature_does_not_match_in_every_form() {
    let emu = start();
    let c = client();
    seeded(&emu, "bkt", "k", b"x");
    let bad = Credentials::new(AK, "not-the-secret");
    let now = SystemTime::now();
    for signer in [v1(), v4()] {
        let s = sign_headers(&emu, &signer, &bad, "GET", "bkt", Some("k"), &[], &[], now);
        let (status, code, xml) = error_of(send(&c, "GET", &s, None).await).await;
        assert_eq!(
            (status, code.as_deref()),
            (403, Some("SignatureDoesNotMatch"))
        );
        assert!(xml.contains("<StringToSign>"), "{xml}");
        let url = presign(
            &emu,
            &signer,
            &bad,
            "GET",
            "bkt",
            "k",
            &[],
            now,
            Duration::from_secs(60),
        );
        let (status, code, _) = error_of(c.get(&url).send().await.unwrap()).await;
        assert_eq!(
            (status, code.as_deref()),
            (403, Some("SignatureDoesNotMatch"))
        );
    }
}

#[tokio::test]
async fn tampered_requests_are_refused() {
    let emu = start();
    let c = client();
    seeded(&emu, "bkt", "a", b"a");
    seeded(&emu, "bkt", "b", b"b");
    let now = SystemTime::now();
    for signer in [v1(), v4()] {
        // Signed for key a, sent for key b.
        let mut s = sign_headers(
            &emu,
            &signer,
            &creds(),
            "GET",
            "bkt",
            Some("a"),
            &[],
            &[],
            now,
        );
        s.url = url(&emu, "bkt", Some("b"), &[]);
        let (status, code, _) = error_of(send(&c, "GET", &s, None).await).await;
        assert_eq!(
            (status, code.as_deref()),
            (403, Some("SignatureDoesNotMatch"))
        );
        // A signed header changed after signing.
        let mut s = sign_headers(
            &emu,
            &signer,
            &creds(),
            "GET",
            "bkt",
            Some("a"),
            &[],
            &[("x-oss-meta-x", "1")],
            now,
        );
        for (k, v) in &mut s.headers {
            if k == "x-oss-meta-x" {
                *v = "2".into();
            }
        }
        let (status, code, _) = error_of(send(&c, "GET", &s, None).await).await;
        assert_eq!(
            (status, code.as_deref()),
            (403, Some("SignatureDoesNotMatch"))
        );
        // A signed sub-resource added after signing.
        let mut s = sign_headers(
            &emu,
            &signer,
            &creds(),
            "GET",
            "bkt",
            Some("a"),
            &[],
            &[],
            now,
        );
        s.url.push_str("?versionId=null");
        let (status, code, _) = error_of(send(&c, "GET", &s, None).await).await;
        assert_eq!(
            (status, code.as_deref()),
            (403, Some("SignatureDoesNotMatch"))
        );
    }
}

#[tokio::test]
async fn unknown_access_key_is_invalid_access_key_id() {
    let emu = start();
    let c = client();
    seeded(&emu, "bkt", "k", b"x");
    let who = Credentials::new("nobody", SK);
    for signer in [v1(), v4()] {
        let s = sign_headers(
            &emu,
            &signer,
            &who,
            "GET",
            "bkt",
            Some("k"),
            &[],
            &[],
            SystemTime::now(),
        );
        let (status, code, _) = error_of(send(&c, "GET", &s, None).await).await;
        assert_eq!((status, code.as_deref()), (403, Some("InvalidAccessKeyId")));
    }
}

#[tokio::test]
async fn expired_presigned_urls_are_access_denied() {
    let emu = start();
    let c = client();
    seeded(&emu, "bkt", "k", b"x");
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    for signer in [v1(), v4()] {
        let url = presign(
            &emu,
            &signer,
            &creds(),
            "GET",
            "bkt",
            "k",
            &[],
            two_hours_ago,
            Duration::from_secs(3600),
        );
        let (status, code, xml) = error_of(c.get(&url).send().await.unwrap()).await;
        assert_eq!(
            (status, code.as_deref()),
            (403, Some("AccessDenied")),
            "{xml}"
        );
        assert!(xml.contains("expired"), "{xml}");
    }
}

#[tokio::test]
async fn stale_header_signatures_are_request_time_too_skewed() {
    let emu = start();
    let c = client();
    seeded(&emu, "bkt", "k", b"x");
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for signer in [v1(), v4()] {
        let s = sign_headers(
            &emu,
            &signer,
            &creds(),
            "GET",
            "bkt",
            Some("k"),
            &[],
            &[],
            hour_ago,
        );
        let (status, code, _) = error_of(send(&c, "GET", &s, None).await).await;
        assert_eq!(
            (status, code.as_deref()),
            (403, Some("RequestTimeTooSkewed"))
        );
    }
}

#[tokio::test]
async fn v4_for_another_region_is_refused() {
    let emu = start();
    let c = client();
    seeded(&emu, "bkt", "k", b"x");
    let signer = backend_oss::Signer::v4("cn-beijing").unwrap();
    let s = sign_headers(
        &emu,
        &signer,
        &creds(),
        "GET",
        "bkt",
        Some("k"),
        &[],
        &[],
        SystemTime::now(),
    );
    let (status, code, _) = error_of(send(&c, "GET", &s, None).await).await;
    assert_eq!((status, code.as_deref()), (400, Some("InvalidArgument")));
}

#[tokio::test]
async fn anonymous_reads_need_anonymous_mode_or_a_public_bucket() {
    let c = client();
    let strict = start();
    seeded(&strict, "bkt", "k", b"public?");
    let r = c
        .get(url(&strict, "bkt", Some("k"), &[]))
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_of(r).await;
    assert_eq!((status, code.as_deref()), (403, Some("AccessDenied")));
    strict.set_public_read("bkt", true).unwrap();
    let r = c
        .get(url(&strict, "bkt", Some("k"), &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), &b"public?"[..]);

    let open = Emulator::start(config().anonymous_read(true)).unwrap();
    seeded(&open, "bkt", "k", b"anyone");
    let r = c
        .get(url(&open, "bkt", Some("k"), &[]))
        .header("range", "bytes=1-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), &b"nyo"[..]);
    assert_eq!(open.request_log()[0].auth, AuthMethod::Anonymous);
    // Writes still need a signature.
    let r = c
        .put(url(&open, "bkt", Some("w"), &[]))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1.as_deref(), Some("AccessDenied"));
    let r = c
        .put(url(&open, "new-bucket", None, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

// ---------------------------------------------------------------------------------------------
// Secrets never logged

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs a process-wide TRACE subscriber writing into a buffer (once per test binary).
fn capture_logs() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let cap = Captured::default();
            let writer = cap.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .init();
            cap
        })
        .clone()
}

#[tokio::test]
async fn secrets_and_tokens_never_appear_in_trace_logs() {
    let logs = capture_logs();
    let emu = start();
    let c = client();
    seeded(&emu, "bkt", "k", b"x");
    let now = SystemTime::now();
    for signer in [v1(), v4()] {
        for cr in [
            creds(),
            sts_creds(),
            Credentials::new(AK, "wrong"),
            Credentials::new(STS_AK, STS_SK).with_security_token("bad-token-value"),
        ] {
            let s = sign_headers(&emu, &signer, &cr, "GET", "bkt", Some("k"), &[], &[], now);
            send(&c, "GET", &s, None).await;
            let url = presign(
                &emu,
                &signer,
                &cr,
                "GET",
                "bkt",
                "k",
                &[],
                now,
                Duration::from_secs(60),
            );
            c.get(&url).send().await.unwrap();
        }
    }
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        text.contains("request_id"),
        "the subscriber captured the emulator's logs"
    );
    for secret in [SK, STS_SK, STS_TOKEN, "bad-token-value"] {
        assert!(!text.contains(secret), "{secret:?} appears in the logs");
    }
    let dbg = format!("{:?}", config());
    assert!(
        !dbg.contains(SK) && !dbg.contains(STS_SK) && !dbg.contains(STS_TOKEN),
        "{dbg}"
    );
}

#[tokio::test]
async fn zero_byte_objects_have_the_empty_md5_and_crc_zero() {
    let emu = start();
    let c = client();
    seeded(&emu, "bkt", "empty", b"");
    let r = get(&emu, &c, "bkt", "empty", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "etag").as_deref(),
        Some("\"D41D8CD98F00B204E9800998ECF8427E\"")
    );
    assert_eq!(header(&r, "x-oss-hash-crc64ecma").as_deref(), Some("0"));
    assert_eq!(header(&r, "content-length").as_deref(), Some("0"));
    assert!(r.bytes().await.unwrap().is_empty());
    // Legacy: any range on an empty object is ignored; standard: nothing is satisfiable.
    let r = get(&emu, &c, "bkt", "empty", &[("range", "bytes=0-")]).await;
    assert_eq!(r.status(), 200);
    let r = get(
        &emu,
        &c,
        "bkt",
        "empty",
        &[("range", "bytes=0-"), ("x-oss-range-behavior", "standard")],
    )
    .await;
    assert_eq!(error_of(r).await.0, 416);
}

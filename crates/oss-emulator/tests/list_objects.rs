//! ListObjects (V1) and ListObjectsV2 at the HTTP level: the XML OSS sends, pagination by
//! marker and continuation token, delimiters, URL encoding, limits, errors and signatures.
//! The official SDKs' iterators over the same API are in `interop.rs`.

mod common;

use std::time::SystemTime;

use common::*;
use oss_emulator::Emulator;

fn seed(emu: &Emulator, bucket: &str, keys: &[&str]) {
    emu.create_bucket(bucket).unwrap();
    for (i, k) in keys.iter().enumerate() {
        emu.put_object(bucket, k, bytes(i as u64, i + 1)).unwrap();
    }
}

async fn list(emu: &Emulator, bucket: &str, query: &[(&str, &str)]) -> (u16, String) {
    let r = signed_request(emu, &client(), "GET", bucket, None, query, &[], None).await;
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// Every `<tag>…</tag>` text in document order.
fn all<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let j = after.find(&close).expect("closed tag");
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

fn one<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let v = all(xml, tag);
    assert!(v.len() <= 1, "{tag} appears {} times in {xml}", v.len());
    v.first().copied()
}

const KEYS: [&str; 7] = [
    "p/a",
    "p/b c+d%é",
    "p/dir/x",
    "p/dir/y",
    "p/folder/",
    "p/z",
    "q/outside",
];

#[tokio::test]
async fn v2_pages_by_continuation_token_with_the_xml_oss_sends() {
    let emu = start();
    seed(&emu, "bkt", &KEYS);
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q = vec![
            ("list-type", "2"),
            ("prefix", "p/"),
            ("max-keys", "2"),
            ("encoding-type", "url"),
        ];
        if let Some(t) = &token {
            q.push(("continuation-token", t));
        }
        let (status, xml) = list(&emu, "bkt", &q).await;
        assert_eq!(status, 200, "{xml}");
        pages += 1;
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult>"));
        assert_eq!(one(&xml, "Name"), Some("bkt"));
        assert_eq!(one(&xml, "Prefix"), Some("p/"));
        assert_eq!(one(&xml, "MaxKeys"), Some("2"));
        assert_eq!(one(&xml, "EncodingType"), Some("url"));
        assert_eq!(one(&xml, "ContinuationToken"), token.as_deref());
        let listed = all(&xml, "Key");
        assert_eq!(
            one(&xml, "KeyCount"),
            Some(listed.len().to_string().as_str())
        );
        assert!(
            one(&xml, "Owner").is_none(),
            "owner without fetch-owner: {xml}"
        );
        for c in all(&xml, "Contents") {
            let etag = one(c, "ETag").unwrap();
            assert!(
                etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34,
                "{c}"
            );
            assert_eq!(etag, etag.to_ascii_uppercase());
            let lm = one(c, "LastModified").unwrap();
            assert!(
                lm.len() == 24 && lm.ends_with(".000Z") && lm.as_bytes()[10] == b'T',
                "{lm}"
            );
            assert_eq!(one(c, "Type"), Some("Normal"));
            assert_eq!(one(c, "StorageClass"), Some("Standard"));
            assert!(one(c, "Size").unwrap().parse::<u64>().is_ok());
        }
        keys.extend(listed.iter().map(|k| k.to_string()));
        let truncated = one(&xml, "IsTruncated").unwrap();
        match one(&xml, "NextContinuationToken") {
            Some(t) => {
                assert_eq!(truncated, "true");
                token = Some(t.to_owned());
            }
            None => {
                assert_eq!(truncated, "false");
                break;
            }
        }
        assert!(pages < 10, "never ends");
    }
    assert_eq!(pages, 3);
    // URL-encoded as UTF-8 bytes; '/' kept.
    assert_eq!(
        keys,
        [
            "p/a",
            "p/b%20c%2Bd%25%C3%A9",
            "p/dir/x",
            "p/dir/y",
            "p/folder/",
            "p/z"
        ]
    );

    // fetch-owner, start-after, and no encoding: keys as XML text.
    let (_, xml) = list(
        &emu,
        "bkt",
        &[
            ("list-type", "2"),
            ("start-after", "p/a"),
            ("max-keys", "1"),
            ("fetch-owner", "true"),
        ],
    )
    .await;
    assert_eq!(one(&xml, "StartAfter"), Some("p/a"));
    assert_eq!(all(&xml, "Key"), ["p/b c+d%é"]);
    assert!(xml.contains("<Owner><ID>"), "{xml}");
    assert!(one(&xml, "EncodingType").is_none());
}

#[tokio::test]
async fn v1_pages_by_marker_and_rolls_up_common_prefixes() {
    let emu = start();
    seed(&emu, "bkt", &KEYS);
    let (status, xml) = list(
        &emu,
        "bkt",
        &[("prefix", "p/"), ("delimiter", "/"), ("max-keys", "3")],
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    // p/a, p/b c+d%é, then p/dir/ (one entry for two keys): three entries.
    assert_eq!(all(&xml, "Key"), ["p/a", "p/b c+d%é"]);
    assert_eq!(all(&xml, "Prefix")[1..], ["p/dir/"]);
    assert_eq!(one(&xml, "IsTruncated"), Some("true"));
    assert_eq!(one(&xml, "NextMarker"), Some("p/dir/"));
    assert_eq!(one(&xml, "Marker"), Some(""));
    assert_eq!(one(&xml, "Delimiter"), Some("/"));
    assert!(one(&xml, "KeyCount").is_none(), "V1 has no KeyCount");
    assert!(xml.contains("<Owner><ID>"), "V1 lists owners: {xml}");

    let (_, xml) = list(
        &emu,
        "bkt",
        &[
            ("prefix", "p/"),
            ("delimiter", "/"),
            ("max-keys", "3"),
            ("marker", "p/dir/"),
        ],
    )
    .await;
    // The rolled-up prefix is not repeated; the folder marker is a prefix of its own.
    assert_eq!(all(&xml, "Key"), ["p/z"]);
    assert_eq!(all(&xml, "Prefix")[1..], ["p/folder/"]);
    assert_eq!(one(&xml, "IsTruncated"), Some("false"));
    assert!(one(&xml, "NextMarker").is_none());
}

#[tokio::test]
async fn max_keys_is_capped_at_1000_and_bad_arguments_are_refused() {
    let emu = start();
    emu.create_bucket("many").unwrap();
    for i in 0..1005 {
        emu.put_object("many", &format!("k{i:05}"), b"").unwrap();
    }
    let (_, xml) = list(&emu, "many", &[("list-type", "2"), ("max-keys", "1000")]).await;
    assert_eq!(all(&xml, "Key").len(), 1000);
    assert_eq!(one(&xml, "KeyCount"), Some("1000"));
    let token = one(&xml, "NextContinuationToken").unwrap().to_owned();
    let (_, xml) = list(
        &emu,
        "many",
        &[
            ("list-type", "2"),
            ("max-keys", "1000"),
            ("continuation-token", &token),
        ],
    )
    .await;
    assert_eq!(
        all(&xml, "Key"),
        ["k01000", "k01001", "k01002", "k01003", "k01004"]
    );
    // The default is 100.
    let (_, xml) = list(&emu, "many", &[]).await;
    assert_eq!(all(&xml, "Key").len(), 100);

    for q in [
        vec![("max-keys", "1001")],
        vec![("max-keys", "0")],
        vec![("max-keys", "x")],
        vec![("list-type", "3")],
        vec![("encoding-type", "xml")],
        vec![("list-type", "2"), ("continuation-token", "not*a*token")],
    ] {
        let r = signed_request(&emu, &client(), "GET", "many", None, &q, &[], None).await;
        let (status, code, body) = error_of(r).await;
        assert_eq!(
            (status, code.as_deref()),
            (400, Some("InvalidArgument")),
            "{q:?}: {body}"
        );
    }
    let long = "x".repeat(1024);
    let r = signed_request(
        &emu,
        &client(),
        "GET",
        "many",
        None,
        &[("prefix", &long)],
        &[],
        None,
    )
    .await;
    assert_eq!(error_of(r).await.0, 400);

    let r = signed_request(
        &emu,
        &client(),
        "GET",
        "nope",
        None,
        &[("list-type", "2")],
        &[],
        None,
    )
    .await;
    let (status, code, _) = error_of(r).await;
    assert_eq!((status, code.as_deref()), (404, Some("NoSuchBucket")));
}

#[tokio::test]
async fn listing_is_signed_like_every_other_request() {
    let emu = start();
    seed(&emu, "bkt", &KEYS);
    let q = [
        ("list-type", "2"),
        ("prefix", "p/"),
        ("encoding-type", "url"),
    ];
    // V1 and V4 signatures are both accepted.
    for signer in [v1(), v4()] {
        let s = sign_headers(
            &emu,
            &signer,
            &creds(),
            "GET",
            "bkt",
            None,
            &q,
            &[],
            SystemTime::now(),
        );
        let r = send(&client(), "GET", &s, None).await;
        assert_eq!(r.status(), 200);
    }
    // No signature on a private bucket, or a secret that is not the key's: 403.
    let r = client()
        .get(url(&emu, "bkt", None, &pairs(&q)))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 403);
    let wrong = backend_oss::Credentials::new(AK, "not-the-secret");
    let s = sign_headers(
        &emu,
        &v4(),
        &wrong,
        "GET",
        "bkt",
        None,
        &q,
        &[],
        SystemTime::now(),
    );
    let (status, code, _) = error_of(send(&client(), "GET", &s, None).await).await;
    assert_eq!(
        (status, code.as_deref()),
        (403, Some("SignatureDoesNotMatch"))
    );
}

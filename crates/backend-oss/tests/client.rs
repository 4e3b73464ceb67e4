//! Client and bucket configuration: URL building per addressing style, identity, builder and
//! option validation. Nothing here sends a request.

use std::time::Duration;

use backend_oss::{
    AddressingStyle, Client, Error, ReadOptions, SignError, SignatureVersion, TRAFFIC_LIMIT_MAX,
    TRAFFIC_LIMIT_MIN,
};
use resume_core::RangeSource;

fn client(endpoint: &str) -> Client {
    Client::new(endpoint, "ak", "sk").unwrap()
}

#[test]
fn a_standard_endpoint_gives_virtual_hosted_urls_v4_and_its_region() {
    let c = client("https://oss-cn-hangzhou.aliyuncs.com");
    assert_eq!(c.signature_version(), SignatureVersion::V4);
    assert_eq!(c.endpoint().region(), Some("cn-hangzhou"));
    let b = c.bucket("my-bucket").unwrap();
    assert_eq!(
        b.object_url("abc/efg/123 +.jpg").unwrap(),
        "https://my-bucket.oss-cn-hangzhou.aliyuncs.com/abc/efg/123%20%2B.jpg"
    );
}

#[test]
fn ip_and_localhost_endpoints_use_path_style_and_virtual_hosting_can_be_forced_for_names() {
    let b = Client::builder()
        .endpoint("http://127.0.0.1:9000")
        .region("cn-hangzhou")
        .credentials("ak", "sk")
        .build()
        .unwrap()
        .bucket("bkt")
        .unwrap();
    assert_eq!(
        b.object_url("a/b").unwrap(),
        "http://127.0.0.1:9000/bkt/a/b"
    );

    let b = Client::builder()
        .endpoint("http://localhost:9000")
        .region("cn-hangzhou")
        .addressing_style(AddressingStyle::VirtualHosted)
        .credentials("ak", "sk")
        .build()
        .unwrap()
        .bucket("bkt")
        .unwrap();
    assert_eq!(
        b.object_url("a/b").unwrap(),
        "http://bkt.localhost:9000/a/b"
    );

    let err = Client::builder()
        .endpoint("http://127.0.0.1:9000")
        .region("cn-hangzhou")
        .addressing_style(AddressingStyle::VirtualHosted)
        .credentials("ak", "sk")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[test]
fn a_cname_endpoint_addresses_its_one_bucket_by_host() {
    let b = Client::builder()
        .endpoint("https://static.example.com")
        .cname(true)
        .region("cn-shanghai")
        .credentials("ak", "sk")
        .build()
        .unwrap()
        .bucket("site-bucket")
        .unwrap();
    assert_eq!(
        b.object_url("img/1.png").unwrap(),
        "https://static.example.com/img/1.png"
    );
}

#[test]
fn identity_names_bucket_and_endpoint_never_credentials() {
    let b = Client::new("https://oss-cn-hangzhou.aliyuncs.com", "AKID", "SECRET")
        .unwrap()
        .bucket("b-1")
        .unwrap();
    assert_eq!(b.identity(), "oss://b-1@oss-cn-hangzhou.aliyuncs.com");
    let b = Client::builder()
        .endpoint("http://127.0.0.1:9000")
        .signature_version(SignatureVersion::V1)
        .credentials("AKID", "SECRET")
        .build()
        .unwrap()
        .bucket("b-2")
        .unwrap();
    assert_eq!(b.identity(), "oss://b-2@127.0.0.1:9000");
}

#[test]
fn v4_on_an_endpoint_without_region_asks_for_one_and_v1_needs_none() {
    let err = Client::new("http://127.0.0.1:9000", "ak", "sk").unwrap_err();
    assert!(
        matches!(err, Error::Sign(SignError::MissingRegion)),
        "{err}"
    );
    assert!(err.to_string().contains("region"), "{err}");
    Client::builder()
        .endpoint("http://127.0.0.1:9000")
        .signature_version(SignatureVersion::V1)
        .credentials("ak", "sk")
        .build()
        .unwrap();
}

#[test]
fn builder_refuses_missing_endpoint_or_credentials_and_zero_timeouts() {
    let err = Client::builder()
        .credentials("ak", "sk")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("endpoint"), "{err}");
    let err = Client::builder()
        .endpoint("https://oss-cn-hangzhou.aliyuncs.com")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("credentials"), "{err}");
    let err = Client::builder()
        .endpoint("https://oss-cn-hangzhou.aliyuncs.com")
        .credentials("ak", "sk")
        .connect_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("timeout"), "{err}");
}

#[test]
fn bad_bucket_names_are_refused() {
    let c = client("https://oss-cn-hangzhou.aliyuncs.com");
    for bad in ["", "ab", "Upper", "a_b", "-ab", "ab-"] {
        assert!(c.bucket(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn read_options_are_validated() {
    let b = client("https://oss-cn-hangzhou.aliyuncs.com")
        .bucket("bkt")
        .unwrap();
    let with = |o: ReadOptions| b.with_options(o);
    for limit in [TRAFFIC_LIMIT_MIN, TRAFFIC_LIMIT_MAX] {
        with(ReadOptions {
            traffic_limit: Some(limit),
            ..Default::default()
        })
        .unwrap();
    }
    for limit in [TRAFFIC_LIMIT_MIN - 1, TRAFFIC_LIMIT_MAX + 1] {
        let err = with(ReadOptions {
            traffic_limit: Some(limit),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("819200"), "{err}");
    }
    for name in [
        "Authorization",
        "range",
        "If-Match",
        "x-oss-date",
        "X-Oss-Security-Token",
        "accept-encoding",
        "bad name",
    ] {
        let err = with(ReadOptions {
            headers: vec![(name.into(), "v".into())],
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{name}: {err}");
    }
    let err = with(ReadOptions {
        headers: vec![("x-oss-meta-a".into(), "line\nbreak".into())],
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        !err.to_string().contains("line"),
        "values are not echoed: {err}"
    );
    with(ReadOptions {
        version_id: Some(String::new()),
        ..Default::default()
    })
    .unwrap_err();
    let ok = with(ReadOptions {
        version_id: Some("v".into()),
        request_payer: true,
        headers: vec![("x-oss-meta-a".into(), "b".into())],
        ..Default::default()
    })
    .unwrap();
    assert!(ok.options().request_payer);
    assert!(
        !b.options().request_payer,
        "the original bucket is unchanged"
    );
}

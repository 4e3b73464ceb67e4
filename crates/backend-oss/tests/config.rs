//! Endpoint parsing, addressing styles, region derivation and URL building.

use backend_oss::config::{region_from_host, validate_bucket, validate_key};
use backend_oss::{
    AddressingStyle, ConfigError, Endpoint, Scheme, SignError, SignatureVersion, Signer,
};

#[test]
fn standard_endpoint_is_https_virtual_hosted_with_derived_region() {
    let e = Endpoint::parse("oss-cn-hangzhou.aliyuncs.com").unwrap();
    assert_eq!(e.scheme(), Scheme::Https);
    assert_eq!(e.style(), AddressingStyle::VirtualHosted);
    assert_eq!(e.region(), Some("cn-hangzhou"));
    assert_eq!(e.port(), None);
    assert_eq!(e.to_string(), "https://oss-cn-hangzhou.aliyuncs.com");
    assert_eq!(
        e.object_url("examplebucket", "abc/efg/123.jpg").unwrap(),
        "https://examplebucket.oss-cn-hangzhou.aliyuncs.com/abc/efg/123.jpg"
    );
    assert_eq!(
        e.bucket_url("examplebucket").unwrap(),
        "https://examplebucket.oss-cn-hangzhou.aliyuncs.com/"
    );
    assert_eq!(
        e.bucket_host("examplebucket").unwrap(),
        "examplebucket.oss-cn-hangzhou.aliyuncs.com"
    );
    assert_eq!(e.object_path("examplebucket", "a b").unwrap(), "/a%20b");
}

#[test]
fn http_scheme_case_and_trailing_slash_are_accepted() {
    let e = Endpoint::parse(" HTTP://OSS-CN-Shanghai-Internal.Aliyuncs.com/ ").unwrap();
    assert_eq!(e.scheme(), Scheme::Http);
    assert_eq!(e.host(), "oss-cn-shanghai-internal.aliyuncs.com");
    assert_eq!(e.region(), Some("cn-shanghai"));
    assert_eq!(
        e.object_url("b-1", "k").unwrap(),
        "http://b-1.oss-cn-shanghai-internal.aliyuncs.com/k"
    );
}

#[test]
fn region_is_derived_from_standard_hosts_only() {
    let cases = [
        ("oss-cn-hangzhou.aliyuncs.com", Some("cn-hangzhou")),
        ("oss-cn-hangzhou-internal.aliyuncs.com", Some("cn-hangzhou")),
        ("oss-us-west-1.aliyuncs.com", Some("us-west-1")),
        (
            "oss-cn-shanghai-finance-1-internal.aliyuncs.com",
            Some("cn-shanghai-finance-1"),
        ),
        ("cn-hangzhou.oss.aliyuncs.com", Some("cn-hangzhou")),
        ("oss-accelerate.aliyuncs.com", None),
        ("oss-accelerate-overseas.aliyuncs.com", None),
        ("oss-rg-china-mainland.aliyuncs.com", None),
        ("bucket.oss-cn-hangzhou.aliyuncs.com.evil.example", None),
        ("ecs.aliyuncs.com", None),
        ("oss-.aliyuncs.com", None),
        ("example.com", None),
        ("127.0.0.1", None),
    ];
    for (host, region) in cases {
        assert_eq!(region_from_host(host).as_deref(), region, "{host}");
    }
}

#[test]
fn global_endpoint_needs_an_explicit_region_for_v4() {
    let e = Endpoint::parse("https://oss-accelerate.aliyuncs.com").unwrap();
    assert_eq!(e.region(), None);
    assert_eq!(
        Signer::for_endpoint(SignatureVersion::V4, &e),
        Err(SignError::MissingRegion)
    );
    assert_eq!(
        Signer::for_endpoint(SignatureVersion::V1, &e),
        Ok(Signer::v1())
    );
    let e = e.with_region("cn-hangzhou").unwrap();
    let s = Signer::for_endpoint(SignatureVersion::V4, &e).unwrap();
    assert_eq!(s.region(), Some("cn-hangzhou"));
    assert_eq!(s.version(), SignatureVersion::V4);
}

#[test]
fn explicit_region_overrides_derived_and_rejects_the_oss_prefix() {
    let e = Endpoint::parse("oss-cn-hangzhou.aliyuncs.com").unwrap();
    assert_eq!(
        e.clone().with_region("cn-beijing").unwrap().region(),
        Some("cn-beijing")
    );
    for bad in [
        "",
        "oss-cn-hangzhou",
        "CN-HANGZHOU",
        "cn hangzhou",
        "-cn",
        "cn-",
    ] {
        assert!(
            matches!(
                e.clone().with_region(bad),
                Err(ConfigError::InvalidRegion { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        Signer::v4("oss-cn-hangzhou"),
        Err(SignError::InvalidRegion(_))
    ));
    assert!(matches!(Signer::v4(""), Err(SignError::InvalidRegion(_))));
}

#[test]
fn ip_localhost_and_custom_hosts_default_to_path_style() {
    let cases = [
        (
            "http://127.0.0.1:9000",
            "http://127.0.0.1:9000/bucket/k%2B1",
        ),
        (
            "http://localhost:8080",
            "http://localhost:8080/bucket/k%2B1",
        ),
        ("http://[::1]:9000", "http://[::1]:9000/bucket/k%2B1"),
        (
            "https://oss.internal.example.com",
            "https://oss.internal.example.com/bucket/k%2B1",
        ),
        ("http://api.localhost", "http://api.localhost/bucket/k%2B1"),
    ];
    for (endpoint, url) in cases {
        let e = Endpoint::parse(endpoint).unwrap();
        assert_eq!(e.style(), AddressingStyle::Path, "{endpoint}");
        assert_eq!(e.object_url("bucket", "k+1").unwrap(), url);
        assert_eq!(
            e.bucket_url("bucket").unwrap(),
            format!("{endpoint}/bucket/")
        );
        assert_eq!(e.bucket_host("bucket").unwrap(), e.authority());
        assert_eq!(e.region(), None);
    }
}

#[test]
fn path_style_can_be_forced_on_a_standard_endpoint() {
    let e = Endpoint::parse("https://oss-cn-hangzhou.aliyuncs.com")
        .unwrap()
        .with_style(AddressingStyle::Path)
        .unwrap();
    assert_eq!(
        e.object_url("bucket", "/k").unwrap(),
        "https://oss-cn-hangzhou.aliyuncs.com/bucket//k"
    );
    assert_eq!(e.region(), Some("cn-hangzhou"));
}

#[test]
fn virtual_hosted_style_can_be_forced_on_a_custom_dns_host_but_not_an_ip() {
    let e = Endpoint::parse("http://s3like.example:9000")
        .unwrap()
        .with_style(AddressingStyle::VirtualHosted)
        .unwrap();
    assert_eq!(
        e.object_url("bucket", "k").unwrap(),
        "http://bucket.s3like.example:9000/k"
    );
    for ip in ["http://127.0.0.1", "http://[::1]:1"] {
        let err = Endpoint::parse(ip)
            .unwrap()
            .with_style(AddressingStyle::VirtualHosted)
            .unwrap_err();
        assert!(err.to_string().contains("path style"), "{err}");
    }
}

#[test]
fn cname_maps_the_domain_to_one_bucket() {
    let e = Endpoint::parse("https://static.example.com")
        .unwrap()
        .with_style(AddressingStyle::Cname)
        .unwrap();
    assert_eq!(
        e.object_url("examplebucket", "img/a b.png").unwrap(),
        "https://static.example.com/img/a%20b.png"
    );
    assert_eq!(
        e.bucket_host("examplebucket").unwrap(),
        "static.example.com"
    );
    assert_eq!(
        e.bucket_url("examplebucket").unwrap(),
        "https://static.example.com/"
    );
    assert_eq!(e.object_path("examplebucket", "//k").unwrap(), "///k");
}

#[test]
fn leading_and_double_slashes_in_keys_are_preserved_in_urls() {
    let e = Endpoint::parse("oss-cn-hangzhou.aliyuncs.com").unwrap();
    assert_eq!(
        e.object_url("b12", "/a").unwrap(),
        "https://b12.oss-cn-hangzhou.aliyuncs.com//a"
    );
    assert_eq!(
        e.object_url("b12", "//a//b/").unwrap(),
        "https://b12.oss-cn-hangzhou.aliyuncs.com///a//b/"
    );
}

#[test]
fn malformed_endpoints_are_rejected_with_a_reason() {
    let cases = [
        ("", "empty"),
        ("   ", "empty"),
        ("ftp://oss-cn-hangzhou.aliyuncs.com", "scheme"),
        ("https://oss-cn-hangzhou.aliyuncs.com/bucket", "path"),
        ("https://host?x=1", "path"),
        ("https://", "host is empty"),
        ("https://:80", "host is empty"),
        ("host:0", "port"),
        ("host:99999", "port"),
        ("host:abc", "port"),
        ("host:+80", "port"),
        ("[::1", "IPv6"),
        ("[::1]x", "IPv6"),
        ("[zz::1]", "IPv6"),
        ("bad_host", "DNS name"),
        ("a..b", "DNS name"),
        ("-a.com", "DNS name"),
    ];
    for (input, reason) in cases {
        let err = Endpoint::parse(input).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ConfigError::InvalidEndpoint { .. }),
            "{input:?}: {msg}"
        );
        assert!(msg.contains(reason), "{input:?}: {msg}");
    }
}

#[test]
fn endpoint_with_user_info_is_rejected_without_echoing_it() {
    for input in [
        "https://AKID:SuperSecret@oss-cn-hangzhou.aliyuncs.com",
        "https://AKID:Super/Secret@oss-cn-hangzhou.aliyuncs.com",
        "AKID:SuperSecret@host",
    ] {
        let err = Endpoint::parse(input).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("SuperSecret"), "{text}");
        assert!(!text.contains("Secret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}

#[test]
fn bucket_names_follow_oss_rules() {
    for ok in ["abc", "a-b-c", "0bucket9", &"a".repeat(63)] {
        assert!(validate_bucket(ok).is_ok(), "{ok}");
    }
    for bad in [
        "ab",
        "Bucket",
        "-abc",
        "abc-",
        "a_b",
        "a.b",
        &"a".repeat(64),
        "",
    ] {
        let err = validate_bucket(bad).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidBucket { .. }), "{bad}");
    }
    let e = Endpoint::parse("oss-cn-hangzhou.aliyuncs.com").unwrap();
    assert!(e.object_url("Bad_Bucket", "k").is_err());
}

#[test]
fn keys_are_validated_for_length_and_dot_segments() {
    for ok in [
        "k",
        "...",
        "a..b",
        ".hidden",
        "a/.b",
        "/",
        "//",
        &"x".repeat(1023),
        "中",
    ] {
        assert!(validate_key(ok).is_ok(), "{ok:?}");
    }
    for bad in [
        "",
        ".",
        "..",
        "a/../b",
        "./a",
        "a/.",
        "a/./b",
        &"x".repeat(1024),
    ] {
        let err = validate_key(bad).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidKey { .. }), "{bad:?}");
    }
    // 1023 bytes counts bytes, not characters: 341 three-byte characters = 1023 bytes.
    assert!(validate_key(&"中".repeat(341)).is_ok());
    assert!(validate_key(&"中".repeat(342)).is_err());
}

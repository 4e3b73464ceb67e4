//! Awkward object keys and query values: URLs encode them, signatures cover them as OSS
//! specifies, and a server that decodes the URL recomputes the same signature.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backend_oss::encode::{decode_path, encode_query, parse_query};
use backend_oss::sign::{
    SignableRequest, Signer, canonical_query_v4, canonical_request_v4, canonical_resource_v1,
    canonical_uri_v4, signature_v1, signature_v4, string_to_sign_v1, string_to_sign_v4,
};
use backend_oss::{Credentials, Endpoint};

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// (key, V4 canonical URI for bucket `bucket`, URL path in virtual-hosted style)
const KEYS: &[(&str, &str, &str)] = &[
    ("a b", "/bucket/a%20b", "/a%20b"),
    ("a+b", "/bucket/a%2Bb", "/a%2Bb"),
    ("100%", "/bucket/100%25", "/100%25"),
    ("100%25", "/bucket/100%2525", "/100%2525"),
    (
        "中文/é.txt",
        "/bucket/%E4%B8%AD%E6%96%87/%C3%A9.txt",
        "/%E4%B8%AD%E6%96%87/%C3%A9.txt",
    ),
    ("a//b", "/bucket/a//b", "/a//b"),
    ("/leading", "/bucket//leading", "//leading"),
    ("//double", "/bucket///double", "///double"),
    ("trailing/", "/bucket/trailing/", "/trailing/"),
    ("~-._", "/bucket/~-._", "/~-._"),
    (
        "?#&=;:@!$'()*,[]",
        "/bucket/%3F%23%26%3D%3B%3A%40%21%24%27%28%29%2A%2C%5B%5D",
        "/%3F%23%26%3D%3B%3A%40%21%24%27%28%29%2A%2C%5B%5D",
    ),
    ("back\\slash", "/bucket/back%5Cslash", "/back%5Cslash"),
    ("tab\tnl\n", "/bucket/tab%09nl%0A", "/tab%09nl%0A"),
    ("emoji😀", "/bucket/emoji%F0%9F%98%80", "/emoji%F0%9F%98%80"),
];

#[test]
fn v4_canonical_uri_encodes_awkward_keys_exactly() {
    for (key, uri, _) in KEYS {
        assert_eq!(canonical_uri_v4(Some("bucket"), Some(key)), *uri, "{key:?}");
    }
    assert_eq!(canonical_uri_v4(Some("bucket"), None), "/bucket/");
    assert_eq!(canonical_uri_v4(None, None), "/");
}

#[test]
fn v1_canonical_resource_keeps_awkward_keys_raw() {
    for (key, _, _) in KEYS {
        let req = SignableRequest::new("GET", Some("bucket"), Some(key));
        assert_eq!(canonical_resource_v1(&req), format!("/bucket/{key}"));
    }
}

#[test]
fn urls_encode_awkward_keys_without_collapsing_slashes() {
    let virt = Endpoint::parse("https://oss-cn-hangzhou.aliyuncs.com").unwrap();
    let path = Endpoint::parse("http://127.0.0.1:9000").unwrap();
    for (key, _, url_path) in KEYS {
        assert_eq!(
            virt.object_url("bucket", key).unwrap(),
            format!("https://bucket.oss-cn-hangzhou.aliyuncs.com{url_path}"),
            "{key:?}"
        );
        assert_eq!(
            path.object_url("bucket", key).unwrap(),
            format!("http://127.0.0.1:9000/bucket{url_path}"),
            "{key:?}"
        );
    }
}

#[test]
fn server_decoding_the_url_path_recovers_the_key_and_the_signature() {
    let endpoint = Endpoint::parse("http://127.0.0.1:9000")
        .unwrap()
        .with_region("cn-hangzhou")
        .unwrap();
    let creds = Credentials::new("ak", "sk").with_security_token("tok");
    let time = at(1_702_743_657);
    for (key, _, _) in KEYS {
        let path = endpoint.object_path("bucket", key).unwrap();
        // Server side: strip `/bucket/`, percent-decode.
        let decoded = decode_path(path.strip_prefix("/bucket/").unwrap());
        assert_eq!(decoded, *key);

        for signer in [
            Signer::v1(),
            Signer::for_endpoint(backend_oss::SignatureVersion::V4, &endpoint).unwrap(),
        ] {
            let req = SignableRequest::new("GET", Some("bucket"), Some(key));
            let signed = signer.sign_headers(&creds, &req, time).unwrap();
            let headers = signed.clone().into_vec();
            let server =
                SignableRequest::new("GET", Some("bucket"), Some(&decoded)).headers(&headers);
            let recomputed = match signer.version() {
                backend_oss::SignatureVersion::V1 => {
                    let date = signed.get("date").unwrap();
                    format!(
                        "OSS ak:{}",
                        signature_v1("sk", &string_to_sign_v1(&server, date))
                    )
                }
                backend_oss::SignatureVersion::V4 => {
                    let dt = signed.get("x-oss-date").unwrap();
                    let scope = format!("{}/cn-hangzhou/oss/aliyun_v4_request", &dt[..8]);
                    let sts = string_to_sign_v4(dt, &scope, &canonical_request_v4(&server));
                    format!(
                        "OSS4-HMAC-SHA256 Credential=ak/{scope},Signature={}",
                        signature_v4("sk", &dt[..8], "cn-hangzhou", "oss", &sts)
                    )
                }
            };
            assert_eq!(recomputed, signed.authorization(), "{key:?}");
        }
    }
}

#[test]
fn v4_canonical_query_encodes_reserved_characters_in_keys_and_values() {
    let query = pairs(&[
        ("versionId", "CAEQ+/=="),
        (
            "response-content-disposition",
            "attachment; filename=\"a b.txt\"",
        ),
        ("x-oss-process", "image/resize,w_100"),
        ("k&=", "v&=?#"),
        ("中", "文 %"),
        ("acl", ""),
    ]);
    assert_eq!(
        canonical_query_v4(&query),
        "%E4%B8%AD=%E6%96%87%20%25&acl&k%26%3D=v%26%3D%3F%23&response-content-disposition=attachment%3B%20filename%3D%22a%20b.txt%22&versionId=CAEQ%2B%2F%3D%3D&x-oss-process=image%2Fresize%2Cw_100"
    );
}

#[test]
fn v1_resource_signs_decoded_query_values_and_only_sub_resources() {
    let query = pairs(&[
        ("versionId", "CAEQ+/=="),
        (
            "response-content-disposition",
            "attachment; filename=\"a b.txt\"",
        ),
        ("x-oss-process", "image/resize,w_100"),
        ("x-oss-traffic-limit", "819200"),
        ("prefix", "not-signed"),
        ("Expires", "1"),
        ("OSSAccessKeyId", "ak"),
        ("Signature", "sig"),
    ]);
    let req = SignableRequest::new("GET", Some("bucket"), Some("k")).query(&query);
    assert_eq!(
        canonical_resource_v1(&req),
        "/bucket/k?response-content-disposition=attachment; filename=\"a b.txt\"&versionId=CAEQ+/==&x-oss-process=image/resize,w_100&x-oss-traffic-limit=819200"
    );
}

#[test]
fn presigned_urls_with_reserved_query_values_verify_after_a_round_trip() {
    let query = pairs(&[
        ("versionId", "CAEQ+/== &x"),
        ("response-content-type", "text/plain; charset=utf-8"),
    ]);
    let key = "dir/a b+c%.txt";
    let creds = Credentials::new("ak", "sk").with_security_token("t+o/k=en");
    let time = at(1_702_781_677);
    for signer in [Signer::v1(), Signer::v4("cn-hangzhou").unwrap()] {
        let req = SignableRequest::new("GET", Some("bucket"), Some(key)).query(&query);
        let presigned = signer
            .presign(&creds, &req, time, Duration::from_secs(600))
            .unwrap();
        let raw = presigned.to_query_string();
        let incoming = parse_query(&raw);
        assert_eq!(incoming.as_slice(), presigned.pairs());
        let server = SignableRequest::new("GET", Some("bucket"), Some(key)).query(&incoming);
        match signer.version() {
            backend_oss::SignatureVersion::V1 => {
                let expires = presigned.get("Expires").unwrap();
                assert_eq!(expires, "1702782277");
                let sts = string_to_sign_v1(&server, expires);
                assert_eq!(sts, presigned.string_to_sign());
                assert!(sts.ends_with(
                    "/bucket/dir/a b+c%.txt?response-content-type=text/plain; charset=utf-8&security-token=t+o/k=en&versionId=CAEQ+/== &x"
                ));
                assert_eq!(
                    signature_v1("sk", &sts),
                    presigned.get("Signature").unwrap()
                );
            }
            backend_oss::SignatureVersion::V4 => {
                let canonical = canonical_request_v4(&server);
                assert_eq!(Some(canonical.as_str()), presigned.canonical_request());
                assert!(canonical.starts_with("GET\n/bucket/dir/a%20b%2Bc%25.txt\nresponse-content-type=text%2Fplain%3B%20charset%3Dutf-8&versionId=CAEQ%2B%2F%3D%3D%20%26x&x-oss-credential=ak%2F20231217%2Fcn-hangzhou%2Foss%2Faliyun_v4_request&x-oss-date=20231217T025437Z&x-oss-expires=600&x-oss-security-token=t%2Bo%2Fk%3Den&x-oss-signature-version=OSS4-HMAC-SHA256\n"));
            }
        }
    }
}

#[test]
fn v4_multi_valued_and_padded_headers_are_trimmed_and_joined() {
    let headers = pairs(&[
        ("X-Oss-Meta-A", "  one "),
        ("x-oss-meta-a", "two"),
        ("Content-Type", " text/plain "),
        ("Range", "bytes=0-9"),
        ("Host", "bucket.example"),
    ]);
    let req = SignableRequest::new("get", Some("b"), Some("k")).headers(&headers);
    assert_eq!(
        canonical_request_v4(&req),
        "GET\n/b/k\n\ncontent-type:text/plain\nx-oss-meta-a:one,two\n\n\nUNSIGNED-PAYLOAD"
    );
}

#[test]
fn raw_query_helpers_round_trip() {
    let q = pairs(&[("a b", "c+d"), ("e", "")]);
    assert_eq!(encode_query(&q), "a%20b=c%2Bd&e");
    assert_eq!(parse_query("a%20b=c%2Bd&e"), q);
}

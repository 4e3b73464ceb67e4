//! Golden tests: every signing vector in `shared/OSS-FACTS.md` (the official SDKs' published
//! expected values and the documentation examples), plus a few more from the same SDK test
//! suite. Each test is named for what it proves.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backend_oss::credentials::Credentials;
use backend_oss::sign::{
    self, Authorization, SignableRequest, Signer, canonical_query_v4, canonical_request_v4,
    canonical_uri_v4, parse_authorization, signature_v1, signature_v4, string_to_sign_v1,
    string_to_sign_v4,
};

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// V1

/// Headers of the V1 vectors (`examplebucket`/`nelson`, PUT).
fn v1_put_headers() -> Vec<(String, String)> {
    pairs(&[
        ("Content-MD5", "eB5eJF1ptWaXm4bijSPyxw=="),
        ("Content-Type", "text/html"),
        ("x-oss-meta-author", "alice"),
        ("x-oss-meta-magic", "abracadabra"),
        ("x-oss-date", "Wed, 28 Dec 2022 10:27:41 GMT"),
    ])
}

const V1_TIME: u64 = 1_672_223_261; // Wed, 28 Dec 2022 10:27:41 GMT

#[test]
fn v1_header_signs_md5_type_date_sorted_oss_headers_and_unencoded_resource() {
    let headers = v1_put_headers();
    let req = SignableRequest::new("PUT", Some("examplebucket"), Some("nelson")).headers(&headers);
    let signed = Signer::v1()
        .sign_headers(&Credentials::new("ak", "sk"), &req, at(V1_TIME))
        .unwrap();
    assert_eq!(
        signed.string_to_sign(),
        "PUT\neB5eJF1ptWaXm4bijSPyxw==\ntext/html\nWed, 28 Dec 2022 10:27:41 GMT\nx-oss-date:Wed, 28 Dec 2022 10:27:41 GMT\nx-oss-meta-author:alice\nx-oss-meta-magic:abracadabra\n/examplebucket/nelson"
    );
    assert_eq!(
        signed.authorization(),
        "OSS ak:kSHKmLxlyEAKtZPkJhG9bZb5k7M="
    );
    assert_eq!(signed.get("date"), Some("Wed, 28 Dec 2022 10:27:41 GMT"));
    assert_eq!(signed.get("x-oss-security-token"), None);
}

#[test]
fn v1_header_signs_acl_sub_resource_as_bare_key() {
    let headers = v1_put_headers();
    let query = pairs(&[("acl", "")]);
    let req = SignableRequest::new("PUT", Some("examplebucket"), Some("nelson"))
        .headers(&headers)
        .query(&query);
    let signed = Signer::v1()
        .sign_headers(&Credentials::new("ak", "sk"), &req, at(V1_TIME))
        .unwrap();
    assert!(
        signed
            .string_to_sign()
            .ends_with("\n/examplebucket/nelson?acl")
    );
    assert_eq!(
        signed.authorization(),
        "OSS ak:/afkugFbmWDQ967j1vr6zygBLQk="
    );
}

#[test]
fn v1_header_ignores_unsigned_query_and_signs_requested_sub_resources() {
    // Extra vectors from the same SDK suite: `resourceGroup` named as a sub-resource,
    // `non-resousce` (sic) not signed, bucket-level resource `/examplebucket/`.
    let headers = pairs(&[("x-oss-date", "Wed, 28 Dec 2022 10:27:41 GMT")]);
    let extra = names(&["resourceGroup"]);
    let creds = Credentials::new("ak", "sk");

    let query = pairs(&[("resourceGroup", ""), ("non-resousce", "null")]);
    let req = SignableRequest::new("GET", Some("examplebucket"), None)
        .headers(&headers)
        .query(&query)
        .sub_resources(&extra);
    let signed = Signer::v1()
        .sign_headers(&creds, &req, at(V1_TIME))
        .unwrap();
    assert_eq!(
        signed.string_to_sign(),
        "GET\n\n\nWed, 28 Dec 2022 10:27:41 GMT\nx-oss-date:Wed, 28 Dec 2022 10:27:41 GMT\n/examplebucket/?resourceGroup"
    );
    assert_eq!(
        signed.authorization(),
        "OSS ak:vkQmfuUDyi1uDi3bKt67oemssIs="
    );

    let query = pairs(&[("resourceGroup", ""), ("acl", "")]);
    let req = SignableRequest::new("GET", Some("examplebucket"), None)
        .headers(&headers)
        .query(&query)
        .sub_resources(&extra);
    let signed = Signer::v1()
        .sign_headers(&creds, &req, at(V1_TIME))
        .unwrap();
    assert!(
        signed
            .string_to_sign()
            .ends_with("\n/examplebucket/?acl&resourceGroup")
    );
    assert_eq!(
        signed.authorization(),
        "OSS ak:x3E5TgOvl/i7PN618s5mEvpJDYk="
    );
}

#[test]
fn v1_presigned_uses_expires_as_date_and_signs_version_id() {
    let query = pairs(&[("versionId", "versionId")]);
    let req = SignableRequest::new("GET", Some("bucket"), Some("key")).query(&query);
    // Expires = signing time + lifetime = 1699807420.
    let presigned = Signer::v1()
        .presign(
            &Credentials::new("ak", "sk"),
            &req,
            at(1_699_807_420 - 900),
            Duration::from_secs(900),
        )
        .unwrap();
    assert_eq!(
        presigned.string_to_sign(),
        "GET\n\n\n1699807420\n/bucket/key?versionId=versionId"
    );
    assert_eq!(
        presigned.to_query_string(),
        "Expires=1699807420&OSSAccessKeyId=ak&Signature=dcLTea%2BYh9ApirQ8o8dOPqtvJXQ%3D&versionId=versionId"
    );
    assert_eq!(
        presigned.get("Signature"),
        Some("dcLTea+Yh9ApirQ8o8dOPqtvJXQ=")
    );
}

#[test]
fn v1_presigned_with_sts_signs_security_token_and_raw_plus_in_key() {
    let query = pairs(&[("versionId", "versionId")]);
    let req = SignableRequest::new("GET", Some("bucket"), Some("key+123")).query(&query);
    let creds = Credentials::new("ak", "sk").with_security_token("token");
    let presigned = Signer::v1()
        .presign(
            &creds,
            &req,
            at(1_699_808_204 - 60),
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(
        presigned.string_to_sign(),
        "GET\n\n\n1699808204\n/bucket/key+123?security-token=token&versionId=versionId"
    );
    assert_eq!(
        presigned.to_query_string(),
        "Expires=1699808204&OSSAccessKeyId=ak&Signature=jzKYRrM5y6Br0dRFPaTGOsbrDhY%3D&security-token=token&versionId=versionId"
    );
    // And the URL path encodes the `+` that the signature leaves raw.
    let endpoint = backend_oss::Endpoint::parse("http://oss-cn-hangzhou.aliyuncs.com").unwrap();
    assert_eq!(
        endpoint.object_url("bucket", "key+123").unwrap(),
        "http://bucket.oss-cn-hangzhou.aliyuncs.com/key%2B123"
    );
}

#[test]
fn v1_documentation_example_signature() {
    let sts = "PUT\nODBGOERFMDMzQTczRUY3NUE3NzA5QzdFNUYzMDQxNEM=\ntext/html\nThu, 17 Nov 2005 18:49:58 GMT\nx-oss-magic:abracadabra\nx-oss-meta-author:foo@bar.com\n/oss-example/nelson";
    let secret = "OtxrzxIsfpFjA7SwPzILwy8Bw21TLhquhboDYROV";
    assert_eq!(signature_v1(secret, sts), "26NBxoKdsyly4EDv6inkoDft/yA=");

    // The same string to sign, built from the request's parts.
    let headers = pairs(&[
        (
            "Content-Md5",
            "ODBGOERFMDMzQTczRUY3NUE3NzA5QzdFNUYzMDQxNEM=",
        ),
        ("Content-Type", "text/html"),
        ("X-OSS-Meta-Author", "foo@bar.com"),
        ("X-OSS-Magic", "abracadabra"),
    ]);
    let req = SignableRequest::new("PUT", Some("oss-example"), Some("nelson")).headers(&headers);
    assert_eq!(
        string_to_sign_v1(&req, "Thu, 17 Nov 2005 18:49:58 GMT"),
        sts
    );
    let signed = Signer::v1()
        .sign_headers(
            &Credentials::new("44CF9590006BF252F707", secret),
            &req,
            at(1_132_253_398),
        )
        .unwrap();
    assert_eq!(
        signed.authorization(),
        "OSS 44CF9590006BF252F707:26NBxoKdsyly4EDv6inkoDft/yA="
    );
}

// ---------------------------------------------------------------------------------------------
// V4

const V4_KEY: &str = "1234+-/123/1.txt";

fn v4_query() -> Vec<(String, String)> {
    pairs(&[
        ("param1", "value1"),
        ("+param1", "value3"),
        ("|param1", "value4"),
        ("+param2", ""),
        ("|param2", ""),
        ("param2", ""),
    ])
}

fn v4_headers(content_type: &str, with_sha256: bool) -> Vec<(String, String)> {
    let mut h = pairs(&[
        ("x-oss-head1", "value"),
        ("abc", "value"),
        ("ZAbc", "value"),
        ("XYZ", "value"),
        ("content-type", content_type),
    ]);
    if with_sha256 {
        h.push(("x-oss-content-sha256".into(), "UNSIGNED-PAYLOAD".into()));
    }
    h
}

#[test]
fn v4_canonical_uri_and_query_match_the_vectors() {
    assert_eq!(
        canonical_uri_v4(Some("bucket"), Some(V4_KEY)),
        "/bucket/1234%2B-/123/1.txt"
    );
    assert_eq!(
        canonical_query_v4(&v4_query()),
        "%2Bparam1=value3&%2Bparam2&%7Cparam1=value4&%7Cparam2&param1=value1&param2"
    );
}

#[test]
fn v4_header_signs_canonical_request_with_default_signed_headers_only() {
    let query = v4_query();
    let headers = v4_headers("text/plain", true);
    let req = SignableRequest::new("PUT", Some("bucket"), Some(V4_KEY))
        .query(&query)
        .headers(&headers);
    let signed = Signer::v4("cn-hangzhou")
        .unwrap()
        .sign_headers(&Credentials::new("ak", "sk"), &req, at(1_702_743_657))
        .unwrap();
    assert_eq!(
        signed.authorization(),
        "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,Signature=e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe"
    );
    assert_eq!(
        signed.canonical_request().unwrap(),
        "PUT\n/bucket/1234%2B-/123/1.txt\n%2Bparam1=value3&%2Bparam2&%7Cparam1=value4&%7Cparam2&param1=value1&param2\ncontent-type:text/plain\nx-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20231216T162057Z\nx-oss-head1:value\n\n\nUNSIGNED-PAYLOAD"
    );
    assert_eq!(signed.get("x-oss-date"), Some("20231216T162057Z"));
    assert_eq!(signed.get("x-oss-content-sha256"), Some("UNSIGNED-PAYLOAD"));
    assert_eq!(signed.get("date"), Some("Sat, 16 Dec 2023 16:20:57 GMT"));
}

#[test]
fn v4_header_without_preset_content_sha256_header_signs_the_same() {
    // The signer adds `x-oss-content-sha256` itself; the caller need not.
    let query = v4_query();
    let headers = v4_headers("text/plain", false);
    let req = SignableRequest::new("PUT", Some("bucket"), Some(V4_KEY))
        .query(&query)
        .headers(&headers);
    let signed = Signer::v4("cn-hangzhou")
        .unwrap()
        .sign_headers(&Credentials::new("ak", "sk"), &req, at(1_702_743_657))
        .unwrap();
    assert!(
        signed.authorization().ends_with(
            "Signature=e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe"
        )
    );
}

#[test]
fn v4_header_with_sts_signs_and_sends_security_token_header() {
    let query = v4_query();
    let headers = v4_headers("text/plain", true);
    let req = SignableRequest::new("PUT", Some("bucket"), Some(V4_KEY))
        .query(&query)
        .headers(&headers);
    let creds = Credentials::new("ak", "sk").with_security_token("token");
    let signed = Signer::v4("cn-hangzhou")
        .unwrap()
        .sign_headers(&creds, &req, at(1_702_784_856))
        .unwrap();
    assert_eq!(
        signed.authorization(),
        "OSS4-HMAC-SHA256 Credential=ak/20231217/cn-hangzhou/oss/aliyun_v4_request,Signature=b94a3f999cf85bcdc00d332fbd3734ba03e48382c36fa4d5af5df817395bd9ea"
    );
    assert_eq!(signed.get("x-oss-security-token"), Some("token"));
    assert!(
        signed
            .canonical_request()
            .unwrap()
            .contains("\nx-oss-security-token:token\n")
    );
}

#[test]
fn v4_additional_headers_are_lowercased_sorted_and_listed_in_authorization() {
    let query = v4_query();
    let headers = v4_headers("text/plain", true);
    let additional = names(&["ZAbc", "abc"]);
    let req = SignableRequest::new("PUT", Some("bucket"), Some(V4_KEY))
        .query(&query)
        .headers(&headers)
        .additional_headers(&additional);
    let signed = Signer::v4("cn-hangzhou")
        .unwrap()
        .sign_headers(&Credentials::new("ak", "sk"), &req, at(1_702_747_512))
        .unwrap();
    assert_eq!(
        signed.authorization(),
        "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,AdditionalHeaders=abc;zabc,Signature=4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f"
    );
    let canonical = signed.canonical_request().unwrap();
    assert!(canonical.starts_with("PUT\n/bucket/1234%2B-/123/1.txt\n"));
    assert!(canonical.contains("\nabc:value\ncontent-type:text/plain\n"));
    assert!(canonical.contains("\nx-oss-head1:value\nzabc:value\n\nabc;zabc\nUNSIGNED-PAYLOAD"));
    assert!(!canonical.contains("xyz"));
}

#[test]
fn v4_additional_headers_ignore_absent_and_default_signed_names() {
    let query = v4_query();
    let headers = v4_headers("text/plain", true);
    let additional = names(&["x-oss-no-exist", "ZAbc", "x-oss-head1", "abc"]);
    let req = SignableRequest::new("PUT", Some("bucket"), Some(V4_KEY))
        .query(&query)
        .headers(&headers)
        .additional_headers(&additional);
    let signed = Signer::v4("cn-hangzhou")
        .unwrap()
        .sign_headers(&Credentials::new("ak", "sk"), &req, at(1_702_747_512))
        .unwrap();
    assert_eq!(
        signed.authorization(),
        "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,AdditionalHeaders=abc;zabc,Signature=4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f"
    );
}

#[test]
fn v4_presigned_query_carries_every_auth_parameter_and_exact_signature() {
    let query = v4_query();
    let headers = v4_headers("application/octet-stream", false);
    let req = SignableRequest::new("PUT", Some("bucket"), Some(V4_KEY))
        .query(&query)
        .headers(&headers);
    let presigned = Signer::v4("cn-hangzhou")
        .unwrap()
        .presign(
            &Credentials::new("ak", "sk"),
            &req,
            at(1_702_781_677),
            Duration::from_secs(599),
        )
        .unwrap();
    let q = presigned.pairs();
    let expected = pairs(&[
        ("+param1", "value3"),
        ("+param2", ""),
        ("param1", "value1"),
        ("param2", ""),
        (
            "x-oss-credential",
            "ak/20231217/cn-hangzhou/oss/aliyun_v4_request",
        ),
        ("x-oss-date", "20231217T025437Z"),
        ("x-oss-expires", "599"),
        (
            "x-oss-signature",
            "a39966c61718be0d5b14e668088b3fa07601033f6518ac7b523100014269c0fe",
        ),
        ("x-oss-signature-version", "OSS4-HMAC-SHA256"),
        ("|param1", "value4"),
        ("|param2", ""),
    ]);
    assert_eq!(q, expected.as_slice());
    assert_eq!(presigned.get("x-oss-additional-headers"), None);
    assert_eq!(
        presigned.to_query_string(),
        "%2Bparam1=value3&%2Bparam2&param1=value1&param2&x-oss-credential=ak%2F20231217%2Fcn-hangzhou%2Foss%2Faliyun_v4_request&x-oss-date=20231217T025437Z&x-oss-expires=599&x-oss-signature=a39966c61718be0d5b14e668088b3fa07601033f6518ac7b523100014269c0fe&x-oss-signature-version=OSS4-HMAC-SHA256&%7Cparam1=value4&%7Cparam2"
    );
}

#[test]
fn v4_presigned_with_sts_signs_security_token_query_parameter() {
    // Extra vector from the same SDK suite.
    let query = v4_query();
    let headers = v4_headers("application/octet-stream", false);
    let req = SignableRequest::new("PUT", Some("bucket"), Some(V4_KEY))
        .query(&query)
        .headers(&headers);
    let creds = Credentials::new("ak", "sk").with_security_token("token");
    let presigned = Signer::v4("cn-hangzhou")
        .unwrap()
        .presign(&creds, &req, at(1_702_785_388), Duration::from_secs(599))
        .unwrap();
    assert_eq!(presigned.get("x-oss-security-token"), Some("token"));
    assert_eq!(presigned.get("x-oss-date"), Some("20231217T035628Z"));
    assert_eq!(
        presigned.get("x-oss-signature"),
        Some("3817ac9d206cd6dfc90f1c09c00be45005602e55898f26f5ddb06d7892e1f8b5")
    );
}

#[test]
fn v4_presigned_additional_headers_are_filtered_and_sent_as_query_parameter() {
    // Extra vectors from the same SDK suite, both spellings of the list.
    let query = v4_query();
    let headers = v4_headers("application/octet-stream", false);
    for list in [
        names(&["ZAbc", "abc"]),
        names(&["x-oss-no-exist", "abc", "x-oss-head1", "ZAbc"]),
    ] {
        let req = SignableRequest::new("PUT", Some("bucket"), Some(V4_KEY))
            .query(&query)
            .headers(&headers)
            .additional_headers(&list);
        let presigned = Signer::v4("cn-hangzhou")
            .unwrap()
            .presign(
                &Credentials::new("ak", "sk"),
                &req,
                at(1_702_783_809),
                Duration::from_secs(599),
            )
            .unwrap();
        assert_eq!(presigned.get("x-oss-additional-headers"), Some("abc;zabc"));
        assert_eq!(presigned.get("x-oss-date"), Some("20231217T033009Z"));
        assert_eq!(
            presigned.get("x-oss-signature"),
            Some("6bd984bfe531afb6db1f7550983a741b103a8c58e5e14f83ea474c2322dfa2b7")
        );
    }
}

#[test]
fn v4_scope_product_is_configurable_for_cloudbox() {
    // Extra vector from the same SDK suite: product `oss-cloudbox`, region `cb-123`.
    let query = v4_query();
    let headers = v4_headers("text/plain", true);
    let req = SignableRequest::new("PUT", Some("bucket"), Some(V4_KEY))
        .query(&query)
        .headers(&headers);
    let signed = Signer::v4("cb-123")
        .unwrap()
        .with_product("oss-cloudbox")
        .sign_headers(&Credentials::new("ak", "sk"), &req, at(1_702_743_657))
        .unwrap();
    assert_eq!(
        signed.authorization(),
        "OSS4-HMAC-SHA256 Credential=ak/20231216/cb-123/oss-cloudbox/aliyun_v4_request,Signature=94ce1f12c17d148ea681030275a94449d3357f5b5b21133996eec80af3e08a43"
    );
}

#[test]
fn v4_documentation_example_signs_content_disposition_and_length_as_additional() {
    let headers = pairs(&[
        ("Content-Disposition", "attachment"),
        ("Content-Length", "3"),
        ("Content-MD5", "ICy5YqxZB1uWSwcVLSNLcA=="),
        ("Content-Type", "text/plain"),
    ]);
    let additional = names(&["content-disposition", "content-length"]);
    let req = SignableRequest::new("PUT", Some("examplebucket"), Some("exampleobject"))
        .headers(&headers)
        .additional_headers(&additional);
    let signed = Signer::v4("cn-hangzhou")
        .unwrap()
        .sign_headers(
            &Credentials::new("testid", "yourAccessKeySecret"),
            &req,
            at(1_744_353_684),
        )
        .unwrap();
    assert_eq!(
        signed.canonical_request().unwrap(),
        "PUT\n/examplebucket/exampleobject\n\ncontent-disposition:attachment\ncontent-length:3\ncontent-md5:ICy5YqxZB1uWSwcVLSNLcA==\ncontent-type:text/plain\nx-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20250411T064124Z\n\ncontent-disposition;content-length\nUNSIGNED-PAYLOAD"
    );
    assert_eq!(
        signed.authorization(),
        "OSS4-HMAC-SHA256 Credential=testid/20250411/cn-hangzhou/oss/aliyun_v4_request,AdditionalHeaders=content-disposition;content-length,Signature=d3694c2dfc5371ee6acd35e88c4871ac95a7ba01d3a2f476768fe61218590097"
    );
}

// ---------------------------------------------------------------------------------------------
// A server recomputes what the client signed

#[test]
fn server_recomputes_v4_header_signature_from_incoming_request_parts() {
    let query = v4_query();
    let headers = v4_headers("text/plain", true);
    let additional = names(&["ZAbc", "abc"]);
    let req = SignableRequest::new("PUT", Some("bucket"), Some(V4_KEY))
        .query(&query)
        .headers(&headers)
        .additional_headers(&additional);
    let signed = Signer::v4("cn-hangzhou")
        .unwrap()
        .sign_headers(&Credentials::new("ak", "sk"), &req, at(1_702_747_512))
        .unwrap();

    // What arrives: the original headers plus the signed ones; the query as a raw string.
    let mut incoming = headers.clone();
    incoming.retain(|(k, _)| !k.eq_ignore_ascii_case("x-oss-content-sha256"));
    incoming.extend(signed.clone().into_vec());
    let raw_query = backend_oss::encode::encode_query(&query);
    let decoded_query = backend_oss::encode::parse_query(&raw_query);

    let Some(Authorization::V4 {
        credential,
        additional_headers,
        signature,
    }) = parse_authorization(signed.authorization())
    else {
        panic!("not a V4 authorization");
    };
    assert_eq!(credential.access_key_id, "ak");
    assert_eq!(additional_headers, names(&["abc", "zabc"]));
    let datetime = incoming
        .iter()
        .find(|(k, _)| k == "x-oss-date")
        .map(|(_, v)| v.clone())
        .unwrap();
    let server_req = SignableRequest::new("PUT", Some("bucket"), Some(V4_KEY))
        .query(&decoded_query)
        .headers(&incoming)
        .additional_headers(&additional_headers);
    let canonical = canonical_request_v4(&server_req);
    let sts = string_to_sign_v4(&datetime, &credential.scope(), &canonical);
    let expected = signature_v4(
        "sk",
        &credential.date,
        &credential.region,
        &credential.product,
        &sts,
    );
    assert!(sign::signatures_equal(&expected, &signature));
    assert_eq!(
        signature,
        "4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f"
    );
}

#[test]
fn server_recomputes_v4_presigned_signature_from_raw_query() {
    let query = v4_query();
    let headers = v4_headers("application/octet-stream", false);
    let req = SignableRequest::new("PUT", Some("bucket"), Some(V4_KEY))
        .query(&query)
        .headers(&headers);
    let presigned = Signer::v4("cn-hangzhou")
        .unwrap()
        .presign(
            &Credentials::new("ak", "sk"),
            &req,
            at(1_702_781_677),
            Duration::from_secs(599),
        )
        .unwrap();
    let incoming = backend_oss::encode::parse_query(&presigned.to_query_string());
    let get = |name: &str| {
        incoming
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let credential = sign::CredentialScope::parse(&get("x-oss-credential")).unwrap();
    let server_req = SignableRequest::new("PUT", Some("bucket"), Some(V4_KEY))
        .query(&incoming) // x-oss-signature is excluded by canonical_query_v4
        .headers(&headers);
    let sts = string_to_sign_v4(
        &get("x-oss-date"),
        &credential.scope(),
        &canonical_request_v4(&server_req),
    );
    let expected = signature_v4(
        "sk",
        &credential.date,
        &credential.region,
        &credential.product,
        &sts,
    );
    assert_eq!(expected, get("x-oss-signature"));
    assert_eq!(
        sign::parse_v4_datetime(&get("x-oss-date")),
        Some(at(1_702_781_677))
    );
}

#[test]
fn server_recomputes_v1_presigned_signature_ignoring_auth_query_parameters() {
    let query = pairs(&[("versionId", "versionId")]);
    let req = SignableRequest::new("GET", Some("bucket"), Some("key+123")).query(&query);
    let creds = Credentials::new("ak", "sk").with_security_token("token");
    let presigned = Signer::v1()
        .presign(
            &creds,
            &req,
            at(1_699_808_204 - 60),
            Duration::from_secs(60),
        )
        .unwrap();
    let incoming = backend_oss::encode::parse_query(&presigned.to_query_string());
    let server_req = SignableRequest::new("GET", Some("bucket"), Some("key+123")).query(&incoming);
    let sts = string_to_sign_v1(&server_req, "1699808204");
    assert_eq!(
        signature_v1("sk", &sts),
        presigned.get("Signature").unwrap()
    );
}

#[test]
fn parse_authorization_reads_v1_and_v4_and_rejects_garbage() {
    assert_eq!(
        parse_authorization("OSS ak:kSHKmLxlyEAKtZPkJhG9bZb5k7M="),
        Some(Authorization::V1 {
            access_key_id: "ak".into(),
            signature: "kSHKmLxlyEAKtZPkJhG9bZb5k7M=".into()
        })
    );
    let v4 = parse_authorization(
        "OSS4-HMAC-SHA256 Credential=STS.x/y/20231216/cn-hangzhou/oss/aliyun_v4_request, AdditionalHeaders=abc;zabc, Signature=00ff",
    )
    .unwrap();
    let Authorization::V4 {
        credential,
        additional_headers,
        signature,
    } = v4
    else {
        panic!("not V4")
    };
    assert_eq!(credential.access_key_id, "STS.x/y");
    assert_eq!(credential.date, "20231216");
    assert_eq!(credential.region, "cn-hangzhou");
    assert_eq!(credential.product, "oss");
    assert_eq!(additional_headers, names(&["abc", "zabc"]));
    assert_eq!(signature, "00ff");

    for bad in [
        "",
        "OSS",
        "OSS :sig",
        "OSS ak:",
        "Bearer x",
        "OSS4-HMAC-SHA256 Credential=ak/2023/cn/oss/aliyun_v4_request,Signature=a",
        "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request",
        "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/other,Signature=a",
        "OSS4-HMAC-SHA256 Signature=a,Foo=b",
    ] {
        assert_eq!(parse_authorization(bad), None, "{bad:?}");
    }
}

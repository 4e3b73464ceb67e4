//! Helpers shared by the HTTP-level tests: an emulator with known keys, a plain HTTP client,
//! and requests signed with `backend_oss`'s signer.
#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use backend_oss::encode::{encode_path, encode_query};
use backend_oss::{Credentials, SignableRequest, Signer};
use oss_emulator::{AccessKey, Emulator, EmulatorConfig};

pub const AK: &str = "test-ak";
pub const SK: &str = "test-secret-5f1c9a";
pub const STS_AK: &str = "STS.test-ak";
pub const STS_SK: &str = "sts-secret-77aa";
pub const STS_TOKEN: &str = "sts-token-+/=CAES";
pub const REGION: &str = "cn-hangzhou";

pub fn config() -> EmulatorConfig {
    EmulatorConfig::new()
        .access_key(AccessKey::new(AK, SK))
        .access_key(AccessKey::sts(STS_AK, STS_SK, STS_TOKEN))
}

pub fn start() -> Emulator {
    Emulator::start(config()).expect("start the emulator")
}

/// A client that never compresses, never follows redirects and never uses a proxy.
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build reqwest client")
}

pub fn creds() -> Credentials {
    Credentials::new(AK, SK)
}

pub fn sts_creds() -> Credentials {
    Credentials::new(STS_AK, STS_SK).with_security_token(STS_TOKEN)
}

/// Deterministic test bytes.
pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn url(emu: &Emulator, bucket: &str, key: Option<&str>, query: &[(String, String)]) -> String {
    let mut u = format!("{}/{bucket}/", emu.endpoint());
    if let Some(k) = key {
        u.push_str(&encode_path(k));
    }
    if !query.is_empty() {
        u.push('?');
        u.push_str(&encode_query(query));
    }
    u
}

pub fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A request signed in header form; `headers` are sent as given plus the signature headers.
#[derive(Debug, Clone)]
pub struct Signed {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

#[allow(clippy::too_many_arguments)]
pub fn sign_headers(
    emu: &Emulator,
    signer: &Signer,
    creds: &Credentials,
    method: &str,
    bucket: &str,
    key: Option<&str>,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    time: SystemTime,
) -> Signed {
    let query = pairs(query);
    let headers = pairs(headers);
    let req = SignableRequest::new(method, Some(bucket), key)
        .query(&query)
        .headers(&headers);
    let signed = signer.sign_headers(creds, &req, time).expect("sign");
    let mut all: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| signed.get(k).is_none())
        .cloned()
        .collect();
    all.extend(signed.into_vec());
    Signed {
        url: url(emu, bucket, key, &query),
        headers: all,
    }
}

/// A presigned URL (query form).
#[allow(clippy::too_many_arguments)]
pub fn presign(
    emu: &Emulator,
    signer: &Signer,
    creds: &Credentials,
    method: &str,
    bucket: &str,
    key: &str,
    query: &[(&str, &str)],
    time: SystemTime,
    expires: Duration,
) -> String {
    let query = pairs(query);
    let req = SignableRequest::new(method, Some(bucket), Some(key)).query(&query);
    let q = signer.presign(creds, &req, time, expires).expect("presign");
    format!(
        "{}/{bucket}/{}?{}",
        emu.endpoint(),
        encode_path(key),
        q.to_query_string()
    )
}

pub fn v1() -> Signer {
    Signer::v1()
}

pub fn v4() -> Signer {
    Signer::v4(REGION).expect("v4 signer")
}

pub async fn send(
    client: &reqwest::Client,
    method: &str,
    s: &Signed,
    body: Option<Vec<u8>>,
) -> reqwest::Response {
    let mut rb = client.request(method.parse().expect("method"), &s.url);
    for (k, v) in &s.headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    if let Some(b) = body {
        rb = rb.body(b);
    }
    rb.send().await.expect("send request")
}

/// A signed (V4) request with extra headers, sent.
#[allow(clippy::too_many_arguments)]
pub async fn signed_request(
    emu: &Emulator,
    client: &reqwest::Client,
    method: &str,
    bucket: &str,
    key: Option<&str>,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> reqwest::Response {
    let s = sign_headers(
        emu,
        &v4(),
        &creds(),
        method,
        bucket,
        key,
        query,
        headers,
        SystemTime::now(),
    );
    send(client, method, &s, body).await
}

pub async fn get(
    emu: &Emulator,
    client: &reqwest::Client,
    bucket: &str,
    key: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    signed_request(emu, client, "GET", bucket, Some(key), &[], headers, None).await
}

/// A signed GET whose transport errors are returned, not panicked on.
pub async fn try_get(
    emu: &Emulator,
    client: &reqwest::Client,
    bucket: &str,
    key: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    let s = sign_headers(
        emu,
        &v4(),
        &creds(),
        "GET",
        bucket,
        Some(key),
        &[],
        &[],
        SystemTime::now(),
    );
    let mut rb = client.get(&s.url);
    for (k, v) in &s.headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    rb.send().await
}

pub fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii header").to_string())
}

/// `(status, Code, body)` of an error answer.
pub async fn error_of(resp: reqwest::Response) -> (u16, Option<String>, String) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("error body");
    let parsed = backend_oss::ErrorBody::parse(text.as_bytes());
    (status, parsed.code, text)
}

/// Asserts equal bytes without printing megabytes on failure.
#[track_caller]
pub fn same_bytes(got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "bytes differ: got {} bytes, want {}; first difference at {:?}",
            got.len(),
            want.len(),
            first
        );
    }
}

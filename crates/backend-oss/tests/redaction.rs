//! Secrets never appear in `Debug` output or error messages: the AccessKey secret and the STS
//! token are checked for in every value a user might print.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backend_oss::credentials::{ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET, ENV_SESSION_TOKEN};
use backend_oss::error::{ErrorBody, source_error};
use backend_oss::{
    CachingProvider, Credentials, CredentialsProvider, Endpoint, EnvCredentials, SignError,
    SignableRequest, Signer, StaticCredentials,
};

const SECRET: &str = "SK-very-secret-5f2c";
const TOKEN: &str = "STS-token-value-9a7e";

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} leaks the secret: {text}");
    assert!(!text.contains(TOKEN), "{what} leaks the token: {text}");
}

fn check(what: &str, v: &impl std::fmt::Debug) {
    assert_clean(what, &format!("{v:?}"));
    assert_clean(what, &format!("{v:#?}"));
}

fn sts() -> Credentials {
    Credentials::new("AKID", SECRET)
        .with_security_token(TOKEN)
        .with_expiry(at(2_000_000_000))
}

#[test]
fn credentials_debug_redacts_secret_and_token_but_shows_the_key_id() {
    let c = sts();
    check("Credentials", &c);
    let shown = format!("{c:?}");
    assert!(
        shown.contains("AKID") && shown.contains("<redacted>"),
        "{shown}"
    );
    check(
        "Credentials without token",
        &Credentials::new("AKID", SECRET),
    );
}

#[tokio::test]
async fn providers_debug_redacts_before_and_after_use() {
    let s = StaticCredentials::with_security_token("AKID", SECRET, TOKEN);
    check("StaticCredentials", &s);
    let dynp: Arc<dyn CredentialsProvider> = Arc::new(s.clone());
    check("Arc<dyn CredentialsProvider>", &dynp);

    let caching = CachingProvider::new(s, Duration::from_secs(60));
    check("CachingProvider (empty)", &caching);
    caching.credentials().await.unwrap();
    check("CachingProvider (filled)", &caching);

    let vars: HashMap<&str, &str> = [
        (ENV_ACCESS_KEY_ID, "AKID"),
        (ENV_ACCESS_KEY_SECRET, SECRET),
        (ENV_SESSION_TOKEN, TOKEN),
    ]
    .into();
    let envp = EnvCredentials::with_lookup(move |n| vars.get(n).map(OsString::from));
    let loaded = envp.credentials().await.unwrap();
    check("EnvCredentials", &envp);
    check("Credentials from env", &loaded);
}

#[test]
fn signer_and_signing_outputs_redact_the_token() {
    let creds = sts();
    let headers = vec![
        ("x-oss-security-token".to_string(), TOKEN.to_string()),
        ("content-type".to_string(), "text/plain".to_string()),
    ];
    let query = vec![("security-token".to_string(), TOKEN.to_string())];
    let req = SignableRequest::new("GET", Some("bucket"), Some("key"))
        .headers(&headers)
        .query(&query);
    check("SignableRequest", &req);

    for signer in [Signer::v1(), Signer::v4("cn-hangzhou").unwrap()] {
        check("Signer", &signer);
        let signed = signer
            .sign_headers(&creds, &req, at(1_700_000_000))
            .unwrap();
        check("SignedHeaders", &signed);
        // The token must still be sent.
        assert_eq!(signed.get("x-oss-security-token"), Some(TOKEN));

        let req = SignableRequest::new("GET", Some("bucket"), Some("key"));
        let presigned = signer
            .presign(&creds, &req, at(1_700_000_000), Duration::from_secs(60))
            .unwrap();
        check("PresignedQuery", &presigned);
        assert!(presigned.to_query_string().contains(TOKEN));
    }
}

#[test]
fn errors_never_carry_secrets() {
    let req = SignableRequest::new("GET", Some("b"), Some("k"));
    let expired = sts().with_expiry(at(10));
    for signer in [Signer::v1(), Signer::v4("cn-hangzhou").unwrap()] {
        let err = signer.sign_headers(&expired, &req, at(10)).unwrap_err();
        assert!(matches!(err, SignError::Expired { .. }));
        assert_clean("SignError", &format!("{err} {err:?}"));
        let err = signer
            .sign_headers(&Credentials::new("", SECRET), &req, at(10))
            .unwrap_err();
        assert_clean("SignError", &format!("{err} {err:?}"));
    }

    let e = Endpoint::parse(&format!(
        "https://AKID:{SECRET}@oss-cn-hangzhou.aliyuncs.com"
    ))
    .unwrap_err();
    assert_clean("ConfigError", &format!("{e} {e:?}"));

    let xml = format!(
        "<Error><Code>SignatureDoesNotMatch</Code><Message>mismatch</Message><StringToSign>x-oss-security-token:{TOKEN}</StringToSign></Error>"
    );
    let body = ErrorBody::parse(xml.as_bytes());
    let e = source_error("GetObject oss://b/k", 403, &body, Some("rid"));
    assert_clean("SourceError", &format!("{e} {e:?} {body:?}"));
}

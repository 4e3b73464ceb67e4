//! Credentials, providers, and the signer's checks on them.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backend_oss::credentials::{ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET, ENV_SESSION_TOKEN};
use backend_oss::{
    CachingProvider, Credentials, CredentialsError, CredentialsProvider, EnvCredentials, SignError,
    SignableRequest, Signer, StaticCredentials,
};

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

fn env(vars: &[(&str, &str)]) -> EnvCredentials {
    let map: HashMap<String, OsString> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    EnvCredentials::with_lookup(move |name| map.get(name).cloned())
}

#[tokio::test]
async fn env_credentials_read_the_three_official_variables() {
    let c = env(&[
        (ENV_ACCESS_KEY_ID, "id"),
        (ENV_ACCESS_KEY_SECRET, " secret\n"),
        (ENV_SESSION_TOKEN, "token"),
    ])
    .credentials()
    .await
    .unwrap();
    assert_eq!(c.access_key_id(), "id");
    assert_eq!(c.access_key_secret(), "secret");
    assert_eq!(c.security_token(), Some("token"));

    let c = env(&[(ENV_ACCESS_KEY_ID, "id"), (ENV_ACCESS_KEY_SECRET, "secret")])
        .load()
        .unwrap();
    assert_eq!(c.security_token(), None);
    let c = env(&[
        (ENV_ACCESS_KEY_ID, "id"),
        (ENV_ACCESS_KEY_SECRET, "secret"),
        (ENV_SESSION_TOKEN, ""),
    ])
    .load()
    .unwrap();
    assert_eq!(c.security_token(), None, "an empty token means none");
}

#[test]
fn env_credentials_name_the_missing_variable_but_never_a_value() {
    let err = env(&[(ENV_ACCESS_KEY_SECRET, "SECRETVALUE")])
        .load()
        .unwrap_err();
    assert!(matches!(err, CredentialsError::MissingEnv { var } if var == ENV_ACCESS_KEY_ID));
    assert!(err.to_string().contains("OSS_ACCESS_KEY_ID"));
    assert!(!format!("{err} {err:?}").contains("SECRETVALUE"));

    let err = env(&[
        (ENV_ACCESS_KEY_ID, "IDVALUE"),
        (ENV_SESSION_TOKEN, "TOKENVALUE"),
    ])
    .load()
    .unwrap_err();
    assert!(err.to_string().contains("OSS_ACCESS_KEY_SECRET"));
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("IDVALUE") && !shown.contains("TOKENVALUE"));

    let err = env(&[(ENV_ACCESS_KEY_ID, "id"), (ENV_ACCESS_KEY_SECRET, "  ")])
        .load()
        .unwrap_err();
    assert!(matches!(err, CredentialsError::EmptyEnv { var } if var == ENV_ACCESS_KEY_SECRET));
}

#[cfg(unix)]
#[test]
fn env_credentials_report_non_unicode_values_by_name() {
    use std::os::unix::ffi::OsStringExt;
    let lookup = |name: &str| match name {
        ENV_ACCESS_KEY_ID => Some(OsString::from_vec(vec![0xff, 0xfe])),
        _ => Some(OsString::from("x")),
    };
    let err = EnvCredentials::with_lookup(lookup).load().unwrap_err();
    assert!(matches!(err, CredentialsError::NotUnicodeEnv { var } if var == ENV_ACCESS_KEY_ID));
}

#[tokio::test]
async fn static_credentials_return_the_pair_or_the_sts_triple() {
    let c = StaticCredentials::new("ak", "sk")
        .credentials()
        .await
        .unwrap();
    assert_eq!((c.access_key_id(), c.access_key_secret()), ("ak", "sk"));
    let c = StaticCredentials::with_security_token("ak", "sk", "tok")
        .credentials()
        .await
        .unwrap();
    assert_eq!(c.security_token(), Some("tok"));
    assert!(matches!(
        StaticCredentials::new("", "sk").credentials().await,
        Err(CredentialsError::Empty)
    ));
    // Usable behind a trait object.
    let p: Arc<dyn CredentialsProvider> = Arc::new(StaticCredentials::new("ak", "sk"));
    assert_eq!(p.credentials().await.unwrap().access_key_id(), "ak");
}

#[test]
fn validity_accounts_for_headroom() {
    let c = Credentials::new("a", "b").with_expiry(at(1000));
    assert!(c.is_valid_at(at(900), Duration::from_secs(99)));
    assert!(!c.is_valid_at(at(900), Duration::from_secs(100)));
    assert!(!c.is_valid_at(at(1000), Duration::ZERO));
    assert!(
        Credentials::new("a", "b").is_valid_at(at(u32::MAX as u64), Duration::from_secs(1 << 40))
    );
}

/// Hands out credentials valid for `ttl` after each call's `now`.
#[derive(Debug)]
struct Rotating {
    calls: AtomicUsize,
    now: SystemTime,
    ttl: Duration,
}

#[async_trait::async_trait]
impl CredentialsProvider for Rotating {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Credentials::new(format!("ak{n}"), "sk")
            .with_security_token(format!("tok{n}"))
            .with_expiry(self.now + self.ttl))
    }
}

#[tokio::test]
async fn caching_provider_refreshes_only_within_headroom() {
    let inner = Rotating {
        calls: AtomicUsize::new(0),
        now: at(10_000),
        ttl: Duration::from_secs(3600),
    };
    let p = CachingProvider::new(inner, Duration::from_secs(300));
    let c = p.credentials_at(at(10_000)).await.unwrap();
    assert_eq!(c.access_key_id(), "ak0");
    // Still valid with 5 minutes to spare: cached.
    let c = p.credentials_at(at(10_000 + 3299)).await.unwrap();
    assert_eq!(c.access_key_id(), "ak0");
    // Within the headroom: refreshed (the inner provider's fixed clock makes the fresh ones
    // expire at the same instant, so they are rejected as already too old).
    let err = p.credentials_at(at(10_000 + 3300)).await.unwrap_err();
    assert!(matches!(err, CredentialsError::Expired { .. }), "{err}");
}

#[tokio::test]
async fn caching_provider_fetches_again_after_expiry() {
    #[derive(Debug)]
    struct Counting(AtomicUsize);
    #[async_trait::async_trait]
    impl CredentialsProvider for Counting {
        async fn credentials(&self) -> Result<Credentials, CredentialsError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) as u64;
            Ok(Credentials::new(format!("ak{n}"), "sk").with_expiry(at(1000 * (n + 1))))
        }
    }
    let p = CachingProvider::new(Counting(AtomicUsize::new(0)), Duration::from_secs(100));
    assert_eq!(
        p.credentials_at(at(0)).await.unwrap().access_key_id(),
        "ak0"
    );
    assert_eq!(
        p.credentials_at(at(899)).await.unwrap().access_key_id(),
        "ak0"
    );
    assert_eq!(
        p.credentials_at(at(900)).await.unwrap().access_key_id(),
        "ak1"
    );
    assert_eq!(
        p.credentials_at(at(1500)).await.unwrap().access_key_id(),
        "ak1"
    );
}

#[test]
fn signer_refuses_empty_or_expired_credentials() {
    let req = SignableRequest::new("GET", Some("b"), Some("k"));
    for signer in [Signer::v1(), Signer::v4("cn-hangzhou").unwrap()] {
        assert_eq!(
            signer
                .sign_headers(&Credentials::new("", "sk"), &req, at(100))
                .unwrap_err(),
            SignError::MissingKeys
        );
        assert_eq!(
            signer
                .sign_headers(&Credentials::new("ak", ""), &req, at(100))
                .unwrap_err(),
            SignError::MissingKeys
        );
        let expired = Credentials::new("ak", "sk").with_expiry(at(100));
        assert!(matches!(
            signer.sign_headers(&expired, &req, at(100)),
            Err(SignError::Expired { .. })
        ));
        assert!(signer.sign_headers(&expired, &req, at(99)).is_ok());
        assert!(matches!(
            signer.presign(&expired, &req, at(100), Duration::from_secs(60)),
            Err(SignError::Expired { .. })
        ));
    }
}

#[test]
fn presign_lifetime_is_bounded() {
    let req = SignableRequest::new("GET", Some("b"), Some("k"));
    let creds = Credentials::new("ak", "sk");
    let v4 = Signer::v4("cn-hangzhou").unwrap();
    assert!(
        v4.presign(&creds, &req, at(100), Duration::from_secs(7 * 24 * 3600))
            .is_ok()
    );
    for bad in [
        Duration::ZERO,
        Duration::from_millis(999),
        Duration::from_secs(7 * 24 * 3600 + 1),
    ] {
        assert!(matches!(
            v4.presign(&creds, &req, at(100), bad),
            Err(SignError::InvalidExpiry { .. })
        ));
    }
    assert!(
        Signer::v1()
            .presign(&creds, &req, at(100), Duration::from_secs(30 * 24 * 3600))
            .is_ok()
    );
}

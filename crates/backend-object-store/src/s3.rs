//! What object_store's S3 errors do not say: the bucket's real region, and that the
//! credentials were looked for (and not found) at the EC2 instance metadata service.
//!
//! * **Wrong region.** S3 answers a request sent to the wrong region with `301` (no
//!   `Location`) and the bucket's region in `x-amz-bucket-region`. object_store turns that into
//!   "Received redirect without LOCATION" and drops the header, which left the engine to retry
//!   a request that cannot succeed. [`RegionWatch`], the HTTP connector of every S3 store built
//!   here, notes the header of redirect and `400` responses, so the error can name the region
//!   to use, and the failure is `Misconfigured` (not retried; a usage error).
//! * **No credentials.** Without keys, a web identity or container credentials, object_store
//!   asks the instance metadata service (`http://169.254.169.254`, or `AWS_METADATA_ENDPOINT`).
//!   Off EC2 that request fails (1 s connect timeout, no retries with the engine's settings);
//!   the failure is `Denied` with what to set, not a network error to retry.

use std::sync::{Arc, Mutex, PoisonError};

use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use resume_core::{SourceError, SourceErrorKind};

use crate::error::{Op, chain_text, map_error};

/// object_store's text for a redirect without `Location` (`RequestError::BareRedirect`).
const BARE_REDIRECT: &str = "Received redirect without LOCATION";

/// What an S3 source knows for explaining its errors.
#[derive(Debug)]
pub(crate) struct S3Hints {
    pub(crate) bucket: String,
    /// The region requests are signed for.
    pub(crate) region: String,
    /// The metadata endpoint object_store asks for credentials, when it asks one at all.
    pub(crate) imds: Option<String>,
    /// The last `x-amz-bucket-region` of a redirect or `400` answer.
    pub(crate) seen_region: Arc<Mutex<Option<String>>>,
}

impl S3Hints {
    /// An error for `err` that says more than [`map_error`] can, if there is one.
    pub(crate) fn explain(
        &self,
        err: &object_store::Error,
        op: Op,
        key: &str,
    ) -> Option<SourceError> {
        let text = chain_text(err);
        if let Some(imds) = &self.imds
            && text.contains(imds.trim_end_matches('/'))
        {
            let base = map_error(err, op, key);
            return Some(SourceError::new(
                SourceErrorKind::Denied,
                format!(
                    "no AWS credentials for s3://{}: none are configured (AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, or \
                     container credentials) and the EC2 instance metadata service at {imds} \
                     gave none ({}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus \
                     AWS_SESSION_TOKEN for temporary credentials), or AWS_SKIP_SIGNATURE=true \
                     for a public bucket",
                    self.bucket, base.message
                ),
            )
            // The message says what to set; the engine's generic advice would repeat it.
            .with_hint(""));
        }
        let seen = self
            .seen_region
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let status = map_error(err, op, key).status;
        let wrong_region = seen.as_deref().filter(|r| *r != self.region);
        if text.contains(BARE_REDIRECT) || (status == Some(400) && wrong_region.is_some()) {
            let message = match wrong_region {
                Some(r) => format!(
                    "bucket {:?} is in region {r}, not {}: S3 redirected the request for {key:?} \
                     there; use that region (resume-get --region {r}, or AWS_REGION={r})",
                    self.bucket, self.region
                ),
                None => format!(
                    "S3 redirected the request for {key:?} without saying where (HTTP 301 \
                     without Location), which means bucket {:?} is not in region {} or the \
                     endpoint is not the bucket's; check the region (resume-get --region) and \
                     the endpoint",
                    self.bucket, self.region
                ),
            };
            let mut e = SourceError::new(SourceErrorKind::Misconfigured, message).with_hint("");
            if let Some(s) = status {
                e = e.with_status(s);
            }
            return Some(e);
        }
        None
    }
}

/// object_store's reqwest connector, with every response's `x-amz-bucket-region` noted when
/// the response is a redirect or a `400`.
#[derive(Debug)]
pub(crate) struct RegionWatch {
    pub(crate) seen: Arc<Mutex<Option<String>>>,
}

impl HttpConnector for RegionWatch {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(Watched {
            inner,
            seen: self.seen.clone(),
        }))
    }
}

#[derive(Debug)]
struct Watched {
    inner: HttpClient,
    seen: Arc<Mutex<Option<String>>>,
}

#[async_trait::async_trait]
impl HttpService for Watched {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let response = self.inner.execute(req).await?;
        let status = response.status();
        if (status.is_redirection() || status.as_u16() == 400)
            && let Some(region) = response
                .headers()
                .get("x-amz-bucket-region")
                .and_then(|v| v.to_str().ok())
                .filter(|r| is_region_name(r))
        {
            *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(region.to_owned());
        }
        Ok(response)
    }
}

/// `eu-west-1`, `us-gov-west-1`, `cn-north-1`…: what may be printed as a region.
fn is_region_name(r: &str) -> bool {
    !r.is_empty() && r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Msg(String);
    impl std::fmt::Display for Msg {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Msg {}

    fn generic(msg: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: Box::new(Msg(msg.to_owned())),
        }
    }

    fn hints(imds: Option<&str>, seen: Option<&str>) -> S3Hints {
        S3Hints {
            bucket: "b".into(),
            region: "us-east-1".into(),
            imds: imds.map(str::to_owned),
            seen_region: Arc::new(Mutex::new(seen.map(str::to_owned))),
        }
    }

    #[test]
    fn a_bare_redirect_names_the_buckets_region_and_is_misconfigured() {
        let err = generic(
            "Error performing HEAD http://127.0.0.1:9/b/k in 1ms - Received redirect without \
             LOCATION, this normally indicates an incorrectly configured region",
        );
        let e = hints(None, Some("eu-west-1"))
            .explain(&err, Op::Stat, "k")
            .unwrap();
        assert_eq!(e.kind, SourceErrorKind::Misconfigured);
        assert!(e.message.contains("--region eu-west-1"), "{e}");
        let e = hints(None, None).explain(&err, Op::Stat, "k").unwrap();
        assert_eq!(e.kind, SourceErrorKind::Misconfigured);
        assert!(e.message.contains("without Location"), "{e}");
        // A 400 with the configured region is not a region problem.
        let bad = generic("Server returned non-2xx status code: 400 Bad Request: ");
        assert!(
            hints(None, Some("us-east-1"))
                .explain(&bad, Op::Stat, "k")
                .is_none()
        );
        assert!(
            hints(None, Some("ap-south-1"))
                .explain(&bad, Op::Stat, "k")
                .is_some()
        );
    }

    #[test]
    fn a_failed_metadata_lookup_is_denied_with_what_to_set() {
        let err = generic(
            "Generic S3 error: Error performing PUT http://127.0.0.1:1/latest/api/token in \
             0ms - HTTP error: error sending request",
        );
        let e = hints(Some("http://127.0.0.1:1"), None)
            .explain(&err, Op::Stat, "k")
            .unwrap();
        assert_eq!(e.kind, SourceErrorKind::Denied);
        assert!(e.message.contains("AWS_ACCESS_KEY_ID"), "{e}");
        assert!(hints(None, None).explain(&err, Op::Stat, "k").is_none());
    }
}

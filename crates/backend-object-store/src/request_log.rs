//! object_store's HTTP requests in the request log (`resume_core::request_log`): a connector
//! that wraps another and logs each request it carries, one line at `-v`, headers at `-vv`.
//! Every store built here (S3, GCS, Azure, HTTP) goes through it, and so do the requests
//! object_store cannot make (S3's checksum HEADs, Azure's properties HEAD, GCS's JSON API),
//! which are sent through the logged client [`Capture`] keeps.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use resume_core::request_log;

/// `inner` (object_store's reqwest connector by default), each request logged.
#[derive(Debug)]
pub(crate) struct Logged<C = ReqwestConnector>(pub(crate) C);

impl Logged {
    pub(crate) fn reqwest() -> Self {
        Self(ReqwestConnector::default())
    }
}

impl<C: HttpConnector> HttpConnector for Logged<C> {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(LoggedService(self.0.connect(options)?)))
    }
}

/// A connector that keeps the last client it connected: the builders connect the store's own
/// client last (after any credential provider's), with the store's client options, so
/// requests object_store cannot make go through that very client — logged, since `inner` is
/// a [`Logged`] connector.
#[derive(Debug)]
pub(crate) struct Capture<C> {
    pub(crate) inner: C,
    pub(crate) last_client: Arc<Mutex<Option<HttpClient>>>,
}

impl<C: HttpConnector> HttpConnector for Capture<C> {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = self.inner.connect(options)?;
        *self
            .last_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(client.clone());
        Ok(client)
    }
}

#[derive(Debug)]
struct LoggedService(HttpClient);

#[async_trait::async_trait]
impl HttpService for LoggedService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let method = req.method().as_str().to_owned();
        let url = req.uri().to_string();
        request_log::headers(
            true,
            req.headers()
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes())),
        );
        let sent = Instant::now();
        match self.0.execute(req).await {
            Ok(response) => {
                let headers = || {
                    response
                        .headers()
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_bytes()))
                };
                request_log::response(
                    &method,
                    &url,
                    response.status().as_u16(),
                    request_log::request_id(headers()).as_deref(),
                    sent.elapsed(),
                );
                request_log::headers(false, headers());
                Ok(response)
            }
            Err(e) => {
                request_log::failure(&method, &url, sent.elapsed(), &e);
                Err(e)
            }
        }
    }
}

//! The HTTP/1.1 server: connections, routing, the OSS operations, and fault injection.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use futures::Stream;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::auth::{AuthMethod, Incoming as SignedParts, Verifier};
use crate::error::{ApiError, xml_escape};
use crate::fault::{Fault, FaultEvent, Faults, RequestFacts};
use crate::range::{RangeOutcome, resolve};
use crate::store::{
    CHUNK, Hasher, Lookup, NewObject, OpenData, Store, UploadSink, Version, Versioning,
};

/// Bodies of bucket-level PUTs (`?versioning`, `?acl`) are read up to this size.
const MAX_CONFIG_BODY: usize = 64 * 1024;
/// Longest wait for a flush before an injected cut (a safety net; flushes normally follow
/// at once).
const FLUSH_WAIT: Duration = Duration::from_secs(2);

pub(crate) type ResBody = UnsyncBoxBody<Bytes, BodyError>;

/// Why a response body stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("injected fault: the connection is cut here")]
    Injected,
    #[error("reading the object failed: {0}")]
    Io(#[from] io::Error),
}

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug, thiserror::Error)]
#[error("injected fault: connection reset before the response")]
pub(crate) struct Aborted;

/// One request as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestRecord {
    /// 1-based, in order of arrival.
    pub number: u64,
    pub request_id: String,
    pub method: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// Query keys (values are not kept: they can hold signatures and tokens).
    pub query_keys: Vec<String>,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// `None` when the connection was reset instead of answering.
    pub status: Option<u16>,
    pub error_code: Option<String>,
    pub auth: AuthMethod,
    pub access_key_id: Option<String>,
    /// Names of the faults injected into this request.
    pub faults: Vec<&'static str>,
}

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct Shared {
    pub store: Store,
    pub verifier: Verifier,
    pub faults: Faults,
    pub anonymous_read: bool,
    pub service_domains: Vec<String>,
    pub requests: AtomicU64,
    pub instance: u32,
    pub log: Mutex<Vec<RequestRecord>>,
}

impl Shared {
    fn record(&self, r: RequestRecord) {
        tracing::info!(
            request = r.number,
            request_id = %r.request_id,
            method = %r.method,
            bucket = r.bucket.as_deref().unwrap_or(""),
            key = r.key.as_deref().unwrap_or(""),
            status = r.status.unwrap_or(0),
            code = r.error_code.as_deref().unwrap_or(""),
            auth = ?r.auth,
            "request"
        );
        self.log.lock().unwrap_or_else(|p| p.into_inner()).push(r);
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

/// Per-connection state the fault machinery needs.
#[derive(Debug, Default)]
pub(crate) struct ConnCtx {
    /// Completed flushes of the socket (all bytes hyper had buffered were written).
    flushes: AtomicU64,
    flush_waker: Mutex<Option<Waker>>,
    /// Reset (RST) instead of closing (FIN) when the connection is dropped.
    reset: AtomicBool,
    /// When the throttled stream may send its next byte.
    throttle_next: Mutex<Option<tokio::time::Instant>>,
}

impl ConnCtx {
    fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::SeqCst)
    }

    fn on_flush(&self) {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        if let Some(w) = self
            .flush_waker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            w.wake();
        }
    }

    /// Resolves once a flush completes after `mark` (taken before the last bytes were
    /// handed to hyper), i.e. once those bytes reached the socket.
    fn flushed_after(self: &Arc<Self>, mark: u64) -> impl Future<Output = ()> + Send + 'static {
        let ctx = self.clone();
        std::future::poll_fn(move |cx| {
            if ctx.flush_count() > mark {
                return Poll::Ready(());
            }
            *ctx.flush_waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
            if ctx.flush_count() > mark {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Waits until `n` more bytes may be sent at `rate` bytes/s on this connection.
    async fn throttle(&self, n: usize, rate: u64) {
        let until = {
            let mut next = self.throttle_next.lock().unwrap_or_else(|p| p.into_inner());
            let now = tokio::time::Instant::now();
            let start = next.filter(|t| *t > now).unwrap_or(now);
            let end = start + Duration::from_secs_f64(n as f64 / rate.max(1) as f64);
            *next = Some(end);
            end
        };
        tokio::time::sleep_until(until).await;
    }
}

/// The socket, with flush notifications and reset-on-drop for fault injection.
struct FaultIo {
    inner: TcpStream,
    ctx: Arc<ConnCtx>,
}

impl AsyncRead for FaultIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = r {
            self.ctx.on_flush();
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Drop for FaultIo {
    fn drop(&mut self) {
        if self.ctx.reset.load(Ordering::SeqCst) {
            // SO_LINGER 0: close() sends RST, not FIN.
            let _ = self.inner.set_zero_linger();
        }
    }
}

/// Accepts connections until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tracing::debug!(%peer, "connection accepted");
                    tokio::spawn(serve_connection(stream, shared.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let ctx = Arc::new(ConnCtx::default());
    let io = TokioIo::new(FaultIo {
        inner: stream,
        ctx: ctx.clone(),
    });
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        let ctx = ctx.clone();
        async move { handle(req, shared, ctx).await }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(io, service)
        .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// What a request addresses.
#[derive(Debug, Clone)]
struct Target {
    bucket: Option<String>,
    key: Option<String>,
}

fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

fn parse_target(host: &str, raw_path: &str, domains: &[String]) -> Target {
    let host = host_without_port(host).to_ascii_lowercase();
    let virtual_bucket = domains.iter().find_map(|d| {
        host.strip_suffix(d.as_str())
            .and_then(|p| p.strip_suffix('.'))
            .filter(|b| !b.is_empty() && !b.contains('.'))
            .map(str::to_string)
    });
    let decode = backend_oss::encode::decode_path;
    let path = raw_path.strip_prefix('/').unwrap_or(raw_path);
    match virtual_bucket {
        Some(bucket) => Target {
            bucket: Some(bucket),
            key: (!path.is_empty()).then(|| decode(path)),
        },
        None => {
            if path.is_empty() {
                return Target {
                    bucket: None,
                    key: None,
                };
            }
            let (b, k) = path.split_once('/').unwrap_or((path, ""));
            Target {
                bucket: Some(decode(b)),
                key: (!k.is_empty()).then(|| decode(k)),
            }
        }
    }
}

/// The request, reduced to what the operations need.
struct Req {
    number: u64,
    request_id: String,
    method: Method,
    target: Target,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    host: String,
    body: Option<Incoming>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        crate::auth::header_value(&self.headers, name)
    }

    fn query(&self, name: &str) -> Option<&str> {
        crate::auth::query_value(&self.query, name)
    }

    fn has_query(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }
}

/// Faults that shape a GET body.
#[derive(Debug, Default, Clone)]
struct BodyFaults {
    /// Bytes into the body, or object offset, where the body is cut, and how.
    cut: Option<(CutAt, CutKind)>,
    throttle: Option<u64>,
    ignore_range: bool,
}

#[derive(Debug, Clone, Copy)]
enum CutAt {
    BodyBytes(u64),
    ObjectOffset(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CutKind {
    Reset,
    Close,
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<ConnCtx>,
) -> Result<Response<ResBody>, Aborted> {
    let number = shared.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let request_id = format!("{:08X}{:016X}", shared.instance, number);
    let (parts, body) = req.into_parts();
    let host = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or(parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_string();
    let target = parse_target(&host, parts.uri.path(), &shared.service_domains);
    let query = backend_oss::encode::parse_query(parts.uri.query().unwrap_or(""));
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    tracing::trace!(
        request = number,
        request_id = %request_id,
        method = %parts.method,
        path = parts.uri.path(),
        query_keys = ?query.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        header_names = ?headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        "request received"
    );
    let mut r = Req {
        number,
        request_id,
        method: parts.method,
        target,
        query,
        headers,
        host,
        body: Some(body),
    };
    let mut record = RequestRecord {
        number,
        request_id: r.request_id.clone(),
        method: r.method.to_string(),
        bucket: r.target.bucket.clone(),
        key: r.target.key.clone(),
        query_keys: r.query.iter().map(|(k, _)| k.clone()).collect(),
        range: r.header("range").map(str::to_string),
        status: None,
        error_code: None,
        auth: AuthMethod::Anonymous,
        access_key_id: None,
        faults: Vec::new(),
    };
    let result = respond(&mut r, &shared, &conn, &mut record).await;
    match result {
        Ok(resp) => {
            record.status = Some(resp.status().as_u16());
            shared.record(record);
            Ok(resp)
        }
        Err(Aborted) => {
            conn.reset.store(true, Ordering::SeqCst);
            shared.record(record);
            Err(Aborted)
        }
    }
}

async fn respond(
    r: &mut Req,
    shared: &Arc<Shared>,
    conn: &Arc<ConnCtx>,
    record: &mut RequestRecord,
) -> Result<Response<ResBody>, Aborted> {
    let head = r.method == Method::HEAD;
    // 1. Authenticate.
    let signed = SignedParts {
        method: r.method.as_str(),
        bucket: r.target.bucket.as_deref(),
        key: r.target.key.as_deref(),
        query: &r.query,
        headers: &r.headers,
    };
    record.auth = crate::auth::detect(&signed);
    let auth = match shared.verifier.verify(&signed, SystemTime::now()) {
        Ok(a) => a,
        Err(e) => {
            record.error_code = Some(e.code.to_string());
            return Ok(error_response(&e, r, head));
        }
    };
    record.auth = auth.method;
    record.access_key_id = auth.access_key_id.clone();
    if auth.method == AuthMethod::Anonymous
        && let Err(e) = check_anonymous(r, shared)
    {
        record.error_code = Some(e.code.to_string());
        return Ok(error_response(&e, r, head));
    }

    // 2. Faults.
    let fired = shared.faults.decide(RequestFacts {
        number: r.number,
        method: r.method.as_str(),
        bucket: r.target.bucket.as_deref(),
        key: r.target.key.as_deref(),
    });
    let mut delay = Duration::ZERO;
    let mut terminal: Option<Fault> = None;
    let mut body_faults = BodyFaults::default();
    let mut change: Option<Option<u64>> = None;
    for (rule, fault) in fired {
        record.faults.push(fault.name());
        shared.faults.record(FaultEvent {
            request: r.number,
            request_id: r.request_id.clone(),
            rule,
            method: r.method.to_string(),
            bucket: r.target.bucket.clone(),
            key: r.target.key.clone(),
            fault: fault.clone(),
        });
        match fault {
            Fault::DelayFirstByte { millis } => delay += Duration::from_millis(millis),
            Fault::ResetBeforeResponse | Fault::Error { .. } => {
                terminal.get_or_insert(fault);
            }
            Fault::ResetAfterBytes { bytes } => {
                body_faults
                    .cut
                    .get_or_insert((CutAt::BodyBytes(bytes), CutKind::Reset));
            }
            Fault::ResetAtOffset { offset } => {
                body_faults
                    .cut
                    .get_or_insert((CutAt::ObjectOffset(offset), CutKind::Reset));
            }
            Fault::ShortBody { bytes } => {
                body_faults
                    .cut
                    .get_or_insert((CutAt::BodyBytes(bytes), CutKind::Close));
            }
            Fault::Throttle { bytes_per_second } => body_faults.throttle = Some(bytes_per_second),
            Fault::IgnoreRange => body_faults.ignore_range = true,
            Fault::ChangeObject { size } => change = Some(size),
        }
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match terminal {
        Some(Fault::ResetBeforeResponse) => return Err(Aborted),
        Some(Fault::Error {
            status,
            code,
            message,
        }) => {
            let (default_msg, ec) = match code.as_str() {
                "SlowDown" => ("Please reduce your request rate.", "0000-00000003"),
                "InternalError" => (
                    "We encountered an internal error. Please try again.",
                    "0000-00000002",
                ),
                "ServiceUnavailable" => (
                    "The service is unavailable. Please try again.",
                    "0000-00000004",
                ),
                "RequestTimeout" => (
                    "Your socket connection to the server was not read from or written to within the timeout period.",
                    "0000-00000005",
                ),
                _ => ("An error injected by the OSS emulator.", "0000-00000006"),
            };
            let status = if (400..=599).contains(&status) {
                status
            } else {
                500
            };
            let message = message.unwrap_or_else(|| default_msg.to_string());
            let e = ApiError::new(status, code, message, ec);
            record.error_code = Some(e.code.to_string());
            return Ok(error_response(&e, r, head));
        }
        _ => {}
    }

    // 3. The operation.
    let resp = match route(r, shared, conn, &body_faults).await {
        Ok(resp) => resp,
        Err(e) => {
            record.error_code = Some(e.code.to_string());
            error_response(&e, r, head)
        }
    };

    // 4. Change the object after this request (its own response already holds the data).
    if let (Some(size), Some(bucket), Some(key)) =
        (change, r.target.bucket.clone(), r.target.key.clone())
    {
        let seed = shared.faults.seed() ^ r.number.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let shared2 = shared.clone();
        let changed =
            tokio::task::spawn_blocking(move || shared2.store.mutate(&bucket, &key, seed, size))
                .await;
        match changed {
            Ok(Ok(v)) => tracing::info!(
                request_id = %r.request_id,
                etag = %v.etag(),
                "object changed by an injected fault"
            ),
            Ok(Err(e)) => {
                tracing::warn!(request_id = %r.request_id, error = %e, "change_object had no effect")
            }
            Err(e) => {
                tracing::warn!(request_id = %r.request_id, error = %e, "change_object failed")
            }
        }
    }
    Ok(resp)
}

fn check_anonymous(r: &Req, shared: &Shared) -> Result<(), ApiError> {
    let readable_op = (r.method == Method::GET || r.method == Method::HEAD)
        && r.target.key.is_some()
        && r.query.iter().all(|(k, _)| {
            k == "versionId" || k.starts_with("response-") || k == "x-oss-traffic-limit"
        });
    let denied = || {
        ApiError::access_denied("You have no right to access this object because of bucket acl.")
    };
    let Some(bucket) = r.target.bucket.as_deref().filter(|_| readable_op) else {
        return Err(denied());
    };
    let Some((_, public_read, _)) = shared.store.bucket_info(bucket) else {
        return Err(ApiError::no_such_bucket(bucket));
    };
    if shared.anonymous_read || public_read {
        return Ok(());
    }
    Err(denied())
}

async fn route(
    r: &mut Req,
    shared: &Arc<Shared>,
    conn: &Arc<ConnCtx>,
    faults: &BodyFaults,
) -> Result<Response<ResBody>, ApiError> {
    let (bucket, key) = (r.target.bucket.clone(), r.target.key.clone());
    match (bucket, key) {
        (None, _) => match r.method {
            Method::GET => Ok(list_buckets(r, shared)),
            _ => Err(ApiError::not_implemented(&format!("{} /", r.method))),
        },
        (Some(bucket), None) => bucket_op(r, shared, &bucket).await,
        (Some(bucket), Some(key)) => {
            if !shared.store.bucket_exists(&bucket) {
                return Err(ApiError::no_such_bucket(&bucket));
            }
            match r.method {
                Method::GET | Method::HEAD => {
                    get_object(r, shared, conn, &bucket, &key, faults).await
                }
                Method::PUT => put_object(r, shared, &bucket, &key).await,
                Method::DELETE => delete_object(r, shared, &bucket, &key),
                _ => Err(ApiError::not_implemented(&format!(
                    "{} on an object",
                    r.method
                ))),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Responses

fn builder(status: u16, r: &Req) -> hyper::http::response::Builder {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("server", "AliyunOSS")
        .header("x-oss-request-id", r.request_id.as_str())
}

fn empty() -> ResBody {
    Full::new(Bytes::new())
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into())
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

fn xml_response(r: &Req, status: u16, xml: String) -> Response<ResBody> {
    builder(status, r)
        .header("content-type", "application/xml")
        .header("content-length", xml.len())
        .body(full(xml))
        .expect("valid response")
}

fn host_id(r: &Req) -> String {
    let h = host_without_port(&r.host);
    if h.is_empty() {
        "localhost".to_string()
    } else {
        h.to_string()
    }
}

fn error_response(e: &ApiError, r: &Req, head: bool) -> Response<ResBody> {
    let xml = e.to_xml(&r.request_id, &host_id(r));
    tracing::debug!(request_id = %r.request_id, status = e.status, code = %e.code, message = %e.message, "error answer");
    let mut b = builder(e.status, r)
        .header("content-type", "application/xml")
        .header("x-oss-ec", e.ec);
    for (k, v) in &e.headers {
        b = b.header(*k, v.as_str());
    }
    if head {
        b.header(
            "x-oss-err",
            base64::engine::general_purpose::STANDARD.encode(xml.as_bytes()),
        )
        .header("content-length", 0)
        .body(empty())
        .expect("valid response")
    } else {
        b.header("content-length", xml.len())
            .body(full(xml))
            .expect("valid response")
    }
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// `2023-12-16T16:20:57.000Z`.
fn iso8601(unix: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix);
    let v4 = backend_oss::sign::v4_datetime(t).unwrap_or_else(|_| "19700101T000000Z".into());
    format!(
        "{}-{}-{}T{}:{}:{}.000Z",
        &v4[0..4],
        &v4[4..6],
        &v4[6..8],
        &v4[9..11],
        &v4[11..13],
        &v4[13..15]
    )
}

// ---------------------------------------------------------------------------------------------
// Buckets

async fn read_small_body(r: &mut Req) -> Result<Bytes, ApiError> {
    let Some(body) = r.body.take() else {
        return Ok(Bytes::new());
    };
    let limited = http_body_util::Limited::new(body, MAX_CONFIG_BODY);
    limited.collect().await.map(|c| c.to_bytes()).map_err(|_| {
        ApiError::new(
            400,
            "MalformedXML",
            "The request body is too large or incomplete.",
            "0016-00000002",
        )
    })
}

fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].trim())
}

async fn bucket_op(
    r: &mut Req,
    shared: &Arc<Shared>,
    bucket: &str,
) -> Result<Response<ResBody>, ApiError> {
    let store = &shared.store;
    match r.method {
        Method::PUT if r.has_query("versioning") => {
            let body = read_small_body(r).await?;
            let text = String::from_utf8_lossy(&body);
            let v = match xml_text(&text, "Status") {
                Some("Enabled") => Versioning::Enabled,
                Some("Suspended") => Versioning::Suspended,
                _ => {
                    return Err(ApiError::new(
                        400,
                        "MalformedXML",
                        "Expected <VersioningConfiguration><Status>Enabled|Suspended</Status></VersioningConfiguration>.",
                        "0016-00000002",
                    ));
                }
            };
            store
                .set_versioning(bucket, v)
                .map_err(|_| ApiError::no_such_bucket(bucket))?;
            Ok(builder(200, r)
                .header("content-length", 0)
                .body(empty())
                .expect("valid"))
        }
        Method::PUT if r.has_query("acl") => {
            let public = acl_is_public(r)?;
            store
                .set_public_read(bucket, public)
                .map_err(|_| ApiError::no_such_bucket(bucket))?;
            Ok(builder(200, r)
                .header("content-length", 0)
                .body(empty())
                .expect("valid"))
        }
        Method::PUT if r.query.is_empty() => {
            let public = acl_is_public(r)?;
            let _ = read_small_body(r).await?;
            let opts = crate::store::BucketOptions {
                versioning: Versioning::Disabled,
                public_read: public,
            };
            match store.create_bucket(bucket, opts) {
                Ok(true) => Ok(builder(200, r)
                    .header("location", format!("/{bucket}"))
                    .header("content-length", 0)
                    .body(empty())
                    .expect("valid")),
                Ok(false) => Err(ApiError::new(
                    409,
                    "BucketAlreadyExists",
                    "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
                    "0015-00000104",
                )
                .with("BucketName", bucket)),
                Err(_) => Err(ApiError::new(
                    400,
                    "InvalidBucketName",
                    "The specified bucket is not valid.",
                    "0015-00000001",
                )
                .with("BucketName", bucket)),
            }
        }
        Method::HEAD => match store.bucket_info(bucket) {
            Some(_) => Ok(builder(200, r)
                .header("content-length", 0)
                .body(empty())
                .expect("valid")),
            None => Err(ApiError::no_such_bucket(bucket)),
        },
        Method::GET => {
            let Some((versioning, public, created)) = store.bucket_info(bucket) else {
                return Err(ApiError::no_such_bucket(bucket));
            };
            let acl = if public { "public-read" } else { "private" };
            if r.has_query("versioning") {
                let status = match versioning {
                    Versioning::Disabled => String::new(),
                    Versioning::Enabled => "<Status>Enabled</Status>".into(),
                    Versioning::Suspended => "<Status>Suspended</Status>".into(),
                };
                return Ok(xml_response(
                    r,
                    200,
                    format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VersioningConfiguration>{status}</VersioningConfiguration>\n"
                    ),
                ));
            }
            if r.has_query("acl") {
                return Ok(xml_response(
                    r,
                    200,
                    format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AccessControlPolicy><Owner><ID>emulator</ID><DisplayName>emulator</DisplayName></Owner><AccessControlList><Grant>{acl}</Grant></AccessControlList></AccessControlPolicy>\n"
                    ),
                ));
            }
            if r.has_query("bucketInfo") {
                let status = match versioning {
                    Versioning::Disabled => "",
                    Versioning::Enabled => "<Versioning>Enabled</Versioning>",
                    Versioning::Suspended => "<Versioning>Suspended</Versioning>",
                };
                return Ok(xml_response(
                    r,
                    200,
                    format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<BucketInfo><Bucket><CreationDate>{}</CreationDate><ExtranetEndpoint>{host}</ExtranetEndpoint><IntranetEndpoint>{host}</IntranetEndpoint><Location>oss-cn-hangzhou</Location><StorageClass>Standard</StorageClass><Name>{}</Name><Owner><ID>emulator</ID><DisplayName>emulator</DisplayName></Owner><AccessControlList><Grant>{acl}</Grant></AccessControlList>{status}</Bucket></BucketInfo>\n",
                        iso8601(created),
                        xml_escape(bucket),
                        host = xml_escape(&host_id(r)),
                    ),
                ));
            }
            Ok(list_objects(r, shared, bucket))
        }
        Method::DELETE => {
            if !store.bucket_exists(bucket) {
                return Err(ApiError::no_such_bucket(bucket));
            }
            Err(ApiError::not_implemented("DeleteBucket"))
        }
        _ => Err(ApiError::not_implemented(&format!(
            "{} on a bucket",
            r.method
        ))),
    }
}

fn acl_is_public(r: &Req) -> Result<bool, ApiError> {
    match r.header("x-oss-acl") {
        None | Some("private") => Ok(false),
        Some("public-read") | Some("public-read-write") => Ok(true),
        Some(other) => Err(ApiError::invalid_argument(format!(
            "no such bucket access control exists: {other:?}; use private or public-read"
        ))),
    }
}

fn list_buckets(r: &Req, shared: &Shared) -> Response<ResBody> {
    let buckets: Vec<(String, u64)> = shared
        .store
        .bucket_names()
        .into_iter()
        .filter_map(|name| {
            let created = shared.store.bucket_info(&name)?.2;
            Some((name, created))
        })
        .collect();
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult><Owner><ID>emulator</ID><DisplayName>emulator</DisplayName></Owner><Buckets>",
    );
    for (name, created) in buckets {
        xml.push_str(&format!(
            "<Bucket><CreationDate>{}</CreationDate><Location>oss-cn-hangzhou</Location><Name>{}</Name><Region>cn-hangzhou</Region><StorageClass>Standard</StorageClass></Bucket>",
            iso8601(created),
            xml_escape(&name)
        ));
    }
    xml.push_str("</Buckets></ListAllMyBucketsResult>\n");
    xml_response(r, 200, xml)
}

fn list_objects(r: &Req, shared: &Shared, bucket: &str) -> Response<ResBody> {
    let prefix = r.query("prefix").unwrap_or("").to_string();
    let marker = r.query("marker").unwrap_or("").to_string();
    let max_keys: usize = r
        .query("max-keys")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let keys: Vec<String> = shared
        .store
        .keys(bucket)
        .into_iter()
        .filter(|k| k.starts_with(&prefix) && k.as_str() > marker.as_str())
        .collect();
    let truncated = keys.len() > max_keys;
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult><Name>{}</Name><Prefix>{}</Prefix><Marker>{}</Marker><MaxKeys>{max_keys}</MaxKeys><Delimiter></Delimiter><IsTruncated>{truncated}</IsTruncated>",
        xml_escape(bucket),
        xml_escape(&prefix),
        xml_escape(&marker)
    );
    let shown = &keys[..keys.len().min(max_keys)];
    if truncated && let Some(last) = shown.last() {
        xml.push_str(&format!("<NextMarker>{}</NextMarker>", xml_escape(last)));
    }
    for key in shown {
        if let Lookup::Found(v) = shared.store.lookup(bucket, key, None) {
            xml.push_str(&format!(
                "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>{}</ETag><Type>Normal</Type><Size>{}</Size><StorageClass>Standard</StorageClass></Contents>",
                xml_escape(key),
                iso8601(v.meta.last_modified),
                xml_escape(&v.etag()),
                v.meta.size
            ));
        }
    }
    xml.push_str("</ListBucketResult>\n");
    xml_response(r, 200, xml)
}

// ---------------------------------------------------------------------------------------------
// Objects

fn etag_list_matches(list: &str, etag: &str) -> bool {
    let bare = etag.trim_matches('"');
    list.split(',').any(|t| {
        let t = t.trim();
        t == "*"
            || t.trim_start_matches("W/")
                .trim_matches('"')
                .eq_ignore_ascii_case(bare)
    })
}

/// RFC 7232 order: If-Match, else If-Unmodified-Since (412); then If-None-Match, else
/// If-Modified-Since (304).
fn check_conditions(r: &Req, v: &Version) -> Result<(), ApiError> {
    let etag = v.etag();
    let modified = v.last_modified();
    if let Some(im) = r.header("if-match") {
        if !etag_list_matches(im, &etag) {
            return Err(precondition_failed("If-Match"));
        }
    } else if let Some(t) = r
        .header("if-unmodified-since")
        .and_then(|s| httpdate::parse_http_date(s).ok())
        && modified > t
    {
        return Err(precondition_failed("If-Unmodified-Since"));
    }
    let not_modified = if let Some(inm) = r.header("if-none-match") {
        etag_list_matches(inm, &etag)
    } else if let Some(t) = r
        .header("if-modified-since")
        .and_then(|s| httpdate::parse_http_date(s).ok())
    {
        modified <= t
    } else {
        false
    };
    if not_modified {
        return Err(ApiError::new(
            304,
            "NotModified",
            "Not Modified",
            "0026-00000005",
        ));
    }
    Ok(())
}

fn precondition_failed(condition: &str) -> ApiError {
    ApiError::new(
        412,
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold.",
        "0026-00000004",
    )
    .with("Condition", condition)
}

fn object_headers(
    mut b: hyper::http::response::Builder,
    v: &Version,
    versioned: bool,
) -> hyper::http::response::Builder {
    b = b
        .header("etag", v.etag())
        .header("last-modified", http_date(v.last_modified()))
        .header("x-oss-object-type", "Normal")
        .header("x-oss-storage-class", "Standard")
        .header("x-oss-hash-crc64ecma", v.meta.crc64.to_string());
    if versioned && let Some(id) = &v.meta.version_id {
        b = b.header("x-oss-version-id", id.as_str());
    }
    for (k, val) in &v.meta.user_meta {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(val),
        ) {
            b = b.header(name, value);
        }
    }
    b
}

async fn get_object(
    r: &mut Req,
    shared: &Arc<Shared>,
    conn: &Arc<ConnCtx>,
    bucket: &str,
    key: &str,
    faults: &BodyFaults,
) -> Result<Response<ResBody>, ApiError> {
    let head = r.method == Method::HEAD;
    let version_id = r.query("versionId").map(str::to_string);
    let versioned = shared
        .store
        .bucket_info(bucket)
        .is_some_and(|(v, _, _)| v != Versioning::Disabled);
    let v = match shared.store.lookup(bucket, key, version_id.as_deref()) {
        Lookup::Found(v) => v,
        Lookup::NoSuchBucket => return Err(ApiError::no_such_bucket(bucket)),
        Lookup::NoSuchKey => return Err(ApiError::no_such_key(key)),
        Lookup::NoSuchVersion => {
            return Err(ApiError::no_such_version(
                key,
                version_id.as_deref().unwrap_or(""),
            ));
        }
        Lookup::DeleteMarker(m) => {
            let mut e = ApiError::no_such_key(key).header("x-oss-delete-marker", "true");
            if let Some(id) = &m.meta.version_id {
                e = e.header("x-oss-version-id", id.clone());
            }
            return Err(e);
        }
    };
    if v.meta.delete_marker {
        let mut e = ApiError::new(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            "0026-00000006",
        )
        .header("x-oss-delete-marker", "true");
        if let Some(id) = &v.meta.version_id {
            e = e.header("x-oss-version-id", id.clone());
        }
        return Err(e);
    }
    match check_conditions(r, &v) {
        Ok(()) => {}
        Err(e) if e.status == 304 => {
            let resp = object_headers(builder(304, r), &v, versioned)
                .body(empty())
                .expect("valid response");
            return Ok(resp);
        }
        Err(e) => return Err(e),
    }
    let size = v.meta.size;
    let standard = r
        .header("x-oss-range-behavior")
        .is_some_and(|h| h.trim().eq_ignore_ascii_case("standard"));
    let outcome = if head || faults.ignore_range {
        RangeOutcome::Whole
    } else {
        resolve(r.header("range"), size, standard)
    };
    let (status, start, len) = match outcome {
        RangeOutcome::Whole => (200, 0, size),
        RangeOutcome::Partial { start, end } => (206, start, end - start + 1),
        RangeOutcome::NotSatisfiable => {
            return Err(ApiError::new(
                416,
                "InvalidRange",
                "The requested range cannot be satisfied",
                "0003-00000801",
            )
            .header("content-range", format!("bytes */{size}"))
            .with(
                "RangeRequested",
                r.header("range").unwrap_or("").to_string(),
            )
            .with("ActualObjectSize", size.to_string()));
        }
    };
    let mut b = object_headers(builder(status, r), &v, versioned)
        .header("accept-ranges", "bytes")
        .header("content-length", len);
    let content_type = r
        .query("response-content-type")
        .map(str::to_string)
        .unwrap_or_else(|| v.meta.content_type.clone());
    b = b.header("content-type", content_type);
    for (q, h) in [
        ("response-content-disposition", "content-disposition"),
        ("response-content-encoding", "content-encoding"),
        ("response-content-language", "content-language"),
        ("response-cache-control", "cache-control"),
        ("response-expires", "expires"),
    ] {
        if let Some(val) = r.query(q)
            && let Ok(val) = HeaderValue::from_str(val)
        {
            b = b.header(h, val);
        }
    }
    if status == 206 {
        b = b.header(
            "content-range",
            format!("bytes {}-{}/{}", start, start + len - 1, size),
        );
    } else if let Some(md5) = v.md5_base64() {
        b = b.header("content-md5", md5);
    }
    if head {
        return Ok(b.body(empty()).expect("valid response"));
    }
    let data = v
        .open()
        .map_err(|e| ApiError::internal(format!("cannot open the object's data: {e}")))?;
    let send = match faults.cut {
        None => len,
        Some((CutAt::BodyBytes(n), _)) => n.min(len),
        Some((CutAt::ObjectOffset(off), _)) => {
            // Only a response that starts before the offset is cut, so a client that
            // resumes at the offset gets through.
            if off > start && off < start + len {
                off - start
            } else {
                len
            }
        }
    };
    let body = ObjectBody::new(BodyPlan {
        data,
        start,
        len,
        send,
        cut: if send < len {
            faults.cut.map(|(_, kind)| kind)
        } else {
            None
        },
        throttle: faults.throttle,
        conn: conn.clone(),
        request_id: r.request_id.clone(),
    });
    Ok(b.body(body.boxed_unsync()).expect("valid response"))
}

async fn put_object(
    r: &mut Req,
    shared: &Arc<Shared>,
    bucket: &str,
    key: &str,
) -> Result<Response<ResBody>, ApiError> {
    if r.header("x-oss-copy-source").is_some() {
        return Err(ApiError::not_implemented("CopyObject"));
    }
    if r.has_query("acl")
        || r.has_query("tagging")
        || r.has_query("symlink")
        || r.has_query("append")
    {
        return Err(ApiError::not_implemented("this object sub-resource"));
    }
    if !crate::store::valid_key(key) {
        return Err(ApiError::new(
            400,
            "InvalidObjectName",
            "The specified object is not valid.",
            "0016-00000005",
        )
        .with("Key", key));
    }
    let expected_md5 = match r.header("content-md5") {
        None => None,
        Some(v) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
                .filter(|d| d.len() == 16)
                .ok_or_else(|| {
                    ApiError::new(
                        400,
                        "InvalidDigest",
                        "The Content-MD5 you specified was invalid.",
                        "0016-00000003",
                    )
                })?,
        ),
    };
    let mut upload = shared
        .store
        .begin_upload(bucket)
        .map_err(|_| ApiError::no_such_bucket(bucket))?;
    let mut hasher = Hasher::new();
    let mut body = r.body.take();
    let written: Result<(), ApiError> = async {
        let Some(body) = body.as_mut() else {
            return Ok(());
        };
        let mut file = match &upload.sink {
            UploadSink::File { tmp } => {
                Some(tokio::fs::File::create(tmp).await.map_err(|e| {
                    ApiError::internal(format!("cannot create the upload file: {e}"))
                })?)
            }
            UploadSink::Memory(_) => None,
        };
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                ApiError::new(
                    400,
                    "IncompleteBody",
                    format!("The request body ended early: {e}"),
                    "0016-00000004",
                )
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            hasher.update(&data);
            match (&mut upload.sink, file.as_mut()) {
                (UploadSink::Memory(buf), _) => buf.extend_from_slice(&data),
                (UploadSink::File { .. }, Some(f)) => f.write_all(&data).await.map_err(|e| {
                    ApiError::internal(format!("cannot write the upload file: {e}"))
                })?,
                _ => {}
            }
        }
        if let Some(mut f) = file {
            f.flush()
                .await
                .map_err(|e| ApiError::internal(format!("cannot write the upload file: {e}")))?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = written {
        shared.store.abort_upload(upload);
        return Err(e);
    }
    let hashes = hasher.finish();
    if let Some(want) = expected_md5
        && want.as_slice() != hashes.md5.as_slice()
    {
        shared.store.abort_upload(upload);
        return Err(ApiError::new(
            400,
            "InvalidDigest",
            "The Content-MD5 you specified did not match what was received.",
            "0016-00000003",
        ));
    }
    let attrs = NewObject {
        content_type: r.header("content-type").map(str::to_string),
        user_meta: r
            .headers
            .iter()
            .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-oss-meta-"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
    };
    let v = shared
        .store
        .commit_upload(bucket, key, upload, hashes, attrs)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut b = builder(200, r)
        .header("etag", v.etag())
        .header("x-oss-hash-crc64ecma", v.meta.crc64.to_string())
        .header("content-length", 0);
    if let Some(md5) = v.md5_base64() {
        b = b.header("content-md5", md5);
    }
    if let Some(id) = &v.meta.version_id {
        b = b.header("x-oss-version-id", id.as_str());
    }
    Ok(b.body(empty()).expect("valid response"))
}

fn delete_object(
    r: &Req,
    shared: &Shared,
    bucket: &str,
    key: &str,
) -> Result<Response<ResBody>, ApiError> {
    let (id, marker) = shared
        .store
        .delete(bucket, key, r.query("versionId"))
        .map_err(|_| ApiError::no_such_bucket(bucket))?;
    let mut b = builder(204, r);
    if let Some(id) = id {
        b = b.header("x-oss-version-id", id);
        if marker {
            b = b.header("x-oss-delete-marker", "true");
        }
    }
    Ok(b.body(empty()).expect("valid response"))
}

// ---------------------------------------------------------------------------------------------
// Object bodies

struct BodyPlan {
    data: OpenData,
    /// Object offset of the first byte.
    start: u64,
    /// Bytes the response declares.
    len: u64,
    /// Bytes actually sent before the cut (`== len` without a cut).
    send: u64,
    cut: Option<CutKind>,
    throttle: Option<u64>,
    conn: Arc<ConnCtx>,
    request_id: String,
}

enum Source {
    Memory(Bytes),
    /// A stored file read ahead in large blocks: one blocking-pool round trip per
    /// [`READ_AHEAD`] bytes instead of one per frame. `file` is `None` only while a read is
    /// in flight (it moves to the blocking pool and back).
    File {
        file: Option<std::fs::File>,
        seeked: bool,
        ahead: Bytes,
    },
}

/// Bytes a file-backed body reads per blocking call (then sent in [`CHUNK`]-sized frames).
const READ_AHEAD: usize = 1 << 20;

struct StreamState {
    source: Option<Source>,
    plan: BodyPlan,
    sent: u64,
    flush_mark: Option<u64>,
    done: bool,
}

impl StreamState {
    async fn read(&mut self, n: usize) -> io::Result<Bytes> {
        let offset = self.plan.start + self.sent;
        // Never read past what this response will send (a cut response sends less).
        let remaining = usize::try_from(self.plan.send - self.sent).unwrap_or(usize::MAX);
        if self.source.is_none() {
            self.source = Some(
                match std::mem::replace(&mut self.plan.data, OpenData::Memory(Bytes::new())) {
                    OpenData::Memory(b) => Source::Memory(b),
                    OpenData::File(f) => Source::File {
                        file: Some(f),
                        seeked: false,
                        ahead: Bytes::new(),
                    },
                },
            );
        }
        match self.source.as_mut().expect("source opened") {
            Source::Memory(b) => {
                let o = offset as usize;
                b.get(o..o + n).map(|s| b.slice_ref(s)).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "object data is shorter than its size",
                    )
                })
            }
            Source::File {
                file,
                seeked,
                ahead,
            } => {
                if ahead.len() < n {
                    let want = n.max(READ_AHEAD).min(remaining.max(n));
                    let mut f = file.take().ok_or_else(|| {
                        io::Error::other("a previous read of this body was abandoned")
                    })?;
                    let (leftover, seek_to) = (std::mem::take(ahead), (!*seeked).then_some(offset));
                    let (f, block) = tokio::task::spawn_blocking(move || {
                        let block = read_block(&mut f, seek_to, leftover, want);
                        (f, block)
                    })
                    .await
                    .map_err(io::Error::other)?;
                    *file = Some(f);
                    *seeked = true;
                    *ahead = block?;
                }
                Ok(ahead.split_to(n))
            }
        }
    }

    async fn next(mut self) -> Option<(Result<Frame<Bytes>, BodyError>, Self)> {
        if self.done {
            return None;
        }
        if self.sent < self.plan.send {
            let mut chunk = CHUNK as u64;
            if let Some(rate) = self.plan.throttle {
                chunk = chunk.min((rate / 10).max(1));
            }
            let n = chunk.min(self.plan.send - self.sent) as usize;
            if let Some(rate) = self.plan.throttle {
                self.plan.conn.throttle(n, rate).await;
            }
            return match self.read(n).await {
                Ok(bytes) => {
                    self.sent += n as u64;
                    if self.sent == self.plan.send && self.plan.cut.is_some() {
                        // Taken before hyper gets the last bytes: the next completed flush
                        // includes them.
                        self.flush_mark = Some(self.plan.conn.flush_count());
                    }
                    Some((Ok(Frame::data(bytes)), self))
                }
                Err(e) => {
                    tracing::warn!(request_id = %self.plan.request_id, error = %e, "reading object data failed; closing the connection");
                    self.done = true;
                    Some((Err(BodyError::Io(e)), self))
                }
            };
        }
        let cut = self.plan.cut.take()?;
        let mark = self
            .flush_mark
            .unwrap_or_else(|| self.plan.conn.flush_count());
        if tokio::time::timeout(FLUSH_WAIT, self.plan.conn.flushed_after(mark))
            .await
            .is_err()
        {
            tracing::warn!(request_id = %self.plan.request_id, "no flush before an injected cut; cutting anyway");
        }
        if cut == CutKind::Reset {
            self.plan.conn.reset.store(true, Ordering::SeqCst);
        }
        tracing::info!(
            request_id = %self.plan.request_id,
            sent = self.sent,
            declared = self.plan.len,
            reset = cut == CutKind::Reset,
            "cutting the response body (injected fault)"
        );
        self.done = true;
        Some((Err(BodyError::Injected), self))
    }
}

/// `leftover` followed by the next bytes of `f` (from `seek_to`, if given), `want` in all.
fn read_block(
    f: &mut std::fs::File,
    seek_to: Option<u64>,
    leftover: Bytes,
    want: usize,
) -> io::Result<Bytes> {
    use std::io::{Read, Seek};
    if let Some(pos) = seek_to {
        f.seek(io::SeekFrom::Start(pos))?;
    }
    let mut block = Vec::with_capacity(want);
    block.extend_from_slice(&leftover);
    let more = want.saturating_sub(leftover.len()) as u64;
    // `read_to_end` fills the spare capacity without zeroing it first.
    f.by_ref().take(more).read_to_end(&mut block)?;
    if block.len() < want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "object data is shorter than its size",
        ));
    }
    Ok(Bytes::from(block))
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, BodyError>> + Send>>;

/// A response body of exactly `len` bytes (as far as hyper is told), streamed in chunks.
struct ObjectBody {
    len: u64,
    stream: FrameStream,
}

impl ObjectBody {
    fn new(plan: BodyPlan) -> Self {
        let len = plan.len;
        let state = StreamState {
            source: None,
            plan,
            sent: 0,
            flush_mark: None,
            done: false,
        };
        let stream = futures::stream::unfold(state, |s| s.next());
        Self {
            len,
            stream: Box::pin(stream),
        }
    }
}

impl Body for ObjectBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.stream.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains() -> Vec<String> {
        vec!["localhost".into()]
    }

    #[test]
    fn targets_from_path_style_and_virtual_hosts() {
        let t = parse_target("127.0.0.1:8080", "/bkt/a%20b/c%2Bd+e", &domains());
        assert_eq!(t.bucket.as_deref(), Some("bkt"));
        assert_eq!(t.key.as_deref(), Some("a b/c+d+e"));
        let t = parse_target("bkt.localhost:8080", "/x/y", &domains());
        assert_eq!(t.bucket.as_deref(), Some("bkt"));
        assert_eq!(t.key.as_deref(), Some("x/y"));
        let t = parse_target("bkt.localhost", "/", &domains());
        assert_eq!((t.bucket.as_deref(), t.key.as_deref()), (Some("bkt"), None));
        let t = parse_target("localhost:1", "/bkt/", &domains());
        assert_eq!((t.bucket.as_deref(), t.key.as_deref()), (Some("bkt"), None));
        let t = parse_target("localhost:1", "/", &domains());
        assert_eq!((t.bucket, t.key), (None, None));
        let t = parse_target("[::1]:9", "/b/k", &domains());
        assert_eq!(t.key.as_deref(), Some("k"));
    }

    #[test]
    fn etag_lists_match_quoted_unquoted_and_star() {
        assert!(etag_list_matches("\"ABC\"", "\"ABC\""));
        assert!(etag_list_matches("abc", "\"ABC\""));
        assert!(etag_list_matches("\"x\", \"ABC\"", "\"ABC\""));
        assert!(etag_list_matches("*", "\"ABC\""));
        assert!(!etag_list_matches("\"ABD\"", "\"ABC\""));
    }

    #[test]
    fn iso8601_formats_utc() {
        assert_eq!(iso8601(1_702_743_657), "2023-12-16T16:20:57.000Z");
    }
}
